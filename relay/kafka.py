"""The Kafka boundary: the only module that imports aiokafka.

:class:`KafkaSink` is the :class:`relay.sink.Sink` that publishes: it owns one
producer (``acks="all"``, idempotence per config) and keeps trying to connect
in the background, so Relay starts and serves (spooling) while Kafka is
unreachable and connects when it appears. :class:`TopicReader` reads a topic
back for ``relay tail``, ``relay find``, ``relay dlq``, ``relay replay``, ``relay console``
and the tests, with a consumer configured the same way everywhere (:func:`open_consumer`).

Every client is built by :func:`client_options` from the whole ``[kafka]``
section, so TLS and SASL apply to all of them. aiokafka reports a failed start
as "Unable to bootstrap" whatever the cause; :func:`probe` makes one connection
the same way and names the cause (:class:`HandshakeFailed`: an untrusted
certificate, a refused login, a mechanism the listener does not enable), for
``/readyz``, ``check-config`` and the commands' one-line errors.

Errors are reduced to the two kinds of :mod:`relay.sink` (re-exported here):
:class:`KafkaUnavailable` (try again later: spool) and :class:`RecordRejected`
(this record will never be accepted: dead-letter it).

A topic the broker does not have (auto-creation off, as production clusters
run) is "try again later": the sink looks for its topics when it connects,
refuses records for a missing one at once instead of letting aiokafka wait
``request_timeout_ms`` for metadata on every send, names it in the log and in
:attr:`KafkaSink.missing_topics` (``/readyz``), and looks again every second
until it exists.

A broker that dies while nothing is being sent goes unnoticed by the producer,
which learns of it only when a send or a metadata request fails. So once
connected, the sink asks for its topics' metadata every ``[kafka]
readiness_check_s`` (one small request, whatever the traffic; nothing per
record): no answer within that time makes :attr:`KafkaSink.healthy` false
(``/readyz``: ``"broker not answering"``), and the next answer makes it true
again unless a send has failed since.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    SaslAuthenticationFailed,
    UnknownTopicOrPartitionError,
    UnsupportedSaslMechanismError,
    UnsupportedVersionError,
)
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp

from relay.kafka_auth import (
    TokenFunction,
    fetch_token,
    tls_context,
    token_function,
    uses_sasl,
    uses_tls,
)
from relay.metrics import KAFKA_PUBLISH
from relay.partitioner import partition_for
from relay.records import KafkaRecord
from relay.settings import KafkaConfig
from relay.sink import KafkaUnavailable, RecordRejected, SendError

log = logging.getLogger("relay.kafka")

_PERMANENT = (MessageSizeTooLargeError, RecordTooLargeError)
# How often a missing topic is looked for again: cheap (one metadata request),
# and an operator who just created it expects the spool to drain promptly.
_TOPIC_RECHECK_S = 1.0


class KafkaSink:
    """The :class:`relay.sink.Sink` that publishes to Kafka."""

    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._producer: AIOKafkaProducer | None = None
        self._connected = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None
        self._topics = (config.topic, config.dead_letter_topic)
        self._missing_topics: frozenset[str] = frozenset()
        self._topic_watch: asyncio.Task[None] | None = None
        self._broker_watch: asyncio.Task[None] | None = None
        self._unanswered = False
        """Whether ``last_error`` is the broker watch's (no metadata answer), which its
        next answer clears; a send's error is cleared only by a send."""
        self.last_error: str | None = None
        """Why Kafka is not taking records now, as ``/readyz`` shows it: the error's class
        name (``KafkaConnectionError``) or a fixed phrase, never its message, which names
        broker addresses. The message goes to the log (see :meth:`_note_error`)."""
        self._error_detail: str | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def healthy(self) -> bool:
        """Connected, and the last send (if any failed since) was acknowledged.

        ``connected`` stays true once the producer started, because aiokafka
        reconnects by itself; this is what says whether Kafka is taking records now.
        """
        return self.connected and self.last_error is None

    @property
    def missing_topics(self) -> frozenset[str]:
        """Relay's topics that the broker neither has nor creates, as of the last look."""
        return self._missing_topics

    async def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._connector = asyncio.create_task(self._connect_forever(), name="kafka-connect")

    async def wait_connected(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        return self.connected

    async def submit(self, record: KafkaRecord) -> asyncio.Future[None]:
        """Append one record to the producer's batch; the future settles on the broker's
        acknowledgement (acks=all) or with the :data:`SendError` it came to."""
        if self._producer is None or not self.connected:
            raise self._not_connected()
        if record.topic in self._missing_topics:
            raise _topic_missing(record.topic)
        started = time.perf_counter()
        try:
            sent = await self._producer.send(
                record.topic, value=record.value, key=record.key, headers=list(record.headers)
            )
        except KafkaError as exc:
            raise self._send_error(exc, record.topic) from exc
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sent.add_done_callback(functools.partial(self._settle, acknowledged, record.topic, started))
        return acknowledged

    async def send(self, record: KafkaRecord) -> None:
        """Publish one record and wait for the broker's acknowledgement (acks=all)."""
        await (await self.submit(record))

    def _settle(
        self,
        acknowledged: asyncio.Future[None],
        topic: str,
        started: float,
        sent: asyncio.Future[object],
    ) -> None:
        """aiokafka's outcome of one send, as the port's: None or a :data:`SendError`."""
        if sent.cancelled():
            error: SendError | None = KafkaUnavailable("the producer dropped the send")
        elif (exc := sent.exception()) is not None:
            error = self._send_error(exc, topic)
            error.__cause__ = exc
        else:
            error = None
            KAFKA_PUBLISH.observe(time.perf_counter() - started)
            self._note_ok()
        if acknowledged.done():  # the waiter cancelled it: the outcome has no one to tell
            return
        if error is None:
            acknowledged.set_result(None)
        else:
            acknowledged.set_exception(error)

    def _send_error(self, exc: BaseException, topic: str) -> SendError:
        """What a failed send means for Relay, noted for ``/readyz`` and the log."""
        if isinstance(exc, _PERMANENT):
            return RecordRejected(f"{type(exc).__name__}: the broker refuses this record")
        if isinstance(exc, UnknownTopicOrPartitionError):
            # Deleted while Relay runs: aiokafka waited request_timeout_ms for it.
            self._note_missing_topics(self._missing_topics | {topic})
            return _topic_missing(topic)
        unavailable = _unavailable(exc)
        self._note_error(unavailable)
        return unavailable

    async def send_batch(self, records: Iterable[KafkaRecord]) -> list[SendError | None]:
        """Publish records in order, pipelined; one result per record (None when acknowledged)."""
        if self._producer is None or not self.connected:
            raise self._not_connected()
        futures: list[asyncio.Future[object] | BaseException] = []
        for record in records:
            if record.topic in self._missing_topics:
                futures.append(_topic_missing(record.topic))
                continue
            try:
                futures.append(
                    await self._producer.send(
                        record.topic,
                        value=record.value,
                        key=record.key,
                        headers=list(record.headers),
                    )
                )
            except KafkaError as exc:
                futures.append(exc)
        results: list[SendError | None] = []
        for future in futures:
            if isinstance(future, BaseException):
                results.append(_classify(future))
                continue
            try:
                await future
                results.append(None)
            except KafkaError as exc:
                results.append(_classify(exc))
        for result in results:
            if result is None:
                self._note_ok()
            elif isinstance(result, KafkaUnavailable):
                self._note_error(result)
        return results

    def _note_error(self, error: KafkaUnavailable) -> None:
        """Kafka is not taking records: ``/readyz`` gets ``error.kind``, the log its message,
        once when Kafka stops taking records rather than once per record."""
        if self.last_error is None:
            log.warning("kafka is not taking records", extra={"error": str(error)})
        self.last_error, self._error_detail = error.kind, str(error)
        self._unanswered = False

    def _note_ok(self) -> None:
        self.last_error = self._error_detail = None
        self._unanswered = False

    def _not_connected(self) -> KafkaUnavailable:
        return KafkaUnavailable(
            self._error_detail or "not connected to Kafka yet",
            kind=self.last_error or "not connected",
        )

    async def stop(self) -> None:
        """Flush what the producer holds, then close. Safe to call when never connected."""
        for task in (self._connector, self._topic_watch, self._broker_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._producer is not None and self.connected:
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(self._producer.flush(), 10)
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(self._producer.stop(), 10)
        self._connected.clear()

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            producer = AIOKafkaProducer(
                **client_options(self._config),
                acks="all",
                enable_idempotence=self._config.idempotence,
                compression_type=None
                if self._config.compression == "none"
                else self._config.compression,
                linger_ms=self._config.linger_ms,
                partitioner=partition_for,
                # Our own size check runs first (413 before any ack); this is the client's backstop.
                max_request_size=self._config.max_message_bytes + 65536,
            )
            try:
                await producer.start()
            except KafkaError as exc:
                # aiokafka says only "Unable to bootstrap"; one probe connection says why
                # (a refused login, an untrusted certificate), for /readyz and the log.
                unavailable = await self._why_not_connected(exc)
                # Logged at every attempt (each a few seconds apart), so not by _note_error.
                self.last_error, self._error_detail = unavailable.kind, str(unavailable)
                log.warning("kafka not reachable, retrying", extra={"error": str(unavailable)})
                with contextlib.suppress(KafkaError):
                    await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._producer = producer
            self._note_ok()
            # Before anything is sent: a send to a missing topic would wait for it.
            with contextlib.suppress(KafkaError):
                await self._look_for_topics()
            self._connected.set()
            log.info("kafka connected", extra={"bootstrap": self._config.bootstrap_servers})
            self._broker_watch = asyncio.create_task(self._watch_broker(), name="kafka-watch")
            return

    async def _why_not_connected(self, exc: KafkaError) -> KafkaUnavailable:
        try:
            await probe(self._config)
        except HandshakeFailed as refused:
            return refused
        except KafkaUnavailable:
            pass
        return _unavailable(exc)

    async def _look_for_topics(self) -> bool:
        """Ask a broker which topics are missing; False when none answered."""
        assert self._producer is not None
        missing = await _absent_topics(self._producer.client, self._topics)
        if missing is None:
            return False
        self._note_missing_topics(missing)
        return True

    async def _watch_broker(self) -> None:
        """Ask a broker for metadata every ``readiness_check_s``, waiting as long for the
        answer, so that ``/readyz`` sees a broker lost while nothing is sent (module docstring).

        Its own verdict only: no answer is noted unless a send's error already is (that one
        says more), and an answer clears only what the watch noted.
        """
        interval = self._config.readiness_check_s
        while True:
            await asyncio.sleep(interval)
            try:
                # aiokafka shields the update it shares with its own callers: giving up here
                # leaves it running, and the next look joins it.
                async with asyncio.timeout(interval):
                    answered = await self._look_for_topics()
            except (KafkaError, TimeoutError):
                answered = False
            if answered and self._unanswered:
                log.info("kafka broker answers again")
                self._note_ok()
            elif not answered and self.last_error is None:
                self._note_error(
                    KafkaUnavailable(
                        f"no broker answered a metadata request within {interval:g} s",
                        kind="broker not answering",
                    )
                )
                self._unanswered = True

    def _note_missing_topics(self, missing: frozenset[str]) -> None:
        appeared = self._missing_topics - missing
        vanished = missing - self._missing_topics
        self._missing_topics = missing
        if vanished:
            log.error(
                "kafka topic missing: %s does not exist on the broker, which does not create "
                "topics on first use; events are spooled until it is created",
                ", ".join(sorted(vanished)),
                extra={"topics": sorted(vanished), "bootstrap": self._config.bootstrap_servers},
            )
        if appeared:
            log.info(
                "kafka topic now exists: %s",
                ", ".join(sorted(appeared)),
                extra={"topics": sorted(appeared)},
            )
        if missing and (self._topic_watch is None or self._topic_watch.done()):
            self._topic_watch = asyncio.create_task(self._watch_topics(), name="kafka-topics")

    async def _watch_topics(self) -> None:
        """Look for the missing topics every second until all exist."""
        while self._missing_topics:
            await asyncio.sleep(_TOPIC_RECHECK_S)
            with contextlib.suppress(KafkaError):
                await self._look_for_topics()


def client_options(config: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """The settings every Kafka client of Relay shares (producer, consumers, admin):
    where the brokers are, who Relay is to them and how it proves it."""
    options: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap_servers,
        "client_id": config.client_id,
        "request_timeout_ms": config.request_timeout_ms,
        **_security_options(config),
    }
    options.update(overrides)
    return options


def _security_options(config: KafkaConfig) -> dict[str, Any]:
    """aiokafka's names for ``[kafka]``'s security settings (checked when the config loaded)."""
    options: dict[str, Any] = {"security_protocol": config.security_protocol}
    if uses_tls(config):
        options["ssl_context"] = tls_context(config)
    if uses_sasl(config):
        options["sasl_mechanism"] = config.sasl_mechanism
        if config.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = _TokenProvider(token_function(config))
        else:
            options["sasl_plain_username"] = config.sasl_username
            options["sasl_plain_password"] = config.sasl_password
    return options


class _TokenProvider(AbstractTokenProvider):
    """``sasl_oauth_token_provider``'s function, as aiokafka asks for tokens."""

    def __init__(self, function: TokenFunction) -> None:
        self._function = function

    async def token(self) -> str:
        return await fetch_token(self._function)


async def probe(config: KafkaConfig, timeout_s: float = 5.0) -> None:
    """Connect to the first bootstrap server that answers, as every client will: TLS
    handshake, SASL login. Raises :class:`HandshakeFailed` when a broker refuses Relay
    (``kind`` says how, see :func:`diagnose`; the message says it for the operator in one
    line), :class:`KafkaUnavailable` when none answers."""
    last: KafkaUnavailable | None = None
    for host, port in _bootstrap_addresses(config.bootstrap_servers):
        options = _security_options(config)
        try:
            async with asyncio.timeout(timeout_s):
                connection = await create_conn(
                    host,
                    port,
                    client_id=config.client_id,
                    request_timeout_ms=int(timeout_s * 1000),
                    **options,
                )
        except TimeoutError:
            last = KafkaUnavailable(f"{host}:{port}: no answer within {timeout_s:g} s")
            continue
        except (OSError, KafkaError) as exc:  # ssl.SSLError is an OSError
            failure = diagnose(exc, config, host)
            if failure is not None:
                raise failure from exc
            last = KafkaUnavailable(f"{host}:{port}: {type(exc).__name__}: {exc}")
            continue
        connection.close()
        return
    raise last or KafkaUnavailable(f"no bootstrap server in {config.bootstrap_servers!r}")


class HandshakeFailed(KafkaUnavailable):
    """A broker answered and refused Relay (TLS or SASL): not a network problem, and
    retrying does not help until the config or the cluster changes."""


def diagnose(exc: BaseException, config: KafkaConfig, host: str) -> HandshakeFailed | None:
    """What one failed connection means, with a fixed ``kind`` for ``/readyz``; None for a
    failure that is not the handshake's (no route, refused, timed out)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        if "mismatch" in reason:
            return HandshakeFailed(
                f"TLS: the broker's certificate is not valid for {host} ({reason})",
                kind="TLS hostname mismatch",
            )
        return HandshakeFailed(
            f"TLS: the broker's certificate is not trusted ({reason}); "
            "ssl_cafile must name the authority that signed it",
            kind="TLS certificate not trusted",
        )
    if isinstance(exc, ConnectionResetError) and uses_tls(config):
        # A plaintext listener drops a TLS greeting it reads as a malformed request.
        return HandshakeFailed(
            "TLS handshake failed (the broker reset the connection): is this a TLS listener?",
            kind="TLS handshake failed",
        )
    if isinstance(exc, ssl.SSLError):
        return HandshakeFailed(
            f"TLS handshake failed ({exc.reason or exc}): is this a TLS listener?",
            kind="TLS handshake failed",
        )
    if isinstance(exc, SaslAuthenticationFailed):
        who = "" if config.sasl_mechanism == "OAUTHBEARER" else f" as {config.sasl_username!r}"
        return HandshakeFailed(
            f"SASL {config.sasl_mechanism} login{who} refused: {_broker_message(exc)}",
            kind="authentication failed",
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return HandshakeFailed(
            f"SASL {config.sasl_mechanism} is not enabled on this listener ({exc})",
            kind="SASL mechanism not enabled",
        )
    if isinstance(exc, IllegalSaslStateError):
        return HandshakeFailed(
            "this listener does not speak SASL: check security_protocol",
            kind="SASL not expected",
        )
    if (
        isinstance(exc, KafkaConnectionError)
        and "closed" in str(exc)
        and (uses_tls(config) or uses_sasl(config))
    ):
        return HandshakeFailed(
            "the broker closed the connection during the handshake: a listener of "
            "another security protocol, or one that requires a client certificate",
            kind="handshake refused",
        )
    return None


def _broker_message(exc: BaseException) -> str:
    # aiokafka prefixes "[Error 58] SaslAuthenticationFailed: " to the broker's own text.
    return str(exc).partition(": ")[2] or str(exc)


def _bootstrap_addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    addresses = []
    for entry in bootstrap_servers.split(","):
        host, _, port = entry.strip().rpartition(":")
        addresses.append((host.strip("[]") or entry.strip(), int(port) if port.isdigit() else 9092))
    return addresses


def _classify(exc: BaseException) -> SendError:
    if isinstance(exc, KafkaUnavailable | RecordRejected):
        return exc
    if isinstance(exc, _PERMANENT):
        return RecordRejected(f"{type(exc).__name__}: the broker refuses this record")
    return _unavailable(exc)


def _unavailable(exc: BaseException) -> KafkaUnavailable:
    return KafkaUnavailable(f"{type(exc).__name__}: {exc}", kind=type(exc).__name__)


def _topic_missing(topic: str) -> KafkaUnavailable:
    # /readyz names the topic under missing_topics; the phrase stays fixed.
    return KafkaUnavailable(f"topic {topic!r} does not exist on the broker", kind="topic missing")


async def _absent_topics(client: AIOKafkaClient, topics: Iterable[str]) -> frozenset[str] | None:
    """Which of ``topics`` the cluster has no partitions for; None when no broker answered.

    Asked the way a producer asks before its first record (a Metadata request
    naming the topics, auto-creation allowed): a broker that creates topics on
    first use creates them now, one that does not answers that they are unknown.
    """
    wanted = tuple(topics)
    for topic in wanted:
        client.add_topic(topic)  # tracked from now on: every metadata update includes it
    if not await client.force_metadata_update():
        return None
    return frozenset(
        topic for topic in wanted if client.cluster.partitions_for_topic(topic) is None
    )


async def find_missing_topics(
    config: KafkaConfig, topics: Iterable[str], timeout_s: float = 5.0
) -> list[str]:
    """The ``topics`` a broker neither has nor creates (``relay check-config``).

    Raises :class:`KafkaUnavailable` when no broker answers within ``timeout_s``.
    """
    wanted = list(topics)
    client = AIOKafkaClient(**client_options(config, request_timeout_ms=int(timeout_s * 1000)))
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            missing = await _absent_topics(client, wanted)
    except KafkaError as exc:
        raise KafkaUnavailable(str(exc)) from exc  # its text starts with its class name
    except TimeoutError as exc:
        raise KafkaUnavailable(f"no answer within {timeout_s:g} s") from exc
    finally:
        await client.close()
    if missing is None:
        raise KafkaUnavailable(
            f"no broker at {config.bootstrap_servers} answered a metadata request"
        )
    return [topic for topic in wanted if topic in missing]


async def create_topics(config: KafkaConfig, topics: Iterable[str], partitions: int = 4) -> None:
    """Create topics that do not exist yet (``relay dev``; production creates them in advance)."""
    admin = AIOKafkaAdminClient(**client_options(config, request_timeout_ms=10000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name=topic, num_partitions=partitions, replication_factor=1)
            for topic in topics
            if topic not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
    finally:
        await admin.close()


def open_consumer(
    config: KafkaConfig,
    *topics: str,
    group_id: str | None = None,
    from_beginning: bool = True,
) -> AIOKafkaConsumer:
    """A consumer subscribed to ``topics``, or unsubscribed when none are named
    (then :func:`assign_topic` assigns partitions explicitly, with no group join).

    ``enable_auto_commit`` is off so callers commit what they really processed.
    """
    return AIOKafkaConsumer(
        *topics,
        **client_options(config),
        group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


async def assign_topic(consumer: AIOKafkaConsumer, topic: str, *, resume: bool) -> bool:
    """Assign every partition of ``topic`` and position the consumer.

    ``resume`` starts each partition at the consumer group's committed offset
    (the beginning where none is committed); otherwise at the beginning.
    Explicit assignment needs no group join, which takes seconds on some
    brokers. Returns False when the topic does not exist (nothing to read).
    """
    partitions = await _partitions_for(consumer, topic)
    if not partitions:
        return False
    assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
    consumer.assign(assigned)
    for partition in assigned:
        committed = await consumer.committed(partition) if resume else None
        if committed is None:
            await consumer.seek_to_beginning(partition)
        else:
            consumer.seek(partition, committed)
    return True


async def _partitions_for(consumer: AIOKafkaConsumer, topic: str) -> set[int] | None:
    """The partitions of ``topic`` from fresh metadata; None when it does not exist.

    ``consumer.topics()`` reads a throwaway copy of the metadata, and the copy
    that ``partitions_for_topic`` answers from holds no topics at all on Apache
    Kafka (aiokafka bootstraps with an empty topic list, which brokers speaking
    Metadata v1+ read as "none"; tansu reads it as "all"). Tracking the topic
    makes every metadata update include it, so a topic created a moment ago is
    seen too. ``_client`` is aiokafka's own client: there is no public way.
    """
    client = consumer._client
    client.add_topic(topic)
    await client.force_metadata_update()
    partitions: set[int] | None = consumer.partitions_for_topic(topic)
    return partitions


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """A record as read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int = -1
    """The record's Kafka timestamp (when its producer sent it); -1 when it has none."""

    @property
    def where(self) -> str:
        """``topic/partition@offset``: how the operator tools name a record they skip."""
        return f"{self.topic}/{self.partition}@{self.offset}"


class TopicReader:
    """One topic read back: ``relay tail``, ``relay dlq``, ``relay replay`` and the tests.

    Opened with ``async with`` (inside a coroutine). With ``subscribe`` it follows
    the topic as it is (waiting for it if it does not exist yet); otherwise
    :meth:`assign` positions it on every partition, without a group join.
    Offsets are committed only by :meth:`commit`, for what the caller really
    processed; ``group_id`` names whose offsets those are.
    """

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        *,
        subscribe: bool = False,
        group_id: str | None = None,
        from_beginning: bool = True,
    ) -> None:
        self.topic = topic
        self._config = config
        self._consumer = open_consumer(
            config,
            *((topic,) if subscribe else ()),
            group_id=group_id,
            from_beginning=from_beginning,
        )

    async def __aenter__(self) -> TopicReader:
        """Connect; raises :class:`KafkaUnavailable` (:class:`HandshakeFailed` for a refused
        login or certificate) saying in one line why the brokers cannot be read."""
        try:
            await self._consumer.start()
        except KafkaError as exc:
            await self.__aexit__()
            try:
                await probe(self._config)
            except KafkaUnavailable as failure:
                raise type(failure)(f"kafka: {failure}", kind=failure.kind) from exc
            raise _unavailable(exc) from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # A consumer whose broker went away can hang in stop(): it must not keep the caller.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._consumer.stop(), 5)

    async def assign(self, *, resume: bool) -> bool:
        """Read every partition from the group's committed offsets (``resume``) or the
        beginning; False when the topic does not exist. See :func:`assign_topic`."""
        return await assign_topic(self._consumer, self.topic, resume=resume)

    async def assign_at(self, offsets: Mapping[int, int]) -> bool:
        """Read each partition from the offset ``offsets`` gives it, the beginning where it
        gives none: for a reader that keeps its own positions (the console's index) rather
        than a consumer group's. False when the topic does not exist."""
        partitions = await _partitions_for(self._consumer, self.topic)
        if not partitions:
            return False
        assigned = [TopicPartition(self.topic, partition) for partition in sorted(partitions)]
        self._consumer.assign(assigned)
        for tp in assigned:
            if tp.partition in offsets:
                self._consumer.seek(tp, offsets[tp.partition])
            else:
                await self._consumer.seek_to_beginning(tp)
        return True

    async def assign_since(self, moment: datetime) -> bool:
        """Read every partition from its first record written at or after ``moment``
        (the brokers' time index); False when the topic does not exist.

        A partition with no such record has nothing to read and is left out. A
        broker that cannot look offsets up by time, or answers without a
        timestamp (tansu does when nothing in the partition is that recent),
        has that partition read from the beginning: slower, never wrong, as
        callers filter by time themselves. Records' timestamps are their
        producers' clocks (or the broker's, for a topic that appends its own).
        """
        partitions = await _partitions_for(self._consumer, self.topic)
        if not partitions:
            return False
        wanted = [TopicPartition(self.topic, partition) for partition in sorted(partitions)]
        moment_ms = max(0, int(moment.timestamp() * 1000))
        try:
            found = await self._consumer.offsets_for_times({tp: moment_ms for tp in wanted})
        except UnsupportedVersionError:
            found = dict.fromkeys(wanted, _UNKNOWN_START)
        to_read = {tp: start for tp, start in found.items() if start is not None}
        self._consumer.assign(list(to_read))
        for tp, start in to_read.items():
            if start.timestamp < 0:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, start.offset)
        return True

    async def poll(self, timeout_s: float) -> list[ReadRecord]:
        """What has arrived, waiting up to ``timeout_s`` when nothing has."""
        batch = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        return [_read_record(message) for messages in batch.values() for message in messages]

    async def until_idle(self, idle_s: float) -> AsyncIterator[ReadRecord]:
        """Records until none arrives for ``idle_s``.

        Idle detection, not end offsets: the dev broker reports wrong end offsets
        after batched writes.
        """
        while records := await self.poll(idle_s):
            for record in records:
                yield record

    async def __aiter__(self) -> AsyncIterator[ReadRecord]:
        """Records as they arrive, for as long as the caller keeps reading."""
        async for message in self._consumer:
            yield _read_record(message)

    def pause(self, record: ReadRecord) -> None:
        """Fetch nothing more from ``record``'s partition while this reader is open."""
        self._consumer.pause(TopicPartition(record.topic, record.partition))

    def paused(self, record: ReadRecord) -> bool:
        """Whether ``record``'s partition was paused (it may have been fetched before)."""
        return TopicPartition(record.topic, record.partition) in self._consumer.paused()

    async def commit(self, record: ReadRecord) -> None:
        """Record ``record`` as processed: the group resumes after it."""
        partition = TopicPartition(record.topic, record.partition)
        await self._consumer.commit({partition: OffsetAndMetadata(record.offset + 1, "")})


# A start the broker could not give: read the partition from the beginning.
_UNKNOWN_START = OffsetAndTimestamp(offset=0, timestamp=-1)


def _read_record(message: ConsumerRecord) -> ReadRecord:
    return ReadRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        # Relay writes every record with a key and a value; one from elsewhere without reads as empty.
        key=message.key or b"",
        value=message.value or b"",
        headers=tuple(message.headers),
        timestamp_ms=message.timestamp if message.timestamp is not None else -1,
    )
