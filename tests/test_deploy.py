"""deploy/ stays in sync with the code.

Docker and a cluster are not available to the tests, so every file in deploy/ is parsed and
compared with what the code and the production config say: the port (``[server] port`` of
deploy/relay.toml), the routes (relay.http), the ``${ENV_VAR}`` references of the config, the
topics, the spool path, the shutdown timing. A renamed route, a changed port, or a new
variable in the config that compose or Kubernetes does not provide fails here.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shlex
import tomllib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.config import load_config, parse_config
from relay.http import HEALTH_ROUTE, READY_ROUTE, WEBHOOK_ROUTE
from relay.profiles import PROFILES
from relay.settings import ServerConfig

try:
    from relay.http import METRICS_ROUTE
except ImportError:  # the metrics route is not there yet: the literal is the contract
    METRICS_ROUTE = "/metrics"

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RELAY_TOML = DEPLOY / "relay.toml"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
NGINX = DEPLOY / "nginx.conf"
K8S = DEPLOY / "k8s"

WEBHOOK_PREFIX = WEBHOOK_ROUTE.split("{", 1)[0]  # "/webhooks/"
SECRET_NAME = "relay-secrets"

# The five document profiles as instances (DESIGN section 8's dev instance names).
DOCUMENT_INSTANCES = {
    "collect": "usdt-collect-pay",
    "topup": "wallet-topup",
    "payout": "v2-payout",
    "invoices": "usdt-invoice",
    "payin": "payin-order",
}


# --- dummy values of the right kind for every ${NAME} the production config uses -----------


@cache
def _rsa_public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _rsa_public_body() -> str:
    """The PEM's base64 body on one line, as document 000's provider hands its key out."""
    return "".join(line for line in _rsa_public_pem().splitlines() if "-----" not in line)


def _ed25519_public_hex() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


DUMMY_VALUES: dict[str, Callable[[], str]] = {
    "REDIS_URL": lambda: "redis://redis.invalid:6379/0",
    "INVOICES_WEBHOOK_SECRET": lambda: secrets.token_urlsafe(32),
    "COLLECT_MERCHANT_KEY": lambda: secrets.token_hex(16),
    "COLLECT_PLATFORM_PUBLIC_KEY": _rsa_public_body,
    "TOPUP_PUBLIC_KEY": _rsa_public_pem,
    "PAYOUT_PUBLIC_KEY": _rsa_public_pem,
    "PAYIN_PUBLIC_KEY": _ed25519_public_hex,
}


def dummy_env() -> dict[str, str]:
    return {name: make() for name, make in DUMMY_VALUES.items()}


# --- readers ------------------------------------------------------------------------------


@cache
def relay_toml() -> dict[str, Any]:
    return tomllib.loads(RELAY_TOML.read_text(encoding="utf-8"))


def server_setting(name: str) -> Any:
    return relay_toml().get("server", {}).get(name, getattr(ServerConfig(), name))


PORT: int = server_setting("port")


def env_references(value: Any) -> set[str]:
    """Every ``${NAME}`` in the string values of a parsed document (comments do not count)."""
    if isinstance(value, str):
        return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value))
    if isinstance(value, dict):
        return set().union(*(env_references(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(env_references(item) for item in value))
    return set()


CONFIG_ENV = env_references(relay_toml())


def yaml_files() -> list[Path]:
    return sorted(path for pattern in ("*.yaml", "*.yml") for path in DEPLOY.rglob(pattern))


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def relay_services() -> dict[str, dict[str, Any]]:
    """The compose services built from deploy/Dockerfile."""
    services = {
        name: service
        for name, service in compose()["services"].items()
        if str(service.get("build", {}).get("dockerfile", "")).endswith("deploy/Dockerfile")
    }
    assert services, "compose.yaml has no service built from deploy/Dockerfile"
    return services


@cache
def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for (k, _), obj in k8s_objects().items() if k == kind]


def workload() -> dict[str, Any]:
    found = k8s_kind("StatefulSet") + k8s_kind("Deployment")
    assert len(found) == 1, "deploy/k8s/ should hold exactly one Relay workload"
    return found[0]


def relay_container() -> dict[str, Any]:
    (container,) = workload()["spec"]["template"]["spec"]["containers"]
    return container


def container_port(port: int | str) -> int:
    """A probe's or Service's port, with a named port resolved on the Relay container."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in relay_container()["ports"] if "name" in p}
    assert port in named, f"no container port named {port!r}"
    return named[port]


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def docker(keyword: str) -> list[str]:
    return [arguments for kind, arguments in dockerfile() if kind == keyword]


