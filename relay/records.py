"""Kafka records as plain data: what is published, built without touching aiokafka.

``to_kafka_record`` is pure; :mod:`relay.kafka` is the only module that
imports aiokafka and it takes these records as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.event import CanonicalEvent

CLOUDEVENTS_CONTENT_TYPE = b"application/cloudevents+json"


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        """Bytes the broker counts against ``message.max.bytes`` (plus a little framing)."""
        return (
            len(self.key)
            + len(self.value)
            + sum(len(name) + len(value) for name, value in self.headers)
        )


def record_key(event: CanonicalEvent) -> bytes:
    """``<provider>:<merchant order id>`` so one order's events share a partition.

    A payment event without a merchant order id (some providers leave it out)
    uses the provider's order id, which is just as stable across one order's
    status changes; events without any order (generic webhooks) use the event id.
    """
    provider = event.source.removeprefix("relay/")
    order = event.subject or event.data.get("provider_order_id") or event.id
    return f"{provider}:{order}".encode()


def to_kafka_record(event: CanonicalEvent, topic: str) -> KafkaRecord:
    return KafkaRecord(
        topic=topic,
        key=record_key(event),
        value=event.to_json(),
        headers=(
            ("content-type", CLOUDEVENTS_CONTENT_TYPE),
            ("ce_specversion", b"1.0"),
            ("ce_id", event.id.encode()),
            ("ce_type", event.type.encode()),
            ("ce_source", event.source.encode()),
        ),
    )
