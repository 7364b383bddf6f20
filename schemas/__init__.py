"""The canonical event and its contract: what normalizers build and consumers read.

The event model and its builders (``event``), the value readers normalizers use
(``values``), payload parsing, the record formats, the typed decoder, and the
published contract (``payment-event.schema.json``, ``asyncapi.yaml``). The
normalizers themselves are the server's, one per provider in ``relay.providers``;
this package is also shipped alone to consumers as ``relay-events``. It must not
import aiohttp, aiokafka or ``relay``; it does no I/O.
"""

from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, Normalizer
from schemas.payload import parse_payload

__all__ = [
    "CanonicalEvent",
    "Message",
    "NormalizationError",
    "NormalizeContext",
    "Normalizer",
    "parse_payload",
]
