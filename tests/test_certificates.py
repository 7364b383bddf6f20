"""relay.certificates against a local HTTPS server that plays PayPal's API host.

A test CA (tests/paypal_ca.py) issues the server's TLS certificate for ``localhost``
and PayPal's signing certificate; the instance allow-lists ``localhost:<port>`` and
trusts the CA through ``ca_bundle``. Every refusal that must cost no request is
checked against the server's request count.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from relay import certificates
from relay.config import parse_config
from relay.deadletter import make_dead_letter
from relay.errors import Unavailable
from relay.replay import KEYS_UNAVAILABLE, PlannedOutcome, plan_letter
from schemas.records import DeadLetter
from tests.paypal_ca import Authority, authority, issue, key_pem, pem, self_signed
from verifiers import SignatureMismatch, StaleTimestamp, UntrustedCertificate, paypal
from verifiers.keys import KeyRing, Secret, UnusableKey

NOW = datetime(2030, 6, 1, tzinfo=UTC).timestamp()
BODY = b'{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"id":"C1"}}'
PAYPAL_NAME = "messageverificationcerts.paypal.com"
CLIENT_ID = "relay-test-client"
CLIENT_SECRET = "relay-test-client-secret-0123456789"


@dataclass
class PayPalHost:
    """The local server: what it serves per path, and every request it saw."""

    port: int
    ca_bundle: Path
    routes: dict[str, Callable[[web.Request], Any]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def params(self, **options: Any) -> paypal.Params:
        defaults: dict[str, Any] = {
            "webhook_id": "WH-ID-1",
            "cert_hosts": f"localhost:{self.port}",
            "ca_bundle": str(self.ca_bundle),
            "api_base": f"https://localhost:{self.port}",
            "fetch_timeout_s": 0.5,
        }
        return paypal.Params(**{**defaults, **options})

    def url(self, name: str = "CERT-1") -> str:
        return f"https://localhost:{self.port}{paypal.CERT_PATH}{name}"


@pytest.fixture(scope="module")
def ca(rsa_key: rsa.RSAPrivateKey) -> Authority:
    return authority(rsa_key)


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def host(
    ca: Authority, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> AsyncIterator[PayPalHost]:
    certificates.clear()
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    (tmp_path / "server.pem").write_bytes(pem(issue(ca, rsa_key, "localhost")))
    (tmp_path / "server.key").write_bytes(key_pem(rsa_key))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    served = PayPalHost(0, tmp_path / "ca.pem")

    async def handle(request: web.Request) -> web.StreamResponse:
        served.seen.append(request.path)
        route = served.routes.get(request.path)
        if route is None:
            return web.Response(status=404)
        answer = route(request)
        return await answer if asyncio.iscoroutine(answer) else answer

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    served.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield served
    await runner.cleanup()
    certificates.clear()


def signed(
    key: rsa.RSAPrivateKey, params: paypal.Params, url: str, body: bytes = BODY
) -> dict[str, str]:
    headers = paypal.sign(body, params, KeyRing(private_key=key), NOW).headers
    return {**headers, paypal.CERT_URL: url}


def serve(certificate_pem: bytes) -> Callable[[web.Request], web.Response]:
    return lambda request: web.Response(body=certificate_pem, content_type="application/x-pem-file")


async def test_paypal_s_certificate_is_fetched_once_and_verifies(
    host: PayPalHost, ca: Authority, signing_key: rsa.RSAPrivateKey
) -> None:
    host.routes["/v1/notifications/certs/CERT-1"] = serve(pem(issue(ca, signing_key, PAYPAL_NAME)))
    params = host.params()
    headers = signed(signing_key, params, host.url())
    for _ in range(3):
        keys = await certificates.resolve_keys(BODY, headers, params, KeyRing(), NOW)
        assert paypal.verify(BODY, headers, params, keys, NOW).timestamp == NOW
    assert host.seen == ["/v1/notifications/certs/CERT-1"]  # cached by URL


async def test_a_chain_served_with_its_intermediate_verifies(
    host: PayPalHost, ca: Authority, signing_key: rsa.RSAPrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    intermediate_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    intermediate = Authority(_intermediate(ca, intermediate_key), intermediate_key)
    host.routes["/v1/notifications/certs/CERT-1"] = serve(
        pem(issue(intermediate, signing_key, PAYPAL_NAME), intermediate.certificate)
    )
    params = host.params()
    headers = signed(signing_key, params, host.url())
    keys = await certificates.resolve_keys(BODY, headers, params, KeyRing(), NOW)
    assert paypal.verify(BODY, headers, params, keys, NOW)


def _intermediate(ca: Authority, key: rsa.RSAPrivateKey) -> x509.Certificate:
    child = authority(key, "Relay Test Intermediate CA").certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(child.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(child.not_valid_before_utc)
        .not_valid_after(child.not_valid_after_utc)
    )
    for extension in child.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    from cryptography.hazmat.primitives import hashes

    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
    ).sign(ca.key, hashes.SHA256())


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://api.paypal.com/v1/notifications/certs/CERT-1", id="off-the-list"),
        pytest.param("http://localhost:{port}/v1/notifications/certs/CERT-1", id="http"),
        pytest.param("https://x@localhost:{port}/v1/notifications/certs/CERT-1", id="userinfo"),
        pytest.param("https://127.0.0.1:{port}/v1/notifications/certs/CERT-1", id="ip-literal"),
        pytest.param("https://localhost:{port}/v1/oauth2/token", id="other-path"),
    ],
)
async def test_a_url_off_the_allow_list_is_a_401_without_a_request(
    host: PayPalHost, signing_key: rsa.RSAPrivateKey, url: str
) -> None:
    params = host.params(cert_hosts=f"localhost:{host.port} 127.0.0.1:{host.port}")
    headers = signed(signing_key, params, url.format(port=host.port))
    with pytest.raises(UntrustedCertificate):
        await certificates.resolve_keys(BODY, headers, params, KeyRing(), NOW)
    assert host.seen == []


async def test_an_unsigned_request_costs_no_fetch(
    host: PayPalHost, signing_key: rsa.RSAPrivateKey
) -> None:
    params = host.params()
    headers = {
        **signed(signing_key, params, host.url()),
        paypal.TRANSMISSION_TIME: "2020-01-01T00:00:00Z",
    }
    with pytest.raises(StaleTimestamp):  # before any fetch
        await certificates.resolve_keys(BODY, headers, params, KeyRing(), NOW)
    assert host.seen == []


async def test_a_pinned_certificate_is_never_fetched(
    host: PayPalHost, signing_key: rsa.RSAPrivateKey
) -> None:
    params = host.params()
    headers = signed(signing_key, params, "https://evil.example/v1/notifications/certs/CERT-1")
    pinned = KeyRing(public_keys=(signing_key.public_key(),))
    keys = await certificates.resolve_keys(BODY, headers, params, pinned, NOW)
    assert keys is pinned
    assert paypal.verify(BODY, headers, params, keys, NOW)
    assert host.seen == []


def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/v1/notifications/certs/CERT-2")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(body=b"")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(_redirect, UntrustedCertificate, id="redirect"),
        pytest.param(lambda request: web.Response(status=404), UntrustedCertificate, id="404"),
        pytest.param(lambda request: web.Response(status=502), Unavailable, id="502"),
        pytest.param(_slow, Unavailable, id="slow"),
        pytest.param(
            lambda request: web.Response(body=b"x" * 40_000), UntrustedCertificate, id="oversize"
        ),
        pytest.param(
            lambda request: web.Response(body=b"<html>hello</html>"),
            UntrustedCertificate,
            id="not-pem",
        ),
    ],
)
async def test_what_the_host_answers_instead_of_a_certificate(
    host: PayPalHost,
    ca: Authority,
    signing_key: rsa.RSAPrivateKey,
    answer: Any,
    error: type[Exception],
) -> None:
    host.routes["/v1/notifications/certs/CERT-1"] = answer
    host.routes["/v1/notifications/certs/CERT-2"] = serve(pem(issue(ca, signing_key, PAYPAL_NAME)))
    params = host.params()
    with pytest.raises(error):
        await certificates.resolve_keys(
            BODY, signed(signing_key, params, host.url()), params, KeyRing(), NOW
        )
    assert host.seen == ["/v1/notifications/certs/CERT-1"]  # a redirect is not followed


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda ca, key: issue(ca, key, "evil.example"), id="not-paypal-s-name"),
        pytest.param(
            lambda ca, key: issue(ca, key, PAYPAL_NAME, not_after=datetime(2030, 1, 1, tzinfo=UTC)),
            id="expired-at-the-transmission",
        ),
        pytest.param(lambda ca, key: self_signed(key, PAYPAL_NAME), id="self-signed"),
    ],
)
async def test_a_certificate_that_is_not_paypal_s_is_a_401(
    host: PayPalHost, ca: Authority, signing_key: rsa.RSAPrivateKey, make: Any
) -> None:
    host.routes["/v1/notifications/certs/CERT-1"] = serve(pem(make(ca, signing_key)))
    params = host.params()
    with pytest.raises(UntrustedCertificate):
        await certificates.resolve_keys(
            BODY, signed(signing_key, params, host.url()), params, KeyRing(), NOW
        )


async def test_a_cached_certificate_is_checked_at_each_transmission_time(
    host: PayPalHost, ca: Authority, signing_key: rsa.RSAPrivateKey
) -> None:
    expiry = datetime(2030, 7, 1, tzinfo=UTC)
    host.routes["/v1/notifications/certs/CERT-1"] = serve(
        pem(issue(ca, signing_key, PAYPAL_NAME, not_after=expiry))
    )
    params = host.params()
    assert await certificates.resolve_keys(
        BODY, signed(signing_key, params, host.url()), params, KeyRing(), NOW
    )
    later = expiry.timestamp() + 60
    headers = {
        **paypal.sign(BODY, params, KeyRing(private_key=signing_key), later).headers,
        paypal.CERT_URL: host.url(),
    }
    with pytest.raises(UntrustedCertificate):
        await certificates.resolve_keys(BODY, headers, params, KeyRing(), later)
    assert len(host.seen) == 1


async def test_an_untrusted_tls_server_or_a_closed_port_is_a_503(
    host: PayPalHost, ca: Authority, signing_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    host.routes["/v1/notifications/certs/CERT-1"] = serve(pem(issue(ca, signing_key, PAYPAL_NAME)))
    other = authority(rsa.generate_private_key(public_exponent=65537, key_size=2048), "Other CA")
    (tmp_path / "other.pem").write_bytes(other.pem())
    params = host.params(ca_bundle=str(tmp_path / "other.pem"))
    with pytest.raises(Unavailable):
        await certificates.resolve_keys(
            BODY, signed(signing_key, params, host.url()), params, KeyRing(), NOW
        )
    closed = paypal.Params(
        webhook_id="WH-ID-1", cert_hosts="localhost:1", ca_bundle=str(host.ca_bundle)
    )
    url = f"https://localhost:1{paypal.CERT_PATH}CERT-1"
    with pytest.raises(Unavailable):
        await certificates.resolve_keys(
            BODY, signed(signing_key, closed, url), closed, KeyRing(), NOW
        )


# PayPal's verify-webhook-signature API: https://developer.paypal.com/docs/api/webhooks/v1/#verify-webhook-signature_post
# (request: auth_algo, cert_url, transmission_id, transmission_sig, transmission_time, webhook_id,
# webhook_event; response: verification_status SUCCESS or FAILURE), after an OAuth 2.0
# client-credentials token from /v1/oauth2/token.


def api(host: PayPalHost, verdict: str, calls: list[dict[str, Any]]) -> None:
    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if (
            request.headers.get("Authorization") != f"Basic {expected}"
            or form.get("grant_type") != "client_credentials"
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response(
            {"access_token": "A21AAtoken", "token_type": "Bearer", "expires_in": 32400}
        )

    async def verify(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer A21AAtoken":
            return web.json_response({"name": "AUTHENTICATION_FAILURE"}, status=401)
        calls.append(orjson.loads(await request.read()))
        return web.json_response({"verification_status": verdict})

    host.routes["/v1/oauth2/token"] = token
    host.routes["/v1/notifications/verify-webhook-signature"] = verify


@pytest.mark.parametrize("verdict", ["SUCCESS", "FAILURE"])
async def test_paypal_s_api_confirms_a_transmission_that_verifies_offline(
    host: PayPalHost, signing_key: rsa.RSAPrivateKey, verdict: str
) -> None:
    calls: list[dict[str, Any]] = []
    api(host, verdict, calls)
    params = host.params(confirm_with_api=True, client_id=CLIENT_ID)
    keys = KeyRing(secrets=(Secret.of(CLIENT_SECRET),), public_keys=(signing_key.public_key(),))
    headers = signed(signing_key, params, host.url())
    for _ in range(2):
        if verdict == "SUCCESS":
            assert await certificates.resolve_keys(BODY, headers, params, keys, NOW) is keys
        else:
            with pytest.raises(SignatureMismatch):
                await certificates.resolve_keys(BODY, headers, params, keys, NOW)
    assert host.seen.count("/v1/oauth2/token") == 1  # the token is kept
    assert calls[0] == {
        "auth_algo": "SHA256withRSA",
        "cert_url": host.url(),
        "transmission_id": headers[paypal.TRANSMISSION_ID],
        "transmission_sig": headers[paypal.TRANSMISSION_SIG],
        "transmission_time": headers[paypal.TRANSMISSION_TIME],
        "webhook_id": "WH-ID-1",
        "webhook_event": orjson.loads(BODY),
    }


async def test_the_api_is_not_asked_about_a_transmission_that_does_not_verify(
    host: PayPalHost, signing_key: rsa.RSAPrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    calls: list[dict[str, Any]] = []
    api(host, "SUCCESS", calls)
    params = host.params(confirm_with_api=True, client_id=CLIENT_ID)
    keys = KeyRing(secrets=(Secret.of(CLIENT_SECRET),), public_keys=(signing_key.public_key(),))
    with pytest.raises(SignatureMismatch):
        await certificates.resolve_keys(
            BODY, signed(rsa_key, params, host.url()), params, keys, NOW
        )
    assert host.seen == []


async def test_wrong_client_credentials_are_the_instance_s_fault(
    host: PayPalHost, signing_key: rsa.RSAPrivateKey
) -> None:
    api(host, "SUCCESS", [])
    params = host.params(confirm_with_api=True, client_id=CLIENT_ID)
    keys = KeyRing(
        secrets=(Secret.of("not-the-secret-0123456789abcdef"),),
        public_keys=(signing_key.public_key(),),
    )
    with pytest.raises(UnusableKey):
        await certificates.resolve_keys(
            BODY, signed(signing_key, params, host.url()), params, keys, NOW
        )


async def test_a_paypal_letter_s_replay_plan_fetches_its_certificate_as_the_replay_does(
    host: PayPalHost, ca: Authority, signing_key: rsa.RSAPrivateKey
) -> None:
    """``plan_letter`` (``relay replay --dry-run``, the console's plan) resolves the key the
    letter names before verifying it: a genuine letter plans as its event, one moved onto
    another body as ``unverified``."""
    host.routes["/v1/notifications/certs/CERT-1"] = serve(pem(issue(ca, signing_key, PAYPAL_NAME)))
    params = host.params()
    table = {
        "profile": "paypal",
        **{name: getattr(params, name) for name in ("webhook_id", "cert_hosts", "ca_bundle")},
        "api_base": params.api_base,
        "fetch_timeout_s": params.fetch_timeout_s,
    }
    config = parse_config({"providers": {"pp": table}}, env={})
    body = (Path(__file__).parent / "golden" / "paypal" / "capture_completed.in.json").read_bytes()
    headers = signed(signing_key, params, host.url(), body)

    kept = config.providers["pp"].profile.kept_headers  # as the pipeline files them

    def letter(content: bytes) -> DeadLetter:
        return make_dead_letter(
            provider="pp",
            profile="paypal",
            reason="kafka_unavailable",
            message="the broker was down",
            received_at=datetime.fromtimestamp(NOW, UTC),
            headers={name: headers[name] for name in kept if name in headers},
            body=content,
            signature_headers=headers,
        )

    planned = await plan_letter(config, letter(body))
    assert planned.reason is None and planned.event is not None
    assert planned.event.id == headers[paypal.TRANSMISSION_ID]
    assert host.seen == ["/v1/notifications/certs/CERT-1"]
    moved = await plan_letter(
        config, letter(body.replace(b"42311647XV020574X", b"42311647XV020574Y"))
    )
    assert moved == PlannedOutcome(reason="unverified")

    # The certificate host failing for network reasons: the plan says so, it does not stop.
    host.routes["/v1/notifications/certs/CERT-2"] = lambda request: web.Response(status=502)
    down = signed(signing_key, params, host.url("CERT-2"), body)
    unreachable = dataclasses.replace(letter(body), signature_headers=down)
    assert await plan_letter(config, unreachable) == PlannedOutcome(reason=KEYS_UNAVAILABLE)
