"""Dead letters: inspect them (``relay dlq``) and bring them back (``relay replay``).

Nothing read from the dead-letter topic is trusted: anyone who can write to it
can write a letter. So replay verifies each letter's message again with its
instance's current keys (:meth:`relay.pipeline.Pipeline.verify_again`): the
exact body, and the headers the verifier read when it arrived, which the letter
keeps (``signature_headers``). The verifier's ``now`` is the letter's received
time, so a signed timestamp's tolerance is waived by design: a replay comes
days later, and the received time is the letter's own word, so the tolerance
would bound nothing. What a letter cannot forge is the signature over the body
(and over the timestamp, where the scheme signs one). A letter that does not
verify (forged, altered, or signed with a key the instance no longer has) is
refused: ``failed_again`` with reason ``unverified``, never published, not filed
again. A letter filed before Relay kept signature headers, whose scheme needs
them, cannot be verified (reason ``unverifiable``); ``trust_unverified``
(``relay replay --trust-unverified``) replays such letters unverified, on the
operator's word that nothing but Relay wrote them. A letter whose body is over
its instance's ``max_body_bytes`` was never received as such: ``unverified``.

A verified letter re-enters the pipeline at normalize
(:meth:`relay.pipeline.Pipeline.process`): it is normalized with the current
code and config, deduplicated, and published straight to Kafka (no spool:
replay commits its progress only for what Kafka acknowledged). The letter of a
batch's notification (its ``item``) is verified as the whole request it came in
(its body and signature headers are the request's), then replays that
notification only: the rest of its body published when it arrived.

Progress is a Kafka consumer group per filter set (``relay-replay`` plus a
hash of the filters), committed after each letter, so an interrupted replay
resumes where it stopped and a replay with other filters starts from the
beginning. A letter that fails again is filed again (``attempts`` + 1), so it
stays available for a later replay; the dedup store makes sure an event
already on the topic is not published twice.

A run handles only letters filed before it started. When it meets a newer
one (its own re-filed failures, or letters the server files meanwhile) it
pauses that partition without committing, so the next run starts there; this
is also what ends a run instead of chasing its own re-filed letters forever.

Each letter handled (not in a dry run) gets a replay outcome record on the
dead-letter topic, keyed like the letter (:class:`schemas.records.ReplayOutcome`:
replayed, duplicate or failed again, when, the event id or the reason), written
before the letter's progress is committed, and signed with ``[replay]
outcome_key`` when one is set (:mod:`relay.deadletter`). ``relay dlq`` folds
them into the letters they are about: with a key, only those signed with it
(any other is ignored, counted and named on ``err``); without one, all of
them, counted as unauthenticated. Replay itself skips them.

Anyone who can write to the dead-letter topic can write anything there, so
nothing read from it stops a run or a listing: a record the decoder refuses
(:class:`schemas.decoder.DecodeError`) is passed over with one line on ``err``
naming it (``topic/partition@offset``) and why, and counted (``unreadable``);
replay commits past it like past any other record that is not a letter.

With tracing on, each replayed letter gets a ``replay`` span (its steps as
children): a new trace, linked to the trace that filed the letter (the
``traceparent`` header of its record, when it has one). What the replay
publishes or files again carries the replay span's ``traceparent``. A dry run
traces nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

import orjson

from relay.config import Config
from relay.deadletter import make_replay_outcome, outcome_authentic, replay_outcome_record
from relay.dedup import open_configured
from relay.delivery import DirectDelivery
from relay.errors import Unavailable
from relay.inert import inert
from relay.kafka import KafkaSink, ReadRecord, TopicReader
from relay.metrics import REPLAYED
from relay.pipeline import (
    NORMALIZER_ERROR,
    Inbound,
    Outcome,
    Pipeline,
    normalize,
    resolve_keys,
    verify,
)
from relay.profiles import PROFILES
from relay.sink import KafkaUnavailable
from relay.tracing import TracedPipeline, Tracer, open_tracer
from schemas import NormalizationError
from schemas.decoder import DecodeError, decode_dlq_record
from schemas.event import CanonicalEvent
from schemas.records import DeadLetter, ReplayOutcome, ReplayResult
from verifiers import VerificationError, Verified

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

# Replay waits longer than the producer's request timeout, so a failure is a real failure.
REPLAY_BUDGET_MARGIN_S = 5.0

UNVERIFIED = "unverified"
"""The reason a letter whose message does not verify is refused."""
UNVERIFIABLE = "unverifiable"
"""The reason a letter without signature headers, whose scheme needs them, is refused."""
UNSIGNED_OUTCOME = "not signed with [replay] outcome_key"
"""Why a replay outcome is ignored when a key is set."""


@dataclass(frozen=True, slots=True)
class LetterFilter:
    provider: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    id: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        received = letter.received_at
        return (
            (self.provider is None or letter.provider == self.provider)
            and (self.reason is None or letter.reason == self.reason)
            and (self.id is None or letter.id == self.id)
            and (self.since is None or received >= self.since)
            and (self.until is None or received < self.until)
        )

    def group_suffix(self) -> str:
        if self == LetterFilter():
            return ""
        text = "|".join(
            str(value) for value in (self.provider, self.reason, self.since, self.until, self.id)
        )
        return "-" + hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass
class ReplaySummary:
    replayed: int = 0
    duplicates: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    would_replay: int = 0
    matched: int = 0
    unreadable: int = 0
    """Records of the dead-letter topic the decoder refused: passed over, each named on ``err``."""

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def handled(self) -> int:
        """Letters a run is done with (or a dry run has judged)."""
        return self.replayed + self.duplicates + self.failed_total + self.would_replay

    def table(self, dry_run: bool) -> str:
        rows: list[tuple[str, int]] = [("matched", self.matched)]
        if dry_run:
            rows.append(("would replay", self.would_replay))
        else:
            rows += [("replayed", self.replayed), ("skipped as duplicate", self.duplicates)]
        rows += [
            (f"{'would fail' if dry_run else 'failed again'}: {inert(reason)}", count)
            for reason, count in sorted(self.failed.items())
        ]
        if self.unreadable:
            rows.append(("unreadable records skipped", self.unreadable))
        width = max(len(label) for label, _ in rows)
        lines = [f"{'outcome'.ljust(width)}  count", f"{'-' * width}  -----"]
        lines += [f"{label.ljust(width)}  {count:5d}" for label, count in rows]
        return "\n".join(lines)

    def to_json(self, dry_run: bool) -> bytes:
        """The summary as one JSON object (``relay replay --json``); ``failed`` by reason
        counts letters that failed again, or would fail in a dry run."""
        return orjson.dumps(
            {
                "dry_run": dry_run,
                "matched": self.matched,
                "replayed": self.replayed,
                "duplicates": self.duplicates,
                "would_replay": self.would_replay,
                "failed": dict(sorted(self.failed.items())),
                "failed_total": self.failed_total,
                "unreadable": self.unreadable,
            }
        )


@dataclass(frozen=True, slots=True)
class FiledLetter:
    """A dead letter as ``relay dlq`` shows it: where it is, and what replays did with it
    (oldest first)."""

    letter: DeadLetter
    topic: str
    partition: int
    offset: int
    replays: tuple[ReplayOutcome, ...] = ()

    @property
    def last_replay(self) -> ReplayOutcome | None:
        return self.replays[-1] if self.replays else None


@dataclass(frozen=True, slots=True)
class Listing:
    """What ``relay dlq`` read: the matching letters, and how many records it passed over."""

    letters: list[FiledLetter]
    unreadable: int = 0
    """Records the decoder refused, each named on ``err`` as it was read."""
    ignored_outcomes: int = 0
    """Replay outcomes not signed with ``[replay] outcome_key``, each named on ``err``."""
    unauthenticated_outcomes: int = 0
    """Replay outcomes folded in unchecked: no ``[replay] outcome_key`` is set."""


async def read_letters(
    reader: TopicReader, idle_s: float
) -> AsyncIterator[tuple[ReadRecord, DeadLetter | ReplayOutcome | DecodeError]]:
    """Records of the dead-letter topic until none arrives for ``idle_s``: letters, what
    replays did with them, and for a record that is neither, why the decoder refused it.
    """
    async for record in reader.until_idle(idle_s):
        try:
            yield record, decode_dlq_record(record.value, record.headers)
        except DecodeError as error:
            yield record, error


def unreadable_note(record: ReadRecord, error: DecodeError) -> str:
    """The line that names a record of the dead-letter topic passed over, and why."""
    return inert(f"{record.where}: not a Relay dead letter: {error}")


async def list_letters(
    config: Config, letter_filter: LetterFilter, idle_s: float = 1.5, err: TextIO | None = None
) -> Listing:
    """The matching letters in the order read, each with the outcomes of its replays.
    ``err`` (default stderr) gets one line per record passed over."""
    out = sys.stderr if err is None else err
    kafka = config.kafka
    letters: list[FiledLetter] = []
    replays: dict[tuple[str, str, int], list[ReplayOutcome]] = {}
    unreadable = ignored = unauthenticated = 0
    key = config.replay.outcome_key
    async with TopicReader(kafka, kafka.dead_letter_topic, subscribe=True) as reader:
        async for record, item in read_letters(reader, idle_s):
            if isinstance(item, DecodeError):
                unreadable += 1
                print(unreadable_note(record, item), file=out, flush=True)
            elif isinstance(item, ReplayOutcome):
                if not key:
                    unauthenticated += 1
                elif not outcome_authentic(key, record.value, record.headers):
                    ignored += 1
                    print(f"{record.where}: replay outcome ignored: {UNSIGNED_OUTCOME}", file=out)
                    continue
                replays.setdefault((item.provider, item.letter_id, item.attempts), []).append(item)
            elif letter_filter.matches(item):
                letters.append(FiledLetter(item, record.topic, record.partition, record.offset))
    # Outcomes follow their letter on its partition, in the order replays wrote them.
    filed_letters = [
        replace(filed, replays=tuple(replays.get(_filing(filed.letter), ()))) for filed in letters
    ]
    return Listing(filed_letters, unreadable, ignored, unauthenticated)


def unauthenticated_warning(config: Config) -> str:
    """What replay outcomes read without ``[replay] outcome_key`` are worth (``relay dlq``
    and the console say it wherever they show them)."""
    return (
        "no [replay] outcome_key is set, so anyone who can write to "
        f"{config.kafka.dead_letter_topic} can forge what they say"
    )


def letter_order_id(config: Config, letter: DeadLetter) -> str | None:
    """The order a letter's body names, as its event's record key would hold it, or None.

    Read with the profile it was filed under (and its instance's settings while the
    instance still has that profile): a letter failed to normalize, so it names its
    order only in its body.
    """
    profile = PROFILES.get(letter.profile)
    if profile is None:
        return None
    instance = config.providers.get(letter.provider)
    if instance is not None and instance.profile is not profile:
        instance = None
    params = (instance.params if instance is not None else None) or profile.params
    try:
        if letter.item is None:
            payload = profile.payload(letter.body, params)
        elif profile.items is not None:
            items = profile.items(letter.body, params)
            if letter.item >= len(items):
                return None
            payload = items[letter.item].payload
        else:
            return None
    except NormalizationError:
        return None
    return profile.order_id(payload, instance.order_id_metadata_key if instance else None)


def _filing(letter: DeadLetter) -> tuple[str, str, int]:
    """What names one filing of a letter, as its replay outcomes name it."""
    return (letter.provider, letter.id, letter.attempts)


async def replay(
    config: Config,
    letter_filter: LetterFilter,
    *,
    dry_run: bool = False,
    rate: float | None = None,
    idle_s: float = 1.5,
    progress: TextIO | None = None,
    on_progress: Callable[[ReplaySummary, float], None] | None = None,
    group_id: str | None = None,
    limit: int | None = None,
    span_exporter: SpanExporter | None = None,
    err: TextIO | None = None,
    trust_unverified: bool = False,
) -> ReplaySummary:
    """Replay matching letters; ``limit`` stops after that many (tests interrupt with it).

    ``trust_unverified`` replays letters that hold no signature headers without verifying
    them (module docstring: dangerous when others can write to the dead-letter topic).

    ``progress`` (a terminal) gets a progress line; ``on_progress`` is called after each
    record read with the summary so far and the seconds since the run started (the
    console's replay page shows :func:`progress_text` of them).

    ``span_exporter`` replaces OTLP when tracing is on (tests pass an in-memory one).
    ``err`` (default stderr) gets one line per record passed over as unreadable.
    """
    summary = ReplaySummary()
    out = sys.stderr if err is None else err
    group = group_id or f"relay-replay{letter_filter.group_suffix()}"
    sink = KafkaSink(config.kafka)
    dedup = None
    tracer: Tracer | None = None
    try:
        async with TopicReader(
            config.kafka,
            config.kafka.dead_letter_topic,
            group_id=None if dry_run else group,
        ) as reader:
            if not await reader.assign(resume=not dry_run):
                return summary
            pipeline: Pipeline | None = None
            if not dry_run:
                dedup = open_configured(config.dedup)
                await sink.start()
                if not await sink.wait_connected(15):
                    raise KafkaUnavailable(
                        f"kafka: cannot publish to {config.kafka.bootstrap_servers} "
                        f"({sink.last_error or 'no connection within 15 s'})"
                    )
                tracer = open_tracer(config.tracing, span_exporter)
                pipeline = (
                    Pipeline(config, dedup, DirectDelivery(sink))
                    if tracer is None
                    else TracedPipeline(config, dedup, DirectDelivery(sink), tracer)
                )
            pace = _Pacer(rate)
            started = time.monotonic()
            now = datetime.now(UTC)
            # Letters carry millisecond times: compare at that precision (a letter from the
            # same millisecond waits for the next run rather than risking an endless one).
            cutoff = now.replace(microsecond=now.microsecond // 1000 * 1000)
            async for record, item in read_letters(reader, idle_s):
                if reader.paused(record):
                    continue  # records fetched before the pause took effect
                if isinstance(item, DecodeError):
                    summary.unreadable += 1
                    if progress is not None:
                        progress.write("\r\x1b[K")  # the note on a line of its own
                    print(unreadable_note(record, item), file=out, flush=True)
                # Outcome records (and unreadable ones) are not letters: passed over, committed.
                letter = item if isinstance(item, DeadLetter) else None
                if letter is not None and letter.dead_lettered_at >= cutoff:
                    reader.pause(record)
                    continue
                if letter is not None and letter_filter.matches(letter):
                    if limit is not None and summary.matched >= limit:
                        break
                    summary.matched += 1
                    await pace.wait()
                    if pipeline is None:
                        await _dry_run(config, letter, summary, trust_unverified)
                    else:
                        outcome = (
                            await _replay_one(config, pipeline, letter, summary, trust_unverified)
                            if tracer is None
                            else await _replay_traced(
                                config, pipeline, letter, summary, tracer, record, trust_unverified
                            )
                        )
                        await sink.send(
                            replay_outcome_record(
                                outcome, config.kafka.dead_letter_topic, config.replay.outcome_key
                            )
                        )
                if not dry_run:
                    await reader.commit(record)
                if progress is not None:
                    _draw_progress(progress, summary, time.monotonic() - started)
                if on_progress is not None:
                    on_progress(summary, time.monotonic() - started)
            if progress is not None:
                progress.write("\n")
    finally:
        await sink.stop()
        if dedup is not None:
            await dedup.close()
        if tracer is not None:
            tracer.shutdown()
    return summary


async def _replay_one(
    config: Config,
    pipeline: Pipeline,
    letter: DeadLetter,
    summary: ReplaySummary,
    trust_unverified: bool,
    traceparent: str | None = None,
) -> ReplayOutcome:
    """Replay one letter; what became of it, to be filed next to it."""
    inbound = await _admit(config, letter, pipeline.verify_again, trust_unverified, traceparent)
    if isinstance(inbound, str):
        summary.failed[inbound] += 1
        REPLAYED.labels("failed").inc()
        # Not filed again: no instance can replay it until the config names one, and a
        # letter that does not verify is not Relay's to keep.
        return make_replay_outcome(letter, ReplayResult.FAILED_AGAIN, reason=inbound)
    result = await pipeline.process(
        inbound,
        budget_s=config.kafka.request_timeout_ms / 1000 + REPLAY_BUDGET_MARGIN_S,
    )
    if result.outcome is Outcome.ACCEPTED:
        summary.replayed += 1
        REPLAYED.labels("replayed").inc()
        return make_replay_outcome(letter, ReplayResult.REPLAYED, event_id=result.event_id)
    if result.outcome is Outcome.DUPLICATE:
        summary.duplicates += 1
        REPLAYED.labels("duplicate").inc()
        return make_replay_outcome(letter, ReplayResult.DUPLICATE, event_id=result.event_id)
    reason = result.reason or "unknown"
    summary.failed[reason] += 1
    REPLAYED.labels("failed").inc()
    return make_replay_outcome(
        letter, ReplayResult.FAILED_AGAIN, reason=reason, new_attempts=inbound.attempts
    )


async def _replay_traced(
    config: Config,
    pipeline: Pipeline,
    letter: DeadLetter,
    summary: ReplaySummary,
    tracer: Tracer,
    record: ReadRecord,
    trust_unverified: bool,
) -> ReplayOutcome:
    """:func:`_replay_one` in a replay span linked to the trace that filed the letter."""
    filed_under = next(
        (value.decode("latin-1") for name, value in record.headers if name == "traceparent"), None
    )
    with tracer.replay(letter.provider, letter.id, filed_under) as span:
        span.set("relay.attempt", letter.attempts + 1)
        outcome = await _replay_one(
            config, pipeline, letter, summary, trust_unverified, span.traceparent
        )
        span.set("relay.outcome", outcome.outcome.value)
        if outcome.reason is not None:
            span.fail(outcome.reason)
        return outcome


@dataclass(frozen=True, slots=True)
class PlannedOutcome:
    """What a replay would do with one letter (:func:`plan_letter`): publish ``event``,
    or fail again for ``reason``."""

    event: CanonicalEvent | None = None
    reason: str | None = None
    """``unknown_provider``, ``unverified``, ``unverifiable``, or why normalizing refuses it."""


KEYS_UNAVAILABLE = "keys_unavailable"
"""A plan's reason for a letter whose key cannot be fetched now (a certificate host down)."""


async def plan_letter(
    config: Config, letter: DeadLetter, *, trust_unverified: bool = False
) -> PlannedOutcome:
    """Verify and normalize only, as a replay would: what it would do with ``letter``,
    writing nothing anywhere (``relay replay --dry-run`` letter by letter, and the
    console's replay plan). Whether the event is already published is not asked here:
    the dedup store is the replay's. A profile that resolves its keys (PayPal's
    certificate) resolves them here too, fetching as a replay would."""
    try:
        inbound = await _admit(config, letter, _verify, trust_unverified)
    except Unavailable:
        # The key the letter names cannot be had now (PayPal's certificate host is down):
        # a replay stops there without committing, and meets the letter again next run.
        return PlannedOutcome(reason=KEYS_UNAVAILABLE)
    if isinstance(inbound, str):
        return PlannedOutcome(reason=inbound)
    try:
        return PlannedOutcome(event=normalize(inbound))
    except NormalizationError as error:
        return PlannedOutcome(reason=error.reason)
    except Exception:
        # What the pipeline files as a normalizer's bug (Pipeline.process) is what a replay
        # would do with it: a plan says so rather than stopping on it.
        return PlannedOutcome(reason=NORMALIZER_ERROR)


async def _dry_run(
    config: Config, letter: DeadLetter, summary: ReplaySummary, trust_unverified: bool
) -> None:
    planned = await plan_letter(config, letter, trust_unverified=trust_unverified)
    if planned.reason is None:
        summary.would_replay += 1
    else:
        summary.failed[planned.reason] += 1


async def _admit(
    config: Config,
    letter: DeadLetter,
    verify_again: Callable[[Inbound], Verified],
    trust_unverified: bool,
    traceparent: str | None = None,
) -> Inbound | str:
    """The letter as the next attempt of its message once it verifies; else why it is
    refused: ``unknown_provider`` (no instance of its name), ``unverified``, ``unverifiable``."""
    inbound = _inbound(config, letter, traceparent)
    if inbound is None:
        return "unknown_provider"
    if len(letter.body) > inbound.instance.max_body_bytes:
        return UNVERIFIED  # the HTTP endpoint never took such a body from the provider
    try:
        # The key the message names (PayPal's certificate: fetched, cached or pinned).
        inbound = replace(
            inbound,
            instance=await resolve_keys(
                inbound.instance, inbound.body, inbound.received_headers or {}, inbound.received_at
            ),
        )
        verify_again(inbound)
    except VerificationError:
        if letter.signature_headers is not None:
            return UNVERIFIED
        if not trust_unverified:
            return UNVERIFIABLE
    return inbound


def _verify(inbound: Inbound) -> Verified:
    """:meth:`Pipeline.verify_again` without a pipeline (a dry run has none)."""
    return verify(
        inbound.instance, inbound.body, inbound.received_headers or {}, inbound.received_at
    )


def _inbound(config: Config, letter: DeadLetter, traceparent: str | None = None) -> Inbound | None:
    """The letter as the next attempt of its message; None when its instance is gone."""
    instance = config.providers.get(letter.provider)
    if instance is None:
        return None
    # Positional, in Inbound's field order, as the pipeline builds it.
    return Inbound(
        instance,
        letter.body,
        letter.headers,
        letter.received_at,
        letter.attempts + 1,
        traceparent,
        {**letter.headers, **(letter.signature_headers or {})},
        letter.item,
    )


class _Pacer:
    """At most ``rate`` letters per second, evenly spaced (not bursts)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        if not self._interval:
            return
        delay = self._next - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next = max(self._next, time.monotonic() - self._interval) + self._interval


def progress_text(summary: ReplaySummary, elapsed: float) -> str:
    """How far a run is after ``elapsed`` seconds: letters handled, failed, and the rate."""
    rate = summary.handled / elapsed if elapsed > 0 else 0.0
    return f"{summary.handled} handled, {summary.failed_total} failed, {rate:.1f}/s"


def _draw_progress(out: TextIO, summary: ReplaySummary, elapsed: float) -> None:
    bar = "#" * min(30, summary.handled // 10 + 1) if summary.handled else ""
    out.write(f"\r[{bar:<30}] {progress_text(summary, elapsed)}")
    out.flush()


def progress_stream() -> TextIO | None:
    """A progress bar only on a terminal: piped output stays clean for scripts."""
    return sys.stderr if sys.stderr.isatty() else None
