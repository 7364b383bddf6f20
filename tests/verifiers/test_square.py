"""Square's ``x-square-hmacsha256-signature``: base64 HMAC-SHA256 of notification URL + body.

Vectors from square/square-python-sdk at commit
24302bac57d9227c905e9d14e83c1d39b27aece0,
``legacy/tests/utilities/test_webhooks_helper.py`` (the same values are in
``tests/integration/test_webhooks_helper.py`` for the current SDK): the bodies
are inline string constants there, copied byte for byte to
``vectors/square/test_notification.json`` (``REQUEST_BODY``) and
``vectors/square/escaped.json`` (``test_signature_validation_escaped_pass``).
Each of the SDK's accepted and refused cases is below, under its own name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from verifiers import square
from verifiers.errors import MalformedSignature, MissingSignature, SignatureMismatch
from verifiers.keys import KeyRing, Secret, UnusableKey
from verifiers.square import Params

VECTORS = Path(__file__).parent / "vectors" / "square"
NOW = 1_700_000_000

BODY = (VECTORS / "test_notification.json").read_bytes()
SIGNATURE = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
KEY = "Ibxx_5AKakO-3qeNVR61Dw"
URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
PARAMS = Params(notification_url=URL)
RING = KeyRing(secrets=(Secret.of(KEY),))


def signed(signature: str = SIGNATURE) -> dict[str, str]:
    return {"x-square-hmacsha256-signature": signature}


def test_signature_validation_pass() -> None:
    assert square.verify(BODY, signed(), PARAMS, RING, NOW).key_index == 0


def test_signature_validation_escaped_pass() -> None:
    body = (VECTORS / "escaped.json").read_bytes()
    assert body == b'{"data":{"type":"webhooks","id":">id<"}}'
    params = Params(notification_url="https://webhook.site/webhooks")
    keys = KeyRing(secrets=(Secret.of("signature-key"),))
    headers = signed("Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=")
    assert square.verify(body, headers, params, keys, NOW)


def test_signature_validation_url_mismatch() -> None:
    params = Params(notification_url="https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9")
    with pytest.raises(SignatureMismatch):
        square.verify(BODY, signed(), params, RING, NOW)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(URL + "/", id="trailing-slash"),
        pytest.param(URL.replace("https", "http"), id="http"),
        pytest.param(URL + "?a=1", id="query"),
        pytest.param(URL.replace("webhook.site", "WEBHOOK.SITE"), id="host-case"),
    ],
)
def test_the_url_must_match_byte_for_byte(url: str) -> None:
    with pytest.raises(SignatureMismatch):
        square.verify(BODY, signed(), Params(notification_url=url), RING, NOW)


def test_signature_validation_invalid_signature_key() -> None:
    keys = KeyRing(secrets=(Secret.of("MCmhFRxGX82xMwg5FsaoQA"),))
    with pytest.raises(SignatureMismatch):
        square.verify(BODY, signed(), PARAMS, keys, NOW)


def test_signature_validation_invalid_signature_header() -> None:
    # A 20-byte (SHA-1 sized) value: refused as malformed here, as not matching in the SDK.
    with pytest.raises(MalformedSignature):
        square.verify(BODY, signed("1z2n3DEJJiUPKcPzQo1ftvbxGdw="), PARAMS, RING, NOW)


def test_signature_validation_body_mismatch() -> None:
    body = BODY.replace(b"2022-07-13T20:30:59", b"2022-06-13T20:30:59")
    assert body != BODY
    with pytest.raises(SignatureMismatch):
        square.verify(body, signed(), PARAMS, RING, NOW)


def test_signature_validation_body_formatted() -> None:
    body = b"""
        {
            "merchant_id": "MLEFBHHSJGVHD",
            "type": "webhooks.test_notification",
            "event_id": "ac3ac95b-f97d-458c-a6e6-18981597e05f",
            "created_at": "2022-07-13T20:30:59.037339943Z",
            "data": {
              "type": "webhooks",
              "id": "bc368e64-01aa-407e-b46e-3231809b1129"
            }
        }
        """
    with pytest.raises(SignatureMismatch):
        square.verify(body, signed(), PARAMS, RING, NOW)


def test_signature_validation_empty_notification_url() -> None:
    # The SDK raises ValueError; here an instance without the URL is a configuration error.
    with pytest.raises(UnusableKey) as caught:
        square.verify(BODY, signed(), Params(), RING, NOW)
    assert caught.value.status == 500
    with pytest.raises(UnusableKey):
        square.sign(BODY, Params(), RING, NOW)


def test_signature_validation_signature_key_not_configured() -> None:
    with pytest.raises(SignatureMismatch):
        square.verify(BODY, signed(), PARAMS, KeyRing(), NOW)
    with pytest.raises(UnusableKey):
        square.sign(BODY, PARAMS, KeyRing(), NOW)


def test_sign_writes_the_sdk_signature() -> None:
    assert square.sign(BODY, PARAMS, RING, NOW).headers == signed()


def test_rotation() -> None:
    keys = KeyRing(secrets=(Secret.of("new-key"), Secret.of(KEY)))
    assert square.verify(BODY, signed(), PARAMS, keys, NOW).key_index == 1


@pytest.mark.parametrize("value", ["", "not base64!", "GF4Ykr"])
def test_missing_or_malformed_header(value: str) -> None:
    error = MissingSignature if not value else MalformedSignature
    with pytest.raises(error):
        square.verify(BODY, signed(value), PARAMS, RING, NOW)


@pytest.mark.parametrize("url", ["webhook.site/x", "ftp://webhook.site/x", " https://a.b/c"])
def test_params_refuse_a_url_that_cannot_be_the_subscription(url: str) -> None:
    with pytest.raises(ValueError, match="notification_url"):
        Params(notification_url=url)


def test_required_keys() -> None:
    assert square.required_keys(PARAMS) == {"secrets"}
