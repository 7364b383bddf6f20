"""Reading a webhook body: the size limit, the read timeout, its pieces and ``Content-Encoding``.

aiohttp's automatic decompression is off (``auto_decompress`` in :mod:`relay.app`):
it would inflate any gzip, deflate, br or zstd body for any route, count the limit
only once a whole chunk was inflated, and answer a broken stream with a 500 and two
tracebacks. Relay reads the bytes as sent and decides here instead:

- a ``Content-Encoding`` other than none or ``identity`` is a 415 unless the instance
  lists it in ``content_encodings`` (``gzip``, ``deflate``); stacked encodings
  (``gzip, gzip``) are a 415 too, since no provider sends them;
- the instance's ``max_body_bytes`` caps the bytes on the wire (a ``Content-Length``
  above it is a 413 before anything is read) and, for a compressed body, the
  unpacked bytes as well: the inflater is asked for at most one byte more than is
  still allowed, so a bomb costs ``max_body_bytes`` of memory, never what it unpacks to;
- a compressed body that does not decode, or stops before its end, is a 400;
- the whole body, not each chunk, must arrive within ``read_timeout_s`` (a 408).

What a piece costs is bounded as well as what a byte costs, since a body can be cut
into pieces that cost work each however few bytes they hold (``400 fragmented_body``):

- a chunked body may come in at most :data:`MAX_CHUNKS` chunks. aiohttp's parser calls
  into Python three times per chunk (about 0.8 us on the measuring machine, so a 1 MiB
  body in 1-byte chunks cost 0.8 s), and no way of reading the body makes that cost per
  byte, so the chunks are counted (``readchunk``) and the body refused past the bound.
  Senders write chunks of kilobytes (a 1 MiB body in 1 KiB chunks is 1,024 chunks);
- a gzip body may hold at most :data:`MAX_GZIP_MEMBERS` members: each costs a fresh
  decompressor (about 4 us), and 20-byte empty members fit 52,000 to the MiB. Senders
  write one; block-gzip tools write one per 64 KiB, 17 for a 1 MiB body.

The signature is checked over the unpacked bytes: a provider signs its payload, and
compression is how the payload travels, as with TLS.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterable

from aiohttp import web

from relay.errors import (
    BodyTooLarge,
    FragmentedBody,
    UndecodableBody,
    UnsupportedContentEncoding,
)
from relay.settings import CONTENT_ENCODINGS

MAX_CHUNKS = 1024
"""HTTP chunks a chunked body may come in (``Transfer-Encoding: chunked``)."""
MAX_GZIP_MEMBERS = 64
"""Members a gzip body may hold (RFC 1952 lets a sender write several, one after another)."""

# RFC 9110 8.4.1.3: x-gzip is gzip.
_ALIASES = {"x-gzip": "gzip"}


def content_encoding(values: Iterable[str], allowed: Iterable[str]) -> str | None:
    """The single encoding to undo (None: the body is sent as is), or a 415.

    ``values`` are every ``Content-Encoding`` header of the request; names compare
    case-insensitively and ``identity`` entries mean nothing, as RFC 9110 says.
    """
    names = [
        _ALIASES.get(name, name)
        for value in values
        for name in (part.strip().lower() for part in value.split(","))
        if name and name != "identity"
    ]
    if not names:
        return None
    accepted = tuple(allowed)
    if len(names) == 1 and names[0] in accepted:
        return names[0]
    wanted = " or ".join(accepted) if accepted else "absent or identity"
    raise UnsupportedContentEncoding(
        f"Content-Encoding {', '.join(names)[:64]!r} is not accepted here (it must be {wanted})"
    )


class Inflater:
    """Undoes gzip or deflate incrementally, refusing past ``limit`` unpacked bytes.

    gzip may hold several members one after another (RFC 1952); each is decoded in turn,
    up to :data:`MAX_GZIP_MEMBERS`.
    deflate is the zlib format (RFC 9110), but like aiohttp and browsers this also takes a
    raw deflate stream, which some senders write instead: the first byte tells them apart.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        if encoding not in CONTENT_ENCODINGS:
            raise ValueError(f"cannot inflate {encoding!r}")
        self._encoding = encoding
        self._limit = limit
        self._produced = 0
        self._members = 0
        self._decompressor: zlib._Decompress | None = None

    @property
    def produced(self) -> int:
        """Unpacked bytes so far: never more than ``limit`` + 1."""
        return self._produced

    def feed(self, data: bytes) -> bytes:
        """The bytes ``data`` unpacks to; :class:`BodyTooLarge` past the limit."""
        out = bytearray()
        while data:
            if self._decompressor is not None and self._decompressor.eof:
                if self._encoding != "gzip":
                    raise UndecodableBody(
                        f"the body goes on after the end of its {self._encoding} data"
                    )
                self._decompressor = None  # the next gzip member
            if self._decompressor is None:
                self._members += 1
                if self._members > MAX_GZIP_MEMBERS:
                    raise FragmentedBody(
                        f"the body holds more than {MAX_GZIP_MEMBERS} gzip members"
                    )
                self._decompressor = zlib.decompressobj(self._wbits(data[0]))
            decompressor = self._decompressor
            # One more than allowed: enough to know the limit is passed, no more.
            budget = self._limit - self._produced + 1
            try:
                chunk = decompressor.decompress(data, budget)
            except zlib.error:
                raise UndecodableBody(
                    f"the body is not valid {self._encoding} data (Content-Encoding)"
                ) from None
            self._produced += len(chunk)
            if self._produced > self._limit:
                raise BodyTooLarge(
                    f"the body unpacks to more than this provider's limit of {self._limit} bytes"
                )
            out += chunk
            # What is left: after the end of the stream, the bytes past it (the loop's top
            # decides); otherwise the input zlib held back once the budget was spent, which
            # is never all of it again, since each pass produced at least one byte.
            data = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
        return bytes(out)

    def finish(self) -> None:
        """The body has ended: a 400 unless the compressed data ended too.

        An empty body is an empty body, whatever its ``Content-Encoding`` says.
        """
        if self._decompressor is not None and not self._decompressor.eof:
            raise UndecodableBody(f"the body ends before its {self._encoding} data does")

    def _wbits(self, first: int) -> int:
        if self._encoding == "gzip":
            return 16 + zlib.MAX_WBITS
        # A zlib stream starts with CM = 8 (deflate) in its low four bits.
        return zlib.MAX_WBITS if first & 0x0F == 8 else -zlib.MAX_WBITS


