"""The Kafka boundary: only relay/kafka.py imports aiokafka; delivery reaches Kafka through the port."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

RELAY = Path(__file__).resolve().parents[1] / "relay"


def _imports_aiokafka(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        else:
            continue
        if any(module.split(".")[0] == "aiokafka" for module in modules):
            return True
    return False


def test_relay_kafka_is_the_only_module_that_imports_aiokafka() -> None:
    importers = {path.name for path in RELAY.rglob("*.py") if _imports_aiokafka(path)}

    assert importers == {"kafka.py"}


def test_delivery_and_the_memory_sink_load_no_kafka_client() -> None:
    code = (
        "import sys, relay.delivery, relay.memory_sink; "
        "print(sorted(m for m in sys.modules if m == 'relay.kafka' or m.startswith('aiokafka')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_the_kafka_boundary_loads_no_provider_and_no_config_loader() -> None:
    """Settings types import nothing of Relay: the Kafka client depends on no scheme."""
    code = (
        "import sys, relay.kafka; "
        "print(sorted(m for m in sys.modules if m.startswith('verifiers') "
        "or m in ('relay.config', 'relay.profiles')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
