"""Configuration: one TOML file, validated whole before anything starts.

``load_config`` returns a frozen :class:`Config` or raises :class:`ConfigError`
naming the offending key (``providers.invoices.secrets[1]``) and the problem,
never a secret's value. Strings may use ``${ENV_VAR}``; an unset variable is an
error. ``RELAY_KAFKA_BOOTSTRAP_SERVERS`` overrides ``[kafka] bootstrap_servers``.

Relative paths (``dedup.path``, ``spool.path``) are relative to the working
directory, as in every other tool that takes ``var/...`` paths.

The section types live in :mod:`relay.settings` (they import nothing of Relay);
this module adds what ties a config to the provider registry: the provider
instances and the whole :class:`Config`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.kafka_auth import KafkaAuthError, tls_context, token_function, uses_sasl, uses_tls
from relay.profiles import PROFILES
from relay.providers.base import Ack, Profile
from relay.settings import (
    CONTENT_ENCODINGS,
    ConsoleConfig,
    ConsoleOperator,
    DedupConfig,
    IpNetwork,
    KafkaConfig,
    ReplayConfig,
    ServerConfig,
    SpoolConfig,
    TracingConfig,
)
from schemas.values import STATUSES
from verifiers import VerificationError
from verifiers.keys import (
    KeyLoadError,
    KeyRing,
    PrivateKey,
    Secret,
    UnusableKey,
    basic_authorization,
    load_private_key,
    load_public_key,
)


class ConfigError(ValueError):
    """A bad key: ``key`` is its dotted path, ``problem`` says what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ProviderInstance:
    """One configured sender: a route name, its profile, its keys and overrides."""

    name: str
    profile: Profile
    params: Any
    keys: KeyRing
    ack: Ack
    timeout_s: float
    ack_budget_s: float
    allow_ips: tuple[IpNetwork, ...] = ()
    timezone: ZoneInfo | None = None
    flow: str | None = None
    status_overrides: Mapping[str, str] = field(default_factory=dict)
    id_header: str | None = None
    order_id_metadata_key: str | None = None
    """The key of the provider's merchant metadata that holds the merchant's order id
    (Stripe's ``metadata``), for profiles whose payments carry such metadata."""
    max_body_bytes: int = 1048576
    """The effective body limit, on the wire and unpacked: the instance's ``max_body_bytes``
    option, else its profile's default, else ``[server] max_body_bytes``. Never above the
    server's: that is the one limit every instance shares and the one the load balancer's
    is sized from, so an instance that needs more raises both. A profile default above a
    lowered server limit is cut down to it; an explicit option above it is an error."""
    content_encodings: tuple[str, ...] = ()
    """``Content-Encoding`` values undone before verification (``gzip``, ``deflate``);
    a request with any other encoding is a 415. None by default: no provider needs it."""
    max_age_s: float = 604500.0
    """A notification whose own time is older than this when it arrives is dead-lettered
    as ``stale_event``, not published, where the scheme signs no timestamp (see
    :mod:`relay.pipeline`). Default and maximum: ``[dedup] ttl_s`` less ``max_future_s``,
    so that a replay the dedup window has forgotten is stale, even of a notification
    dated up to ``max_future_s`` ahead."""
    max_future_s: float = 300.0
    """The clock skew tolerated the other way: a notification whose own time is more than
    this after its arrival is dead-lettered as ``future_event``, where the scheme signs no
    timestamp (see :mod:`relay.pipeline`)."""


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    kafka: KafkaConfig
    dedup: DedupConfig
    spool: SpoolConfig
    providers: Mapping[str, ProviderInstance]
    tracing: TracingConfig = field(default_factory=TracingConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)


# A replay outcome key shorter than this is a typo or a placeholder, not a key.
OUTCOME_KEY_MIN_CHARS = 32

# Instance keys every profile accepts; the scheme's Params fields come on top.
_INSTANCE_KEYS = {
    "profile",
    "secrets",
    "public_keys",
    "signing_key",
    "authorizations",
    "allow_ips",
    "timezone",
    "flow",
    "statuses",
    "timeout_s",
    "ack_status",
    "ack_body",
    "ack_content_type",
    "id_header",
    "order_id_metadata_key",
    "max_body_bytes",
    "content_encodings",
    "max_age_s",
    "allow_short_secrets",
    "max_future_s",
    "basic_auth_username",
    "basic_auth_password",
}
MIN_SECRET_BYTES = 16
"""The shortest key a shared secret may give its scheme unless the instance sets
``allow_short_secrets``: a shorter one is found by trying keys against one captured
webhook (every four-letter lower-case secret: 1.3 s of one core)."""
# ``${NAME}``: an environment variable; ``${file:PATH}``: a file's content without its
# final newline (Docker and Kubernetes secrets are mounted as files).
_REFERENCE = re.compile(r"\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*))\}")


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the file ({exc.strerror})") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    return parse_config(document, env)