def local_url(text: str) -> tuple[int, str]:
    """(port, path) of the http://127.0.0.1:PORT/PATH (or localhost) URL a command fetches."""
    match = re.search(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[\w./-]*)", text)
    assert match, f"no local URL in {text!r}"
    return int(match.group(1)), match.group(2)


def seconds(duration: str | int) -> float:
    """A compose duration (``60s``, ``1m30s``) in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def cmd_text(command: Any) -> str:
    return " ".join(command) if isinstance(command, list) else str(command)


def config_path_from_cmd() -> PurePosixPath:
    (cmd,) = docker("CMD")
    arguments = json.loads(cmd)
    return PurePosixPath(arguments[arguments.index("--config") + 1])


def spool_path() -> PurePosixPath:
    path = PurePosixPath(relay_toml()["spool"]["path"])
    assert path.is_absolute(), "the production spool path must be absolute (a mounted volume)"
    return path


# --- every YAML file parses ---------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert documents, f"{path} holds no document"
    assert all(isinstance(document, dict) for document in documents)


def test_the_deploy_files_exist() -> None:
    assert {p.name for p in yaml_files()} >= {
        "compose.yaml",
        "statefulset.yaml",
        "service.yaml",
        "configmap.yaml",
        "pdb.yaml",
        "hpa.yaml",
    }
    assert DOCKERFILE.is_file() and NGINX.is_file() and (ROOT / ".dockerignore").is_file()


# --- relay.toml is a valid production config ----------------------------------------------


def test_config_declares_the_five_document_instances() -> None:
    instances = {name: table["profile"] for name, table in relay_toml()["providers"].items()}
    assert instances == DOCUMENT_INSTANCES


def test_every_config_variable_has_a_dummy_value_of_its_kind() -> None:
    assert set(DUMMY_VALUES) == CONFIG_ENV, (
        "deploy/relay.toml's ${...} variables changed: give each a dummy of its kind here, "
        "and a value in compose.yaml, k8s/statefulset.yaml and .env.example"
    )


def test_config_loads_with_the_registered_profiles() -> None:
    """The whole file except instances whose profile is not registered yet, by the real loader."""
    document = dict(relay_toml())
    document["providers"] = {
        name: table for name, table in document["providers"].items() if table["profile"] in PROFILES
    }
    env = dummy_env()
    config = parse_config(document, env)
    assert config.server.port == PORT and config.server.host == "0.0.0.0"
    assert config.kafka.idempotence is True
    assert config.dedup.backend == "redis" and config.dedup.url == env["REDIS_URL"]
    assert PurePosixPath(config.spool.path) == spool_path()
    assert spool_path().is_relative_to("/var/lib/relay")


def test_config_loads_whole() -> None:
    missing = sorted({t["profile"] for t in relay_toml()["providers"].values()} - set(PROFILES))
    if missing:
        pytest.skip(f"profiles not registered in relay.profiles yet: {', '.join(missing)}")
    config = load_config(RELAY_TOML, env=dummy_env())
    assert set(config.providers) == set(DOCUMENT_INSTANCES)


@pytest.mark.parametrize("instance", sorted(DOCUMENT_INSTANCES))
def test_config_instance_loads(instance: str) -> None:
    table = relay_toml()["providers"][instance]
    if table["profile"] not in PROFILES:
        pytest.skip(f"profile {table['profile']} is not registered in relay.profiles yet")
    document = {**relay_toml(), "providers": {instance: table}}
    config = parse_config(document, dummy_env())
    loaded = config.providers[instance]
    assert loaded.profile.name == DOCUMENT_INSTANCES[instance]
    assert loaded.keys.secrets or loaded.keys.public_keys


# --- Dockerfile and .dockerignore ---------------------------------------------------------


def test_dockerfile_is_multi_stage_python_311_slim() -> None:
    defaults = dict(
        arguments.split("=", 1)
        for kind, arguments in dockerfile()[: [k for k, _ in dockerfile()].index("FROM")]
        if kind == "ARG" and "=" in arguments
    )
    images = [
        re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], arguments.split()[0])
        for arguments in docker("FROM")
    ]
    assert len(images) >= 2, "multi-stage: a build stage and a runtime stage"
    assert set(images) == {"python:3.11-slim"}


def test_dockerfile_installs_the_package_with_redis_and_without_dev() -> None:
    installs = [run for run in docker("RUN") if "pip install" in run]
    assert any('".[${RELAY_EXTRAS}]"' in run for run in installs), installs
    (extras,) = [a.split("=", 1)[1] for a in docker("ARG") if a.startswith("RELAY_EXTRAS=")]
    assert extras.split(",") == ["redis"], "the image's default extras: redis, nothing more"
    assert not any("dev" in run for run in installs), "no dev extras in the image"


def test_dockerfile_port_healthcheck_and_command() -> None:
    assert docker("EXPOSE") == [str(PORT)]
    (healthcheck,) = docker("HEALTHCHECK")
    assert "urllib.request.urlopen" in healthcheck
    assert local_url(healthcheck) == (PORT, HEALTH_ROUTE)
    assert [json.loads(e) for e in docker("ENTRYPOINT")] == [["relay"]]
    assert json.loads(docker("CMD")[-1])[:2] == ["serve", "--config"]


def test_dockerfile_runs_as_a_non_root_numeric_user() -> None:
    user = docker("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric uid lets Kubernetes check runAsNonRoot"
    pod_security = workload()["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == int(uid)
    if gid:
        assert pod_security["runAsGroup"] == int(gid) == pod_security["fsGroup"]


def test_dockerfile_spool_volume_and_default_config() -> None:
    volumes = [path for arguments in docker("VOLUME") for path in json.loads(arguments)]
    assert any(spool_path().is_relative_to(volume) for volume in volumes), volumes
    copies = [arguments.split() for arguments in docker("COPY")]
    assert ["deploy/relay.toml", str(config_path_from_cmd())] in copies


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    lines = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert lines >= {".venv", ".cache", "var", "tests", ".git", "**/.env"}
    needed = {"relay", "verifiers", "schemas", "pyproject.toml", "README.md", "deploy"}
    assert not lines & needed
    assert not any(line.startswith("!") for line in lines)


# --- compose ------------------------------------------------------------------------------


def test_compose_relay_replicas_get_every_config_variable() -> None:
    services = relay_services()
    assert len(services) >= 2, "at least two replicas"
    for name, service in services.items():
        environment = service["environment"]
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
        missing = CONFIG_ENV - set(environment)
        assert not missing, f"compose service {name} does not set {sorted(missing)}"
        for variable in CONFIG_ENV - {"REDIS_URL"}:
            value = str(environment[variable])
            assert value.startswith(f"${{{variable}"), (
                f"{name}: {variable} must come from the environment (deploy/.env), "
                "never be written in compose.yaml"
            )
        assert environment.get("RELAY_KAFKA_BOOTSTRAP_SERVERS") == kafka_address(), name


def kafka_address() -> str:
    """host:port of the compose broker's advertised PLAINTEXT listener."""
    listeners = _service("kafka")["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    (address,) = re.findall(r"PLAINTEXT://([^,]+)", listeners)
    return address


def test_env_example_lists_the_secrets_without_values() -> None:
    lines = (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines()
    entries = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    # What compose takes from deploy/.env: the name inside each ``${NAME:?...}``.
    from_env = {
        match.group(1)
        for service in compose()["services"].values()
        for value in service.get("environment", {}).values()
        if (match := re.match(r"\$\{(\w+)", str(value)))
    }
    assert set(entries) == from_env
    assert not any(entries.values()), ".env.example must not carry values"
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def test_compose_relay_port_and_healthcheck() -> None:
    for name, service in relay_services().items():
        assert str(PORT) in [str(port) for port in service["expose"]], name
        port, path = local_url(cmd_text(service["healthcheck"]["test"]))
        assert port == PORT, name
        assert path in (HEALTH_ROUTE, READY_ROUTE), name


def test_compose_relay_config_mount_matches_the_command() -> None:
    for name, service in relay_services().items():
        mounts = [volume.split(":") for volume in service["volumes"]]
        assert ["./relay.toml", str(config_path_from_cmd()), "ro"] in mounts, name


def test_compose_each_replica_has_its_own_spool_volume() -> None:
    declared = set(compose()["volumes"])
    owners: dict[str, str] = {}
    for name, service in relay_services().items():
        spool_volumes = [
            source
            for source, target, *_ in (volume.split(":") for volume in service["volumes"])
            if spool_path().is_relative_to(target)
        ]
        assert len(spool_volumes) == 1, f"{name}: one volume holding {spool_path()}"
        (volume,) = spool_volumes
        assert volume in declared, f"{name}: {volume} is not a named volume"
        assert volume not in owners, f"{name} shares the spool volume of {owners.get(volume)}"
        owners[volume] = name


def test_compose_shutdown_outlasts_the_grace_period() -> None:
    grace = server_setting("shutdown_grace_s")
    for name, service in relay_services().items():
        # aiohttp's grace, up to two more graces for late sends and the last drain pass,
        # then up to 20 s of producer flush and close (relay/app.py, relay/kafka.py).
        assert seconds(service["stop_grace_period"]) >= 3 * grace + 20, name


def test_compose_relay_depends_on_kafka_redis_and_the_topics() -> None:
    for name, service in relay_services().items():
        depends = service["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        topics = [s for s in depends if "kafka-topics.sh" in cmd_text(_service(s).get("command"))]
        assert topics, f"{name} does not wait for the topic creation"
        assert depends[topics[0]]["condition"] == "service_completed_successfully", name


def _service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def test_compose_creates_the_configured_topics_and_kafka_does_not() -> None:
    kafka_config = relay_toml()["kafka"]
    wanted = {
        kafka_config["topic"],
        kafka_config.get("dlq_topic") or f"{kafka_config['topic']}.dlq",
    }
    created = set()
    for service in compose()["services"].values():
        for line in cmd_text(service.get("command", "")).splitlines():
            words = shlex.split(line)
            if "kafka-topics.sh" in line and "--create" in words:
                created.add(words[words.index("--topic") + 1])
                assert words[words.index("--bootstrap-server") + 1] == kafka_address()
    assert created == wanted
    kafka = _service("kafka")
    assert kafka["image"].startswith("apache/kafka:")
    assert str(kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_compose_kafka_is_the_version_the_kafka_tests_use() -> None:
    pom = ROOT / "tests" / "apache_kafka" / "pom.xml"
    if not pom.is_file():
        pytest.skip("no tests/apache_kafka/pom.xml")
    project = ElementTree.parse(pom).getroot()
    namespace = {"m": project.tag[1 : project.tag.index("}")]} if project.tag[0] == "{" else {}
    prefix = "m:" if namespace else ""
    properties = {
        element.tag.split("}")[-1]: (element.text or "").strip()
        for element in project.findall(f"{prefix}properties/*", namespace)
    }
    versions = [
        dependency.findtext(f"{prefix}version", "", namespace).strip()
        for dependency in project.findall(f"{prefix}dependencies/{prefix}dependency", namespace)
        if dependency.findtext(f"{prefix}groupId", "", namespace) == "org.apache.kafka"
        and dependency.findtext(f"{prefix}artifactId", "", namespace).startswith("kafka_")
    ]
    assert len(versions) == 1, "one Apache Kafka broker artifact in tests/apache_kafka/pom.xml"
    version = re.sub(r"\$\{([^}]+)\}", lambda m: properties[m.group(1)], versions[0])
    for name in ("kafka", "kafka-topics"):
        assert _service(name)["image"] == f"apache/kafka:{version}", name


# --- the load balancer --------------------------------------------------------------------


def nginx_directives() -> Iterator[list[str]]:
    text = re.sub(r"#[^\n]*", "", NGINX.read_text(encoding="utf-8"))
    for statement in re.split(r"[;{}]", text):
        words = statement.split()
        if words:
            yield words


def test_nginx_proxies_every_replica_on_the_port() -> None:
    directives = list(nginx_directives())
    servers = {words[1] for words in directives if words[0] == "server" and len(words) > 1}
    assert servers == {f"{name}:{PORT}" for name in relay_services()}
    assert ["listen", str(PORT)] in directives
    assert ["proxy_set_header", "X-Forwarded-For", "$proxy_add_x_forwarded_for"] in directives
    assert ["proxy_pass", "http://relay"] in directives
    # payin-order's BIZ_RESP_SIGNATURE / BIZ_TIMESTAMP headers must reach Relay.
    assert ["underscores_in_headers", "on"] in directives


def test_nginx_routes_match_the_app() -> None:
    text = re.sub(r"#[^\n]*", "", NGINX.read_text(encoding="utf-8"))
    locations = dict(re.findall(r"location\s+((?:=\s+)?\S+)\s*\{([^}]*)\}", text))
    assert "proxy_pass" in locations[WEBHOOK_PREFIX]
    assert "proxy_pass" in locations[f"= {HEALTH_ROUTE}"]
    # Readiness describes the dependencies and metrics are per replica: both are asked of
    # each replica directly (healthchecks, probes, Prometheus), never through the load balancer.
    for route in (READY_ROUTE, METRICS_ROUTE):
        assert "proxy_pass" not in locations[f"= {route}"], route
        assert "return 404" in locations[f"= {route}"], route


def test_compose_load_balancer_publishes_the_port() -> None:
    lbs = [
        service
        for service in compose()["services"].values()
        if any(str(v).endswith("/etc/nginx/nginx.conf:ro") for v in service.get("volumes", []))
    ]
    assert len(lbs) == 1
    (lb,) = lbs
    assert any(str(v).startswith("./nginx.conf:") for v in lb["volumes"])
    assert [str(port).rsplit(":", 1)[-1] for port in lb["ports"]] == [str(PORT)]
    assert set(lb["depends_on"]) == set(relay_services())
    port, path = local_url(cmd_text(lb["healthcheck"]["test"]))
    assert (port, path) == (PORT, HEALTH_ROUTE)


# --- Kubernetes ---------------------------------------------------------------------------


def test_k8s_has_the_expected_objects_and_no_secret() -> None:
    kinds = {kind for kind, _ in k8s_objects()}
    assert kinds >= {
        "StatefulSet",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    assert "Secret" not in kinds, "secrets are created with kubectl, never committed"
    assert workload()["spec"]["replicas"] == 2


def test_k8s_container_port_and_probes() -> None:
    container = relay_container()
    assert [p["containerPort"] for p in container["ports"]] == [PORT]
    probes = {
        "livenessProbe": HEALTH_ROUTE,
        "readinessProbe": READY_ROUTE,
        "startupProbe": HEALTH_ROUTE,
    }
    for probe, route in probes.items():
        if probe == "startupProbe" and probe not in container:
            continue
        get = container[probe]["httpGet"]
        assert get["path"] == route, probe
        assert container_port(get["port"]) == PORT, probe


def test_k8s_prometheus_annotations() -> None:
    annotations = workload()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(PORT)
    assert annotations["prometheus.io/path"] == METRICS_ROUTE


def test_k8s_services_reach_the_port() -> None:
    pod_labels = workload()["spec"]["template"]["metadata"]["labels"]
    services = k8s_kind("Service")
    assert services
    for service in services:
        assert service["spec"]["selector"].items() <= pod_labels.items()
        for port in service["spec"]["ports"]:
            assert container_port(port["targetPort"]) == PORT
    headless = {s["metadata"]["name"] for s in services if s["spec"].get("clusterIP") == "None"}
    assert workload()["spec"].get("serviceName", next(iter(headless), None)) in headless


def test_k8s_ingress_routes_webhooks_to_the_service() -> None:
    services = {s["metadata"]["name"]: s for s in k8s_kind("Service")}
    for ingress in k8s_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["path"] == WEBHOOK_PREFIX
                backend = path["backend"]["service"]
                ports = services[backend["name"]]["spec"]["ports"]
                wanted = backend["port"]
                matching = [
                    p
                    for p in ports
                    if p.get("name") == wanted.get("name") or p["port"] == wanted.get("number")
                ]
                assert matching, backend
                assert container_port(matching[0]["targetPort"]) == PORT


def test_k8s_env_provides_every_config_variable_from_the_secret() -> None:
    env = {item["name"]: item for item in relay_container().get("env", [])}
    env_from_secrets = {
        source["secretRef"]["name"]
        for source in relay_container().get("envFrom", [])
        if "secretRef" in source
    }
    for variable in sorted(CONFIG_ENV):
        if variable in env:
            reference = env[variable].get("valueFrom", {}).get("secretKeyRef")
            assert reference, f"{variable} must come from a Secret, not a literal"
            assert reference["name"] == SECRET_NAME and reference["key"] == variable
        else:
            assert SECRET_NAME in env_from_secrets, f"the StatefulSet does not set {variable}"


def test_k8s_secret_creation_is_documented_for_every_key() -> None:
    text = (K8S / "statefulset.yaml").read_text(encoding="utf-8")
    assert f"kubectl create secret generic {SECRET_NAME}" in text
    documented = set(re.findall(r"--from-(?:literal|file)=(\w+)=", text))
    assert documented == CONFIG_ENV


def test_k8s_config_map_is_relay_toml() -> None:
    volumes = {v["name"]: v for v in workload()["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in relay_container()["volumeMounts"]}
    config_path = config_path_from_cmd()
    (name,) = [n for n, m in mounts.items() if m["mountPath"] == str(config_path.parent)]
    config_map = k8s_objects()[("ConfigMap", volumes[name]["configMap"]["name"])]
    text = RELAY_TOML.read_text(encoding="utf-8")
    assert config_map["data"][config_path.name] == text, (
        "deploy/k8s/configmap.yaml must embed deploy/relay.toml unchanged"
    )
    digest = hashlib.sha256(text.encode()).hexdigest()
    annotations = workload()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/config"] == digest, (
        f"set checksum/config in deploy/k8s/statefulset.yaml to {digest}"
    )
    assert relay_container().get("args", json.loads(docker("CMD")[-1]))[-1] == str(config_path)


def test_k8s_spool_is_on_a_per_replica_volume() -> None:
    spec = workload()["spec"]
    mounts = {m["name"]: m["mountPath"] for m in relay_container()["volumeMounts"]}
    holding = [name for name, path in mounts.items() if spool_path().is_relative_to(path)]
    assert len(holding) == 1, f"one volume mount holds {spool_path()}"
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    assert holding[0] in claims, "the spool needs a per-replica persistent volume claim"


def test_k8s_shutdown_order_and_timing() -> None:
    pod = workload()["spec"]["template"]["spec"]
    command = relay_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    grace = server_setting("shutdown_grace_s")
    assert pre_stop > 0
    # preStop, then aiohttp's grace, up to two more graces for late sends and the last drain
    # pass, then up to 20 s of producer flush and close (relay/app.py, relay/kafka.py).
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + 3 * grace + 20


def test_k8s_security_context() -> None:
    security = relay_container()["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = relay_container()["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]


def test_k8s_pdb_and_hpa_target_the_workload() -> None:
    pod_labels = workload()["spec"]["template"]["metadata"]["labels"]
    (pdb,) = k8s_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (hpa,) = k8s_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (workload()["kind"], workload()["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


# --- Prometheus and Grafana ---------------------------------------------------------------


def test_grafana_dashboard_charts_every_relay_metric_and_only_those() -> None:
    from relay import metrics

    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "relay.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    charted = {re.sub(r"_(bucket|total)$", "", name) for name in re.findall(r"relay_\w+", exprs)}
    exported = {
        re.sub(r"_total$", "", metric._name)
        for metric in vars(metrics).values()
        if hasattr(metric, "_name") and metric._name.startswith("relay_")
    }
    assert charted == exported
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"][0]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {datasource["uid"]}


def test_compose_provisions_prometheus_and_grafana_with_the_dashboard() -> None:
    services = compose()["services"]
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]
    targets = set(scrape["static_configs"][0]["targets"])
    assert targets == {f"{name}:8080" for name in relay_services()}
    assert scrape["metrics_path"] == "/metrics"
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    grafana = services["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "relay.yaml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"])
