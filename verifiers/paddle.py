"""Paddle Billing's webhook signature: ``Paddle-Signature: ts=<unix>;h1=<hex>[;h1=...]``.

The signed payload is ``<ts>:<raw body>``, HMAC-SHA256 keyed with the
notification destination's secret key exactly as configured
(``pdl_ntfset_...`` included), lower-case hex. Paddle sends one ``h1`` per
active secret while a secret is rotated; an instance may hold several secrets
too. The header is read as :mod:`verifiers.timestamped` reads it.

Compared with paddle-python-sdk (``paddle_billing/Notifications/Verifier.py``
and ``PaddleSignature.py``):

- the tolerance defaults to the SDK's 5 s (``Verifier(maximum_variance=5)``),
  applies in both directions where the SDK only refuses old timestamps, and
  cannot be switched off (the SDK's ``maximum_variance=0``);
- like the SDK, a key other than ``ts`` and ``h1`` is refused, and an ``h1``
  that cannot match (the SDK's tests send ``h1=dummy`` beside the real one) is
  passed over;
- where the SDK reads an entry without ``=`` as nothing, a second ``ts`` as
  the last one and no ``ts`` as 0 (so stale), here each is a
  :class:`~verifiers.errors.MalformedSignature`;
- the body is signed as bytes, where the SDK decodes it as UTF-8 first: a body
  that is not UTF-8 is refused by signature here, by an exception there.
"""

from __future__ import annotations

from dataclasses import dataclass

from verifiers import timestamped
from verifiers.base import (
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    check_tolerance_option,
    text_key,
)
from verifiers.keys import KeyRing

name = "paddle"
checks_authorization = False

LAYOUT = timestamped.Layout(
    scheme=name,
    header="Paddle-Signature",
    separator=";",
    timestamp_key="ts",
    signature_key="h1",
    joiner=":",
    other_keys="refuse",
)


@dataclass(frozen=True, slots=True)
class Params:
    timestamp_tolerance_s: int = 5

    def __post_init__(self) -> None:
        check_tolerance_option(self)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    return timestamped.verify(body, headers, LAYOUT, params.timestamp_tolerance_s, keys, now)


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    return timestamped.sign(body, LAYOUT, keys, now)


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


secret_key = text_key