def parse_config(document: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    _only(
        document,
        {"server", "kafka", "dedup", "spool", "tracing", "replay", "console", "providers"},
        "",
    )
    server = _server(document.get("server", {}), env)
    kafka = _section(KafkaConfig, document.get("kafka", {}), "kafka", env)
    if env.get("RELAY_KAFKA_BOOTSTRAP_SERVERS"):
        kafka = dataclasses.replace(kafka, bootstrap_servers=env["RELAY_KAFKA_BOOTSTRAP_SERVERS"])
    _check_kafka_security(kafka)
    dedup = _section(DedupConfig, document.get("dedup", {}), "dedup", env)
    spool = _section(SpoolConfig, document.get("spool", {}), "spool", env)
    tracing = _tracing(document.get("tracing", {}), env)
    replay = _replay(document.get("replay", {}), env)
    console = _console(document.get("console", {}), env)
    if not 0 <= server.port <= 65535:
        # 0 asks the OS for a free port (tests); anything else out of range fails only at bind.
        raise ConfigError("server.port", "must be between 0 and 65535")
    for name in (
        "max_body_bytes",
        "ack_budget_max_s",
        "max_headers",
        "max_header_bytes",
        "read_timeout_s",
        "max_connections",
    ):
        _positive(getattr(server, name), f"server.{name}")
    _positive(kafka.max_message_bytes, "kafka.max_message_bytes")
    _positive(kafka.readiness_check_s, "kafka.readiness_check_s")
    _positive(dedup.ttl_s, "dedup.ttl_s")
    _positive(spool.max_bytes, "spool.max_bytes")
    providers_table = document.get("providers", {})
    if not isinstance(providers_table, Mapping):
        raise ConfigError("providers", "must be a table of provider instances")
    providers = {
        name: _instance(name, table, server, dedup, env) for name, table in providers_table.items()
    }
    if not providers:
        raise ConfigError("providers", "no provider instance is configured")
    return Config(
        server, kafka, dedup, spool, types.MappingProxyType(providers), tracing, replay, console
    )


# What `[tracing] enabled = true` imports: the SDK, and the exporter that sends spans.
_TRACING_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http")


def check_tracing(config: Config) -> None:
    """Raise :class:`ConfigError` when tracing is on but the ``tracing`` extra is missing.

    Only for the commands that trace (``relay serve``, ``relay replay``) and ``relay
    check-config``: a laptop tailing with the production config needs no tracing.
    """
    if config.tracing.enabled and not all(map(_installed, _TRACING_MODULES)):
        raise ConfigError(
            "tracing.enabled",
            "tracing is on but OpenTelemetry is not installed: "
            "pip install 'webhook-relay[tracing]', or set enabled = false",
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False


def _tracing(table: Any, env: Mapping[str, str]) -> TracingConfig:
    tracing: TracingConfig = _section(TracingConfig, table, "tracing", env)
    if not tracing.service_name.strip():
        raise ConfigError("tracing.service_name", "must not be empty")
    if not 0 <= tracing.sample_ratio <= 1:
        raise ConfigError("tracing.sample_ratio", "must be between 0 and 1")
    return tracing


def _replay(table: Any, env: Mapping[str, str]) -> ReplayConfig:
    replay: ReplayConfig = _section(ReplayConfig, table, "replay", env)
    key = replay.outcome_key
    if key and (len(key) < OUTCOME_KEY_MIN_CHARS or not key.strip()):
        raise ConfigError(
            "replay.outcome_key",
            f"must be at least {OUTCOME_KEY_MIN_CHARS} characters (e.g. `openssl rand -hex 32`, "
            "through ${VAR} or ${file:PATH}), or left out",
        )
    return replay


_TLS_KEYS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
_SASL_KEYS = ("sasl_mechanism", "sasl_username", "sasl_password", "sasl_oauth_token_provider")
# What each compression codec needs beyond the standard library (aiokafka's codecs).
_COMPRESSION_MODULES = {"snappy": "cramjam", "lz4": "cramjam", "zstd": "cramjam"}


def _check_kafka_security(kafka: KafkaConfig) -> None:
    """Settings that cannot work together, and files and hooks that cannot be used, are
    config errors now rather than a broker refusing Relay later."""
    protocol = kafka.security_protocol
    for keys, in_use, protocols in (
        (_TLS_KEYS, uses_tls(kafka), '"SSL" or "SASL_SSL"'),
        (_SASL_KEYS, uses_sasl(kafka), '"SASL_SSL" or "SASL_PLAINTEXT"'),
    ):
        for key in keys:
            if not in_use and getattr(kafka, key):
                raise ConfigError(
                    f"kafka.{key}", f"needs security_protocol = {protocols} (not {protocol})"
                )
    if kafka.ssl_keyfile and not kafka.ssl_certfile:
        raise ConfigError("kafka.ssl_keyfile", "needs ssl_certfile, the certificate it belongs to")
    mechanism = kafka.sasl_mechanism
    if uses_sasl(kafka) and not mechanism:
        raise ConfigError(
            "kafka.sasl_mechanism",
            f"required with {protocol}: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
        )
    if mechanism == "OAUTHBEARER":
        for key in ("sasl_username", "sasl_password"):
            if getattr(kafka, key):
                raise ConfigError(f"kafka.{key}", "not used by OAUTHBEARER: the token is")
        if not kafka.sasl_oauth_token_provider:
            raise ConfigError(
                "kafka.sasl_oauth_token_provider", "required with OAUTHBEARER (module:function)"
            )
    elif mechanism:
        for key in ("sasl_username", "sasl_password"):
            if not getattr(kafka, key):
                raise ConfigError(f"kafka.{key}", f"required with {mechanism}")
        if kafka.sasl_oauth_token_provider:
            raise ConfigError(
                "kafka.sasl_oauth_token_provider", "only used with sasl_mechanism = OAUTHBEARER"
            )
    try:
        tls_context(kafka)
        if mechanism == "OAUTHBEARER":
            token_function(kafka)
    except KafkaAuthError as error:
        raise ConfigError(error.key, str(error)) from error
    module = _COMPRESSION_MODULES.get(kafka.compression)
    if module is not None and importlib.util.find_spec(module) is None:
        raise ConfigError(
            "kafka.compression",
            f"{kafka.compression} needs the {module} library: "
            "pip install 'webhook-relay[kafka-compression]'",
        )


def check_paths(config: Config) -> None:
    """Raise :class:`ConfigError` unless this process can create and write the spool
    directory and, for the sqlite backend, the dedup file's directory.

    Only for ``relay serve`` and ``relay check-config``: the other commands never
    write there and may run where those paths do not exist (a laptop replaying with
    the production config).
    """
    _creatable_directory(Path(config.spool.path), "spool.path")
    if config.dedup.backend == "sqlite":
        dedup_file = Path(config.dedup.path)
        _creatable_directory(dedup_file.parent, "dedup.path", dedup_file)


def _creatable_directory(path: Path, where: str, target: Path | None = None) -> None:
    """``target`` (default ``path``) is what the message says cannot be created."""
    existing = path
    while not existing.exists():  # the nearest ancestor that exists decides
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            where, f"{existing} is not a directory, so {target or path} cannot be created"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(where, f"{existing} is not writable by this user")


def _instance(
    name: str, table: Any, server: ServerConfig, dedup: DedupConfig, env: Mapping[str, str]
) -> ProviderInstance:
    where = f"providers.{name}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(where, "instance names may only use letters, digits, '_', '.' and '-'")
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table")
    profile_name = table.get("profile")
    known = ", ".join(sorted(PROFILES))
    if profile_name is None:
        raise ConfigError(f"{where}.profile", f"missing: name one of {known}")
    if not isinstance(profile_name, str):
        raise ConfigError(f"{where}.profile", "must be a string")
    if profile_name not in PROFILES:
        raise ConfigError(f"{where}.profile", f"unknown profile {profile_name!r} (known: {known})")
    profile = PROFILES[profile_name]
    param_fields = {f.name: f for f in dataclasses.fields(profile.params)}
    _only(table, _INSTANCE_KEYS | set(param_fields), where)
    for fixed in profile.fixed_params:
        if fixed in table:
            raise ConfigError(
                f"{where}.{fixed}", f"fixed by the {profile.name} profile; it cannot be set"
            )

    overrides = {
        key: _coerce(_expand(value, f"{where}.{key}", env), hint, f"{where}.{key}")
        for key, value in table.items()
        if key in param_fields
        for hint in [typing.get_type_hints(type(profile.params))[key]]
    }
    try:
        params = dataclasses.replace(profile.params, **overrides)
    except ValueError as exc:
        # Options that are valid one by one but not together (e.g. md5 without a key).
        raise ConfigError(where, str(exc)) from exc
    for option in dataclasses.fields(params):
        # An option without a usable default (Square's notification_url) says why it is needed.
        needed_for = option.metadata.get("required")
        if needed_for and not getattr(params, option.name):
            raise ConfigError(
                f"{where}.{option.name}", f"required by the {profile.name} profile: {needed_for}"
            )

    secrets = tuple(Secret.of(text) for text in _strings(table, "secrets", where, env, secret=True))
    public_keys = tuple(
        _key(load_public_key, text, f"{where}.public_keys[{index}]")
        for index, text in enumerate(_strings(table, "public_keys", where, env, secret=True))
    )
    signing_text = table.get("signing_key")
    if signing_text is not None and not isinstance(signing_text, str):
        raise ConfigError(f"{where}.signing_key", "must be a string")
    private_key = (
        _key(
            load_private_key,
            _expand(signing_text, f"{where}.signing_key", env),
            f"{where}.signing_key",
        )
        if signing_text is not None
        else None
    )
    for needed in sorted(profile.scheme.required_keys(params)):
        if not (secrets if needed == "secrets" else public_keys):
            raise ConfigError(
                f"{where}.{needed}",
                f"the {profile.name} profile with these options needs at least one entry",
            )
    keys = KeyRing(
        secrets=secrets,
        public_keys=public_keys,
        private_key=private_key,
        authorizations=(
            _authorizations(table, profile, where, env) + _basic_auth(table, profile, where, env)
        ),
    )
    _check_usable(profile, params, keys, where)
    tolerance_s = getattr(params, "timestamp_tolerance_s", None)
    if tolerance_s is not None and tolerance_s >= dedup.ttl_s:
        # A signed timestamp bounds replays only while the dedup window still remembers the
        # message: PayPal's body is bound by a CRC32 alone, and its transmission id is the
        # only thing that keeps a rewritten body from being a second event.
        raise ConfigError(
            f"{where}.timestamp_tolerance_s",
            f"{tolerance_s:g} is not below [dedup] ttl_s ({dedup.ttl_s}): a signed request "
            "replayed after the dedup window would still be inside its tolerance",
        )
    if not _coerce(table.get("allow_short_secrets", False), bool, f"{where}.allow_short_secrets"):
        _check_secret_lengths(profile, params, keys, where)

    timeout_s = float(_typed(table, "timeout_s", (int, float), where, profile.timeout_s))
    _positive(timeout_s, f"{where}.timeout_s")
    ack = Ack(
        status=int(_typed(table, "ack_status", int, where, profile.ack.status)),
        body=str(_typed(table, "ack_body", str, where, profile.ack.body.decode())).encode(),
        content_type=str(_typed(table, "ack_content_type", str, where, profile.ack.content_type)),
    )
    if not 200 <= ack.status < 300:
        raise ConfigError(f"{where}.ack_status", "must be a 2xx status")
    return ProviderInstance(
        name=name,
        profile=profile,
        params=params,
        keys=keys,
        ack=ack,
        timeout_s=timeout_s,
        ack_budget_s=min(timeout_s * 0.5, server.ack_budget_max_s),
        allow_ips=tuple(
            _network(text, f"{where}.allow_ips[{index}]")
            for index, text in enumerate(_strings(table, "allow_ips", where, env))
        ),
        timezone=_zone(table.get("timezone"), f"{where}.timezone"),
        flow=_flow(table.get("flow"), profile, f"{where}.flow"),
        status_overrides=_statuses(table.get("statuses", {}), f"{where}.statuses"),
        id_header=_id_header(table, profile, where),
        order_id_metadata_key=_metadata_key(table, profile, where),
        max_body_bytes=_body_limit(table.get("max_body_bytes"), profile, server, where),
        content_encodings=_content_encodings(table, where, env),
        max_age_s=_max_age(table, dedup, where),
        max_future_s=_max_future(table, dedup, where),
    )


def _authorizations(
    table: Mapping[str, Any], profile: Profile, where: str, env: Mapping[str, str]
) -> tuple[Secret, ...]:
    """The ``Authorization`` header values the instance accepts (``authorizations``: secrets,
    read as ``secrets`` are), for a profile whose scheme checks them: elsewhere they would
    be configured protection that nothing enforces."""
    values = _strings(table, "authorizations", where, env, secret=True)
    if values and not profile.scheme.checks_authorization:
        raise ConfigError(
            f"{where}.authorizations",
            f"the {profile.name} profile's scheme ({profile.scheme.name}) does not check "
            "an Authorization header",
        )
    return tuple(Secret.of(value) for value in values)


def _id_header(table: Mapping[str, Any], profile: Profile, where: str) -> str | None:
    """The instance's id header: its ``id_header``, else the profile's (None: none)."""
    if "id_header" not in table:
        return profile.id_header or None
    if profile.id_header is None:
        raise ConfigError(
            f"{where}.id_header",
            f"the {profile.name} profile's event id is signed; it is not read from a header",
        )
    return str(_typed(table, "id_header", str, where, "")).lower() or None


def _basic_auth(
    table: Mapping[str, Any], profile: Profile, where: str, env: Mapping[str, str]
) -> tuple[Secret, ...]:
    """The ``Authorization`` value of the instance's HTTP Basic credentials, for a profile
    whose sender can add them (Adyen): both keys or neither, read like secrets."""
    given = [key for key in ("basic_auth_username", "basic_auth_password") if key in table]
    if not given:
        return ()
    if not profile.basic_auth:
        raise ConfigError(
            f"{where}.{given[0]}",
            f"the {profile.name} profile's sender sends no HTTP Basic credentials",
        )
    values = []
    for key in ("basic_auth_username", "basic_auth_password"):
        if key not in table:
            raise ConfigError(
                f"{where}.{key}", "missing: HTTP Basic needs a user name and a password"
            )
        value = table[key]
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.{key}", "must be a non-empty string")
        values.append(_expand(value, f"{where}.{key}", env))
    try:
        return (basic_authorization(values[0], values[1]),)
    except KeyLoadError as exc:
        raise ConfigError(f"{where}.basic_auth_username", str(exc)) from None


def _metadata_key(table: Mapping[str, Any], profile: Profile, where: str) -> str | None:
    """The instance's ``order_id_metadata_key``, for a profile whose payments carry metadata."""
    if "order_id_metadata_key" not in table:
        return None
    key = f"{where}.order_id_metadata_key"
    if not profile.order_metadata:
        raise ConfigError(key, f"the {profile.name} profile's payloads carry no merchant metadata")
    value = table["order_id_metadata_key"]
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a non-empty string")
    return value


def _max_age(table: Mapping[str, Any], dedup: DedupConfig, where: str) -> float:
    # A notification received at R is published with a time up to R + max_future_s, and
    # the dedup window remembers it until R + ttl_s: a replay after that is stale only if
    # that time plus max_age_s is before it, hence max_age_s + max_future_s <= ttl_s.
    limit = dedup.ttl_s - _max_future(table, dedup, where)
    max_age_s = float(_typed(table, "max_age_s", (int, float), where, limit))
    _positive(max_age_s, f"{where}.max_age_s")
    if max_age_s > limit:
        raise ConfigError(
            f"{where}.max_age_s",
            f"{max_age_s:g} is above [dedup] ttl_s ({dedup.ttl_s}) less max_future_s "
            f"({dedup.ttl_s - limit:g}): a notification replayed after the dedup window "
            "forgot it, and before max_age_s, would be published again",
        )
    return max_age_s


def _max_future(table: Mapping[str, Any], dedup: DedupConfig, where: str) -> float:
    max_future_s = float(_typed(table, "max_future_s", (int, float), where, 300.0))
    _positive(max_future_s, f"{where}.max_future_s")
    if max_future_s >= dedup.ttl_s:
        raise ConfigError(
            f"{where}.max_future_s",
            f"{max_future_s:g} is not below [dedup] ttl_s ({dedup.ttl_s}): no room is left "
            "for max_age_s",
        )
    return max_future_s


def _body_limit(value: Any, profile: Profile, server: ServerConfig, where: str) -> int:
    """The instance's body limit (see :attr:`ProviderInstance.max_body_bytes`)."""
    if value is None:
        return min(profile.max_body_bytes or server.max_body_bytes, server.max_body_bytes)
    key = f"{where}.max_body_bytes"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, "must be an integer (bytes)")
    _positive(value, key)
    if value > server.max_body_bytes:
        raise ConfigError(
            key,
            f"{value} is above [server] max_body_bytes ({server.max_body_bytes}), the cap on "
            "every request: raise that too (and the load balancer's limit above it)",
        )
    return value


def _content_encodings(
    table: Mapping[str, Any], where: str, env: Mapping[str, str]
) -> tuple[str, ...]:
    accepted: list[str] = []
    for index, text in enumerate(_strings(table, "content_encodings", where, env)):
        name = text.strip().lower()
        if name not in CONTENT_ENCODINGS:
            raise ConfigError(
                f"{where}.content_encodings[{index}]",
                f"{text!r} is not an encoding Relay undoes (use {' or '.join(CONTENT_ENCODINGS)};"
                " an unencoded body is always accepted)",
            )
        if name not in accepted:
            accepted.append(name)
    return tuple(accepted)


def _server(table: Any, env: Mapping[str, str]) -> ServerConfig:
    """``[server]``: the scalar keys as any section, ``trusted_proxies`` as networks."""
    if not isinstance(table, Mapping):
        raise ConfigError("server", "must be a table")
    proxies = tuple(
        _network(text, f"server.trusted_proxies[{index}]")
        for index, text in enumerate(_strings(table, "trusted_proxies", "server", env))
    )
    scalars = {key: value for key, value in table.items() if key != "trusted_proxies"}
    server: ServerConfig = _section(ServerConfig, scalars, "server", env)
    return dataclasses.replace(server, trusted_proxies=proxies)


# An operator token is a password typed or pasted once per session: long enough that
# guessing is hopeless at any rate the console answers (16 characters of base64: 96 bits).
_MIN_TOKEN_CHARS = 16


def _console(table: Any, env: Mapping[str, str]) -> ConsoleConfig:
    """``[console]``: the scalar keys as any section; the operators, URLs and proxies checked."""
    if not isinstance(table, Mapping):
        raise ConfigError("console", "must be a table")
    lists = ("metrics_urls", "proxy_replay_users", "trusted_proxies")
    scalars = {k: v for k, v in table.items() if k not in (*lists, "operators")}
    console: ConsoleConfig = _section(ConsoleConfig, scalars, "console", env)
    urls = tuple(_strings(table, "metrics_urls", "console", env))
    for index, url in enumerate(urls):
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise ConfigError(f"console.metrics_urls[{index}]", f"{url!r} is not an http(s) URL")
    console = dataclasses.replace(
        console,
        metrics_urls=urls,
        operators=_operators(table.get("operators", {}), env),
        proxy_replay_users=tuple(_strings(table, "proxy_replay_users", "console", env)),
        trusted_proxies=tuple(
            _network(text, f"console.trusted_proxies[{index}]")
            for index, text in enumerate(_strings(table, "trusted_proxies", "console", env))
        ),
    )
    if not 0 <= console.port <= 65535:
        raise ConfigError("console.port", "must be between 0 and 65535")
    _positive(console.session_ttl_s, "console.session_ttl_s")
    _positive(console.scrape_interval_s, "console.scrape_interval_s")
    if bool(console.tls_keyfile) and not console.tls_certfile:
        raise ConfigError(
            "console.tls_keyfile", "needs tls_certfile, the certificate it belongs to"
        )
    if console.proxy_user_header:
        if not console.trusted_proxies:
            raise ConfigError(
                "console.trusted_proxies",
                "required with proxy_user_header: the proxies whose header is believed "
                "(anyone else could send it)",
            )
        if console.operators:
            raise ConfigError(
                "console.operators",
                "not used with proxy_user_header: the SSO proxy names the operators",
            )
    elif console.proxy_replay_users or console.trusted_proxies:
        key = "proxy_replay_users" if console.proxy_replay_users else "trusted_proxies"
        raise ConfigError(f"console.{key}", "only used with proxy_user_header")
    if console.enabled and not console.operators and not console.proxy_user_header:
        raise ConfigError(
            "console.operators",
            "the console is enabled but nobody can log in: add [console.operators.NAME] "
            "with a token, or set proxy_user_header behind an SSO proxy",
        )
    return console


def _operators(table: Any, env: Mapping[str, str]) -> tuple[ConsoleOperator, ...]:
    if not isinstance(table, Mapping):
        raise ConfigError("console.operators", "must be a table of operators")
    operators: list[ConsoleOperator] = []
    for name, entry in table.items():
        where = f"console.operators.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_.@-]+", name):
            raise ConfigError(where, "operator names may only use letters, digits, '_.@-'")
        if not isinstance(entry, Mapping):
            raise ConfigError(where, "must be a table with token and role")
        _only(entry, {"token", "role"}, where)
        if "token" not in entry:
            raise ConfigError(f"{where}.token", 'missing: token = "${file:...}" or "${VAR}"')
        operator: ConsoleOperator = _section(ConsoleOperator, {"name": name, **entry}, where, env)
        if len(operator.token.strip()) < _MIN_TOKEN_CHARS:
            raise ConfigError(
                f"{where}.token",
                f"must be at least {_MIN_TOKEN_CHARS} characters (e.g. openssl rand -base64 24)",
            )
        if any(other.token == operator.token for other in operators):
            raise ConfigError(f"{where}.token", "is another operator's token: each needs its own")
        operators.append(operator)
    return tuple(operators)