async def read_body(
    request: web.Request, *, limit: int, encodings: Iterable[str], timeout_s: float
) -> bytes:
    """The request body, unpacked, within ``limit`` bytes both ways, ``timeout_s`` and
    :data:`MAX_CHUNKS` chunks."""
    encoding = content_encoding(request.headers.getall("Content-Encoding", []), encodings)
    length = request.content_length
    if length is not None and length > limit:
        # Refused unread: relay.http answers and closes without reading the rest.
        raise BodyTooLarge(f"the body is larger than this provider's limit of {limit} bytes")
    content = request.content
    if encoding is None and length is not None and content.is_eof():
        # The usual webhook: the whole body came in with the headers, within its
        # Content-Length. Nothing to wait for or count, so no deadline to arm.
        return content.read_nowait()
    inflater = Inflater(encoding, limit) if encoding is not None else None
    body = bytearray()
    received = chunks = 0
    try:
        # A deadline for the whole body, not per chunk: a client dribbling a byte at a
        # time cannot hold the connection and the handler beyond it.
        async with asyncio.timeout(timeout_s):
            while True:
                # A chunk's bytes with True at its end; what has arrived of a body sent
                # with a Content-Length (or of a chunk) with False; b"", False at the end.
                data, chunk_ends = await content.readchunk()
                if chunk_ends:
                    chunks += 1
                    if chunks > MAX_CHUNKS:
                        raise FragmentedBody(f"the body comes in more than {MAX_CHUNKS} chunks")
                elif not data:
                    break
                received += len(data)
                if received > limit:  # chunked: there was no Content-Length to check
                    raise BodyTooLarge(
                        f"the body is larger than this provider's limit of {limit} bytes"
                    )
                body += inflater.feed(data) if inflater is not None else data
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason="the request body was not received in time") from None
    if inflater is not None:
        inflater.finish()
    return bytes(body)
