"""Realistic sample webhooks for ``relay send`` (like a provider's "send test event").

Each profile has named events; a builder takes the current time and a fresh
order reference and returns the unsigned body plus any non-signature headers
the provider sends (webhook ids). The profile's scheme signs it afterwards.
Payload shapes follow the provider documents in ``shared/provider-docs``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import orjson

if TYPE_CHECKING:
    from relay.config import ProviderInstance


@dataclass(frozen=True, slots=True)
class Sample:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


SampleBuilder = Callable[[float, str], Sample]


def _json(document: object) -> bytes:
    return orjson.dumps(document)


def _invoice(status: str, paid: bool) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        body = {
            "invoice_reference": order,
            "merchant_id": "550e8400-e29b-41d4-a716-446655440000",
            "status": status,
            "asset_code": "USDT_TRC20",
            "payout_address": "TXyz123abc456",
            "amount_usdt_exact": "150.0000",
            "tx_hash": "abc123def789" if paid else None,
            "metadata": {"orderId": order, "customerId": "user-001"},
            "paid_at": _iso(now) if paid else None,
        }
        return Sample(
            _json(body), {"X-Webhook-Id": str(uuid.uuid4()), "X-Invoice-Reference": order}
        )

    return build


def _collect(status: int) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        new_york = datetime.fromtimestamp(now, ZoneInfo("America/New_York"))
        body = {
            "orderId": order,
            "orderNo": f"P{int(now * 1000)}",
            "amount": "100.00",
            "actualAmount": "100.00" if status == 2 else "0",
            "fee": "0.50",
            "status": status,
            "payTime": new_york.strftime("%Y-%m-%d %H:%M:%S") if status == 2 else "",
        }
        return Sample(_json(body))

    return build


def _topup(status: str) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        body = {
            "event": "topup.status",
            "data": {
                "orderId": order,
                "status": status,
                "created": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "quoteSnapshot": {
                    "fee": 1,
                    "feeCurrency": "USD",
                    "sourceAmount": 50,
                    "sourceCurrency": "AUD",
                    "targetAmount": 32.87,
                    "targetCurrency": "USDT",
                },
            },
        }
        return Sample(_json(body))

    return build


def _payout(state: str) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        body = {
            "merchantId": 2,
            "appId": "app-caf118dc-4e23-4ced-ab23-8a3f65d5071a",
            "merchantOrderNo": order,
            "orderNo": str(int(now * 1_000_000)),
            "channelName": "xpay",
            "tokenSymbol": "USDT",
            "tokenCount": "25.5",
            "tokenFeeCount": "0.1",
            "currencyId": "P575ItNeMxM6fy6zhbnrlezYlvQnHMLZ",
            "payHash": "0x9f2c" + order.encode().hex() if state == "DONE_PAYMENT" else "",
            "transactionID": "",
            "receiver": "0xB0c5852ff023291D0de6333c9155b2f884368559",
            "state": state,
            "extra": '{"description":"payout transaction"}',
            "payTime": int(now) if state == "DONE_PAYMENT" else 0,
        }
        return Sample(_json(body))

    return build


def _payin(status: str) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        received = {"Completed": "103.03", "Underpaid": "50.00"}.get(status, "0")
        body = {
            "event_id": str(uuid.uuid4()),
            "type": "payin.order.updated",
            "created_timestamp": int(now),
            "data": {
                "order_id": str(int(now * 1000)),
                "merchant_id": "1001",
                "reference_code": order,
                "developer_reference_code": f"P-{order}",
                "pricing_currency": "USD",
                "pricing_amount": "100.00",
                "fee_amount": "2.00",
                "payable_currency": "ETH_USDT",
                "payable_amount": "103.03",
                "chain_id": "ETH",
                "receiving_address": "0x1234567890abcdef1234567890abcdef12345678",
                "status": status,
                "received_token_amount": received,
                "created_timestamp": int(now) - 60,
                "updated_timestamp": int(now),
                "expired_timestamp": int(now) + 1800,
                "transactions": [],
            },
        }
        return Sample(_json(body))

    return build


def _github(now: float, order: str) -> Sample:
    body = {
        "action": "opened",
        "issue": {"number": 1, "title": order},
        "sender": {"login": "octocat"},
    }
    return Sample(_json(body), {"X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4())})


def _stripe(event_type: str, kind: str, status: str, **fields: object) -> SampleBuilder:
    """A Stripe event about one object; the order reference is in the object's metadata
    under ``order_id`` (what an instance's ``order_id_metadata_key`` names)."""

    def build(now: float, order: str) -> Sample:
        payment = f"pi_{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:24]}"
        prefix = {"payment_intent": "pi", "charge": "ch", "refund": "re", "dispute": "dp"}
        obj: dict[str, object] = {
            "id": payment if kind == "payment_intent" else f"{prefix.get(kind, 'po')}_{order}",
            "object": kind,
            "amount": 2000,
            "currency": "usd",
            "created": int(now) - 60,
            "livemode": False,
            "metadata": {"order_id": order},
            "status": status,
            **fields,
        }
        if kind in ("charge", "refund", "dispute"):
            obj["payment_intent"] = payment
        body = {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "api_version": "2024-06-20",
            "type": event_type,
            "created": int(now),
            "data": {"object": obj},
            "livemode": False,
        }
        return Sample(_json(body))

    return build


def _stripe_customer(now: float, order: str) -> Sample:
    body = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": "customer.updated",
        "created": int(now),
        "data": {
            "object": {"id": "cus_9s6XKzkNRiz8i3", "object": "customer", "description": order}
        },
    }
    return Sample(_json(body))


