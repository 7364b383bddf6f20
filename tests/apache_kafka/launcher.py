"""Run a real Apache Kafka broker (KRaft, one node) next to the test suite.

The dev broker (tansu) does not enforce what production Kafka does: idempotent
producers, ``message.max.bytes``, ``auto.create.topics.enable=false`` and a log
that survives a crash. This module starts the real thing from the Maven Central
jars, on free 127.0.0.1 ports, with production-like settings.

Usage (the broker takes a few seconds to start: share it per module or session)::

    lib = ensure_jars(repo_root)
    with ApacheKafka(lib, work_dir) as kafka:
        kafka.create_topic("payments.events", partitions=4)
        ...  # aiokafka clients on kafka.bootstrap_servers

Everything here is synchronous and uses only the standard library (and
``cryptography`` for the test certificates of :mod:`tests.apache_kafka.secure`):
the readiness probe, ``create_topic`` and ``upsert_scram_user`` speak the Kafka
wire protocol directly, so
sync fixtures can use them without an event loop. From async code they block
the loop briefly (``create_topic`` takes tens of milliseconds); run ``start``
and ``restart`` through ``asyncio.to_thread`` when clients must keep running
while the broker comes up.
"""

from __future__ import annotations

import atexit
import base64
import collections
import fcntl
import hashlib
import itertools
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

from tests.apache_kafka.secure import (
    SCRAM_ALTER_API,
    SECURE_LISTENERS,
    Pki,
    scram_upsertion,
    secure_properties,
)

__all__ = ["DEFAULT_JVM_OPTIONS", "ApacheKafka", "ensure_jars", "free_port", "java_and_maven"]

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J2_CONFIG = HERE / "log4j2.properties"
CACHE_SUBDIR = Path(".cache") / "apache-kafka"
MIN_JAVA = 17
NODE_ID = 1

# Small and predictable next to the tests on a 2-core machine: a capped heap,
# the serial collector (no parallel GC threads) and the C1 compiler only, which
# starts faster and burns less CPU than C2 for a short-lived broker. Measured:
# ready in 1.9 s using 2.3 s of CPU and 280-290 MB RSS, where Kafka's own G1
# settings took 2.3 s, 3.8 s of CPU and 315-340 MB, and were not faster at
# 20k idempotent sends. -XX:-UsePerfData: no hsperfdata files in /tmp.
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)

_STAMP = ".pom-sha256"
_TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code
_MAVEN_TIMEOUT_S = 900.0


def java_and_maven() -> str | None:
    """Return None when ``java`` (17+) and ``mvn`` are on PATH, else why not."""
    java = shutil.which("java")
    if java is None:
        return "java is not on PATH"
    if shutil.which("mvn") is None:
        return "mvn (Maven) is not on PATH"
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`java -version` failed: {exc}"
    # `java -version` prints to stderr: 'openjdk version "17.0.15" ...' or '"1.8.0_392"'.
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr)
    if match is None:
        return f"cannot read the Java version from: {done.stderr.strip()[:200]!r}"
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        return f"java {major} is on PATH; Kafka 4 needs Java {MIN_JAVA} or newer"
    return None


def ensure_jars(repo_root: Path) -> Path:
    """Copy the broker's jars into ``<repo_root>/.cache/apache-kafka/lib`` once; return that dir.

    Maven runs only when the jars are missing or pom.xml changed since they were
    copied (its digest is kept next to the jars). Maven's local repository stays
    at its default (~/.m2), so a second checkout downloads nothing. Concurrent
    callers (pytest-xdist workers) wait on a file lock, and the jars appear
    atomically, so nobody starts a broker on a half-copied class path.
    """
    cache = repo_root / CACHE_SUBDIR
    lib = cache / "lib"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if _stamp(lib) == digest:
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp(lib) == digest:
            return lib
        staging = Path(tempfile.mkdtemp(prefix="lib-", dir=cache))
        try:
            command = [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
            ]
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_MAVEN_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
                output = (done.stdout + done.stderr).strip()
                raise RuntimeError(
                    f"{' '.join(command)} failed with exit code {done.returncode}:\n"
                    f"{output[-4000:]}"
                )
            (staging / _STAMP).write_text(digest)
            if lib.exists():
                shutil.rmtree(lib)
            staging.rename(lib)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return lib


def _stamp(lib: Path) -> str | None:
    try:
        return (lib / _STAMP).read_text().strip()
    except FileNotFoundError:
        return None


