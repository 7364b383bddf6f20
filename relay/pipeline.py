"""The pipeline: verify -> normalize -> dedup -> deliver, one way.

:meth:`Pipeline.receive` is the HTTP entry (it verifies first);
:meth:`Pipeline.process` is where ``relay replay`` re-enters, once
:meth:`Pipeline.verify_again` has verified the letter's message again.

A dead letter keeps the headers the instance's verifier read, as received
(:func:`signature_headers`), so that a replay verifies exactly what arrived.
They are found by running the verifier once more over the message, on a view
of its headers that notes each one read: only when a message is dead-lettered,
so a webhook that is published pays nothing for it. Credential headers are
never kept; a verifier that reads one leaves its letter unverifiable.

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
signed body, the item's position and the request's signature headers (found
once per request, however many of its items are dead-lettered), so that
``relay replay`` verifies the whole request again and then processes that item
only. Freshness (below) and the ``normalizer_error`` safety net apply to each
item on its own: one stale or unreadable notification is one letter, its
neighbours are published. Items of one request are published concurrently:
their order on a partition is not the body's (neither provider promises an
order between notifications).

A profile whose request names its key (PayPal's certificate URL) resolves it first
(:func:`resolve_keys`, which may fetch): the message then travels with an instance
holding the resolved keys, so verify stays synchronous and a dead letter's headers are
found with the key that verified it.

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
before its arrival, or more than its ``max_future_s`` (the clock skew
tolerated, 300 s by default) after it, is not published: it is authentic, so it
is not refused either, but dead-lettered with reason ``stale_event`` or
``future_event`` and acknowledged (the provider stops retrying; an operator who
judges it genuine replays it, and ``relay replay`` does not apply the checks).
The config keeps ``max_age_s + max_future_s <= ttl_s``, so a captured
notification replayed after the dedup window publishes nothing, whatever its
time; re-spellings of it file the same one letter. Events without a time (a
pending order; every Adyen notification, whose only time, ``eventDate``, is
unsigned) have only the window.

Every authentic message ends as an event or a dead letter, never as a 5xx that
the provider would retry until it gives up: what a normalizer cannot read is a
``NormalizationError`` (its reason code), and anything else it raises is a
``normalizer_error`` dead letter, its traceback logged (a bug to fix, then replay).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
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
from verifiers import VerificationError, Verified

log = logging.getLogger("relay.pipeline")

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Headers a dead letter never keeps, whatever a verifier reads: they may hold credentials."""

# Share of the ack budget kept back for the spool append when Kafka is slow.
SPOOL_RESERVE_FRACTION = 0.2
SPOOL_RESERVE_MAX_S = 0.25


NORMALIZER_ERROR = "normalizer_error"
"""The reason of a letter whose normalizer raised something other than a
``NormalizationError`` (a bug in it: see :meth:`Pipeline.process`)."""


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
    received_headers: Mapping[str, str] | None = None
    """The headers to verify it with: the request's as received, or a letter's kept and
    signature headers on replay; None for a letter that has no signature headers. Never
    stored whole: a dead letter keeps only what the verifier reads (:func:`signature_headers`)."""
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


def verify(
    instance: ProviderInstance, body: bytes, headers: Mapping[str, str], received_at: datetime
) -> Verified:
    """The instance's scheme over one message; ``received_at`` is the verifier's ``now``."""
    return instance.profile.scheme.verify(
        body, headers, instance.params, instance.keys, received_at.timestamp()
    )


async def resolve_keys(
    instance: ProviderInstance, body: bytes, headers: Mapping[str, str], received_at: datetime
) -> ProviderInstance:
    """``instance`` with the keys its profile resolves for this message (``received_at`` is
    the resolver's now); itself where the profile resolves none."""
    resolve = instance.profile.resolve_keys
    if resolve is None:
        return instance
    keys = await resolve(body, headers, instance.params, instance.keys, received_at.timestamp())
    return dataclasses.replace(instance, keys=keys)


