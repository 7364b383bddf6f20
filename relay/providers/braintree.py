"""Braintree: transaction, subscription-charge and dispute notifications as payments.

Signature: a form of ``bt_signature`` and ``bt_payload`` (:mod:`verifiers.braintree`):
``public_key|hex(HMAC-SHA1(SHA1(private key), bt_payload))``; the instance sets
``public_key`` and holds the private key in ``secrets``. The route also answers
Braintree's destination check, a GET with ``bt_challenge``, in text/plain
(:attr:`Profile.challenge`). Braintree documents no response deadline: the
30 s default (``timeout_s``; the ack budget is the server's cap) is an assumption.

The payload is base64 XML, ``<notification>`` with ``timestamp``, ``kind`` and
``subject``, parsed as hostile XML only after the signature verified
(defusedxml: no DTD, entities or external references; depth and element count
bounded); XML that cannot be read is dead-lettered as ``malformed_xml``. The
normalizer reads it as data: each element its text, an object of its children,
a list (``type="array"``) or null (``nil="true"``). ``data.raw`` is that
notification as JSON (``{"notification": {...}}``): the form is not JSON, and the
XML is what the signature covers.

- ``transaction_*`` kinds (settled, settlement_declined, disbursed, reviewed,
  retried): the subject's ``transaction``; flow ``payin`` for a ``sale``,
  ``refund`` for a ``credit`` (Braintree's refunds are credit transactions);
  status its ``status`` through :data:`TRANSACTION_STATUSES`; ``amount`` its
  ``amount`` (major units, a decimal string), ``currency`` its
  ``currency-iso-code``, ``provider_order_id`` its ``id``,
  ``merchant_order_id`` its ``order-id``.
- ``subscription_charged_successfully`` / ``_unsuccessfully``: a ``payin``,
  succeeded / failed (:data:`SUBSCRIPTION_KINDS`, ``provider_status`` is the
  kind); ``provider_order_id`` the subscription's id, ``amount`` its first
  (latest) transaction's; the notification names no currency (null).
- ``dispute_*`` kinds: the subject's ``dispute``; flow ``dispute``, status its
  ``status`` through :data:`DISPUTE_STATUSES`; ``amount`` the
  ``amount-disputed``, ``provider_order_id`` the disputed transaction's id (so
  a payment and its dispute share a key), ``failure_reason`` the ``reason``.
- Every other kind (``check``, other subscription changes, disbursements,
  merchant accounts ...) is a generic webhook event ``braintree.<kind>``.

Decisions: the event id is a hash of the notification's XML (Braintree gives no
id; a retry re-sends the same payload); ``time`` is the notification's
``timestamp``. A dispute ``accepted`` (by the merchant), ``auto_accepted`` or
``expired`` (no answer in time) is ``lost``; ``disputed`` (the merchant has
answered) is ``under_review``. ``authorization_expired`` is ``expired``,
``voided`` ``canceled``; ``settling``, ``settlement_pending`` and
``submitted_for_settlement`` are ``processing``. ``statuses`` overrides any.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.braintree
from relay.providers.base import Ack, Profile, fields_only
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
from schemas.currencies import ISO_4217, currency_code
from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, payment_event_v2, webhook_event
from schemas.values import (
    amount,
    field,
    from_iso,
    loose_text,
    map_status,
    require_object,
    required_text,
    stable_id,
    text,
)
from verifiers import MalformedBody

TRANSACTION_STATUSES = {
    "authorizing": "pending",
    "authorized": "authorized",
    "submitted_for_settlement": "processing",
    "settlement_pending": "processing",
    "settling": "processing",
    "settlement_confirmed": "processing",
    "settled": "succeeded",
    "settlement_declined": "failed",
    "processor_declined": "failed",
    "gateway_rejected": "failed",
    "failed": "failed",
    "voided": "canceled",
    "authorization_expired": "expired",
}
SUBSCRIPTION_KINDS = {
    "subscription_charged_successfully": "succeeded",
    "subscription_charged_unsuccessfully": "failed",
}
DISPUTE_STATUSES = {
    "open": "pending",
    "disputed": "under_review",
    "under_review": "under_review",
    "won": "won",
    "lost": "lost",
    "accepted": "lost",
    "auto_accepted": "lost",
    "expired": "lost",
}
CONTENT_TYPE = "application/x-www-form-urlencoded"


def notification_payload(body: bytes, params: Any) -> Any:
    """What the normalizer reads: the verified notification as data."""
    try:
        return verifiers.braintree.notification(body)
    except MalformedBody as error:
        raise NormalizationError("malformed_xml", str(error)) from None


def notification_identity(body: bytes, params: Any) -> str:
    """The hex SHA-256 of the notification XML the signature pins."""
    try:
        return hashlib.sha256(verifiers.braintree.signed_payload(body)).hexdigest()
    except MalformedBody:
        return hashlib.sha256(body).hexdigest()  # never verified as such: the body names it


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    notification = require_object(field(payload, "notification", required=True), "<notification>")
    # The event embeds the notification as JSON: the form it came in is not JSON.
    view = Message(orjson.dumps(payload), payload, message.headers)
    kind = required_text(notification, "kind")
    time = from_iso(field(notification, "timestamp"), "timestamp")
    event_id = stable_id("braintree", hashlib.sha256(view.body).hexdigest())
    subject = field(notification, "subject")
    subject = subject if isinstance(subject, dict) else {}
    if kind.startswith("transaction_") and "transaction" in subject:
        transaction = require_object(subject["transaction"], "<transaction>")
        status = field(transaction, "status", required=True)
        flow = "refund" if field(transaction, "type") == "credit" else "payin"
        return payment_event_v2(
            view,
            ctx,
            event_id=event_id,
            flow=flow,
            status=map_status(status, "status", TRANSACTION_STATUSES, ctx.status_overrides),
            provider_status=status,
            time=time,
            merchant_order_id=text(field(transaction, "order-id"), "order-id"),
            provider_order_id=required_text(transaction, "id"),
            amount=amount(field(transaction, "amount"), "amount"),
            currency=_currency(transaction),
        )
    if kind in SUBSCRIPTION_KINDS:
        subscription = require_object(
            field(subject, "subscription", required=True), "<subscription>"
        )
        transactions = field(subscription, "transactions") or []
        latest = transactions[0] if isinstance(transactions, list) and transactions else {}
        return payment_event_v2(
            view,
            ctx,
            event_id=event_id,
            flow="payin",
            status=map_status(kind, "kind", SUBSCRIPTION_KINDS, ctx.status_overrides),
            provider_status=kind,
            time=time,
            provider_order_id=required_text(subscription, "id"),
            amount=amount(field(require_object(latest, "<transaction>"), "amount"), "amount"),
        )
    if kind.startswith("dispute_") and "dispute" in subject:
        dispute = require_object(subject["dispute"], "<dispute>")
        status = field(dispute, "status", required=True)
        transaction = field(dispute, "transaction")
        disputed = require_object(transaction, "<transaction>") if transaction else {}
        return payment_event_v2(
            view,
            ctx,
            event_id=event_id,
            flow="dispute",
            status=map_status(status, "status", DISPUTE_STATUSES, ctx.status_overrides),
            provider_status=status,
            time=time,
            merchant_order_id=text(field(disputed, "order-id"), "order-id"),
            provider_order_id=text(field(disputed, "id"), "transaction.id")
            or required_text(dispute, "id"),
            amount=amount(field(dispute, "amount-disputed"), "amount-disputed"),
            currency=_currency(dispute),
            failure_reason=text(field(dispute, "reason"), "reason"),
        )
    return webhook_event(view, ctx, event_id=event_id, sender_type=kind, time=time)


def _currency(holder: Mapping[str, Any]) -> str | None:
    value = field(holder, "currency-iso-code")
    return None if value is None else currency_code(value, ISO_4217, "currency-iso-code")


def _order(payload: Any) -> str | None:
    """The order a payment event of this payload is keyed by (its merchant order id, else its
    provider order id), read leniently; None for a generic event's."""
    kind = loose_text(payload, "notification", "kind") or ""
    subject = ("notification", "subject")
    if kind.startswith("transaction_"):
        return loose_text(payload, *subject, "transaction", "order-id") or loose_text(
            payload, *subject, "transaction", "id"
        )
    if kind in SUBSCRIPTION_KINDS:
        return loose_text(payload, *subject, "subscription", "id")
    if kind.startswith("dispute_"):
        return (
            loose_text(payload, *subject, "dispute", "transaction", "order-id")
            or loose_text(payload, *subject, "dispute", "transaction", "id")
            or loose_text(payload, *subject, "dispute", "id")
        )
    return None