def _check_usable(profile: Profile, params: Any, keys: KeyRing, where: str) -> None:
    """Run the scheme once over a request it signed itself, so that key material which
    loads but does not fit the scheme (an Ed25519 key for an RSA scheme, a Standard
    Webhooks secret that is not base64) is refused here, not with a 500 per webhook.

    The request is the body of one of the profile's samples (a scheme may sign only
    bodies of its sender's shape: Adyen signs each notification item), signed with a
    throwaway private key of each kind in turn (the instance's own secrets, if any, for
    the HMAC part) and verified with the instance's keys: a signature mismatch is
    expected and fine, only ``UnusableKey`` is an error. A fixed ``now`` serves both
    steps, so no timestamp can be stale.
    """
    scheme, now = profile.scheme, 1_700_000_000.0
    checked = "public_keys" if "public_keys" in scheme.required_keys(params) else "secrets"
    body = next(iter(profile.samples.values())).build(now, "PROBE").body
    refusal: UnusableKey | None = None
    for probe in _probe_keys():
        try:
            signer = KeyRing(
                secrets=keys.secrets, private_key=probe, authorizations=keys.authorizations
            )
            signed = scheme.sign(body, params, signer, now)
        except UnusableKey as exc:  # this scheme signs with the other kind, or a bad secret
            refusal = exc
            continue
        try:
            scheme.verify(signed.body, signed.headers, params, keys, now)
        except UnusableKey as exc:
            raise ConfigError(f"{where}.{checked}", str(exc)) from None
        except VerificationError:
            pass
        return
    # Neither kind could sign: the scheme refused the instance's own secrets.
    raise ConfigError(f"{where}.{checked}", str(refusal))