def free_port() -> int:
    """A loopback port that was free a moment ago (bind :0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApacheKafka:
    """One Apache Kafka node (broker and KRaft controller) on 127.0.0.1.

    ``work_dir`` holds ``server.properties``, the data (``log_dir``) and the
    broker's output (``log_path``). Ports are chosen on the first ``start`` and
    kept, so ``restart`` brings the broker back where clients expect it.
    """

    def __init__(
        self,
        lib_dir: Path,
        work_dir: Path,
        *,
        jvm_options: tuple[str, ...] = DEFAULT_JVM_OPTIONS,
        properties: Mapping[str, str] | None = None,
        pki: Pki | None = None,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        """``properties`` override or extend the broker settings of ``server_properties``;
        ``pki`` adds the secure listeners of :mod:`tests.apache_kafka.secure`."""
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java is not on PATH")
        self._java = java
        self._lib_dir = lib_dir
        self._work_dir = work_dir
        self._jvm_options = jvm_options
        self._overrides = dict(properties or {})
        self._pki = pki
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._ports: tuple[int, int] | None = None
        self._secure_ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- where things are -------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` of the client listener (known after the first start)."""
        return f"127.0.0.1:{self._client_port}"

    @property
    def log_path(self) -> Path:
        """The broker's stdout, stderr and log4j output, appended across restarts."""
        return self._work_dir / "broker.log"

    @property
    def log_dir(self) -> Path:
        """The KRaft data directory (``log.dirs``): topic partitions and metadata log."""
        return self._work_dir / "data"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def secure_bootstrap_servers(self, listener: str) -> str:
        """``127.0.0.1:PORT`` of a secure listener (``SASL_SSL`` or ``MTLS``)."""
        if listener not in self._secure_ports:
            raise RuntimeError(f"no {listener} listener: start the broker with a pki")
        return f"127.0.0.1:{self._secure_ports[listener]}"

    @property
    def pki(self) -> Pki | None:
        return self._pki

    @property
    def _client_port(self) -> int:
        if self._ports is None:
            raise RuntimeError("the broker has not been started yet")
        return self._ports[0]

    # -- configuration ------------------------------------------------------

    def server_properties(self) -> dict[str, str]:
        """The broker settings: production defaults unless a test needs otherwise."""
        client_port, controller_port = self._ports or (0, 0)
        secure = {name: self._secure_ports.get(name, 0) for name in self._secure_listeners()}
        advertised = f"PLAINTEXT://127.0.0.1:{client_port}" + "".join(
            f",{name}://127.0.0.1:{port}" for name, port in secure.items()
        )
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "listeners": f"{advertised},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": advertised,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            + "".join(f",{name}:{protocol}" for name, protocol in self._secure_listeners().items()),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            # A dynamic quorum of one voter, as `StorageTool format --standalone` expects.
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
            "log.dirs": str(self.log_dir),
            # Production clusters refuse to create topics on first use; so do we.
            "auto.create.topics.enable": "false",
            # One node: internal topics cannot have the default three replicas.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Internal topics appear on first use with 50 partitions each by
            # default, which costs seconds on a small machine; the partition
            # count of an internal topic is invisible to clients.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the controller keeps the dead incarnation's
            # registration until its session expires, and the restarted broker
            # cannot register before that: 9 s by default, 2 s here.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "2000",
        }
        if self._pki is not None:
            settings.update(secure_properties(self._pki))
        settings.update(self._overrides)
        return settings

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        """Format the log dir if it is new, start the JVM, wait until it answers."""
        if self.running:
            raise RuntimeError(f"the broker is already running (pid {self.pid})")
        self._forget_process()  # a JVM that died on its own still holds the log file
        if self._ports is None:
            self._ports = (free_port(), free_port())
            self._secure_ports = {name: free_port() for name in self._secure_listeners()}
        self._work_dir.mkdir(parents=True, exist_ok=True)
        config = self._work_dir / "server.properties"
        config.write_text(
            "".join(f"{key}={_escape(value)}\n" for key, value in self.server_properties().items())
        )
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed by _forget_process
        try:
            if not (self.log_dir / "meta.properties").exists():
                self._format(config)
            self._process = subprocess.Popen(
                [
                    self._java,
                    *self._jvm_options,
                    f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
                    "-cp",
                    f"{self._lib_dir}/*",
                    "kafka.Kafka",
                    str(config),
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self._work_dir,
                # Its own process group: a Ctrl-C in the terminal reaches pytest,
                # whose teardown then stops the broker, instead of killing the JVM
                # half-way through a test.
                start_new_session=True,
            )
            # Teardown may never run (pytest dying on an internal error); a
            # stray JVM would keep its memory and ports after the tests.
            atexit.register(self.kill)
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after ``stop_timeout_s``."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL, as in a crash: no controlled shutdown, no flush beyond the OS page cache."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._forget_process()

    def restart(self) -> None:
        """Stop (gracefully) if running, then start again on the same log dir and ports."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 50) -> str:
        """The last ``lines`` lines of ``log_path``."""
        try:
            with open(self.log_path, "rb") as log:
                tail = collections.deque(log, maxlen=lines)
        except FileNotFoundError:
            return ""
        return b"".join(tail).decode("utf-8", errors="replace")

    # -- topics ---------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = 4,
        *,
        config: Mapping[str, str] | None = None,
        timeout_s: float = 15.0,
        exist_ok: bool = False,
    ) -> None:
        """Create a topic (replication factor 1) and wait until every partition has a leader.

        Synchronous. ``config`` holds topic-level settings, e.g.
        ``{"max.message.bytes": "2097152"}``. An existing topic is an error
        unless ``exist_ok`` (then it must have ``partitions`` partitions).
        """
        error_code, message = _create_topic(
            self._client_port, name, partitions, dict(config or {}), timeout_s
        )
        if error_code == _TOPIC_ALREADY_EXISTS and exist_ok:
            error_code = 0
        if error_code != 0:
            raise RuntimeError(
                f"CreateTopics {name!r} failed with Kafka error code {error_code}: {message}"
            )
        deadline = time.monotonic() + timeout_s
        while True:
            metadata = _metadata(self._client_port, [name], timeout_s)
            leaders = metadata.topics.get(name, {})
            if len(leaders) == partitions and all(leader >= 0 for leader in leaders.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name!r} has no leader for every partition: {leaders}")
            time.sleep(0.05)

    def upsert_scram_user(
        self, mechanism: str, user: str, password: str, timeout_s: float = 10.0
    ) -> None:
        """Create a SCRAM user or set its password, through the admin API
        (AlterUserScramCredentials, on the plaintext listener). Synchronous."""
        api_key, version = SCRAM_ALTER_API
        body = scram_upsertion(mechanism, user, password)
        reader = _Reader(_request(self._client_port, api_key, version, body, timeout_s, True))
        reader.int32()  # throttle_time_ms
        for _ in range(reader.uvarint() - 1):
            name = reader.compact_string()
            error_code = reader.int16()
            message = reader.compact_string()
            reader.uvarint()  # tagged fields
            if error_code != 0:
                raise RuntimeError(
                    f"AlterUserScramCredentials {name!r} failed with Kafka error code "
                    f"{error_code}: {message}"
                )

    def _secure_listeners(self) -> dict[str, str]:
        return dict(SECURE_LISTENERS) if self._pki is not None else {}

    # -- internals ------------------------------------------------------------

    def _format(self, config: Path) -> None:
        done = subprocess.run(
            [
                self._java,
                *self._jvm_options,
                f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
                "-cp",
                f"{self._lib_dir}/*",
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "--cluster-id",
                _cluster_id(),
                "--config",
                str(config),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"kafka.tools.StorageTool format exited with {done.returncode}:\n{self.log_tail(30)}"
            )

    def _wait_ready(self) -> None:
        """Wait for a Metadata answer from *our* cluster that lists this node."""
        assert self._process is not None
        cluster_id = _read_cluster_id(self.log_dir)
        deadline = time.monotonic() + self._start_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise RuntimeError(
                    f"Kafka exited with code {code} while starting "
                    f"(log {self.log_path}):\n{self.log_tail(40)}"
                )
            try:
                metadata = _metadata(self._client_port, None, timeout_s=2.0)
            except (OSError, ValueError, struct.error) as exc:
                last_error = exc
            else:
                # The cluster id guards against another process that took the
                # port between free_port() and the JVM binding it.
                if metadata.cluster_id == cluster_id and NODE_ID in metadata.brokers:
                    return
                last_error = ValueError(f"not ready yet: {metadata}")
            time.sleep(0.1)
        raise TimeoutError(
            f"Kafka did not answer within {self._start_timeout_s:.0f} s "
            f"(last probe: {last_error!r}):\n{self.log_tail(40)}"
        )

    def _forget_process(self) -> None:
        self._process = None
        self._close_log_file()
        atexit.unregister(self.kill)

    def _close_log_file(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _escape(value: str) -> str:
    """A value as a Java properties file reads it back (PEM blocks span lines)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _cluster_id() -> str:
    """A random cluster id as `kafka-storage random-uuid` makes it (22 URL-safe base64 chars)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Kafka refuses ids starting with '-' (they look like command-line flags).
        if not text.startswith("-"):
            return text


def _read_cluster_id(log_dir: Path) -> str:
    for line in (log_dir / "meta.properties").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    raise RuntimeError(f"no cluster.id in {log_dir / 'meta.properties'}")


# -- the little of the Kafka wire protocol this module needs -------------------
# Old, non-flexible versions (no tagged fields) keep this short. Metadata v4 is
# the first that can say allow_auto_topic_creation=false; CreateTopics v2 is the
# oldest Kafka 4 still accepts (KIP-896; Kafka 4.4 answers ApiVersions with 2-7).

_correlation_ids = itertools.count(1)
_T = TypeVar("_T")


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def _request(
    port: int, api_key: int, api_version: int, body: bytes, timeout_s: float, flexible: bool = False
) -> bytes:
    """Send one request on a fresh connection and return the response body.

    ``flexible``: a version with tagged fields (request header v2, response header v1).
    """
    correlation_id = next(_correlation_ids)
    header = struct.pack(">hhi", api_key, api_version, correlation_id) + _string("relay-tests")
    if flexible:
        header += b"\x00"  # no tagged fields
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        payload = _recv_exactly(sock, size)
    (answered,) = struct.unpack_from(">i", payload)
    if answered != correlation_id:
        raise ValueError(f"correlation id {answered} does not match {correlation_id}")
    if flexible:
        return payload[5:]  # the response header's tagged fields: none from Kafka here
    return payload[4:]


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("Kafka closed the connection mid-response")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def _unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._offset)
        self._offset += struct.calcsize(fmt)
        return value

    def int8(self) -> int:
        return self._unpack(">b")

    def int16(self) -> int:
        return self._unpack(">h")

    def int32(self) -> int:
        return self._unpack(">i")

    def string(self) -> str | None:
        size = self.int16()
        if size < 0:
            return None
        value = self._data[self._offset : self._offset + size].decode()
        self._offset += size
        return value

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self._data[self._offset]
            self._offset += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str | None:
        size = self.uvarint() - 1
        if size < 0:
            return None
        value = self._data[self._offset : self._offset + size].decode()
        self._offset += size
        return value

    def array(self, item: Callable[[], _T]) -> list[_T]:
        return [item() for _ in range(max(self.int32(), 0))]


@dataclass(frozen=True)
class _Metadata:
    """What the readiness probe and create_topic need from a Metadata v4 response."""

    cluster_id: str | None
    brokers: set[int]
    topics: dict[str, dict[int, int]]  # topic -> partition -> leader id (-1: none)


def _metadata(port: int, topics: list[str] | None, timeout_s: float) -> _Metadata:
    """Metadata v4 for ``topics`` (None: all topics)."""
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(_string(t) for t in topics)
    body += struct.pack(">b", 0)  # allow_auto_topic_creation: never, even if enabled
    reader = _Reader(_request(port, 3, 4, body, timeout_s))  # api key 3: Metadata
    reader.int32()  # throttle_time_ms

    def broker() -> int:
        node_id = reader.int32()
        reader.string()  # host
        reader.int32()  # port
        reader.string()  # rack
        return node_id

    brokers = set(reader.array(broker))
    cluster_id = reader.string()
    reader.int32()  # controller_id

    def partition() -> tuple[int, int]:
        error_code = reader.int16()
        index = reader.int32()
        leader = reader.int32()
        reader.array(reader.int32)  # replica_nodes
        reader.array(reader.int32)  # isr_nodes
        return index, (leader if error_code == 0 else -1)

    def topic() -> tuple[str | None, int, dict[int, int]]:
        error_code = reader.int16()
        name = reader.string()
        reader.int8()  # is_internal
        return name, error_code, dict(reader.array(partition))

    found = {
        name: partitions
        for name, error_code, partitions in reader.array(topic)
        if name is not None and error_code == 0
    }
    return _Metadata(cluster_id, brokers, found)


def _create_topic(
    port: int, name: str, partitions: int, config: dict[str, str], timeout_s: float
) -> tuple[int, str | None]:
    """CreateTopics v2 for one topic (replication factor 1): (error code, message)."""
    body = struct.pack(">i", 1) + _string(name) + struct.pack(">ih", partitions, 1)
    body += struct.pack(">i", 0)  # no manual replica assignment
    body += struct.pack(">i", len(config))
    body += b"".join(_string(key) + _string(value) for key, value in config.items())
    body += struct.pack(">ib", int(timeout_s * 1000), 0)  # timeout_ms, validate_only
    reader = _Reader(_request(port, 19, 2, body, timeout_s))  # api key 19: CreateTopics
    reader.int32()  # throttle_time_ms
    results = reader.array(lambda: (reader.string(), reader.int16(), reader.string()))
    for topic, error_code, message in results:
        if topic == name:
            return error_code, message
    raise ValueError(f"CreateTopics response does not mention {name!r}: {results}")
