"""`relay check-config` on broken configs, run as the real CLI in a subprocess.

Each case breaks one thing in an otherwise valid config and expects a
non-zero exit and a message naming the key and the problem, with no secret
or key material in the output. ``relay serve`` on the same file must refuse
to start with the same message (it runs the same validation first).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from relay.config import load_config
from relay.logs import effective_config
from tests.relay_process import RelayProcess, run_relay, unused_port
from verifiers.errors import AuthorizationMismatch

ROOT = Path(__file__).resolve().parent.parent

INVOICE_SECRET = "check-config-invoice-secret-7f3a91"
COLLECT_SECRET = "check-config-collect-merchant-key-55be"
# A real (demo) RSA private key as bare base64 DER, cut short: unusable, and still never to be echoed.
BROKEN_SIGNING_KEY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC1169OaovAyRYvzJGQhDzfBMr0SvlqNk3XUZgsGiPptElh"
STANDARD_SECRET = "whsec_not-base64-at-all!"
CONSOLE_TOKEN = "check-config-console-token-4d2a9c"
# One letter: the secret, recovered from one captured webhook in under a second.
SHORT_SECRET = "k"
PAYIN_PUBLIC_KEY = "f70591e0ac0dbba7f5a9af455c4884f1bebe8dd0074d7a0c922ea967472a1240"
# 20 characters of base64 that decode to 15 bytes: long as text, one byte short as a key.
SHORT_STANDARD_SECRET = "whsec_" + base64.b64encode(b"fifteen-bytes!!").decode()
SHORT_OUTCOME_KEY = "too-short-outcome-key"
OUTCOME_KEY = "check-config-replay-outcome-key-0123456789"
AUTHORIZATION = "Bearer check-config-authorization-0c41"
SECRETS = (
    INVOICE_SECRET,
    COLLECT_SECRET,
    BROKEN_SIGNING_KEY,
    STANDARD_SECRET,
    SHORT_STANDARD_SECRET,
    INVOICE_SECRET[:15],
    SHORT_OUTCOME_KEY,
    AUTHORIZATION,
    CONSOLE_TOKEN,
)

BASE = f"""
[server]
host = "127.0.0.1"
port = 8080

[kafka]
bootstrap_servers = "127.0.0.1:9"
topic = "payments.events"

[dedup]
backend = "memory"

[spool]
path = "var/check-config-spool"