def _check_secret_lengths(profile: Profile, params: Any, keys: KeyRing, where: str) -> None:
    """Refuse a secret whose key is shorter than :data:`MIN_SECRET_BYTES`, counted as the
    scheme keys its MAC (a ``whsec_`` secret of Standard Webhooks: the decoded bytes).

    Only where the scheme uses the secrets (after :func:`_check_usable`, so each decodes);
    the message gives the length, never the secret.
    """
    if "secrets" not in profile.scheme.required_keys(params):
        return
    for index, secret in enumerate(keys.secrets):
        key = profile.scheme.secret_key(secret)
        if len(key) < MIN_SECRET_BYTES:
            decoded = " once decoded" if key != secret.value else ""
            raise ConfigError(
                f"{where}.secrets[{index}]",
                f"too short: a shared secret needs at least {MIN_SECRET_BYTES} bytes, this one "
                f"has {len(key)}{decoded} (a shorter one is found by trying keys against one "
                "captured webhook). Use a longer one, or set allow_short_secrets = true for a "
                "provider that issues none",
            )


_KeyKind = typing.Literal["secret", "public key"]


@dataclass(frozen=True, slots=True)
class SharedKey:
    """One secret or public key configured on several instances (never the key itself)."""

    kind: _KeyKind
    instances: tuple[str, ...]


