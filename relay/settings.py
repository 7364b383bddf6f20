"""Settings types: one frozen dataclass per config section, with its defaults.

Each component takes only its own section (the Kafka sink a :class:`KafkaConfig`,
the dedup store a :class:`DedupConfig`, ...), so none of them depends on the
provider registry or the loader. This module imports nothing of Relay; reading
and validating the TOML file is :mod:`relay.config`'s.
"""

from __future__ import annotations

import ipaddress
import typing
from dataclasses import dataclass, field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CONTENT_ENCODINGS = ("gzip", "deflate")
"""The encodings an instance may accept (``content_encodings``); zlib is in the standard
library, and these are the two providers use."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``[server]``: where Relay listens and the limits that keep hostile clients cheap.

    Every limit has a default that is safe on a public endpoint; each is
    checked when the config loads (positive numbers, valid networks).
    """

    host: str = "0.0.0.0"
    port: int = 8080
    max_body_bytes: int = 1048576
    """A bigger body is refused with 413 before it is read whole. The cap on every request:
    an instance's own limit (:attr:`ProviderInstance.max_body_bytes`) may only be lower."""
    ack_budget_max_s: float = 5.0
    """The cap in ``ack_budget = min(provider timeout x 0.5, ack_budget_max_s)``."""
    shutdown_grace_s: float = 10.0
    max_headers: int = 64
    """Request headers allowed in one request; more is a 400 before any handler runs."""
    max_header_bytes: int = 8190
    """The longest header (name and value together) and the longest request line; longer is
    a 400 (aiohttp's ``max_field_size`` and ``max_line_size``)."""
    read_timeout_s: float = 10.0
    """How long a client may take to send its request line and headers (counted from the
    connection, or from the previous answer on a kept-alive connection, so this is also the
    idle keep-alive timeout), and again to send its body. A slower client is cut off: the
    connection closes during headers, a 408 answers a body that is still incomplete. A body
    Relay refused unread (408, 413) is drained for at most this long again, then closed."""
    max_connections: int = 512
    """Open client connections per process. One more gets a 503 with ``Retry-After`` and is
    closed, so slow or idle clients cannot exhaust file descriptors or memory."""
    trusted_proxies: tuple[IpNetwork, ...] = ()
    """Peers (addresses or CIDR networks) whose ``X-Forwarded-For`` is believed, for the
    providers' ``allow_ips`` check: the client is the rightmost address in the header that
    is not itself a trusted proxy. From any other peer the header is ignored."""


SecurityProtocol = typing.Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = typing.Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
Compression = typing.Literal["none", "gzip", "snappy", "lz4", "zstd"]


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """``[kafka]``: where events go, and how Relay reaches and logs in to the brokers.

    The security settings follow Kafka's own client settings (``security.protocol``,
    ``ssl.*``, ``sasl.*``) with underscores; every Kafka client of Relay uses them
    (``serve``, ``replay``, ``tail``, ``dlq``, ``check-config``). Passwords are kept
    out of ``repr`` and therefore out of logs and errors.
    """

    bootstrap_servers: str = "localhost:9092"
    topic: str = "payments.events"
    dlq_topic: str = ""
    """Empty means ``<topic>.dlq``."""
    idempotence: bool = True
    max_message_bytes: int = 1048576
    linger_ms: int = 2
    client_id: str = "relay"
    request_timeout_ms: int = 30000
    readiness_check_s: float = 2.0
    """How often the producer asks a broker for metadata, and how long it waits for the
    answer: no answer marks Kafka not connected in ``/readyz`` (see :mod:`relay.kafka`)."""
    compression: Compression = "none"
    """Producer batch compression. gzip is in the standard library; snappy, lz4 and zstd
    need ``webhook-relay[kafka-compression]``."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_cafile: str = ""
    """PEM file of the authorities that may sign the brokers' certificates; empty means the
    system's trust store (managed services use public authorities)."""
    ssl_certfile: str = ""
    """Client certificate (PEM) for mutual TLS; may hold the key too."""
    ssl_keyfile: str = ""
    ssl_key_password: str = field(default="", repr=False)
    ssl_check_hostname: bool = True
    """The broker's certificate must name the host Relay connected to. Turn off only for a
    broker reached through an address its certificate does not list."""
    sasl_mechanism: SaslMechanism = ""
    """Required with ``SASL_PLAINTEXT`` and ``SASL_SSL``."""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    sasl_oauth_token_provider: str = ""
    """OAUTHBEARER: ``module:function`` returning a token (``str``, or an awaitable of one),
    called for each new broker connection; ``relay.kafka_auth:aws_msk_iam`` for AWS MSK IAM
    (``webhook-relay[msk]``)."""

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.topic}.dlq"


@dataclass(frozen=True, slots=True)
class DedupConfig:
    backend: typing.Literal["memory", "sqlite", "redis"] = "sqlite"
    path: str = "var/dedup.sqlite3"
    url: str = "redis://127.0.0.1:6379/0"
    ttl_s: int = 604800
    lease_s: float = 30.0


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    path: str = "var/spool"
    max_bytes: int = 1 << 30


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """``[tracing]``: OpenTelemetry spans, off by default (they need the ``tracing`` extra).

    Where spans go is not configured here: the OTLP exporter reads the standard
    ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout, certificate), as every
    OpenTelemetry SDK does, so a collector's address and its credentials stay out of this file.
    """

    enabled: bool = False
    service_name: str = "relay"
    """The ``service.name`` resource attribute; ``OTEL_SERVICE_NAME``, when set, wins."""
    sample_ratio: float = 1.0
    """Share of webhooks (and replayed letters) traced, 0 to 1, decided per trace id."""


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """``[replay]``: what ``relay replay`` and ``relay dlq`` share."""

    outcome_key: str = field(default="", repr=False)
    """The HMAC-SHA256 key that signs each replay outcome record and that ``relay dlq``
    checks, so that an outcome written by anyone else is ignored (``relay.deadletter``);
    empty: outcomes are written unsigned and shown as unauthenticated. Never logged."""


ConsoleRole = typing.Literal["read", "replay"]


@dataclass(frozen=True, slots=True)
class ConsoleOperator:
    """``[console.operators.NAME]``: one operator's token and what it may do."""

    name: str
    token: str = field(repr=False)
    role: ConsoleRole = "read"
    """``read`` sees everything; ``replay`` may also replay dead letters."""


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """``[console]``: the operator console (``relay console``), off unless enabled.

    A separate process on its own port, never the webhook port. Operators log in with a
    token (``operators``), or an SSO proxy in front names them (``proxy_user_header``,
    believed only from ``trusted_proxies``).
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8081
    index_path: str = "var/console/index.sqlite3"
    """The SQLite index of both topics; deleting it rebuilds it from the topics."""
    metrics_urls: tuple[str, ...] = ()
    """The running servers' ``/metrics``, scraped for what the topics do not hold
    (duplicates, refusals, acknowledgement latency, the spool)."""
    scrape_interval_s: float = 15.0
    tls_certfile: str = ""
    """Serve HTTPS with this certificate (PEM; may hold the key); the session cookie is
    then ``Secure``."""
    tls_keyfile: str = ""
    session_ttl_s: float = 43200.0
    operators: tuple[ConsoleOperator, ...] = ()
    proxy_user_header: str = ""
    """Set when an SSO proxy authenticates operators: the header naming the user."""
    proxy_replay_users: tuple[str, ...] = ()
    """Users the proxy names who may replay; the others read only."""
    trusted_proxies: tuple[IpNetwork, ...] = ()
    """Peers whose ``proxy_user_header`` is believed; a request from any other is refused."""
