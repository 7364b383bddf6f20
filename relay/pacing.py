"""Reading a connection whose request trickles in a few times a second, not at every segment.

Every socket read wakes the event loop, at about 20 us whatever the read holds. A
sender spreading a request over many small segments (a byte a millisecond, of its
headers or its body) made Relay wake a thousand times a second for that connection
until ``read_timeout_s``: 165-212 ms of CPU per request, where a webhook costs one or
two. Past :data:`UNPACED_SMALL_READS` reads of under :data:`SMALL_READ_BYTES` in one
request, each further small read pauses reading that connection, for
:data:`FIRST_PAUSE_S`, then twice as long each time up to :data:`LONGEST_PAUSE_S`;
the kernel holds what arrives meanwhile, and the next read takes it at once.

A webhook arrives in one to three reads (headers and body, whole or in a few
segments), so an ordinary request is never paused; a big read (a body arriving
fast) is never counted. The request's timers run whether or not its connection is
being read: a paced request still ends at ``read_timeout_s``, with its 408.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from relay.metrics import READ_PAUSES

SMALL_READ_BYTES = 1024
UNPACED_SMALL_READS = 16
FIRST_PAUSE_S = 0.1
LONGEST_PAUSE_S = 1.0
"""A paced connection is read at least once a second. The kernel's receive buffer (64 KiB
or more) holds what arrives in that time from anything slow enough to be paced."""


class Pacer:
    """One connection's small reads in its current request, and the pauses they earn.

    Past :data:`UNPACED_SMALL_READS` small reads, each further one pauses reading the
    transport and, when the pause is over, calls ``resume`` (which resumes reading,
    unless whoever reads the connection holds it for a reason of its own). While
    :attr:`holding`, the connection's protocol must not resume reading either.
    """

    __slots__ = ("_pause_s", "_resume", "_small_reads", "_transport", "holding")

    def __init__(self, transport: asyncio.Transport, resume: Callable[[], None]) -> None:
        self._transport = transport
        self._resume = resume
        self._small_reads = 0
        self._pause_s = FIRST_PAUSE_S
        self.holding = False

    def read(self, size: int) -> None:
        """Count a read of ``size`` bytes, once it has been handled."""
        if not 0 < size < SMALL_READ_BYTES:
            return
        self._small_reads += 1
        if self._small_reads > UNPACED_SMALL_READS and not self.holding:
            self.holding = True
            self._transport.pause_reading()
            READ_PAUSES.inc()
            asyncio.get_running_loop().call_later(self._pause_s, self._release)
            self._pause_s = min(2 * self._pause_s, LONGEST_PAUSE_S)

    def new_request(self) -> None:
        """A request's head is complete: what follows counts its own small reads."""
        self._small_reads = 0
        self._pause_s = FIRST_PAUSE_S

    def _release(self) -> None:
        self.holding = False
        self._resume()