def shared_keys(config: Config) -> list[SharedKey]:
    """Key material configured on more than one instance: one :class:`SharedKey` for each
    group of instances that share some, in config order.

    A request signed for one of them verifies at the others, so one captured body is
    accepted on every route that shares its key. ``relay check-config`` and ``relay serve``
    warn and go on: one provider account split into routes may share its key on purpose.
    Secrets are compared as configured and as the key their scheme makes of them (a
    ``whsec_`` secret and its decoded bytes are one key); nothing of them is returned.
    """
    holders: dict[tuple[_KeyKind, bytes], list[str]] = {}
    for instance in config.providers.values():
        for kind, material in _key_material(instance):
            names = holders.setdefault((kind, hashlib.sha256(material).digest()), [])
            if instance.name not in names:
                names.append(instance.name)
    shared = [SharedKey(kind, tuple(names)) for (kind, _), names in holders.items()]
    return list(dict.fromkeys(group for group in shared if len(group.instances) > 1))


def describe_shared(shared: SharedKey) -> str:
    """One line for ``check-config`` and the log: who shares what kind of key, and what follows."""
    names = [f"providers.{name}" for name in shared.instances]
    who = ", ".join(names[:-1]) + " and " + names[-1]
    others = "the other" if len(names) == 2 else "the others"
    return (
        f"{who} share a {shared.kind}: a webhook signed for one also verifies at {others}, "
        "so one captured body can be sent to each; give each instance its own unless they "
        "are one sender's routes"
    )