def _xml(kind: str, subject: str) -> SampleBuilder:
    """A notification as braintree_python's testing gateway writes one, ``{order}`` and
    ``{now}`` filled in."""

    def build(now: float, order: str) -> Sample:
        xml = (
            f'<notification><timestamp type="datetime">{iso_utc(now)}</timestamp>'
            f"<kind>{kind}</kind><subject>{subject.format(order=order, now=iso_utc(now))}"
            "</subject></notification>"
        )
        return Sample(xml.encode())

    return build


_TRANSACTION = (
    "<transaction><id>{order}-tx</id><status>{status}</status><type>{type}</type>"
    "<currency-iso-code>USD</currency-iso-code><amount>100.00</amount>"
    "<order-id>{order}</order-id></transaction>"
)

SAMPLES: Mapping[str, SampleEvent] = {
    "transaction_settled": SampleEvent(
        _xml(
            "transaction_settled",
            _TRANSACTION.replace("{status}", "settled").replace("{type}", "sale"),
        ),
        "payment.payin.succeeded",
    ),
    "transaction_settlement_declined": SampleEvent(
        _xml(
            "transaction_settlement_declined",
            _TRANSACTION.replace("{status}", "settlement_declined").replace("{type}", "sale"),
        ),
        "payment.payin.failed",
    ),
    "subscription_charged_successfully": SampleEvent(
        _xml(
            "subscription_charged_successfully",
            '<subscription><id>{order}</id><transactions type="array"><transaction>'
            "<id>{order}-tx</id><status>submitted_for_settlement</status>"
            "<amount>49.99</amount></transaction></transactions></subscription>",
        ),
        "payment.payin.succeeded",
    ),
    "dispute_opened": SampleEvent(
        _xml(
            "dispute_opened",
            "<dispute><id>{order}-dp</id><amount-disputed>100.00</amount-disputed>"
            "<currency-iso-code>USD</currency-iso-code><kind>chargeback</kind>"
            "<reason>fraud</reason><status>open</status><transaction><id>{order}-tx</id>"
            "<amount>100.00</amount><order-id>{order}</order-id></transaction></dispute>",
        ),
        "payment.dispute.pending",
    ),
    "check": SampleEvent(
        _xml("check", '<check type="boolean">true</check><note>{order}</note>'),
        "braintree.check",
    ),
}

PROFILE = Profile(
    name="braintree",
    document=None,
    scheme=verifiers.braintree,
    params=verifiers.braintree.Params(),
    normalize=normalize,
    payload=notification_payload,
    identity=notification_identity,
    order_id=fields_only(_order),
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=30,
    content_types=(CONTENT_TYPE,),
    challenge=verifiers.braintree.answer_challenge,
)
