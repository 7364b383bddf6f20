"""bench/budget.py: each py-spy sample is charged to one line of the CPU budget by its stack."""

from __future__ import annotations

from pathlib import Path

from bench.budget import line_of, read_budget, summary

LOOP = "Handle._run (asyncio/events.py:80);"
HANDLER = LOOP + "receive_webhook (relay/http.py:214);"


def test_the_innermost_frame_that_names_a_line_decides() -> None:
    def charged(stack: str) -> str:
        return line_of(list(reversed(stack.split(";"))))

    assert charged(HANDLER + "Logger.log (logging/__init__.py:1)") == "log line"
    assert charged(HANDLER + "verify (verifiers/hmac_header.py:9)") == "verify"
    assert (
        charged(HANDLER + "web.Response (aiohttp/web_response.py:1)") == "aiohttp request handling"
    )
    write = "StreamWriter._write (aiohttp/http_writer.py:1);_SelectorSocketTransport.write (asyncio/selector_events.py:1)"
    assert charged(LOOP + write) == "socket reads and writes (system calls)"
    sending = (
        HANDLER
        + "KafkaSink.submit (relay/kafka.py:1);AIOKafkaProducer.send (aiokafka/producer/producer.py:1)"
    )
    assert charged(sending) == "Kafka client: send path"
    partitioning = sending + ";AIOKafkaProducer._partition (aiokafka/producer/producer.py:1)"
    assert charged(partitioning + ";murmur2 (relay/partitioner.py:1)") == "Kafka client: send path"
    flushing = LOOP + "JsonLineHandler.flush (relay/logs.py:1)"
    assert charged(flushing) == "log line"  # the lines of one loop pass, written together
    assert charged(LOOP + "Sender._sender_routine (aiokafka/producer/sender.py:1)") == (
        "Kafka client: background"
    )
    assert charged(LOOP + "Task.__step (asyncio/tasks.py:1)") == "asyncio scheduling"
    assert charged(HANDLER) == "Relay's glue (pipeline, delivery, handler)"


def test_a_line_costs_its_share_of_the_samples_times_the_measured_cpu(tmp_path: Path) -> None:
    profile = tmp_path / "relay.budget.txt"
    profile.write_text(
        f"{HANDLER}Logger.log (logging/__init__.py:1) 30\n"
        f"{HANDLER}verify (verifiers/hmac_header.py:9) 10\n"
        f"{LOOP}Task.__step (asyncio/tasks.py:1) 60\n"
    )

    assert read_budget(profile).busy_samples == 100
    # 100 samples at 100 Hz = 1 s sampled, over 2 s of measured CPU for 10,000 requests.
    document = summary(profile, rate_hz=100, cpu_s=2.0, requests=10_000)
    assert document["cpu_us_per_request"] == 200.0
    assert document["coverage"] == 0.5
    assert document["lines_us"] == {"asyncio scheduling": 120.0, "log line": 60.0, "verify": 20.0}
    assert document["sum_us"] == 200.0
