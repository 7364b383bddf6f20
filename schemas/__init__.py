"""Normalization: pure functions from an authentic provider payload to the canonical event.

Also home of the published contract, ``payment-event.schema.json``. This
package must not import aiohttp, aiokafka or ``relay``; it does no I/O.
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
