"""The pipeline: verify -> normalize -> dedup -> deliver, one way.

:meth:`Pipeline.receive` is the HTTP entry (it verifies first);
:meth:`Pipeline.process` is where ``relay replay`` re-enters, after
verification, with a message that was verified when it first arrived.

An authentic message travels as one :class:`Inbound` value: the instance it
came to, its exact body, the headers worth keeping, when it arrived, the
how-many-th attempt this is (a replay is the next attempt of a dead letter)
and, when tracing is on, the trace context its records carry.

Batches: a request of a profile with an items reader (``Profile.items``: Adyen,
GoCardless) holds several notifications. It is verified once, whole: one bad
signature refuses the request and nothing of it is published. Then every item
is its own :class:`Inbound` (the whole signed body, and the item's position),
normalized, deduplicated and delivered, or dead-lettered, on its own, all at
once and under one deadline: the ack budget covers the batch. The result
(:class:`BatchResult`) comes back only when every item is durable; if any item
cannot be made durable the request gets the error, and the provider's retry
finds the items that were as duplicates. A letter of an item keeps the whole
signed body and the item's position, so that it can be verified again, and
``relay replay`` processes that item only. Items of one request are published
concurrently: their order on a partition is not the body's (neither provider
promises an order between notifications).

Verifying and delivering are methods of their own (``_verify``, ``_deliver``)
so that :class:`relay.tracing.TracedPipeline` can put a span around each; this
class knows nothing of tracing.

Acknowledgement rule: a :class:`Result` comes back only once the event (or its
dead letter) is durable, in Kafka or in the spool, or is a duplicate of one
that is. Anything else raises, and the HTTP layer answers with an error the
provider will retry.

Only what the signature pins counts: the normalizer reads the profile's
``payload`` of the body (for ``sign``-field profiles, the signed view), and a
profile whose event id travels in an unsigned header deduplicates on the
signed content's identity instead (see :mod:`relay.providers.base`).

Freshness: where the scheme has no signed timestamp, deduplication is the only
replay guard, and it forgets after ``ttl_s``. So a received notification whose
own time (the event's ``time``) is more than the instance's ``max_age_s``
before its arrival is not published: it is authentic, so it is not refused
either, but dead-lettered with reason ``stale_event`` and acknowledged (the
provider stops retrying; an operator who judges it genuine replays it, and
``relay replay`` does not apply the check). A captured notification replayed
after the dedup window thus publishes nothing; re-spellings of it file the same
one letter. Events without a time (a pending order) have only the window.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from relay.config import Config, ProviderInstance
from relay.deadletter import dead_letter_record, make_dead_letter
from relay.dedup import Claim, DedupStore, DedupUnavailable, dead_letter_key, dedup_key
from relay.delivery import Deliverer, Durability
from relay.errors import EventTooLarge, Unavailable
from relay.providers.base import BatchItem, ItemsReader
from relay.records import KafkaRecord, to_kafka_record
from relay.sink import RecordRejected
from schemas import (
    CanonicalEvent,
    Message,
    NormalizationError,
    NormalizeContext,
)
from verifiers import Verified

log = logging.getLogger("relay.pipeline")

# Share of the ack budget kept back for the spool append when Kafka is slow.
SPOOL_RESERVE_FRACTION = 0.2
SPOOL_RESERVE_MAX_S = 0.25


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Inbound:
    """An authentic message on its way through the pipeline (received, or replayed)."""

    instance: ProviderInstance
    body: bytes
    """Exactly the bytes received (and signed)."""
    headers: Mapping[str, str]
    """Only the headers worth keeping (the profile's, and the id header): never signatures."""
    received_at: datetime
    """When Relay first received it; a replay keeps the original time."""
    attempts: int = 1
    """1 when received; a replay of a letter filed after n attempts is attempt n + 1."""
    traceparent: str | None = None
    """The W3C trace context of the span handling it (receive or replay), which its event
    or dead letter carries; None when tracing is off."""
    item: int | None = None
    """In a batch request (``Profile.items``), the position of the notification this is
    (``body`` is the whole request); None where the body is one message."""


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    event_id: str
    durability: Durability | None = None
    """Where it became durable; None for duplicates (it already was)."""
    reason: str | None = None
    """The dead-letter reason code, for DEAD_LETTERED."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of each notification of a batch request, in the body's order: each one
    an event, a duplicate or a dead letter, all durable."""

    items: tuple[Result, ...]


def normalize(inbound: Inbound, item: BatchItem | None = None) -> CanonicalEvent:
    """The instance's normalizer with its settings; raises ``NormalizationError``.

    An inbound of a batch's item normalizes that item: ``item`` when the caller has read
    it already, else read from the body (:func:`batch_item`).
    """
    instance = inbound.instance
    # Positional, in the field order (provider, profile, received_at, timezone, flow,
    # status_overrides, id_header, traceparent, order_id_metadata_key): matching nine
    # keywords costs a quarter of building the context, once per webhook.
    ctx = NormalizeContext(
        instance.name,
        instance.profile.name,
        inbound.received_at,
        instance.timezone,
        instance.flow,
        instance.status_overrides,
        instance.id_header,
        inbound.traceparent,
        instance.order_id_metadata_key,
    )
    if inbound.item is None:
        if instance.profile.items is not None:
            _whole_batch(inbound, instance.profile.items)
        payload = instance.profile.payload(inbound.body, instance.params)
        return instance.profile.normalize(Message(inbound.body, payload, inbound.headers), ctx)
    if item is None:
        item = batch_item(inbound)
    return instance.profile.normalize(Message(item.body, item.payload, inbound.headers), ctx)


def _whole_batch(inbound: Inbound, reader: ItemsReader) -> NoReturn:
    """A batch profile's body is no one message: the letter of a body that could not be
    read as a batch (:meth:`Pipeline.receive`) fails again with the reader's reason, or,
    when the body reads now, says that its items must be posted again as a request."""
    items = reader(inbound.body, inbound.instance.params)
    raise NormalizationError(
        "missing_item",
        f"the body reads now as a batch of {len(items)}, which a replay of its one letter "
        "cannot publish: post it again as a request (relay send --body)",
    )


def batch_item(inbound: Inbound) -> BatchItem:
    """The notification an inbound of a batch is about, read from its body.

    Raises ``NormalizationError`` where the body does not have it under the instance's
    profile now (a letter replayed after the instance changed profile or options).
    """
    instance, position = inbound.instance, inbound.item
    reader = instance.profile.items
    if reader is None or position is None:
        raise NormalizationError(
            "missing_item",
            f"the message is item {position} of a batch, and the {instance.profile.name} "
            "profile reads no batches",
        )
    items = reader(inbound.body, instance.params)
    if position >= len(items):
        raise NormalizationError(
            "missing_item", f"the message is item {position} of a batch of {len(items)}"
        )
    return items[position]


class Pipeline:
    def __init__(self, config: Config, dedup: DedupStore, delivery: Deliverer) -> None:
        self._config = config
        self._dedup = dedup
        self._delivery = delivery

    async def receive(
        self,
        instance: ProviderInstance,
        body: bytes,
        headers: Mapping[str, str],
        received_at: datetime,
        traceparent: str | None = None,
    ) -> Result | BatchResult:
        """Verify, then process. Raises ``VerificationError`` for anything not provably authentic.

        ``traceparent``: the receive span's, when tracing is on. A batch request's answer
        is a :class:`BatchResult` (a body its profile cannot read as a batch: one letter).
        """
        profile = instance.profile
        verified = self._verify(instance, body, headers, received_at)
        kept = {name: headers[name] for name in profile.kept_headers if name in headers}
        if instance.id_header and instance.id_header in headers:
            kept[instance.id_header] = headers[instance.id_header]
        # A signed timestamp inside its tolerance already bounds replays.
        max_age_s = instance.max_age_s if verified.timestamp is None else None
        inbound = Inbound(instance, body, kept, received_at, traceparent=traceparent)
        if profile.items is None:
            return await self.process(inbound, max_age_s=max_age_s)
        return await self._receive_batch(inbound, profile.items, max_age_s)

    async def _receive_batch(
        self, inbound: Inbound, reader: ItemsReader, max_age_s: float | None
    ) -> Result | BatchResult:
        """Every item of a verified batch request, at once, under one deadline (module
        docstring); raises the first item's error when any item could not be made durable."""
        instance = inbound.instance
        deadline = time.monotonic() + instance.ack_budget_s
        try:
            items = reader(inbound.body, instance.params)
        except NormalizationError as error:
            # Authentic, but not a batch the profile reads: the whole body is one letter.
            identity = instance.profile.identity(inbound.body, instance.params)
            return await self._dead_letter(inbound, identity, error.reason, error.message, deadline)
        if len(items) == 1:  # the common case: no task to gather
            return BatchResult(
                (await self._process(replace(inbound, item=0), deadline, max_age_s, items[0]),)
            )
        outcomes = await asyncio.gather(
            *(
                self._process(replace(inbound, item=position), deadline, max_age_s, item)
                for position, item in enumerate(items)
            ),
            return_exceptions=True,
        )
        results = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                # Not acknowledged: the provider sends the whole request again, and the
                # items that did become durable are duplicates then.
                raise outcome
            results.append(outcome)
        return BatchResult(tuple(results))

    async def process(
        self,
        inbound: Inbound,
        *,
        budget_s: float | None = None,
        max_age_s: float | None = None,
    ) -> Result:
        """Normalize an authentic message and make it durable exactly once.

        ``max_age_s``: dead-letter the event as ``stale_event`` when its time is older
        than that at ``received_at`` (None: no check, as for a replay).
        """
        budget_s = inbound.instance.ack_budget_s if budget_s is None else budget_s
        return await self._process(inbound, time.monotonic() + budget_s, max_age_s)

    async def _process(
        self,
        inbound: Inbound,
        deadline: float,
        max_age_s: float | None,
        item: BatchItem | None = None,
    ) -> Result:
        """:meth:`process` by ``deadline``; ``item``: the batch item an inbound is about,
        already read (else read from the body)."""
        instance = inbound.instance
        if inbound.item is None:
            identity = instance.profile.identity(inbound.body, instance.params)
        elif item is not None:
            identity = item.identity
        else:
            try:
                item = batch_item(inbound)
            except NormalizationError as error:
                # The item cannot be read any more: its letter is named by the body and
                # the position, the same on every later attempt.
                body_identity = instance.profile.identity(inbound.body, instance.params)
                identity = hashlib.sha256(f"{body_identity}:{inbound.item}".encode()).hexdigest()
                return await self._dead_letter(
                    inbound, identity, error.reason, error.message, deadline
                )
            identity = item.identity

        async def dead_letter(reason: str, message: str) -> Result:
            return await self._dead_letter(inbound, identity, reason, message, deadline)

        try:
            event = normalize(inbound, item)
        except NormalizationError as error:
            return await dead_letter(error.reason, error.message)
        if max_age_s is not None and _older_than(event.time, inbound.received_at, max_age_s):
            return await dead_letter(
                "stale_event",
                f"the event's time {event.time} is more than max_age_s ({max_age_s:g}s) "
                "before it was received",
            )
        record = to_kafka_record(event, self._config.kafka.topic)
        self._check_size(record, "the canonical event")
        # An id from an unsigned header proves nothing: the signed content is the identity.
        claimed = identity if instance.id_header else event.id
        try:
            durability = await self._deliver_once(
                dedup_key(instance.name, claimed), record, deadline
            )
        except RecordRejected as error:
            return await dead_letter(error.reason, str(error))
        if durability is None:
            return Result(Outcome.DUPLICATE, event.id)
        return Result(Outcome.ACCEPTED, event.id, durability)

    async def _dead_letter(
        self, inbound: Inbound, identity: str, reason: str, message: str, deadline: float
    ) -> Result:
        instance = inbound.instance
        letter = make_dead_letter(
            provider=instance.name,
            profile=instance.profile.name,
            reason=reason,
            message=message,
            received_at=inbound.received_at,
            headers=inbound.headers,
            body=inbound.body,
            identity=identity,
            attempts=inbound.attempts,
            item=inbound.item,
        )
        record = dead_letter_record(
            letter, self._config.kafka.dead_letter_topic, inbound.traceparent
        )
        self._check_size(record, "the dead letter")
        # Debug only: the HTTP layer's one line per webhook says it at warning level already.
        log.debug(
            "dead-lettered",
            extra={"provider": instance.name, "reason": reason, "dead_letter_id": letter.id},
        )
        key = dead_letter_key(instance.name, letter.id, inbound.attempts)
        durability = await self._deliver_once(key, record, deadline)
        return Result(Outcome.DEAD_LETTERED, letter.id, durability, reason)

    async def _deliver_once(
        self, key: str, record: KafkaRecord, deadline: float
    ) -> Durability | None:
        """Deliver under a dedup claim; None means a duplicate of something already durable."""
        while True:
            try:
                claim = await self._dedup.claim(key)
                if claim is Claim.DONE:
                    return None
                remaining = deadline - time.monotonic()
                if claim is Claim.IN_FLIGHT:
                    if remaining <= 0:
                        raise Unavailable(
                            "an earlier delivery of this event is still in progress", 1
                        )
                    await self._dedup.wait_settled(key, remaining)
                    continue
            except DedupUnavailable as exc:
                raise Unavailable("the deduplication store is unavailable") from exc
            break
        reserve = min(remaining * SPOOL_RESERVE_FRACTION, SPOOL_RESERVE_MAX_S)
        try:
            durability = await self._deliver(record, remaining - reserve, key)
        except BaseException:
            await self._release(key)
            raise
        try:
            await self._dedup.mark_done(key)
        except DedupUnavailable:
            # The event is durable, so the provider still gets its ack; a retry
            # may publish it again, which consumers absorb by CloudEvent id.
            log.error("dedup mark_done failed after durable delivery", extra={"key": key})
        return durability

    def _verify(
        self,
        instance: ProviderInstance,
        body: bytes,
        headers: Mapping[str, str],
        received_at: datetime,
    ) -> Verified:
        return instance.profile.scheme.verify(
            body, headers, instance.params, instance.keys, received_at.timestamp()
        )

    async def _deliver(self, record: KafkaRecord, kafka_wait_s: float, key: str) -> Durability:
        return await self._delivery.deliver(record, kafka_wait_s, key)

    async def _release(self, key: str) -> None:
        try:
            await asyncio.shield(self._dedup.release(key))
        except DedupUnavailable:
            log.error("dedup release failed; the key frees itself when its lease ends")

    def _check_size(self, record: KafkaRecord, what: str) -> None:
        limit = self._config.kafka.max_message_bytes
        if record.size > limit:
            raise EventTooLarge(
                f"{what} would be {record.size} bytes, over the broker's limit of {limit} bytes"
            )


def _older_than(event_time: str | None, received_at: datetime, max_age_s: float) -> bool:
    if event_time is None:
        return False
    return datetime.fromisoformat(event_time) < received_at - timedelta(seconds=max_age_s)
