"""``[kafka]`` security settings as the config loader checks them (no broker needed).

What cannot work is a config error naming the key, before anything connects;
passwords never show in a ``repr``, an error or a token. The broker side is
tests/test_kafka_security.py.
"""

from __future__ import annotations

import base64
import importlib.util
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from relay.config import ConfigError, parse_config
from relay.kafka import client_options
from relay.kafka_auth import aws_msk_iam, fetch_token
from tests.apache_kafka.secure import Pki, make_pki
from tests.conftest import INVOICE_SECRET

PASSWORD = "s3cret-kafka-password"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def load(kafka: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    document = {
        "kafka": kafka,
        "providers": {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}},
    }
    return parse_config(document, env or {}).kafka


def refused(kafka: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(kafka)
    assert PASSWORD not in str(caught.value)
    return caught.value


def token_of_three() -> str:
    return "token-3"


async def async_token() -> str:
    return "token-async"


def test_plaintext_is_the_default_and_needs_nothing() -> None:
    kafka = load({})
    assert kafka.security_protocol == "PLAINTEXT"
    options = client_options(kafka)
    assert options["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in options and "sasl_mechanism" not in options


def test_sasl_ssl_with_scram_builds_a_verifying_tls_context(pki: Pki, tmp_path: Path) -> None:
    password_file = tmp_path / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    kafka = load(
        {
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(pki.ca_file),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "relay",
            "sasl_password": f"${{file:{password_file}}}",
        }
    )
    assert kafka.sasl_password == PASSWORD  # the mounted secret, without its newline
    assert PASSWORD not in repr(kafka)
    options = client_options(kafka)
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "relay"


def test_hostname_check_can_be_relaxed_but_never_verification(pki: Pki) -> None:
    kafka = load(
        {"security_protocol": "SSL", "ssl_cafile": str(pki.ca_file), "ssl_check_hostname": False}
    )
    context = client_options(kafka)["ssl_context"]
    assert not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_client_certificate_and_key_load_together(pki: Pki) -> None:
    kafka = load(
        {
            "security_protocol": "SSL",
            "ssl_cafile": str(pki.ca_file),
            "ssl_certfile": str(pki.client_certificate),
            "ssl_keyfile": str(pki.client_key),
        }
    )
    assert client_options(kafka)["ssl_context"] is not None


@pytest.mark.parametrize(
    ("kafka", "key", "problem"),
    [
        ({"ssl_cafile": "ca.pem"}, "kafka.ssl_cafile", 'needs security_protocol = "SSL"'),
        (
            {"security_protocol": "SSL", "sasl_mechanism": "PLAIN"},
            "kafka.sasl_mechanism",
            'needs security_protocol = "SASL_SSL"',
        ),
        ({"security_protocol": "SASL_SSL"}, "kafka.sasl_mechanism", "required with SASL_SSL"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256"},
            "kafka.sasl_username",
            "required with SCRAM-SHA-256",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "relay",
            },
            "kafka.sasl_password",
            "required with PLAIN",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "kafka.sasl_oauth_token_provider",
            "required with OAUTHBEARER",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauth_token_provider": "tokens.get",
                "sasl_password": PASSWORD,
            },
            "kafka.sasl_password",
            "not used by OAUTHBEARER",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "relay",
                "sasl_password": PASSWORD,
                "sasl_oauth_token_provider": "tokens:get",
            },
            "kafka.sasl_oauth_token_provider",
            "only used with sasl_mechanism = OAUTHBEARER",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauth_token_provider": "tokens.get",
            },
            "kafka.sasl_oauth_token_provider",
            "'tokens.get' is not module:function",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauth_token_provider": "no_such_module_here:token",
            },
            "kafka.sasl_oauth_token_provider",
            "cannot import no_such_module_here",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauth_token_provider": f"{__name__}:no_such_function",
            },
            "kafka.sasl_oauth_token_provider",
            "has no function no_such_function",
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            "kafka.ssl_cafile",
            "cannot read /nonexistent/ca.pem",
        ),
        ({"sasl_mechanism": "GSSAPI"}, "kafka.sasl_mechanism", "must be one of"),
        ({"security_protocol": "TLS"}, "kafka.security_protocol", "must be one of"),
        ({"compression": "brotli"}, "kafka.compression", "must be one of"),
    ],
)
def test_settings_that_cannot_work_are_config_errors(
    kafka: dict[str, Any], key: str, problem: str
) -> None:
    error = refused(kafka)
    assert error.key == key
    assert problem in error.problem


def test_a_key_file_needs_its_certificate(pki: Pki) -> None:
    error = refused(
        {"security_protocol": "SSL", "ssl_cafile": str(pki.ca_file), "ssl_keyfile": "k.pem"}
    )
    assert error.key == "kafka.ssl_keyfile"
    assert "needs ssl_certfile" in error.problem


def test_a_ca_file_without_a_certificate(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    error = refused({"security_protocol": "SSL", "ssl_cafile": str(not_pem)})
    assert error.key == "kafka.ssl_cafile"
    assert "holds no PEM certificate" in error.problem


def test_a_key_that_is_not_the_certificates(pki: Pki) -> None:
    error = refused(
        {
            "security_protocol": "SSL",
            "ssl_cafile": str(pki.ca_file),
            "ssl_certfile": str(pki.client_certificate),
            "ssl_keyfile": str(pki.server_key),  # someone else's key
            "ssl_key_password": PASSWORD,
        }
    )
    assert error.key == "kafka.ssl_keyfile"
    assert "do not load together" in error.problem


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_compression_without_its_library_says_which_extra(
    monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    assert load({"compression": codec}).compression == codec  # installed here (dev extra)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "cramjam" else find_spec(name, *args),
    )
    error = refused({"compression": codec})
    assert error.key == "kafka.compression"
    assert "pip install 'webhook-relay[kafka-compression]'" in error.problem


def test_gzip_needs_nothing_more() -> None:
    assert client_options(load({"compression": "gzip"}))["bootstrap_servers"]


@pytest.mark.parametrize(
    ("function", "token"), [("token_of_three", "token-3"), ("async_token", "token-async")]
)
async def test_token_function_sync_or_async(function: str, token: str) -> None:
    kafka = load(
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_provider": f"{__name__}:{function}",
        }
    )
    provider = client_options(kafka)["sasl_oauth_token_provider"]
    assert await provider.token() == token


async def test_a_token_function_that_returns_nothing_is_an_error() -> None:
    with pytest.raises(TypeError, match="returned no token"):
        await fetch_token(lambda: "")


def test_aws_msk_iam_token_is_signed_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signer presigns a kafka-cluster:Connect URL with the credentials the AWS SDK
    finds; nothing goes over the network (no instance metadata, no STS)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    kafka = load(
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_provider": "relay.kafka_auth:aws_msk_iam",
        }
    )
    assert kafka.sasl_oauth_token_provider == "relay.kafka_auth:aws_msk_iam"
    token = aws_msk_iam()
    url = urlsplit(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    assert url.netloc == "kafka.eu-west-1.amazonaws.com"
    query = parse_qs(url.query)
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIAIOSFODNN7EXAMPLE/")
    assert len(query["X-Amz-Signature"][0]) == 64
    assert "wJalrXUtnFEMI" not in token


def test_aws_msk_iam_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(RuntimeError, match="set AWS_REGION"):
        aws_msk_iam()


def test_aws_msk_iam_without_the_extra_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name.startswith("aws_msk") else find_spec(name, *args),
    )
    error = refused(
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_provider": "relay.kafka_auth:aws_msk_iam",
        }
    )
    assert "pip install 'webhook-relay[msk]'" in error.problem
