"""Structured logs: one JSON object per line on stderr.

Fields passed with ``extra=`` become keys of the line; every line also has
``ts``, ``level``, ``logger``, ``msg`` and ``pid`` (which worker, with
``--workers N``). With tracing on, a webhook's line also has ``trace_id``
(:mod:`relay.http` adds it from the receive span). The level comes from ``RELAY_LOG_LEVEL`` (default INFO), so
worker processes inherit it.

Nothing secret is ever passed to a logger: instances log their name, never
their keys; request headers and bodies are not logged; the startup line shows
the config through :func:`effective_config`, which counts and fingerprints key
material instead of showing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import sys
import time
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import orjson
from cryptography.hazmat.primitives import serialization

from relay.config import Config, ProviderInstance
from verifiers.keys import PublicKey

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        # One webhook, one line: the per-line cost is per-webhook cost. The second's text
        # is formatted once per second, not once per line.
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        line: dict[str, object] = {
            "ts": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class RepeatFilter(logging.Filter):
    """Lets each message template of loggers under ``prefix`` through once per ``interval_s``.

    While a broker is down, aiokafka logs the same connection errors about ten
    times a second until it is back: thousands of lines that say nothing new.
    The first one of an episode gets through; Relay's own lines, the spooled
    outcome and ``relay_spool_depth`` tell the rest of the story.
    """

    def __init__(self, prefix: str, interval_s: float) -> None:
        super().__init__()
        self._prefix = prefix
        self._interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}  # bounded: templates, not messages

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefix):
            return True
        key = (record.name, str(record.msg))
        last = self._last.get(key)
        if last is not None and record.created - last < self._interval_s:
            return False
        self._last[key] = record.created
        return True


def setup_logging(level: str | None = None, stream: TextIO | None = None) -> None:
    """JSON lines on ``stream`` (stderr) at ``level``, else ``RELAY_LOG_LEVEL``, else INFO."""
    # What a line never shows is not collected for every record (the logging docs'
    # "Optimization" section): the caller's file and line (a stack walk per record),
    # the thread and the process name. The pid stays: it names the worker.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter("aiokafka", interval_s=60.0))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("RELAY_LOG_LEVEL") or "INFO").upper())
    # aiohttp's access log repeats our per-webhook line. aiokafka stays at ERROR even when
    # debugging Relay: its debug lines print whole records, and a record's `raw` payload
    # carries the provider's signature for the profiles that sign in a body field.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)


def effective_config(config: Config) -> dict[str, Any]:
    """The config as Relay runs it (defaults filled in, env expanded), safe to log.

    Secrets are counted, public keys shown as fingerprints (to check which key
    a replica really has after a rotation), a signing key and the Kafka
    passwords only as present or not, and credentials in the Redis URL masked.
    """
    kafka = dataclasses.asdict(config.kafka) | {"dlq_topic": config.kafka.dead_letter_topic}
    for secret in (f for f in dataclasses.fields(config.kafka) if not f.repr):
        # The passwords: whether one is set, never what it is.
        kafka[secret.name] = "(set)" if kafka[secret.name] else ""
    dedup = dataclasses.asdict(config.dedup) | {"url": _mask_credentials(config.dedup.url)}
    return {
        "server": dataclasses.asdict(config.server),
        "kafka": kafka,
        "dedup": dedup,
        "spool": dataclasses.asdict(config.spool),
        "tracing": dataclasses.asdict(config.tracing),
        "providers": {name: _instance(instance) for name, instance in config.providers.items()},
    }


def _instance(instance: ProviderInstance) -> dict[str, Any]:
    return {
        "profile": instance.profile.name,
        "params": dataclasses.asdict(instance.params),
        "secrets": len(instance.keys.secrets),
        "public_keys": [_fingerprint(key) for key in instance.keys.public_keys],
        "signing_key": instance.keys.private_key is not None,
        "allow_ips": [str(network) for network in instance.allow_ips],
        "timezone": str(instance.timezone) if instance.timezone else None,
        "flow": instance.flow,
        "statuses": dict(instance.status_overrides),
        "id_header": instance.id_header,
        "timeout_s": instance.timeout_s,
        "ack_budget_s": instance.ack_budget_s,
        "max_body_bytes": instance.max_body_bytes,
        "content_encodings": list(instance.content_encodings),
        "ack": {"status": instance.ack.status, "content_type": instance.ack.content_type},
    }


def _fingerprint(key: PublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()[:16]


def _mask_credentials(url: str) -> str:
    """``redis://user:pass@host/0`` -> ``redis://***@host/0``: user names can be tokens too."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