def _key_material(instance: ProviderInstance) -> list[tuple[_KeyKind, bytes]]:
    scheme, keys = instance.profile.scheme, instance.keys
    material: list[tuple[_KeyKind, bytes]] = [("secret", secret.value) for secret in keys.secrets]
    if "secrets" in scheme.required_keys(instance.params):  # decodable: checked on loading
        material += [("secret", scheme.secret_key(secret)) for secret in keys.secrets]
    material += [
        (
            "public key",
            key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        for key in keys.public_keys
    ]
    return material


@functools.cache
def _probe_keys() -> tuple[PrivateKey, ...]:
    # Their strength is irrelevant: they sign one probe and are never trusted.
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ed25519.Ed25519PrivateKey.generate(),
    )


def _section(cls: type, table: Any, where: str, env: Mapping[str, str]) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table")
    hints = typing.get_type_hints(cls)
    _only(table, set(hints), where)
    values = {
        key: _coerce(_expand(value, f"{where}.{key}", env), hints[key], f"{where}.{key}")
        for key, value in table.items()
    }
    return cls(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a dataclass field's type; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(where, f"must be one of {', '.join(map(repr, choices))}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, "must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, "must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(where, "must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(where, "must be a string")
        return value
    raise ConfigError(where, f"has a type this loader does not know ({hint!r})")


def _expand(value: Any, where: str, env: Mapping[str, str]) -> Any:
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        path, name = match.groups()
        if path is not None:
            try:
                return Path(path).read_text(encoding="utf-8").removesuffix("\n")
            except (OSError, UnicodeDecodeError) as exc:
                problem = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise ConfigError(where, f"cannot read the file {path} ({problem})") from exc
        if name not in env:
            raise ConfigError(where, f"the environment variable {name} is not set")
        return env[name]

    return _REFERENCE.sub(substitute, value)


def _strings(
    table: Mapping[str, Any],
    key: str,
    where: str,
    env: Mapping[str, str],
    *,
    secret: bool = False,
) -> list[str]:
    values = table.get(key, [])
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise ConfigError(f"{where}.{key}", "must be a list of strings")
    expanded = [_expand(item, f"{where}.{key}[{index}]", env) for index, item in enumerate(values)]
    for index, item in enumerate(expanded):
        if secret and not item.strip():
            raise ConfigError(f"{where}.{key}[{index}]", "is empty")
    return expanded


def _typed(table: Mapping[str, Any], key: str, kind: Any, where: str, default: Any) -> Any:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}", f"has the wrong type ({type(value).__name__})")
    return value


