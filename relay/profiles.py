"""The profile registry: every provider Relay knows, as data.

A :class:`Profile` says how one kind of sender signs (a ``verifiers`` scheme
module and its default ``Params``), how its payload becomes a canonical event
(a ``schemas`` normalizer), what it expects back (:class:`Ack`), how long it
waits, and which headers are worth keeping. Config instances name a profile
and override its options; nothing else in Relay branches on provider names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any

import schemas.usdt_invoice
import verifiers.hmac_header
from schemas.event import Normalizer


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer a provider counts as "received"."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    document: str | None
    scheme: ModuleType
    params: Any
    normalize: Normalizer
    ack: Ack
    timeout_s: float
    kept_headers: tuple[str, ...] = ()
    """Headers handed to the normalizer (id headers) and kept in dead letters."""
    content_types: tuple[str, ...] = ("application/json",)
    """Accepted ``Content-Type`` media types; anything else is a 415."""


USDT_INVOICE = Profile(
    name="usdt-invoice",
    document="003",
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-webhook-signature"),
    normalize=schemas.usdt_invoice.normalize,
    ack=Ack(),
    timeout_s=30,
    kept_headers=("x-webhook-id", "x-invoice-reference"),
)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {profile.name: profile for profile in (USDT_INVOICE,)}
)
