"""The webhook's log line: written straight to Relay's handler, the same line logging writes.

:class:`relay.logs.LineLog` skips the logging module only where nothing could tell:
Relay's own handler is the root's only one and no filter or handler sits on the
way. These tests hold the two paths to one output and check each fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from relay.logs import JsonLineHandler, LineLog

FIELDS: dict[str, object] = {
    "provider": "invoices",
    "event_id": "0b4c2a8e-1d7e-4bb3-9d2f-6a1c9b1e2f3a",
    "outcome": "accepted",
    "reason": None,
    "status": 200,
    "latency_ms": 3.21,
}


@contextlib.contextmanager
def relay_only() -> Iterator[None]:
    """The root's handlers as ``relay serve`` has them: Relay's alone.

    pytest adds its own capturing handlers to the root for each test's run, which
    rightly sends every line through logging.
    """
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [handler for handler in saved if isinstance(handler, JsonLineHandler)]
    try:
        yield
    finally:
        root.handlers[:] = saved


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The lines of the test's own logger (at DEBUG, asyncio has lines of its own)."""
    every = [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    return [line for line in every if line["logger"] == "relay.test-line"]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_direct_line_is_the_line_logging_writes(json_log: io.StringIO) -> None:
    logger = logging.getLogger("relay.test-line")
    with relay_only():
        LineLog(logger, "webhook").write(logging.WARNING, dict(FIELDS))
        logger.log(logging.WARNING, "webhook", extra=dict(FIELDS))
    direct, logged = lines(json_log)
    assert list(direct) == list(logged)  # the same keys in the same order
    assert direct.pop("ts")[:19] == logged.pop("ts")[:19]
    expected = {"level": "warning", "logger": "relay.test-line", "msg": "webhook"}
    assert direct == logged == {**expected, "pid": direct["pid"], **FIELDS}


def test_direct_line_skips_the_logging_module(
    json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_record(*args: object, **kwargs: object) -> logging.LogRecord:
        raise AssertionError("a LogRecord was made")

    monkeypatch.setattr(logging.Logger, "makeRecord", no_record)
    with relay_only():
        LineLog(logging.getLogger("relay.test-line"), "webhook").write(logging.INFO, dict(FIELDS))
    assert [line["outcome"] for line in lines(json_log)] == ["accepted"]


def test_level_below_the_logger_writes_nothing(json_log: io.StringIO) -> None:
    with relay_only():  # json_log is at DEBUG
        LineLog(logging.getLogger("relay.test-line"), "webhook").write(
            logging.DEBUG - 1, dict(FIELDS)
        )
    assert lines(json_log) == []


@pytest.mark.parametrize("where", ["root handler", "logger handler", "logger filter"])
def test_anything_else_listening_gets_a_record(json_log: io.StringIO, where: str) -> None:
    logger = logging.getLogger("relay.test-line")
    records = Records()
    fence = logging.Filter("relay")  # lets the line through, but only logging can tell
    with relay_only():
        if where == "root handler":
            logging.getLogger().addHandler(records)  # next to Relay's
        else:
            logger.addHandler(records)
        if where == "logger filter":
            logger.addFilter(fence)
        try:
            LineLog(logger, "webhook").write(logging.INFO, dict(FIELDS))
        finally:
            logger.removeHandler(records)
            logger.removeFilter(fence)
    [record] = records.records
    assert (record.getMessage(), record.__dict__["outcome"]) == ("webhook", "accepted")
    # Propagated to Relay's handler as well, as one line.
    assert [line["outcome"] for line in lines(json_log)] == ["accepted"]


def test_a_traceback_goes_through_logging(json_log: io.StringIO) -> None:
    with relay_only():
        try:
            raise ValueError("boom")
        except ValueError:
            LineLog(logging.getLogger("relay.test-line"), "webhook").write(
                logging.ERROR, dict(FIELDS), exc_info=True
            )
    [line] = lines(json_log)
    assert "ValueError: boom" in line["exc"]


async def test_lines_on_the_loop_go_out_once_per_pass_in_order(json_log: io.StringIO) -> None:
    line_log = LineLog(logging.getLogger("relay.test-line"), "webhook")
    with relay_only():
        for status in (200, 201):
            line_log.write(logging.INFO, {**FIELDS, "status": status})
        logging.getLogger("relay.test-line").info("through logging")
        assert lines(json_log) == []  # still this pass
        await asyncio.sleep(0)
    assert [line.get("status", line["msg"]) for line in lines(json_log)] == [
        200,
        201,
        "through logging",
    ]


async def test_a_line_off_the_loop_writes_the_pending_ones_first(json_log: io.StringIO) -> None:
    logger = logging.getLogger("relay.test-line")
    with relay_only():
        LineLog(logger, "webhook").write(logging.INFO, dict(FIELDS))
        await asyncio.to_thread(logger.warning, "from a thread")
        assert [line["msg"] for line in lines(json_log)] == ["webhook", "from a thread"]


def test_flush_writes_what_is_pending() -> None:
    buffer = io.StringIO()
    handler = JsonLineHandler(buffer)

    loop = asyncio.new_event_loop()

    def log_and_stop() -> None:
        handler.write_fields(logging.INFO, "relay.test-line", "webhook", dict(FIELDS))
        loop.stop()  # before the pass that would write it

    loop.call_soon(log_and_stop)
    try:
        loop.run_forever()
    finally:
        loop.close()
    assert buffer.getvalue() == ""
    handler.flush()
    assert [line["msg"] for line in lines(buffer)] == ["webhook"]
