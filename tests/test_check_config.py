"""`relay check-config` on broken configs, run as the real CLI in a subprocess.

Each case breaks one thing in an otherwise valid config and expects a
non-zero exit and a message naming the key and the problem, with no secret
or key material in the output. ``relay serve`` on the same file must refuse
to start with the same message (it runs the same validation first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay.config import load_config
from tests.relay_process import run_relay

ROOT = Path(__file__).resolve().parent.parent

INVOICE_SECRET = "check-config-invoice-secret-7f3a91"
COLLECT_SECRET = "check-config-collect-merchant-key-55be"
# A real (demo) RSA private key as bare base64 DER, cut short: unusable, and still never to be echoed.
BROKEN_SIGNING_KEY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC1169OaovAyRYvzJGQhDzfBMr0SvlqNk3XUZgsGiPptElh"
STANDARD_SECRET = "whsec_not-base64-at-all!"
CONSOLE_TOKEN = "check-config-console-token-4d2a9c"
SECRETS = (INVOICE_SECRET, COLLECT_SECRET, BROKEN_SIGNING_KEY, STANDARD_SECRET, CONSOLE_TOKEN)

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
    "max age beyond the dedup window": Case(
        _with("secrets = [", "max_age_s = 700000\nsecrets = ["),
        "providers.invoices.max_age_s",
        "700000 is above [dedup] ttl_s (604800)",
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
