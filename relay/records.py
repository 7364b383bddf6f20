"""Kafka records as plain data: what is published, built without touching aiokafka.

``to_kafka_record`` is pure; the record format itself (value and headers) is
:mod:`schemas.records`. :mod:`relay.kafka` is the only module that imports
aiokafka and it takes these records as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.event import CanonicalEvent
from schemas.records import event_headers, trace_headers


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        """Bytes the broker counts against ``message.max.bytes`` for this record alone.

        The broker checks the whole record batch, so the batch header and the
        record's own varint framing count too (an event a few bytes under the
        limit by payload alone is still refused).
        """
        return (
            _BATCH_HEADER_BYTES
            + _RECORD_FRAMING_BYTES
            + len(self.key)
            + len(self.value)
            + sum(_HEADER_FRAMING_BYTES + len(name) + len(value) for name, value in self.headers)
        )


# Record batch v2 (KIP-98): a 61-byte batch header; per record at most 21 bytes of varints
# (length, attributes, timestamp and offset deltas, key and value lengths, header count);
# per header at most 10 (name and value lengths).
_BATCH_HEADER_BYTES = 61
_RECORD_FRAMING_BYTES = 21
_HEADER_FRAMING_BYTES = 10


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
    headers = event_headers(event.id, event.type, event.source) + trace_headers(event.traceparent)
    # Positional (topic, key, value, headers): matching four keywords was 7% of this step.
    return KafkaRecord(topic, record_key(event), event.to_json(), headers)