def _key(loader: Any, text: str, where: str) -> Any:
    try:
        return loader(text)
    except KeyLoadError as exc:
        raise ConfigError(where, str(exc)) from None


def _network(text: str, where: str) -> IpNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigError(where, f"{text!r} is not an IP address or CIDR network") from None


def _zone(value: Any, where: str) -> ZoneInfo | None:
    if value is None:
        return None
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(where, f"{value!r} is not an IANA time zone") from None


def _flow(value: Any, profile: Profile, where: str) -> str | None:
    if value is None:
        return None
    if not profile.flows:
        raise ConfigError(where, f"the {profile.name} profile's flow is fixed by its document")
    if value not in profile.flows:
        raise ConfigError(
            where, f"must be one of {', '.join(profile.flows)} for the {profile.name} profile"
        )
    return str(value)


def _statuses(value: Any, where: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, "must be a table of provider status = canonical status")
    for provider_status, canonical in value.items():
        if not isinstance(canonical, str) or canonical not in STATUSES:
            raise ConfigError(
                f"{where}.{provider_status}",
                f"{canonical!r} is not a canonical status ({', '.join(sorted(STATUSES))})",
            )
    return types.MappingProxyType({str(k): str(v) for k, v in value.items()})


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise ConfigError(f"{prefix}{key}", "unknown key")


def _positive(value: float, where: str) -> None:
    if value <= 0:
        raise ConfigError(where, "must be greater than zero")