[providers.invoices]
profile = "usdt-invoice"
secrets = ["{INVOICE_SECRET}"]
"""


@dataclass(frozen=True)
class Case:
    config: str
    key: str
    problem: str
    env: dict[str, str] = field(default_factory=dict)


def _with(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


CASES = {
    "unknown key": Case(_with("port = 8080", "prot = 8080"), "server.prot", "unknown key"),
    "unknown instance key (a typo next to a secret)": Case(
        _with("secrets = [", "secret = ["), "providers.invoices.secret", "unknown key"
    ),
    "wrong type": Case(_with("port = 8080", 'port = "8080"'), "server.port", "must be an integer"),
    "wrong type of a bool": Case(
        _with('topic = "payments.events"', 'topic = "payments.events"\nidempotence = "yes"'),
        "kafka.idempotence",
        "must be true or false",
    ),
    "readiness check of zero": Case(
        _with('topic = "payments.events"', 'topic = "payments.events"\nreadiness_check_s = 0'),
        "kafka.readiness_check_s",
        "must be greater than zero",
    ),
    "port out of range": Case(
        _with("port = 8080", "port = 70000"), "server.port", "between 0 and 65535"
    ),
    "unknown profile": Case(
        _with('"usdt-invoice"', '"usdt-invoices"'),
        "providers.invoices.profile",
        "unknown profile 'usdt-invoices'",
    ),
    "profile of the wrong type": Case(
        _with('"usdt-invoice"', '["usdt-invoice"]'),
        "providers.invoices.profile",
        "must be a string",
    ),
    "missing profile": Case(
        _with('profile = "usdt-invoice"\n', ""),
        "providers.invoices.profile",
        "missing",
    ),
    "missing secret": Case(
        _with(f'secrets = ["{INVOICE_SECRET}"]', ""),
        "providers.invoices.secrets",
        "needs at least one entry",
    ),
    "missing public key": Case(
        BASE + '\n[providers.topup]\nprofile = "wallet-topup"\n',
        "providers.topup.public_keys",
        "needs at least one entry",
    ),
    "env var not set": Case(
        _with(INVOICE_SECRET, "${RELAY_TEST_UNSET_SECRET}"),
        "providers.invoices.secrets[0]",
        "the environment variable RELAY_TEST_UNSET_SECRET is not set",
    ),
    "secret file missing": Case(
        _with(INVOICE_SECRET, "${file:/nonexistent/relay/invoices-secret}"),
        "providers.invoices.secrets[0]",
        "cannot read the file /nonexistent/relay/invoices-secret (No such file or directory)",
    ),
    "env var set but empty": Case(
        _with(INVOICE_SECRET, "${RELAY_TEST_EMPTY_SECRET}"),
        "providers.invoices.secrets[0]",
        "is empty",
        env={"RELAY_TEST_EMPTY_SECRET": ""},
    ),
    "secret shorter than 16 bytes": Case(
        _with(INVOICE_SECRET, SHORT_SECRET),
        "providers.invoices.secrets[0]",
        "too short: a shared secret needs at least 16 bytes, this one has 1 (",
    ),
    "short secret from the environment": Case(
        _with(INVOICE_SECRET, "${RELAY_TEST_SHORT_SECRET}"),
        "providers.invoices.secrets[0]",
        "this one has 15 (",
        env={"RELAY_TEST_SHORT_SECRET": INVOICE_SECRET[:15]},
    ),
    "short rotation secret": Case(
        _with(f'"{INVOICE_SECRET}"', f'"{INVOICE_SECRET}", "{INVOICE_SECRET[:15]}"'),
        "providers.invoices.secrets[1]",
        "this one has 15 (",
    ),
    "standard webhooks secret short once decoded": Case(
        BASE
        + f'\n[providers.std]\nprofile = "standard-webhooks"\nsecrets = ["{SHORT_STANDARD_SECRET}"]\n',
        "providers.std.secrets[0]",
        "this one has 15 once decoded",
    ),
    "allow_short_secrets not a bool": Case(
        _with("secrets = [", 'allow_short_secrets = "yes"\nsecrets = ['),
        "providers.invoices.allow_short_secrets",
        "must be true or false",
    ),
    "bad public key": Case(
        BASE + '\n[providers.topup]\nprofile = "wallet-topup"\npublic_keys = ["c2VjcmV0"]\n',
        "providers.topup.public_keys[0]",
        "neither PEM, base64 DER nor 32-byte hex Ed25519",
    ),
    "bad signing key": Case(
        BASE
        + f"""
[providers.collect]
profile = "usdt-collect-pay"
secrets = ["{COLLECT_SECRET}"]
public_keys = ["f70591e0ac0dbba7f5a9af455c4884f1bebe8dd0074d7a0c922ea967472a1240"]
signing_key = "{BROKEN_SIGNING_KEY}"
""",
        "providers.collect.signing_key",
        "neither PEM, base64 DER nor 32-byte hex Ed25519",
    ),
    "key of the wrong kind for the scheme": Case(
        BASE
        + """
