"""The provider layout: one module per provider under ``relay/providers/``, one registry.

Every module there but ``base`` is a provider's: it declares one ``PROFILE``, the
registry (:data:`relay.profiles.PROFILES`) holds it once under its name, and the
module is named after it. Provider modules load nothing of the server: no aiohttp,
aiokafka or Prometheus client, and of Relay only the registry, ``relay.samples``
and each other. The registry, the config loader and the samples import in any
order (no import circle). The README's worked example of adding a provider is the
diff that would add ``github`` to the repository as it is.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import subprocess
import sys
from dataclasses import dataclass, field
from types import ModuleType

import pytest

import relay.providers
from relay.profiles import PROFILES
from relay.providers.base import Profile
from tests.relay_process import REPO

SHARED = {"base"}
"""Modules of the package that are no provider's."""


def _provider_modules() -> list[ModuleType]:
    names = sorted(info.name for info in pkgutil.iter_modules(relay.providers.__path__))
    return [
        importlib.import_module(f"relay.providers.{name}") for name in names if name not in SHARED
    ]


PROVIDER_MODULES = _provider_modules()


@pytest.mark.parametrize(
    "module", PROVIDER_MODULES, ids=[module.__name__ for module in PROVIDER_MODULES]
)
def test_a_provider_module_declares_its_profile_and_the_registry_holds_it_once(
    module: ModuleType,
) -> None:
    profile = module.PROFILE
    assert isinstance(profile, Profile)
    assert module.__name__.rsplit(".", 1)[1] == profile.name.replace("-", "_")
    assert [held for held in PROFILES.values() if held is profile] == [profile]
    assert PROFILES[profile.name] is profile
    # What the profile runs is the module's own: a copied line would name another's.
    assert profile.normalize.__module__ == module.__name__
    assert profile.samples, "relay send needs at least one sample event"


def test_the_registry_holds_nothing_but_the_provider_modules_profiles() -> None:
    assert len(PROVIDER_MODULES) == len(PROFILES)
    assert {module.PROFILE.name for module in PROVIDER_MODULES} == set(PROFILES)


def _imports_in_a_fresh_interpreter(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(("relay.config", "relay.profiles", "relay.samples"))),
    ids=" then ".join,
)
def test_config_profiles_and_samples_import_in_any_order(order: tuple[str, ...]) -> None:
    first_provider = PROVIDER_MODULES[0].__name__
    for modules in (order, (first_provider, *order)):
        code = "".join(f"import {module}\n" for module in modules)
        _imports_in_a_fresh_interpreter(code + "print(len(relay.profiles.PROFILES))")


def test_provider_modules_load_nothing_of_the_server() -> None:
    """A normalizer stays a pure function of the payload: its module, the registry and what
    they import bring in no HTTP server, Kafka client, metrics or config loader."""
    code = (
        "import sys, importlib\n"
        f"for name in {[module.__name__ for module in PROVIDER_MODULES]!r}:\n"
        "    importlib.import_module(name)\n"
        "import relay.profiles\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('relay', 'aiohttp', 'aiokafka', 'prometheus_client', 'opentelemetry', 'redis'))))"
    )
    loaded = set(_imports_in_a_fresh_interpreter(code).split())
    allowed = {"relay", "relay.profiles", "relay.providers", "relay.samples"}
    assert {name for name in loaded if not name.startswith("relay.providers.")} == allowed


def _readme_diff() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Adding a provider") :]
    start = section.index("```diff\n") + len("```diff\n")
    return section[start : section.index("```\n", start)]


def test_the_readmes_worked_example_is_the_diff_that_adds_github() -> None:
    """Each file the README's diff creates is there with exactly that text, and each hunk of
    a changed file is in it, line for line (wherever other providers' lines have moved it):
    the diff is what adding ``github`` takes today, and it cannot drift from the code
    unnoticed."""
    changes = _parse_diff(_readme_diff())
    assert {change.path for change in changes} == {
        "relay/providers/github.py",
        "relay/profiles.py",
        "tests/golden/github/ping.in.json",
        "tests/golden/github/ping.meta.json",
        "tests/golden/github/ping.out.json",
        "tests/test_profiles.py",
        "tests/fuzz/instances.py",
    }
    for change in changes:
        text = (REPO / change.path).read_text()
        if change.created:
            [(_, lines)] = change.hunks
            assert text == "\n".join(lines) + ("" if change.no_final_newline else "\n"), change.path
            continue
        file_lines = text.split("\n")
        for start, lines in change.hunks:
            assert any(
                file_lines[at : at + len(lines)] == lines for at in range(len(file_lines))
            ), (change.path, start)


@dataclass
class _Change:
    path: str
    created: bool
    hunks: list[tuple[int, list[str]]] = field(default_factory=list)
    """Each hunk's first line and its lines as they are after the change."""
    no_final_newline: bool = False


def _parse_diff(diff: str) -> list[_Change]:
    changes: list[_Change] = []
    created = False
    for line in diff.splitlines():
        if line.startswith("--- "):
            created = line == "--- /dev/null"
        elif line.startswith("+++ b/"):
            changes.append(_Change(line.removeprefix("+++ b/"), created))
        elif line.startswith("@@ "):
            start = int(line.split()[2].removeprefix("+").split(",")[0])
            changes[-1].hunks.append((start, []))
        elif line.startswith(("+", " ")):
            changes[-1].hunks[-1][1].append(line[1:])
        else:
            assert line == "\\ No newline at end of file", f"not in an additions-only diff: {line}"
            changes[-1].no_final_newline = True
    return changes
