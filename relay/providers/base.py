"""What every provider module declares with: :class:`Profile`, :class:`Ack` and the readers.

A :class:`Profile` says how one kind of sender signs (a ``verifiers`` scheme
module and its default ``Params``), what that signature pins (the payload the
normalizer reads and the identity of the signed content), how its payload
becomes a canonical event (its provider module's normalizer), what it expects
back (:class:`Ack`), how long it waits, and which headers are worth keeping.
Config instances name a profile and override its options; nothing else in Relay
branches on provider names.

What a signature pins: a scheme that signs the exact body bytes pins the body,
so the normalizer reads the parsed body and the body's SHA-256 is the content's
identity. A ``sign``-field scheme pins only its signed string: the normalizer
reads the signed view (:func:`signed_view`, from :func:`verifiers.sign_field.read`)
and the identity hashes the signed string, so every re-spelling that verifies
under one signature reads, deduplicates and dead-letters as one message. The
HMAC scheme's JSON.stringify fallback pins the re-serialized form.

Batches: a sender that posts several notifications in one request (Adyen's
``notificationItems``, GoCardless's ``events``) has an items reader
(``Profile.items``): each :class:`BatchItem` is normalized, deduplicated and
dead-lettered on its own, with its own payload (what its signature pins) and
identity, and its event embeds the item's own bytes as ``raw``.

Imports ``schemas``, ``verifiers`` and :mod:`relay.samples`' types only: a
provider module that imports this stays free of the server (aiohttp, aiokafka).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import verifiers.hmac_header
import verifiers.sign_field
from relay.samples import SampleEvent
from schemas import NormalizationError, parse_payload
from schemas.event import Message, Normalizer
from schemas.payload import check_raw
from schemas.values import stable_id
from verifiers import AmbiguousBody, MalformedBody
from verifiers.base import Scheme
from verifiers.keys import KeyRing


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer a provider counts as "received"."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


PayloadReader = Callable[[bytes, Any], Any]
"""``(body, params)`` to what the normalizer reads; raises ``NormalizationError``."""
IdentityReader = Callable[[bytes, Any], str]
"""``(body, params)`` to the hex SHA-256 of the content the signature pins; never raises."""
ChallengeAnswer = Callable[[Mapping[str, str], Any, KeyRing], str | None]
"""``(query, params, keys)`` of a GET to the webhook route to the text/plain answer a
provider's destination check expects, or None when the query is no such check; raises a
``VerificationError`` (a malformed challenge is a 400)."""
KeyResolver = Callable[[bytes, Mapping[str, str], Any, KeyRing, float], Awaitable[KeyRing]]
"""``(body, headers, params, keys, now)`` to the key ring that verifies this request, for a
provider whose request names its key (PayPal's certificate URL): may do I/O, so the
pipeline awaits it before the synchronous verify; raises a ``VerificationError`` (401) or
``relay.errors.Unavailable`` (503)."""
OrderReader = Callable[[Any, str | None], str | None]
"""What the normalizer reads, and the instance's ``order_id_metadata_key``, to the order
its events are keyed by, or None; never raises."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One notification of a batch request."""

    body: bytes
    """The item's own bytes in the request body: what its event embeds as ``raw``."""
    payload: Any
    """What its normalizer reads: only what the signature pins."""
    identity: str
    """The hex SHA-256 naming its signed content: its dead letter's name."""


ItemsReader = Callable[[bytes, Any], tuple[BatchItem, ...]]
"""``(body, params)`` to the notifications of a batch request, in the body's order;
raises ``NormalizationError`` for a body that is not one (then the request is one message)."""


def parsed_body(body: bytes, params: Any) -> Any:
    return parse_payload(body)


def no_order(payload: Any, metadata_key: str | None) -> None:
    return None


def fields_only(reader: Callable[[Any], str | None]) -> OrderReader:
    """The order reader of a profile whose order ids are fields of its payload, never
    merchant metadata: the instance's metadata key does not apply."""

    def read(payload: Any, metadata_key: str | None) -> str | None:
        return reader(payload)

    return read


def body_identity(body: bytes, params: Any) -> str:
    return hashlib.sha256(body).hexdigest()


def signed_view(body: bytes, params: verifiers.sign_field.Params) -> Mapping[str, str]:
    try:
        members = verifiers.sign_field.read(body, params).members
    except MalformedBody as error:
        # Reached only by a message verified under other options (replay after a config
        # change): the live path refused it with the same error before this.
        reason = "ambiguous_body" if isinstance(error, AmbiguousBody) else "malformed_json"
        raise NormalizationError(reason, str(error)) from None
    # The normalizer reads the view, but the event embeds the whole body as raw: its
    # numbers and nesting must be ones a consumer's decoder reads (schemas.ranges).
    check_raw(body)
    return members


def signed_string_identity(body: bytes, params: verifiers.sign_field.Params) -> str:
    try:
        return hashlib.sha256(verifiers.sign_field.read(body, params).canonical).hexdigest()
    except MalformedBody:
        return body_identity(body, params)  # never verified as such: the body names it


def hmac_content_identity(body: bytes, params: verifiers.hmac_header.Params) -> str:
    return hashlib.sha256(verifiers.hmac_header.signed_content(body, params)).hexdigest()


# What the generic webhook normalizers (github, standard_webhooks, hmac) share.


def string_field(payload: Any, name: str) -> str | None:
    """``payload[name]`` when the payload is an object and the value a non-empty string."""
    if not isinstance(payload, dict):
        return None
    value = payload.get(name)
    return value if isinstance(value, str) and value else None


def body_id(message: Message) -> str:
    """An id for a message whose sender gave none: the same bytes are the same event."""
    return stable_id(hashlib.sha256(message.body).hexdigest())


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    document: str | None
    scheme: Scheme
    """A ``verifiers`` scheme module (see :class:`verifiers.base.Scheme`)."""
    params: Any
    normalize: Normalizer
    ack: Ack
    timeout_s: float
    samples: Mapping[str, SampleEvent]
    """Named sample webhooks (``relay send --event``) and what each must become."""
    kept_headers: tuple[str, ...] = ()
    """Headers handed to the normalizer and kept in dead letters (``id_header`` too)."""
    id_header: str | None = None
    """The event-id rule where the id travels in a header the signature does not cover
    (``X-Webhook-Id``, ``X-GitHub-Delivery``): the header's name, which an instance may
    change with ``id_header``; ``""`` where there is none unless the instance names one
    (generic ``hmac``). None: the id is pinned by the signature (in the body or a signed
    header), and ``id_header`` does not apply. With an id header, deduplication claims
    the signed content's identity instead of the id, so the first delivery of a signed
    body wins: a captured body posted again with fresh ids publishes nothing."""
    content_types: tuple[str, ...] = ("application/json",)
    """Accepted ``Content-Type`` media types; anything else is a 415."""
    max_body_bytes: int | None = None
    """The default body limit of an instance (its ``max_body_bytes`` option replaces it);
    None is ``[server] max_body_bytes``. The document profiles send one small JSON object
    per notification, so they get :data:`DOCUMENT_BODY_LIMIT`: anything near a megabyte
    from them is not a webhook, and refusing it early keeps unauthenticated requests cheap.
    The public schemes (GitHub, Stripe, ...) send payloads of any size up to the server's."""

    payload: PayloadReader = parsed_body
    """What the normalizer reads: only what the signature pins (module docstring)."""
    identity: IdentityReader = body_identity
    """The signed content's identity: dead letters are named by it, so that re-spellings
    of one message file one letter, and instances with an id header deduplicate on it."""
    flows: tuple[str, ...] = ()
    """The flows an instance may set with ``flow``, for a profile that serves several;
    empty where the document fixes it (the ``flow`` option is then refused)."""
    order_id: OrderReader = no_order
    """The order a payload names, as its events' record key holds it (merchant order id,
    else the provider's), read from a payload that may not normalize: ``relay find``
    and ``relay dlq`` name dead letters' orders with it. Generic webhooks have none."""
    order_metadata: bool = False
    """Whether the provider's payments carry merchant metadata an instance can name the
    order id's key in (``order_id_metadata_key``); the option is refused elsewhere."""
    items: ItemsReader | None = None
    """For a sender that posts several notifications in one request: its items (module
    docstring). None: the body is one message."""
    fixed_params: tuple[str, ...] = ()
    """Scheme options the profile fixes, which an instance may not set (the items of
    Adyen's standard webhooks need ``form = "items"``)."""
    basic_auth: bool = False
    """Whether the sender may add HTTP Basic credentials, which an instance then requires
    (``basic_auth_username``, ``basic_auth_password``); the scheme checks them."""
    challenge: ChallengeAnswer | None = None
    """How the profile answers its provider's check of a destination, a GET to the webhook
    route (Braintree's ``bt_challenge``); None: the route takes POST only."""
    resolve_keys: KeyResolver | None = None
    """The step that finds the key a request names, awaited before verify on receipt and
    on replay (PayPal's: :func:`relay.certificates.resolve_keys`, which the provider module
    reaches lazily, keeping its import free of the server); None: the instance's keys."""


DOCUMENT_BODY_LIMIT = 64 * 1024
"""The document profiles' body limit: dozens of times their largest sample."""