def signature_headers(inbound: Inbound) -> dict[str, str] | None:
    """The headers the instance's verifier reads in ``inbound``, as received: what its dead
    letter keeps so that ``relay replay`` can verify it again.

    None when they cannot be kept: the verifier reads a credential header
    (:data:`CREDENTIAL_HEADERS`), or the message does not verify from the headers it has
    (a letter filed before Relay kept them, replayed on the operator's word).
    """
    if inbound.received_headers is None:
        return None
    seen = _ReadHeaders(inbound.received_headers)
    try:
        verify(inbound.instance, inbound.body, seen, inbound.received_at)
    except VerificationError:
        return None
    if any(name.lower() in CREDENTIAL_HEADERS for name in seen.read):
        return None
    return seen.read


class _ReadHeaders(Mapping[str, str]):
    """Headers as a verifier sees them, noting each one it reads and finds."""

    __slots__ = ("_headers", "read")

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = headers
        self.read: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        value = self._headers[name]
        self.read[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


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


def _unreadable(instance: ProviderInstance, error: Exception) -> tuple[str, str]:
    """The dead-letter reason and message of an authentic message whose event could not be
    built: a ``NormalizationError``'s own, or, for anything else, ``normalizer_error``.

    That is the safety net, and only around building the event (reading a batch's items
    too): the message is authentic, so any other error is a normalizer's bug (a reader
    that let an exception through on input it did not foresee), which a retry would only
    repeat: a 500 on every retry, and the message lost when the provider gives up. As a
    dead letter it is kept, and replayed once the bug is fixed. The traceback is logged
    here, once per message handled; the letter names the exception's type only.
    """
    if isinstance(error, NormalizationError):
        return error.reason, error.message
    log.exception(
        "normalizer failed on an authentic message",
        extra={"provider": instance.name, "profile": instance.profile.name},
        exc_info=error,
    )
    return (
        NORMALIZER_ERROR,
        f"the {instance.profile.name} normalizer raised {type(error).__name__}",
    )


class _SignatureHeadersOnce:
    """:func:`signature_headers` of a batch request, found at the first of its items'
    letters and kept for the others: each would run the verifier over the whole body again
    (an Adyen request's verifier checks each of its up to 100 items)."""

    __slots__ = ("_found", "_headers", "_inbound")

    def __init__(self, inbound: Inbound) -> None:
        self._inbound = inbound
        self._found = False
        self._headers: dict[str, str] | None = None

    def __call__(self) -> dict[str, str] | None:
        if not self._found:
            self._headers, self._found = signature_headers(self._inbound), True
        return self._headers


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
        if profile.resolve_keys is not None:
            instance = await resolve_keys(instance, body, headers, received_at)
        verified = self._verify(instance, body, headers, received_at)
        kept = {name: headers[name] for name in profile.kept_headers if name in headers}
        if instance.id_header and instance.id_header in headers:
            kept[instance.id_header] = headers[instance.id_header]
        # Positional (instance, body, headers, received_at, attempts, traceparent,
        # received_headers), as NormalizeContext below: keywords cost more per webhook.
        inbound = Inbound(instance, body, kept, received_at, 1, traceparent, headers)
        # A signed timestamp inside its tolerance already bounds replays; else each event's
        # own time is checked (per item, in a batch).
        max_age_s: float | None = None
        max_future_s: float | None = None
        if verified.timestamp is None:
            max_age_s, max_future_s = instance.max_age_s, instance.max_future_s
        if profile.items is not None:
            return await self._receive_batch(inbound, profile.items, max_age_s, max_future_s)
        return await self.process(inbound, max_age_s=max_age_s, max_future_s=max_future_s)

    def verify_again(self, inbound: Inbound) -> Verified:
        """Verify a dead letter's message again before a replay publishes it (``relay
        replay``), as it was received: the letter's received time is the verifier's now, so
        a signed timestamp's tolerance counts from then (see :mod:`relay.replay`). The
        letter of a batch's item is verified as the whole request it came in. A profile
        that resolves its keys needs ``inbound`` from :func:`resolve_keys` first."""
        return self._verify(
            inbound.instance, inbound.body, inbound.received_headers or {}, inbound.received_at
        )

    async def _receive_batch(
        self,
        inbound: Inbound,
        reader: ItemsReader,
        max_age_s: float | None,
        max_future_s: float | None,
    ) -> Result | BatchResult:
        """Every item of a verified batch request, at once, under one deadline (module
        docstring); raises the first item's error when any item could not be made durable."""
        instance = inbound.instance
        deadline = time.monotonic() + instance.ack_budget_s
        try:
            items = reader(inbound.body, instance.params)
        except Exception as error:
            # Authentic, but not a batch the profile reads: the whole body is one letter.
            reason, message = _unreadable(instance, error)
            identity = instance.profile.identity(inbound.body, instance.params)
            return await self._dead_letter(inbound, identity, reason, message, deadline)
        signatures = _SignatureHeadersOnce(inbound)
        body, kept, received_at = inbound.body, inbound.headers, inbound.received_at
        traceparent, received_headers = inbound.traceparent, inbound.received_headers

        def of_item(position: int) -> Inbound:
            # Positional, in Inbound's field order (see receive).
            return Inbound(
                instance, body, kept, received_at, 1, traceparent, received_headers, position
            )

        if len(items) == 1:  # the common case: no task to gather
            return BatchResult(
                (
                    await self._process(
                        of_item(0), deadline, max_age_s, max_future_s, items[0], signatures
                    ),
                )
            )
        outcomes = await asyncio.gather(
            *(
                self._process(
                    of_item(position), deadline, max_age_s, max_future_s, item, signatures
                )
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
        max_future_s: float | None = None,
    ) -> Result:
        """Normalize an authentic message and make it durable exactly once.

        ``max_age_s``: dead-letter the event as ``stale_event`` when its time is older
        than that at ``received_at``; ``max_future_s``: as ``future_event`` when its time
        is more than that after ``received_at`` (None: no check, as for a replay).
        """
        budget_s = inbound.instance.ack_budget_s if budget_s is None else budget_s
        return await self._process(inbound, time.monotonic() + budget_s, max_age_s, max_future_s)

    async def _process(
        self,
        inbound: Inbound,
        deadline: float,
        max_age_s: float | None,
        max_future_s: float | None,
        item: BatchItem | None = None,
        signatures: Callable[[], dict[str, str] | None] | None = None,
    ) -> Result:
        """:meth:`process` by ``deadline``; ``item``: the batch item an inbound is about,
        already read (else read from the body); ``signatures``: its request's
        :func:`signature_headers`, found once for all the items' letters."""
        instance = inbound.instance
        if inbound.item is None:
            identity = instance.profile.identity(inbound.body, instance.params)
        elif item is not None:
            identity = item.identity
        else:
            try:
                item = batch_item(inbound)
            except Exception as error:
                # The item cannot be read any more: its letter is named by the body and
                # the position, the same on every later attempt.
                reason, message = _unreadable(instance, error)
                body_identity = instance.profile.identity(inbound.body, instance.params)
                identity = hashlib.sha256(f"{body_identity}:{inbound.item}".encode()).hexdigest()
                return await self._dead_letter(inbound, identity, reason, message, deadline)
            identity = item.identity

        async def dead_letter(reason: str, message: str) -> Result:
            return await self._dead_letter(inbound, identity, reason, message, deadline, signatures)

        try:
            event = normalize(inbound, item)
            record = to_kafka_record(event, self._config.kafka.topic)
        except Exception as error:
            return await dead_letter(*_unreadable(instance, error))
        if event.time is not None and (max_age_s is not None or max_future_s is not None):
            age_s = (inbound.received_at - datetime.fromisoformat(event.time)).total_seconds()
            if max_age_s is not None and age_s > max_age_s:
                return await dead_letter(
                    "stale_event",
                    f"the event's time {event.time} is more than max_age_s ({max_age_s:g}s) "
                    "before it was received",
                )
            if max_future_s is not None and -age_s > max_future_s:
                return await dead_letter(
                    "future_event",
                    f"the event's time {event.time} is more than max_future_s "
                    f"({max_future_s:g}s) after it was received",
                )
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
        self,
        inbound: Inbound,
        identity: str,
        reason: str,
        message: str,
        deadline: float,
        signatures: Callable[[], dict[str, str] | None] | None = None,
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
            signature_headers=signature_headers(inbound) if signatures is None else signatures(),
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
        # The module's verify, written out: one call less per webhook.
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