[providers.topup]
profile = "wallet-topup"
public_keys = ["f70591e0ac0dbba7f5a9af455c4884f1bebe8dd0074d7a0c922ea967472a1240"]
""",
        "providers.topup.public_keys",
        "needs RSA public keys; public key #0 is an Ed25519 key",
    ),
    "secret the scheme cannot use": Case(
        BASE
        + f'\n[providers.std]\nprofile = "standard-webhooks"\nsecrets = ["{STANDARD_SECRET}"]\n',
        "providers.std.secrets",
        "secret #0 is not whsec_<base64> or base64",
    ),
    "authorizations on a profile whose scheme does not check them": Case(
        BASE
        + '\n[providers.pay]\nprofile = "stripe"\nsecrets = ["whsec_check-config"]\n'
        + 'authorizations = ["${RELAY_TEST_AUTHORIZATION}"]\n',
        "providers.pay.authorizations",
        "the stripe profile's scheme (stripe) does not check an Authorization header",
        env={"RELAY_TEST_AUTHORIZATION": AUTHORIZATION},
    ),
    "empty authorization": Case(
        _with("secrets = [", 'authorizations = ["${RELAY_TEST_EMPTY_SECRET}"]\nsecrets = ['),
        "providers.invoices.authorizations[0]",
        "is empty",
        env={"RELAY_TEST_EMPTY_SECRET": ""},
    ),
    "authorization from an unset variable": Case(
        _with("secrets = [", 'authorizations = ["${RELAY_TEST_UNSET_AUTH}"]\nsecrets = ['),
        "providers.invoices.authorizations[0]",
        "the environment variable RELAY_TEST_UNSET_AUTH is not set",
    ),
    "authorizations not a list": Case(
        _with("secrets = [", f'authorizations = "{AUTHORIZATION}"\nsecrets = ['),
        "providers.invoices.authorizations",
        "must be a list of strings",
    ),
    "square instance without its notification URL": Case(
        BASE + '\n[providers.pos]\nprofile = "square"\nsecrets = ["check-config-square"]\n',
        "providers.pos.notification_url",
        "required by the square profile: the subscription's notification URL exactly as "
        "registered with Square",
    ),
    "square notification URL that is not a URL": Case(
        BASE
        + '\n[providers.pos]\nprofile = "square"\nsecrets = ["check-config-square"]\n'
        + 'notification_url = "relay.example/webhooks/pos"\n',
        "providers.pos",
        "notification_url must be the subscription's URL as registered with Square",
    ),
    "bad CIDR in allow_ips": Case(
        _with("secrets = [", 'allow_ips = ["203.0.113.0/33"]\nsecrets = ['),
        "providers.invoices.allow_ips[0]",
        "'203.0.113.0/33' is not an IP address or CIDR network",
    ),
    "bad timezone": Case(
        _with("secrets = [", 'timezone = "Mars/Olympus_Mons"\nsecrets = ['),
        "providers.invoices.timezone",
        "'Mars/Olympus_Mons' is not an IANA time zone",
    ),
    "bad option value": Case(
        _with("secrets = [", 'encoding = "base32"\nsecrets = ['),
        "providers.invoices.encoding",
        "must be one of 'hex', 'base64'",
    ),
    "flow a profile does not serve": Case(
        BASE
        + '\n[providers.collect]\nprofile = "usdt-collect-pay"\nalgorithm = "md5"\n'
        + f'secrets = ["{COLLECT_SECRET}"]\nflow = "topup"\n',
        "providers.collect.flow",
        "must be one of payin, payout for the usdt-collect-pay profile",
    ),
    "flow on a profile whose flow is fixed": Case(
        _with("secrets = [", 'flow = "payout"\nsecrets = ['),
        "providers.invoices.flow",
        "the usdt-invoice profile's flow is fixed by its document",
    ),
    "id header on a profile whose id is signed": Case(
        BASE
        + '\n[providers.pay]\nprofile = "stripe"\nsecrets = ["whsec_check-config"]\n'
        + 'id_header = "x-event-id"\n',
        "providers.pay.id_header",
        "the stripe profile's event id is signed; it is not read from a header",
    ),
    "order id metadata key on a profile without metadata": Case(
        _with("secrets = [", 'order_id_metadata_key = "order_id"\nsecrets = ['),
        "providers.invoices.order_id_metadata_key",
        "the usdt-invoice profile's payloads carry no merchant metadata",
    ),
    "empty order id metadata key": Case(
        BASE
        + '\n[providers.pay]\nprofile = "stripe"\nsecrets = ["whsec_check-config"]\n'
        + 'order_id_metadata_key = ""\n',
        "providers.pay.order_id_metadata_key",
        "must be a non-empty string",
    ),
    "max age beyond the dedup window": Case(
        _with("secrets = [", "max_age_s = 700000\nsecrets = ["),
        "providers.invoices.max_age_s",
        "700000 is above [dedup] ttl_s (604800)",
    ),
    "max age and max future beyond the dedup window": Case(
        _with("secrets = [", "max_age_s = 604800\nsecrets = ["),
        "providers.invoices.max_age_s",
        "604800 is above [dedup] ttl_s (604800) less max_future_s (300)",
    ),
    "max future not below the dedup window": Case(
        _with("secrets = [", "max_future_s = 604800\nsecrets = ["),
        "providers.invoices.max_future_s",
        "604800 is not below [dedup] ttl_s (604800)",
    ),
    "max future not positive": Case(
        _with("secrets = [", "max_future_s = 0\nsecrets = ["),
        "providers.invoices.max_future_s",
        "must be greater than zero",
    ),
    "template that does not sign the timestamp it checks": Case(
        BASE
        + '\n[providers.generic]\nprofile = "hmac"\nsecrets = ["check-config-generic"]\n'
        + 'timestamp_header = "x-timestamp"\n',
        "providers.generic",
        "a timestamp_header needs {timestamp} in the template",
    ),
    "negative timestamp tolerance": Case(
        BASE
        + '\n[providers.pay]\nprofile = "stripe"\nsecrets = ["whsec_check-config"]\n'
        + "timestamp_tolerance_s = -300\n",
        "providers.pay",
        "timestamp_tolerance_s must be greater than zero",
    ),
    "bad canonical status": Case(
        _with("secrets = [", 'statuses = { refunded = "reversed" }\nsecrets = ['),
        "providers.invoices.statuses.refunded",
        "'reversed' is not a canonical status",
    ),
    "unknown dedup backend": Case(
        _with('backend = "memory"', 'backend = "postgres"'),
        "dedup.backend",
        "must be one of 'memory', 'sqlite', 'redis'",
    ),
    "ack status not 2xx": Case(
        _with("secrets = [", "ack_status = 500\nsecrets = ["),
        "providers.invoices.ack_status",
        "must be a 2xx status",
    ),
    "no providers": Case(
        BASE.split("[providers.invoices]")[0], "providers", "no provider instance is configured"
    ),
    "spool directory cannot be created": Case(
        _with('"var/check-config-spool"', '"README.md/spool"'),
        "spool.path",
        "README.md is not a directory, so README.md/spool cannot be created",
    ),
    "dedup directory cannot be created": Case(
        _with('backend = "memory"', 'backend = "sqlite"\npath = "pyproject.toml/dedup.sqlite3"'),
        "dedup.path",
        "pyproject.toml is not a directory, so pyproject.toml/dedup.sqlite3 cannot be created",
    ),
    "invalid TOML": Case(_with("[server]", "[server"), "{file}", "not valid TOML"),
    "replay outcome key too short": Case(
        _with("[dedup]", f'[replay]\noutcome_key = "{SHORT_OUTCOME_KEY}"\n\n[dedup]'),
        "replay.outcome_key",
        "must be at least 32 characters",
    ),
    "replay outcome key of the wrong type": Case(
        _with("[dedup]", "[replay]\noutcome_key = 12345\n\n[dedup]"),
        "replay.outcome_key",
        "must be a string",
    ),
    "replay outcome key from an unset variable": Case(
        _with("[dedup]", '[replay]\noutcome_key = "${RELAY_NO_SUCH_KEY}"\n\n[dedup]'),
        "replay.outcome_key",
        "the environment variable RELAY_NO_SUCH_KEY is not set",
    ),
    "unknown replay key": Case(
        _with("[dedup]", f'[replay]\noutcome_keys = "{OUTCOME_KEY}"\n\n[dedup]'),
        "replay.outcome_keys",
        "unknown key",
    ),
    "console enabled with nobody to log in": Case(
        BASE + "\n[console]\nenabled = true\n",
        "console.operators",
        "the console is enabled but nobody can log in",
    ),
    "console token too short": Case(
        BASE + '\n[console.operators.ana]\ntoken = "too-short"\nrole = "replay"\n',
        "console.operators.ana.token",
        "must be at least 16 characters",
    ),
    "console role unknown": Case(
        BASE + f'\n[console.operators.ana]\ntoken = "{CONSOLE_TOKEN}"\nrole = "admin"\n',
        "console.operators.ana.role",
        "must be one of 'read', 'replay'",
    ),
    "console proxy header believed from anyone": Case(
        BASE + '\n[console]\nproxy_user_header = "X-Forwarded-Email"\n',
        "console.trusted_proxies",
        "required with proxy_user_header",
    ),
}


def _check_message(line: str, case: Case, path: Path) -> None:
    assert line.startswith(f"config error: {case.key.format(file=path)}: "), line
    assert case.problem in line, line


@pytest.mark.parametrize("name", CASES)
def test_check_config_names_the_key_and_the_problem(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    path = tmp_path / "relay.toml"
    path.write_text(case.config)

    checked = run_relay("check-config", str(path), env=case.env)

    assert checked.returncode != 0
    assert checked.stdout == ""
    [line] = checked.stderr.splitlines()
    _check_message(line, case, path)
    for secret in SECRETS:
        assert secret not in checked.stderr


@pytest.mark.parametrize("name", CASES)
def test_serve_refuses_a_broken_config_with_the_same_message(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    path = tmp_path / "relay.toml"
    path.write_text(case.config)

    checked = run_relay("check-config", str(path), env=case.env)
    served = run_relay("serve", "--config", str(path), env=case.env)

    assert served.returncode == checked.returncode != 0
    assert served.stderr == checked.stderr


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    checked = run_relay("check-config", str(missing), env={})
    assert checked.returncode != 0
    assert checked.stderr.strip() == (
        f"config error: {missing}: cannot read the file (No such file or directory)"
    )


def test_valid_config_passes(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(_with(INVOICE_SECRET, "${RELAY_TEST_SECRET}"))
    checked = run_relay("check-config", str(path), env={"RELAY_TEST_SECRET": INVOICE_SECRET})
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{path}: OK (1 providers: invoices)\n")
    assert INVOICE_SECRET not in checked.stdout + checked.stderr


def test_a_replay_outcome_key_passes_and_is_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(_with("[dedup]", '[replay]\noutcome_key = "${RELAY_OUTCOME_KEY}"\n\n[dedup]'))
    checked = run_relay("check-config", str(path), env={"RELAY_OUTCOME_KEY": OUTCOME_KEY})
    assert checked.returncode == 0, checked.stderr
    assert load_config(path, {"RELAY_OUTCOME_KEY": OUTCOME_KEY}).replay.outcome_key == OUTCOME_KEY
    assert OUTCOME_KEY not in checked.stdout + checked.stderr


def test_allow_short_secrets_takes_a_short_secret_on_that_instance_only(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    down = {"RELAY_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    path.write_text(
        _with(f'secrets = ["{INVOICE_SECRET}"]', f'secrets = ["{SHORT_SECRET}"]')
        + '\n[providers.std]\nprofile = "standard-webhooks"\n'
        + f'secrets = ["{SHORT_STANDARD_SECRET}"]\nallow_short_secrets = true\n'
    )
    refused = run_relay("check-config", str(path), env=down)
    assert (refused.returncode, refused.stderr.partition(": too short")[0]) == (
        2,
        "config error: providers.invoices.secrets[0]",
    )

    path.write_text(
        path.read_text().replace("secrets = [", "allow_short_secrets = true\nsecrets = [", 1)
    )
    checked = run_relay("check-config", str(path), env=down)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{path}: OK (2 providers: invoices, std)\n")


SHARING = BASE + (
    f'\n[providers.hooks]\nprofile = "github"\nsecrets = ["{INVOICE_SECRET}"]\n'
    # The same HMAC key written as a Standard Webhooks secret: whsec_ and base64 of its bytes.
    + '\n[providers.std]\nprofile = "standard-webhooks"\n'
    + f'secrets = ["whsec_{base64.b64encode(INVOICE_SECRET.encode()).decode()}"]\n'
    + '\n[providers.std2]\nprofile = "standard-webhooks"\n'
    + f'secrets = ["whsec_{base64.b64encode(COLLECT_SECRET.encode()).decode()}"]\n'
    + '\n[providers.payin]\nprofile = "payin-order"\n'
    + f'public_keys = ["{PAYIN_PUBLIC_KEY}"]\n'
    + '\n[providers.payin-eu]\nprofile = "payin-order"\n'
    + f'public_keys = ["{PAYIN_PUBLIC_KEY.upper()}"]\n'
)


def test_check_config_warns_of_a_key_shared_by_several_instances(tmp_path: Path) -> None:
    """One secret on several routes: a body signed for one verifies at the others (the issue's
    GitHub delivery verified as an invoice). A warning, not an error: exit 0."""
    path = tmp_path / "relay.toml"
    path.write_text(SHARING)
    checked = run_relay(
        "check-config", str(path), env={"RELAY_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    )

    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.splitlines() == [
        "warning: providers.invoices, providers.hooks and providers.std share a secret: a "
        "webhook signed for one also verifies at the others, so one captured body can be sent "
        "to each; give each instance its own unless they are one sender's routes",
        "warning: providers.payin and providers.payin-eu share a public key: a webhook signed "
        "for one also verifies at the other, so one captured body can be sent to each; give "
        "each instance its own unless they are one sender's routes",
    ]
    for secret in (INVOICE_SECRET, COLLECT_SECRET, PAYIN_PUBLIC_KEY):
        assert secret not in checked.stdout + checked.stderr


def test_instances_with_their_own_keys_get_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(SHARING.split("\n[providers.hooks]")[0])
    checked = run_relay(
        "check-config", str(path), env={"RELAY_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    )
    assert checked.returncode == 0, checked.stderr
    assert "warning" not in checked.stdout + checked.stderr


async def test_serve_logs_the_shared_key_warning(tmp_path: Path) -> None:
    port = unused_port()
    path = tmp_path / "relay.toml"
    path.write_text(
        SHARING.replace("port = 8080", f"port = {port}").replace(
            "var/check-config-spool", str(tmp_path / "spool")
        )
    )
    relay = RelayProcess(path, port, tmp_path / "relay.log")
    try:
        await relay.start()
        await relay.wait_logged("share a public key")
    finally:
        relay.kill()
    warnings = [
        entry
        for line in relay.log_path.read_text().splitlines()
        if line.startswith("{")
        for entry in [json.loads(line)]
        if entry["level"] == "warning" and "share a" in entry["msg"]
    ]
    assert [entry["instances"] for entry in warnings] == [
        ["invoices", "hooks", "std"],
        ["payin", "payin-eu"],
    ]
    for secret in (INVOICE_SECRET, PAYIN_PUBLIC_KEY):
        assert secret not in relay.log_path.read_text()


def test_the_console_is_described_and_relay_console_refuses_to_start_when_off(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        BASE
        + "\n[console]\nenabled = true\nport = 8181\n"
        + f'[console.operators.ana]\ntoken = "${{file:{tmp_path / "ana.token"}}}"\n'
        + 'role = "replay"\n'
    )
    (tmp_path / "ana.token").write_text(CONSOLE_TOKEN + "\n")
    checked = run_relay("check-config", str(path), env={})
    assert checked.returncode == 0, checked.stderr
    assert (
        "console: on at http://127.0.0.1:8181, 1 operator(s) with tokens (1 may replay)\n"
    ) in checked.stdout
    assert CONSOLE_TOKEN not in checked.stdout + checked.stderr

    off = tmp_path / "off.toml"
    off.write_text(BASE)
    refused = run_relay("console", "--config", str(off), env={})
    assert refused.returncode == 2
    assert refused.stderr.startswith("config error: console.enabled: the console is off")


def test_dev_config_passes() -> None:
    # A broker nobody runs: the topics are not checked, the config is.
    down = {"RELAY_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    checked = run_relay("check-config", str(ROOT / "deploy" / "dev.toml"), env=down)
    assert checked.returncode == 0, checked.stderr
    # The demo collect instance serves both directions: check-config says the flow is inferred.
    assert (
        "note: providers.collect: no flow is set, so each notification's flow is inferred "
        'from its signed members; set flow = "payin" or "payout"'
    ) in checked.stdout


def test_an_instance_that_sets_its_flow_gets_no_note(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        BASE
        + '\n[providers.collect]\nprofile = "usdt-collect-pay"\nalgorithm = "md5"\n'
        + f'secrets = ["{COLLECT_SECRET}"]\nflow = "payin"\n'
    )
    checked = run_relay("check-config", str(path), env={})
    assert checked.returncode == 0, checked.stderr
    assert "note:" not in checked.stdout


def test_authorizations_are_read_as_secrets_and_logged_as_a_count(tmp_path: Path) -> None:
    """``authorizations``: ``${ENV}``-expanded into the key ring, which the scheme checks;
    the effective config Relay logs at start counts them."""
    path = tmp_path / "relay.toml"
    path.write_text(
        _with("secrets = [", 'authorizations = ["${RELAY_TEST_AUTHORIZATION}"]\nsecrets = [')
    )
    env = {"RELAY_TEST_AUTHORIZATION": AUTHORIZATION}
    checked = run_relay("check-config", str(path), env=env)
    assert checked.returncode == 0, checked.stderr
    assert AUTHORIZATION not in checked.stdout + checked.stderr

    config = load_config(path, env=env)
    instance = config.providers["invoices"]
    assert [value.value for value in instance.keys.authorizations] == [AUTHORIZATION.encode()]
    logged = orjson.dumps(effective_config(config)).decode()
    assert effective_config(config)["providers"]["invoices"]["authorizations"] == 1
    assert AUTHORIZATION not in logged and AUTHORIZATION not in repr(config)
    signed = instance.profile.scheme.sign(b"{}", instance.params, instance.keys, 0)
    unauthorized = {k: v for k, v in signed.headers.items() if k != "authorization"}
    instance.profile.scheme.verify(b"{}", signed.headers, instance.params, instance.keys, 0)
    with pytest.raises(AuthorizationMismatch):
        instance.profile.scheme.verify(b"{}", unauthorized, instance.params, instance.keys, 0)


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    """``${file:PATH}``: a mounted secret file, its final newline dropped."""
    secret_file = tmp_path / "invoices-secret"
    secret_file.write_text(INVOICE_SECRET + "\n")
    path = tmp_path / "relay.toml"
    path.write_text(_with(INVOICE_SECRET, "${file:" + str(secret_file) + "}"))

    assert run_relay("check-config", str(path), env={}).returncode == 0
    config = load_config(path, env={})
    [secret] = config.providers["invoices"].keys.secrets
    assert secret.value == INVOICE_SECRET.encode()


def test_the_config_can_be_given_as_every_command_takes_it(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(BASE)
    down = {"RELAY_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}

    for args, env in (
        (["--config", str(path)], down),
        ([], {**down, "RELAY_CONFIG": str(path)}),
    ):
        checked = run_relay("check-config", *args, env=env)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.startswith(f"{path}: OK (1 providers: invoices)\n")
    both = run_relay("check-config", str(path), "--config", str(path), env=down)
    assert (both.returncode, both.stderr) == (
        2,
        "relay check-config: give the config once, as FILE or --config\n",
    )
