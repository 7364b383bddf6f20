"""``relay tail`` on a real broker: it reads events with the consumers' decoder.

One line per event (receive time, type, id, order, amount), whole events with
``--json``, a type filter, and a record that is not a Relay event named on
stderr and skipped rather than ending the tail.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from relay.kafka import KafkaSink
from relay.records import KafkaRecord
from tests.conftest import INVOICE_SECRET, RelayUnderTest, event_of, read_topic, signed_webhook
from tests.poison import ESCAPES, assert_inert, publish, skipped_lines, unreadable_events

ROOT = Path(__file__).resolve().parents[1]


def _config_file(relay: RelayUnderTest, folder: Path) -> Path:
    kafka = relay.config.kafka
    path = folder / "tail.toml"
    path.write_text(
        f"""
[kafka]
bootstrap_servers = "{kafka.bootstrap_servers}"
topic = "{kafka.topic}"
idempotence = false

[providers.invoices]
profile = "usdt-invoice"
secrets = ["{INVOICE_SECRET}"]
"""
    )
    return path


async def tail_lines(
    config: Path, *options: str, lines: int, complaint: str | None = None
) -> tuple[list[str], list[str]]:
    """The first ``lines`` lines ``relay tail`` prints (and, with ``complaint``, its stderr
    up to the first line containing it), then interrupted as by Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "tail",
        "--config",
        str(config),
        "--from-beginning",
        *options,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def read(
        stream: asyncio.StreamReader | None, done: Callable[[list[str]], bool]
    ) -> list[str]:
        assert stream is not None
        read_lines: list[str] = []
        while not done(read_lines):
            line = await stream.readline()
            assert line, f"relay tail ended early; it printed {read_lines}"
            read_lines.append(line.decode().rstrip("\n"))
        return read_lines

    try:
        printed, errors = await asyncio.wait_for(
            asyncio.gather(
                read(process.stdout, lambda read_lines: len(read_lines) >= lines),
                read(
                    process.stderr,
                    lambda read_lines: (
                        complaint is None or any(complaint in line for line in read_lines)
                    ),
                ),
            ),
            30,
        )
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    return printed, errors


def _line(event: dict[str, Any]) -> str:
    line = (
        f"{event['relayreceivedat']}  {event['type']}  id={event['id']}  order={event['subject']}"
    )
    data = event["data"]
    if data["amount"] is not None:
        line += f"  amount={data['amount']} {data['asset'] or ''}".rstrip()
    return line


async def test_tail_prints_events_skips_foreign_records_and_filters_by_type(
    relay_app: RelayUnderTest, tmp_path: Path
) -> None:
    config = relay_app.config
    paid = signed_webhook(config, event="confirmed", order="ORDER-TAIL-1")
    pending = signed_webhook(config, event="pending", order="ORDER-TAIL-2")
    assert (await relay_app.post(paid)).status == 200
    sink = KafkaSink(config.kafka)
    await sink.start()
    try:
        assert await sink.wait_connected(10)
        await sink.send(KafkaRecord(config.kafka.topic, b"x", b"not an event", ()))
    finally:
        await sink.stop()
    assert (await relay_app.post(pending)).status == 200
    records = await read_topic(config.kafka.bootstrap_servers, config.kafka.topic, expect=3)
    events = [event_of(record) for record in records if record.value != b"not an event"]
    first, second = sorted(events, key=lambda event: str(event["subject"]))
    config_file = _config_file(relay_app, tmp_path)

    complaint = "not a Relay event: header content-type is missing"
    printed, errors = await tail_lines(config_file, lines=2, complaint=complaint)
    assert sorted(printed) == [_line(first), _line(second)]
    # Named by where it is (topic/partition@offset), so an operator can find it.
    assert any(re.match(rf"{config.kafka.topic}/\d+@\d+: {complaint}", e) for e in errors)

    whole, _ = await tail_lines(config_file, "--json", "--type", first["type"], lines=1)
    assert [orjson.loads(line) for line in whole] == [first]


async def test_tail_goes_on_past_poison_and_prints_escapes_inert(
    relay_app: RelayUnderTest, tmp_path: Path
) -> None:
    config = relay_app.config
    order = f"ORD-{ESCAPES}"
    events = unreadable_events(config.kafka.topic, b"invoices:ORD-POISON")
    await publish(config.kafka, list(events.values()))
    body = {"invoice_reference": order, "status": "confirmed", "amount_usdt_exact": "12.50"}
    webhook = signed_webhook(config, body=orjson.dumps(body))
    assert (await relay_app.post(webhook)).status == 200
    [published] = [
        event_of(record)
        for record in await read_topic(
            config.kafka.bootstrap_servers, config.kafka.topic, expect=len(events) + 1
        )
        if record.key != b"invoices:ORD-POISON"
    ]
    assert published["subject"] == order
    config_file = _config_file(relay_app, tmp_path)

    # One partition, offsets from 0: the last poison record is at offset len - 1.
    last = f"@{len(events) - 1}: not a Relay event: "
    printed, errors = await tail_lines(config_file, lines=1, complaint=last)
    assert_inert(*printed, *errors)
    assert printed == [
        _line(published).replace(
            order, "ORD-\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;cm0gLXJmIH4=\\x07\\x9b31m\\u202e"
        )
    ]
    assert len(skipped_lines("\n".join(errors), config.kafka.topic, "event")) == len(events)

    whole, _ = await tail_lines(config_file, "--json", lines=1, complaint=last)
    assert_inert(*whole)
    assert [orjson.loads(line) for line in whole] == [published]