def _standard(now: float, order: str) -> Sample:
    body = {"type": "invoice.paid", "timestamp": _iso(now), "data": {"invoice": order}}
    return Sample(_json(body), {"webhook-id": f"msg_{uuid.uuid4().hex}"})


def _generic(now: float, order: str) -> Sample:
    return Sample(_json({"type": "ping", "reference": order}), {"X-Event-Id": str(uuid.uuid4())})


def _iso(now: float) -> str:
    return datetime.fromtimestamp(int(now), UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """A named sample of a profile's sender, and the CloudEvent type it must become."""

    build: SampleBuilder
    becomes: str


# Each profile's samples (``Profile.samples``): ``relay send --event NAME``, and the tables
# the tests derive from the registry.
USDT_INVOICE: Mapping[str, SampleEvent] = {
    "confirmed": SampleEvent(_invoice("confirmed", paid=True), "payment.payin.succeeded"),
    "pending": SampleEvent(_invoice("pending", paid=False), "payment.payin.pending"),
    "expired": SampleEvent(_invoice("expired", paid=False), "payment.payin.expired"),
}
USDT_COLLECT_PAY: Mapping[str, SampleEvent] = {
    "success": SampleEvent(_collect(2), "payment.payin.succeeded"),
    "paying": SampleEvent(_collect(1), "payment.payin.processing"),
    "failed": SampleEvent(_collect(3), "payment.payin.failed"),
}
WALLET_TOPUP: Mapping[str, SampleEvent] = {
    "completed": SampleEvent(_topup("COMPLETED"), "payment.topup.succeeded"),
    "transferring": SampleEvent(_topup("TRANSFERRING"), "payment.topup.processing"),
    "failed": SampleEvent(_topup("FAILED"), "payment.topup.failed"),
}
V2_PAYOUT: Mapping[str, SampleEvent] = {
    "done": SampleEvent(_payout("DONE_PAYMENT"), "payment.payout.succeeded"),
    "pending": SampleEvent(_payout("PENDING"), "payment.payout.pending"),
    "failed": SampleEvent(_payout("FAILED"), "payment.payout.failed"),
}
PAYIN_ORDER: Mapping[str, SampleEvent] = {
    "completed": SampleEvent(_payin("Completed"), "payment.payin.succeeded"),
    "processing": SampleEvent(_payin("Processing"), "payment.payin.processing"),
    "underpaid": SampleEvent(_payin("Underpaid"), "payment.payin.underpaid"),
}
GITHUB: Mapping[str, SampleEvent] = {"issues": SampleEvent(_github, "github.issues")}
STRIPE: Mapping[str, SampleEvent] = {
    "payment_intent.succeeded": SampleEvent(
        _stripe("payment_intent.succeeded", "payment_intent", "succeeded", amount_received=2000),
        "payment.payin.succeeded",
    ),
    "payment_intent.amount_capturable_updated": SampleEvent(
        _stripe(
            "payment_intent.amount_capturable_updated",
            "payment_intent",
            "requires_capture",
            amount_received=0,
        ),
        "payment.payin.authorized",
    ),
    "charge.refunded": SampleEvent(
        _stripe(
            "charge.refunded",
            "charge",
            "succeeded",
            amount_captured=2000,
            amount_refunded=2000,
            captured=True,
            refunded=True,
        ),
        "payment.payin.refunded",
    ),
    "refund.created": SampleEvent(
        _stripe("refund.created", "refund", "pending"), "payment.refund.pending"
    ),
    "charge.dispute.created": SampleEvent(
        _stripe("charge.dispute.created", "dispute", "needs_response", reason="fraudulent"),
        "payment.dispute.pending",
    ),
    "payout.paid": SampleEvent(
        _stripe("payout.paid", "payout", "paid"), "payment.payout.succeeded"
    ),
    "customer.updated": SampleEvent(_stripe_customer, "stripe.customer.updated"),
}
STANDARD_WEBHOOKS: Mapping[str, SampleEvent] = {
    "invoice.paid": SampleEvent(_standard, "standard-webhooks.invoice.paid")
}
HMAC: Mapping[str, SampleEvent] = {"ping": SampleEvent(_generic, "hmac.ping")}


class UnknownSample(LookupError):
    def __init__(self, event: str, samples: Mapping[str, SampleEvent]) -> None:
        super().__init__(f"no sample event {event!r} (have: {', '.join(samples)})")


def signed_sample(
    instance: ProviderInstance,
    *,
    event: str | None = None,
    body: bytes | None = None,
    order: str | None = None,
    now: float,
) -> Sample:
    """A request as the provider would send it: a sample (or ``body``), signed with the
    instance's secret or demo private key, with its content type."""
    headers: dict[str, str] = {}
    if body is None:
        samples = instance.profile.samples
        name = event or next(iter(samples))
        if name not in samples:
            raise UnknownSample(name, samples)
        sample = samples[name].build(now, order or f"ORDER-{uuid.uuid4().hex[:10].upper()}")
        body, headers = sample.body, dict(sample.headers)
    signed = instance.profile.scheme.sign(body, instance.params, instance.keys, now)
    headers.update(signed.headers)
    headers["Content-Type"] = instance.profile.content_types[0]
    return Sample(signed.body, headers)
