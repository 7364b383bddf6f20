"""Stripe's webhook signature: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``.

The signed payload is ``<t>.<raw body>``, HMAC-SHA256 keyed with the endpoint
secret exactly as configured (``whsec_...`` included: Stripe does not decode
it). The header is read as :mod:`verifiers.timestamped` reads it; entries of
other schemes (``v0``) are skipped.

Compared with stripe-python (``stripe/_webhook.py``):

- every failure to read the header, its timestamp included, is a
  :class:`~verifiers.errors.MalformedSignature`, as stripe-python wraps them in
  one error; a header with two ``t`` entries is malformed rather than read by
  its first;
- like stripe-python, which compares each ``v1`` entry as text and passes over
  those that cannot match, one undecodable ``v1`` entry does not fail a header
  whose other entry matches; a header whose ``v1`` entries are all undecodable
  is a ``MalformedSignature`` here, where stripe-python reports that no
  signature matches (no ``v1`` entry at all is a
  :class:`~verifiers.errors.MissingSignature`, as stripe-python's "no
  signatures found with expected scheme");
- hex is read in either case, where stripe-python's text compare only matches
  lower case; more than ``timestamped.MAX_ENTRIES`` ``v1`` entries are refused;
- the tolerance (300 s by default) applies in both directions, where
  stripe-python only refuses old timestamps, and must be greater than zero
  (a config error otherwise), where stripe-python skips the check for 0.
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

name = "stripe"
checks_authorization = False

LAYOUT = timestamped.Layout(
    scheme=name,
    header="Stripe-Signature",
    separator=",",
    timestamp_key="t",
    signature_key="v1",
    joiner=".",
    other_keys="skip",
)


@dataclass(frozen=True, slots=True)
class Params:
    timestamp_tolerance_s: int = 300

    def __post_init__(self) -> None:
        check_tolerance_option(self)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    return timestamped.verify(body, headers, LAYOUT, params.timestamp_tolerance_s, keys, now)


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    return timestamped.sign(body, LAYOUT, keys, now)


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


secret_key = text_key
