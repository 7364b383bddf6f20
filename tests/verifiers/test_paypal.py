"""PayPal's transmission signature, with PayPal's own signed sample and certificate.

The vector is paypal/PayPal-Java-SDK's ``ValidateCertTest`` as PayPal's
pgangadharan@paypal.com updated it "with valid webhook" in pull request #396,
commit f71d56c0222f88ed8adf63d2a4d93c2255500b39 (2019-09-07):
``rest-api-sdk/src/test/java/com/paypal/base/ValidateCertTest.java`` (the
headers, the webhook id ``0FV983392A0531201`` and the ``requestBody`` string,
copied byte for byte to ``vectors/paypal/payments_payment_created.json``) and
``rest-api-sdk/src/test/resources/clientCertTest.crt``, the sandbox signing
certificate (``messageverificationcerts.sandbox.paypal.com``, valid 2019-04-02 to
2021-05-24). Its chain: DigiCert's SHA2 Extended Validation Server CA as the Java
SDK ships it (``rest-api-sdk/src/main/resources``, same commit) and the DigiCert
High Assurance EV Root CA as paypal/PayPal-Python-SDK ships it
(``paypalrestsdk/data/DigiCertHighAssuranceEVRootCA.crt.pem``, commit
0d704e7d3bb0c9c77db1edc34801709e43440710). The certificate has expired, so it is
validated at the transmission time, as Relay validates every certificate.

(The vector on the Java SDK's main branch, ``071f7d20-...`` of 2017, does not
verify with its own certificate: the pull request above replaced it.)
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.verification import Store

from tests.crc_forgery import PLACEHOLDER, forge
from verifiers import paypal
from verifiers.errors import (
    MalformedSignature,
    MalformedTimestamp,
    MissingSignature,
    SignatureMismatch,
    StaleTimestamp,
    UntrustedCertificate,
)
from verifiers.keys import KeyRing, UnusableKey, load_public_key
from verifiers.paypal import Params

VECTORS = Path(__file__).parent / "vectors" / "paypal"
BODY = (VECTORS / "payments_payment_created.json").read_bytes()
CERTIFICATE = (VECTORS / "messageverificationcerts.sandbox.paypal.com.pem").read_bytes()
INTERMEDIATE = x509.load_pem_x509_certificate(
    (VECTORS / "DigiCertSHA2ExtendedValidationServerCA.pem").read_bytes()
)
ROOT = x509.load_pem_x509_certificate((VECTORS / "DigiCertHighAssuranceEVRootCA.pem").read_bytes())
WEBHOOK_ID = "0FV983392A0531201"
HEADERS = {
    "paypal-cert-url": "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
    "paypal-transmission-id": "afa30d40-ca4a-11e9-ab68-7d4e2605c70c",
    "paypal-transmission-time": "2019-08-29T10:49:33Z",
    "paypal-auth-algo": "SHA256withRSA",
    "paypal-transmission-sig": (
        "K7DF5+hOyGS6v0xTZ9PkEO+BFNQmpryxw2hFlXbHgmxpu+883ldEC9HcL6ccEmB8sfy80y/Q3qcZZL1MR8Qi0e1ys"
        "ylVj/yROgKK6zBsQPoNmgXC8yTiNoAjULuhk5Aoau0Itk3nrkgAfji1zvADlErMFM9VZe2nDvhM3nDMLjCi/K5fRj"
        "Wp3eGo6Nx17GX/WIEibeKDyS+YdJMex3i+KO4aWmm9zznC/FJ5Y/ntd0MxOJNrM0r0f3y7c3e3sO5pB3oPgN6KzKV"
        "S5P6AWHqtS8acD3DjgCKZ1uqKz7q954G1aBz2/m0wRGOFFsv0/D3FE2uIheRRmoQtVSOAX7Aupg=="
    ),
}
SENT = datetime(2019, 8, 29, 10, 49, 33, tzinfo=UTC).timestamp()
PARAMS = Params(webhook_id=WEBHOOK_ID)
PINNED = KeyRing(public_keys=(load_public_key(CERTIFICATE.decode()),))
ANCHORS = Store([ROOT])


def with_headers(**changes: str | None) -> dict[str, str]:
    headers = dict(HEADERS)
    for name, value in changes.items():
        header = "paypal-" + name.replace("_", "-")
        if value is None:
            del headers[header]
        else:
            headers[header] = value
    return headers


def test_the_vector_body_is_the_sdk_s() -> None:
    assert len(BODY) == 3241
    assert BODY.startswith(b'{"id":"WH-7MU294299R542214K-4N1831857K851783H",')
    assert zlib.crc32(BODY) == 3674300368  # above 2**31: written unsigned


def test_paypal_s_sample_verifies_with_its_certificate_at_the_transmission_time() -> None:
    verified = paypal.verify(BODY, HEADERS, PARAMS, PINNED, SENT)
    assert verified.key_index == 0
    assert verified.timestamp == SENT


def test_the_sample_s_certificate_chains_to_digicert_as_paypal_s_sandbox_at_that_time() -> None:
    chain = paypal.load_chain(CERTIFICATE)
    key = paypal.signer_key([*chain, INTERMEDIATE], ANCHORS, PARAMS, SENT)
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.public_numbers() == PINNED.public_keys[0].public_numbers()  # type: ignore[union-attr]
    assert paypal.valid_at([*chain, INTERMEDIATE], SENT)


@pytest.mark.parametrize(
    ("params", "anchors", "at", "intermediates"),
    [
        pytest.param(
            PARAMS, ANCHORS, datetime(2026, 1, 1, tzinfo=UTC).timestamp(), True, id="expired"
        ),
        pytest.param(
            PARAMS, ANCHORS, datetime(2019, 3, 1, tzinfo=UTC).timestamp(), True, id="not-yet"
        ),
        pytest.param(
            Params(webhook_id=WEBHOOK_ID, cert_names="messageverificationcerts.paypal.com"),
            ANCHORS,
            SENT,
            True,
            id="live-name-only",
        ),
        pytest.param(PARAMS, Store([INTERMEDIATE]), SENT, False, id="intermediate-is-no-root-here"),
        pytest.param(PARAMS, ANCHORS, SENT, False, id="no-intermediate"),
    ],
)
def test_the_certificate_is_refused_outside_its_time_name_or_chain(
    params: Params, anchors: Store, at: float, intermediates: bool
) -> None:
    chain = paypal.load_chain(CERTIFICATE) + ([INTERMEDIATE] if intermediates else [])
    if anchors is not ANCHORS and not intermediates:
        # The intermediate as a trust anchor is a configured bundle's choice: it verifies.
        assert paypal.signer_key(chain, anchors, params, at)
        return
    with pytest.raises(UntrustedCertificate):
        paypal.signer_key(chain, anchors, params, at)


def test_a_self_signed_certificate_in_paypal_s_name_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    from tests.paypal_ca import self_signed

    forged = self_signed(rsa_key, "messageverificationcerts.sandbox.paypal.com")
    with pytest.raises(UntrustedCertificate):
        paypal.signer_key([forged], ANCHORS, PARAMS, SENT)


def test_a_non_pem_answer_is_refused() -> None:
    with pytest.raises(UntrustedCertificate):
        paypal.load_chain(b"<html>not a certificate</html>")


@pytest.mark.parametrize(
    ("body", "headers", "params"),
    [
        pytest.param(
            BODY.replace(b"PAYMENTS.PAYMENT.CREATED", b"PAYMENTS.PAYMENT.CREATEd"),
            HEADERS,
            PARAMS,
            id="body",
        ),
        pytest.param(BODY + b"\n", HEADERS, PARAMS, id="trailing-newline"),
        pytest.param(BODY, HEADERS, Params(webhook_id="NotToBeFound"), id="webhook-id"),
        pytest.param(
            BODY,
            with_headers(transmission_id="afa30d40-ca4a-11e9-ab68-7d4e2605c70d"),
            PARAMS,
            id="transmission-id",
        ),
        pytest.param(
            BODY,
            with_headers(transmission_time="2019-08-29T10:49:34Z"),
            PARAMS,
            id="transmission-time",
        ),
        pytest.param(
            BODY,
            with_headers(transmission_sig="A" + HEADERS["paypal-transmission-sig"][1:]),
            PARAMS,
            id="signature",
        ),
    ],
)
def test_altered_forms_of_the_sample_are_refused(
    body: bytes, headers: dict[str, str], params: Params
) -> None:
    with pytest.raises(SignatureMismatch):
        paypal.verify(body, headers, params, PINNED, SENT)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"auth_algo": "SHA1withRSA"}, MalformedSignature),
        ({"auth_algo": None}, MissingSignature),
        ({"transmission_sig": None}, MissingSignature),
        ({"transmission_id": None}, MissingSignature),
        ({"transmission_time": None}, MissingSignature),
        ({"cert_url": None}, MissingSignature),
        ({"transmission_sig": "aGVsbG8="}, MalformedSignature),
        ({"transmission_sig": "not base64!"}, MalformedSignature),
        ({"transmission_id": "a|b"}, MalformedSignature),
        ({"transmission_time": "yesterday"}, MalformedTimestamp),
        ({"transmission_time": "2019-08-29T10:49:33"}, MalformedTimestamp),
    ],
)
def test_malformed_headers_are_refused_before_any_signature_work(
    changes: dict[str, str | None], error: type[Exception]
) -> None:
    with pytest.raises(error):
        paypal.verify(BODY, with_headers(**changes), PARAMS, PINNED, SENT)


def test_the_transmission_time_must_be_within_the_tolerance_both_ways() -> None:
    assert paypal.verify(BODY, HEADERS, PARAMS, PINNED, SENT + 300)
    with pytest.raises(StaleTimestamp):
        paypal.verify(BODY, HEADERS, PARAMS, PINNED, SENT + 301)
    with pytest.raises(StaleTimestamp):
        paypal.verify(BODY, HEADERS, PARAMS, PINNED, SENT - 301)


def test_a_forged_body_with_the_sample_s_crc32_verifies_which_is_why_the_id_is_the_transmission() -> (
    None
):
    """What the offline check does not prove: the body. A rewritten event with four-odd
    chosen bytes verifies under PayPal's own signature; the profile's dedup on the signed
    transmission id is what keeps it from being a second event (tests/test_paypal.py)."""
    rewritten = BODY.replace(
        b'"event_version":"1.0"', b'"event_version":"1.0","x":"' + PLACEHOLDER + b'"'
    )
    forged = forge(
        rewritten.replace(b"PAYMENTS.PAYMENT.CREATED", b"PAYMENT.CAPTURE.REFUNDED"),
        zlib.crc32(BODY),
    )
    assert forged != BODY
    assert paypal.verify(forged, HEADERS, PARAMS, PINNED, SENT).key_index == 0


def test_without_a_resolved_certificate_nothing_verifies() -> None:
    with pytest.raises(UntrustedCertificate):
        paypal.verify(BODY, HEADERS, PARAMS, KeyRing(), SENT)


def test_without_a_webhook_id_the_scheme_is_unusable() -> None:
    with pytest.raises(UnusableKey):
        paypal.verify(BODY, HEADERS, Params(), PINNED, SENT)


def test_sign_makes_what_verify_accepts(rsa_key: rsa.RSAPrivateKey) -> None:
    signed = paypal.sign(BODY, PARAMS, KeyRing(private_key=rsa_key), SENT)
    keys = KeyRing(public_keys=(rsa_key.public_key(),))
    assert paypal.verify(signed.body, signed.headers, PARAMS, keys, SENT).timestamp == SENT
    assert paypal.certificate_url(signed.headers, PARAMS).startswith("https://api.")
    again = paypal.sign(BODY, PARAMS, KeyRing(private_key=rsa_key), SENT + 60)
    assert again.headers["paypal-transmission-id"] == signed.headers["paypal-transmission-id"]


@pytest.mark.parametrize(
    "url",
    [
        "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
        "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
        "https://API.PayPal.com/v1/notifications/certs/CERT-1",
    ],
)
def test_certificate_urls_of_paypal_s_api_hosts_may_be_fetched(url: str) -> None:
    assert paypal.certificate_url({"paypal-cert-url": url}, PARAMS) == url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://api.paypal.com/v1/notifications/certs/CERT-1", id="http"),
        pytest.param("https://evil.example/v1/notifications/certs/CERT-1", id="other-host"),
        pytest.param(
            "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1", id="suffix"
        ),
        pytest.param(
            "https://evil.example@api.paypal.com/v1/notifications/certs/CERT-1", id="userinfo"
        ),
        pytest.param("https://api.paypal.com:8443/v1/notifications/certs/CERT-1", id="port"),
        pytest.param("https://127.0.0.1/v1/notifications/certs/CERT-1", id="ipv4"),
        pytest.param("https://[::1]/v1/notifications/certs/CERT-1", id="ipv6"),
        pytest.param("https://api.paypal.com./v1/notifications/certs/CERT-1", id="trailing-dot"),
        pytest.param("https://api.paypal.com/v1/oauth2/token", id="other-path"),
        pytest.param("https://api.paypal.com/v1/notifications/certs/", id="no-name"),
        pytest.param(
            "https://api.paypal.com/v1/notifications/certs/../../x", id="dot-segments-kept"
        ),
        pytest.param("https://api.paypal.com/v1/notifications/certs/CERT-1?x=1", id="query"),
        pytest.param("https://api.paypal.com/v1/notifications/certs/CERT-1#x", id="fragment"),
        pytest.param("https://api.paypal.com/v1/notifications/certs/%2e%2e/x", id="escape"),
        pytest.param(
            "https://api.paypal.com\\@evil.example/v1/notifications/certs/C", id="backslash"
        ),
        pytest.param("ftp://api.paypal.com/v1/notifications/certs/CERT-1", id="ftp"),
        pytest.param("https://api.paypal.com/v1/notifications/certs/CERT-é", id="non-ascii"),
    ],
)
def test_any_other_certificate_url_is_refused_without_a_fetch(url: str) -> None:
    with pytest.raises(UntrustedCertificate):
        paypal.certificate_url({"paypal-cert-url": url}, PARAMS)


def test_an_allow_listed_port_is_exact() -> None:
    params = Params(webhook_id=WEBHOOK_ID, cert_hosts="localhost:8443")
    url = "https://localhost:8443/v1/notifications/certs/CERT-1"
    assert paypal.certificate_url({"paypal-cert-url": url}, params) == url
    for other in (
        "https://localhost/v1/notifications/certs/CERT-1",
        "https://localhost:8444/v1/notifications/certs/CERT-1",
    ):
        with pytest.raises(UntrustedCertificate):
            paypal.certificate_url({"paypal-cert-url": other}, params)


@pytest.mark.parametrize(
    "options",
    [
        {"webhook_id": "a|b"},
        {"cert_hosts": " "},
        {"cert_names": ""},
        {"timestamp_tolerance_s": 0.0},
        {"api_base": "http://api-m.paypal.com"},
        {"confirm_with_api": True},
    ],
)
def test_unusable_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Params(**options)  # type: ignore[arg-type]
