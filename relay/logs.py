"""Structured logs: one JSON object per line on stderr.

Fields passed with ``extra=`` become keys of the line; every line also has
``ts``, ``level``, ``logger``, ``msg`` and ``pid`` (which worker, with
``--workers N``). With tracing on, a webhook's line also has ``trace_id``
(:mod:`relay.http` adds it from the receive span). The level comes from
``RELAY_LOG_LEVEL`` (default INFO), so worker processes inherit it.

The webhook's line is per-webhook cost, so it skips the logging module where
nothing else listens (:class:`LineLog`), and the lines of one event-loop pass
leave in one write (:class:`JsonLineHandler`).

Nothing secret is ever passed to a logger: instances log their name, never
their keys; request headers and bodies are not logged; the startup line shows
the config through :func:`effective_config`, which counts and fingerprints key
material instead of showing it.
"""

from __future__ import annotations

import asyncio
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
        fields = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        line = self.line(
            record.created, record.levelname, record.name, record.getMessage(), record.process
        )
        line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()

    def line(
        self, created: float, level: str, logger: str, msg: str, pid: int | None
    ) -> dict[str, object]:
        """The keys every line starts with, in their order."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        # The milliseconds as LogRecord.msecs has them: truncated, not rounded.
        millis = int((created - second) * 1000)
        return {
            "ts": f"{self._second_text}.{millis:03d}Z",
            "level": level.lower(),
            "logger": logger,
            "msg": msg,
            "pid": pid,
        }


class JsonLineHandler(logging.StreamHandler):
    """Relay's one handler: :class:`JsonFormatter` lines on a stream (stderr).

    Lines logged on a running event loop's thread collect until the end of the
    loop's current pass (one ``call_soon``), then go out in one write: under load a
    pass answers many webhooks, and the write and flush of each line were over a
    third of its cost in the running server. A line logged where no loop runs (start-up, other threads, the CLI
    commands) writes what is pending and itself at once, so lines keep their
    order. :meth:`flush` (logging's at exit, or before ``os._exit``) writes what is
    pending; a process killed outright loses at most the lines of one loop pass.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.json = JsonFormatter()
        self.setFormatter(self.json)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record))
        except RecursionError:  # as logging's own handlers do
            raise
        except Exception:
            self.handleError(record)

    def write_fields(self, levelno: int, logger: str, msg: str, fields: dict[str, object]) -> None:
        """The line ``logger.log(levelno, msg, extra=fields)`` would write, without a record."""
        line = self.json.line(time.time(), logging.getLevelName(levelno), logger, msg, os.getpid())
        line.update(fields)
        text = orjson.dumps(line, default=str).decode()
        with self.lock:  # type: ignore[union-attr]  # set by Handler.__init__
            self._write(text)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._pending:
                self._pending.append("")  # the last line's terminator
                self.stream.write(self.terminator.join(self._pending))
                self._pending.clear()
            super().flush()

    def _write(self, text: str) -> None:
        """Called with the lock held."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._pending.append(text)
            self.flush()
            return
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(text)


class LineLog:
    """One hot log line (the webhook's), written by Relay's handler directly when it can.

    The logging module builds a ``LogRecord`` (two dozen attributes), walks the
    loggers and handlers, then formats the record: measured in the running server
    (thread CPU time around the call), the webhook's line cost 24 us that way, 15 us
    written directly, 11 us with the writes of a loop pass together. When the
    logger's lines can only end in Relay's own :class:`JsonLineHandler` (the root's
    sole handler, installed by :func:`setup_logging`, no handler or filter on the
    way, the level enabled), :meth:`write` writes the same JSON line straight to it.
    Otherwise (tests capturing records, an application embedding Relay with
    handlers of its own, a traceback to attach) the fields go to the logger as
    ``extra=``, exactly as before.
    """

    def __init__(self, logger: logging.Logger, msg: str) -> None:
        self._logger = logger
        self._msg = msg

    def write(self, levelno: int, fields: dict[str, object], exc_info: bool = False) -> None:
        logger = self._logger
        if not logger.isEnabledFor(levelno):
            return
        handler = None if exc_info else _sole_json_handler(logger, levelno)
        if handler is None:
            logger.log(levelno, self._msg, exc_info=exc_info, extra=fields)
        else:
            handler.write_fields(levelno, logger.name, self._msg, fields)


def _sole_json_handler(logger: logging.Logger, levelno: int) -> JsonLineHandler | None:
    """The handler a record of ``logger`` would reach when that is Relay's alone and
    nothing on the way (a filter, another handler) could change what it writes."""
    if logger.disabled:
        return None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        if current.handlers:
            break
        current = current.parent if current.propagate else None
    if current is None or current is not logging.root or len(current.handlers) != 1:
        return None
    handler = current.handlers[0]
    if not isinstance(handler, JsonLineHandler) or levelno < handler.level:
        return None
    if any(not _lets_through(fence, logger.name) for fence in handler.filters):
        return None
    return handler


def _lets_through(fence: object, name: str) -> bool:
    """A handler filter known to let every line of logger ``name`` through."""
    return isinstance(fence, RepeatFilter) and not name.startswith(fence.prefix)


class RepeatFilter(logging.Filter):
    """Lets each message template of loggers under ``prefix`` through once per ``interval_s``.

    While a broker is down, aiokafka logs the same connection errors about ten
    times a second until it is back: thousands of lines that say nothing new.
    The first one of an episode gets through; Relay's own lines, the spooled
    outcome and ``relay_spool_depth`` tell the rest of the story.
    """

    def __init__(self, prefix: str, interval_s: float) -> None:
        super().__init__()
        self.prefix = prefix
        self._interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}  # bounded: templates, not messages

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
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
    handler = JsonLineHandler(stream or sys.stderr)
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

    Secrets and accepted Authorization values are counted, public keys shown as
    fingerprints (to check which key a replica really has after a rotation), a
    signing key and the Kafka passwords only as present or not, and credentials in
    the Redis URL masked.
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
        "replay": {"outcome_key": "(set)" if config.replay.outcome_key else ""},
        "providers": {name: _instance(instance) for name, instance in config.providers.items()},
    }


def _instance(instance: ProviderInstance) -> dict[str, Any]:
    return {
        "profile": instance.profile.name,
        "params": dataclasses.asdict(instance.params),
        "secrets": len(instance.keys.secrets),
        "public_keys": [_fingerprint(key) for key in instance.keys.public_keys],
        "signing_key": instance.keys.private_key is not None,
        "authorizations": len(instance.keys.authorizations),
        "allow_ips": [str(network) for network in instance.allow_ips],
        "timezone": str(instance.timezone) if instance.timezone else None,
        "flow": instance.flow,
        "statuses": dict(instance.status_overrides),
        "id_header": instance.id_header,
        "order_id_metadata_key": instance.order_id_metadata_key,
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
