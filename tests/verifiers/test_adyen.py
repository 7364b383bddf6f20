"""Adyen: the per-item HMAC of standard webhooks, the HmacSignature header, HTTP Basic.

Vectors from Adyen/adyen-python-api-library at commit
b6f49792b79c23e2674b35c04dd045aa07daf599, ``test/UtilTest.py``:
``test_notification_request_item_hmac`` (the item and key inline, below),
``test_webhooks_with_slashes`` (``test/mocks/util/*_notification.json``, copied
byte for byte to ``vectors/adyen/``: items signed by Adyen's test platform whose
merchant reference holds ``\\``, ``:`` and ``/``), ``test_is_valid_hmac_payload``
and ``test_is_invalid_hmac_payload`` (the payload string inline there, copied to
``vectors/adyen/merchant_created_payload.json``).
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from verifiers import adyen
from verifiers.adyen import Params
from verifiers.errors import (
    AmbiguousBody,
    AuthorizationMismatch,
    MalformedBody,
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
)
from verifiers.keys import KeyRing, Secret, UnusableKey, basic_authorization

VECTORS = Path(__file__).parent / "vectors" / "adyen"
NOW = 1_700_000_000
ITEMS = Params()
PAYLOAD = Params(form="payload")

# UtilTest.test_notification_request_item_hmac
UTIL_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
UTIL_ITEM: dict[str, Any] = {
    "pspReference": "7914073381342284",
    "merchantReference": "TestPayment-1407325143704",
    "merchantAccountCode": "TestMerchant",
    "amount": {"currency": "EUR", "value": 1130},
    "eventCode": "AUTHORISATION",
    "success": "true",
    "eventDate": "2019-05-06T17:15:34.121+02:00",
    "operations": ["CANCEL", "CAPTURE", "REFUND"],
    "paymentMethod": "visa",
}
UTIL_SIGNATURE = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="
UTIL_RING = KeyRing(secrets=(Secret.of(UTIL_KEY),))

# UtilTest.test_webhooks_with_slashes
SLASHES_KEY = "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"
SLASHES_RING = KeyRing(secrets=(Secret.of(SLASHES_KEY),))


def notification(*items: dict[str, Any]) -> bytes:
    wrapped = [{"NotificationRequestItem": item} for item in items]
    return json.dumps({"live": "false", "notificationItems": wrapped}).encode()


def signed_item(item: dict[str, Any], signature: str) -> dict[str, Any]:
    return {**item, "additionalData": {"hmacSignature": signature}}


def signature_of(item: dict[str, Any], key: str = UTIL_KEY) -> str:
    """Adyen/util.py ``generate_notification_sig``, inline: hex key, fields joined by ':'."""
    amount = item.get("amount", {})
    fields = [
        item.get("pspReference", ""),
        item.get("originalReference", ""),
        item.get("merchantAccountCode", ""),
        item.get("merchantReference", ""),
        amount.get("value", ""),
        amount.get("currency", ""),
        item.get("eventCode", ""),
        item.get("success", ""),
    ]
    content = ":".join(map(str, fields)).encode()
    return base64.b64encode(hmac.digest(bytes.fromhex(key), content, "sha256")).decode()


def items_of(body: bytes) -> list[dict[str, Any]]:
    return [wrapper["NotificationRequestItem"] for wrapper in json.loads(body)["notificationItems"]]


UTIL_BODY = notification(signed_item(UTIL_ITEM, UTIL_SIGNATURE))


# --- the SDK's vectors -------------------------------------------------------------------


def test_sdk_item_vector_verifies() -> None:
    assert adyen.verify(UTIL_BODY, {}, ITEMS, UTIL_RING, NOW).key_index == 0


def test_sdk_item_vector_signed_string() -> None:
    (item,) = adyen.read(UTIL_BODY)
    assert item.content == (
        b"7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )
    assert item.signed["originalReference"] == ""
    assert base64.b64encode(item.signature).decode() == UTIL_SIGNATURE


def test_sign_writes_the_sdk_signature() -> None:
    signed = adyen.sign(notification(UTIL_ITEM), ITEMS, UTIL_RING, NOW)
    (item,) = items_of(signed.body)
    assert item["additionalData"] == {"hmacSignature": UTIL_SIGNATURE}
    assert adyen.verify(signed.body, signed.headers, ITEMS, UTIL_RING, NOW).key_index == 0


@pytest.mark.parametrize("name", ["backslash", "colon", "forwardslash", "mixed"])
def test_sdk_items_with_slashes_and_colons_verify_unescaped(name: str) -> None:
    # The item's bytes spliced in as they are: the vector is the file, not its re-serialization.
    item = (VECTORS / f"{name}_notification.json").read_bytes()
    body = b'{"live":"false","notificationItems":[{"NotificationRequestItem":' + item + b"}]}"
    assert adyen.verify(body, {}, ITEMS, SLASHES_RING, NOW).key_index == 0


def test_sdk_payload_vector_verifies() -> None:
    body = (VECTORS / "merchant_created_payload.json").read_bytes()
    headers = {"hmacsignature": "fX74xUdztFmaXAn3IusMFFUBUSkLmDQUK0tm8xL6ZTU="}
    assert adyen.verify(body, headers, PAYLOAD, UTIL_RING, NOW).key_index == 0


def test_sdk_invalid_payload_signature_is_refused() -> None:
    # test_is_invalid_hmac_payload: "MismatchingHmacKey=" is not a 32-byte base64 signature.
    body = (VECTORS / "merchant_created_payload.json").read_bytes()
    with pytest.raises(MalformedSignature):
        adyen.verify(body, {"hmacsignature": "MismatchingHmacKey="}, PAYLOAD, UTIL_RING, NOW)


# --- items: what is signed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("pspReference",), "7914073381342285"),
        (("merchantReference",), "TestPayment-1407325143705"),
        (("merchantAccountCode",), "OtherMerchant"),
        (("amount", "value"), 1131),
        (("amount", "currency"), "USD"),
        (("eventCode",), "REFUND"),
        (("success",), "false"),
        (("originalReference",), "8814073381342284"),
    ],
)
def test_a_changed_signed_field_is_a_mismatch(path: tuple[str, ...], value: object) -> None:
    item = copy.deepcopy(signed_item(UTIL_ITEM, UTIL_SIGNATURE))
    target = item
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SignatureMismatch):
        adyen.verify(notification(item), {}, ITEMS, UTIL_RING, NOW)


def test_unsigned_members_are_not_covered_and_not_in_the_signed_view() -> None:
    # Adyen's design: eventDate, reason, the rest of additionalData are outside the signature.
    changed = {**signed_item(UTIL_ITEM, UTIL_SIGNATURE), "eventDate": "2030-01-01T00:00:00Z"}
    body = notification(changed)
    assert adyen.verify(body, {}, ITEMS, UTIL_RING, NOW)
    (item,) = adyen.read(body)
    assert set(item.signed) == set(adyen.SIGNED_FIELDS)
    assert adyen.signed_content(body, ITEMS) == adyen.signed_content(UTIL_BODY, ITEMS)


@pytest.mark.parametrize("absent", ["missing", "null", "empty"])
def test_an_absent_field_is_the_empty_string(absent: str) -> None:
    item = dict(UTIL_ITEM)
    if absent == "null":
        item["originalReference"] = None
    elif absent == "empty":
        item["originalReference"] = ""
    body = notification(signed_item(item, UTIL_SIGNATURE))
    assert adyen.verify(body, {}, ITEMS, UTIL_RING, NOW)


def test_no_amount_signs_two_empty_fields() -> None:
    item = {key: value for key, value in UTIL_ITEM.items() if key != "amount"}
    body = notification(signed_item(item, signature_of(item)))
    assert adyen.read(body)[0].content.endswith(b":TestPayment-1407325143704:::AUTHORISATION:true")
    assert adyen.verify(body, {}, ITEMS, UTIL_RING, NOW)


def test_colon_shift_forgery_is_ambiguous() -> None:
    # A signed item whose merchant reference ends in ":5" ...
    genuine = {**UTIL_ITEM, "merchantReference": "order:5"}
    signature = signature_of(genuine)
    # ... signs the same string as an item for 5 units of currency "1000:EUR".
    forged = {
        **genuine,
        "merchantReference": "order",
        "amount": {"value": 5, "currency": "1130:EUR"},
    }
    assert signature_of(forged) == signature
    assert adyen.verify(notification(signed_item(genuine, signature)), {}, ITEMS, UTIL_RING, NOW)
    with pytest.raises(AmbiguousBody):
        adyen.verify(notification(signed_item(forged, signature)), {}, ITEMS, UTIL_RING, NOW)


@pytest.mark.parametrize(
    "field", ["pspReference", "originalReference", "merchantAccountCode", "eventCode", "success"]
)
def test_a_colon_outside_the_merchant_reference_is_ambiguous(field: str) -> None:
    item = {**UTIL_ITEM, field: "A:B"}
    with pytest.raises(AmbiguousBody):
        adyen.verify(notification(signed_item(item, signature_of(item))), {}, ITEMS, UTIL_RING, NOW)


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("pspReference", 7914073381342284),
        ("success", True),
        ("eventCode", ["AUTHORISATION"]),
        ("amount", "1130 EUR"),
        ("amount.value", 11.3),
        ("amount.value", "1130"),
        ("amount.value", True),
        ("amount.currency", 978),
    ],
)
def test_signed_fields_of_the_wrong_type(change: str, value: object) -> None:
    item = copy.deepcopy(UTIL_ITEM)
    if change.startswith("amount."):
        item["amount"][change.removeprefix("amount.")] = value
    else:
        item[change] = value
    with pytest.raises(MalformedBody) as caught:
        adyen.verify(notification(signed_item(item, UTIL_SIGNATURE)), {}, ITEMS, UTIL_RING, NOW)
    assert caught.value.status == 400


# --- items: batches -------------------------------------------------------------------------


def second_item() -> dict[str, Any]:
    item = {**UTIL_ITEM, "pspReference": "8814073381342299", "eventCode": "CAPTURE"}
    return signed_item(item, signature_of(item))


def test_a_batch_verifies_when_every_item_does() -> None:
    body = notification(signed_item(UTIL_ITEM, UTIL_SIGNATURE), second_item())
    assert adyen.verify(body, {}, ITEMS, UTIL_RING, NOW).key_index == 0
    assert [item.position for item in adyen.read(body)] == [0, 1]


def test_one_bad_item_refuses_the_batch_and_is_named() -> None:
    bad = {**second_item(), "eventCode": "REFUND"}
    body = notification(signed_item(UTIL_ITEM, UTIL_SIGNATURE), bad)
    with pytest.raises(SignatureMismatch, match=r"notificationItems\[1\]"):
        adyen.verify(body, {}, ITEMS, UTIL_RING, NOW)


def test_items_verify_one_by_one() -> None:
    body = notification(signed_item(UTIL_ITEM, UTIL_SIGNATURE), {**second_item(), "success": "f"})
    first, second = adyen.read(body)
    assert adyen.verify_item(first, UTIL_RING) == 0
    with pytest.raises(SignatureMismatch):
        adyen.verify_item(second, UTIL_RING)


def test_key_index_is_the_highest_any_item_used() -> None:
    other = "00" * 32
    keys = KeyRing(secrets=(Secret.of(other), Secret.of(UTIL_KEY)))
    new = {**UTIL_ITEM, "pspReference": "1"}
    body = notification(signed_item(new, signature_of(new, other)), second_item())
    assert adyen.verify(body, {}, ITEMS, keys, NOW).key_index == 1
    only_new = notification(signed_item(new, signature_of(new, other)))
    assert adyen.verify(only_new, {}, ITEMS, keys, NOW).key_index == 0


def test_every_signature_is_read_before_any_hmac() -> None:
    # The first item is well formed but wrong; the last is malformed. Reading all first means
    # a request that cannot verify costs no HMAC: the malformed one is what is reported.
    wrong = signed_item(UTIL_ITEM, base64.b64encode(b"\0" * 32).decode())
    malformed = signed_item(UTIL_ITEM, "not base64!")
    with pytest.raises(MalformedSignature, match=r"notificationItems\[1\]"):
        adyen.verify(notification(wrong, malformed), {}, ITEMS, UTIL_RING, NOW)


def test_too_many_items() -> None:
    good = signed_item(UTIL_ITEM, UTIL_SIGNATURE)
    assert adyen.verify(notification(*[good] * adyen.MAX_ITEMS), {}, ITEMS, UTIL_RING, NOW)
    with pytest.raises(MalformedBody, match="more than"):
        adyen.verify(notification(*[good] * (adyen.MAX_ITEMS + 1)), {}, ITEMS, UTIL_RING, NOW)


# --- items: malformed -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"[accepted]", id="not-json"),
        pytest.param(b"\xff{}", id="not-utf8"),
        pytest.param(b"[]", id="not-object"),
        pytest.param(b'{"live":"false"}', id="no-items"),
        pytest.param(b'{"notificationItems":[]}', id="empty-items"),
        pytest.param(b'{"notificationItems":{}}', id="items-not-list"),
        pytest.param(b'{"notificationItems":[{}]}', id="no-request-item"),
        pytest.param(b'{"notificationItems":[1]}', id="item-not-object"),
        pytest.param(b'{"notificationItems":[{"NotificationRequestItem":[]}]}', id="item-list"),
        pytest.param(b'{"notificationItems":[],"notificationItems":[]}', id="duplicate-key"),
        pytest.param(b'{"notificationItems":[NaN]}', id="nan"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep"),
        pytest.param(
            b'{"notificationItems":[{"NotificationRequestItem":{"pspReference":"\\ud800"}}]}',
            id="lone-surrogate",
        ),
    ],
)
def test_malformed_body(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        adyen.verify(body, {}, ITEMS, UTIL_RING, NOW)


@pytest.mark.parametrize(
    ("additional", "error"),
    [
        pytest.param(None, MissingSignature, id="no-additional-data"),
        pytest.param({}, MissingSignature, id="no-hmac-signature"),
        pytest.param({"hmacSignature": ""}, MissingSignature, id="empty"),
        pytest.param({"hmacSignature": None}, MissingSignature, id="null"),
        pytest.param({"hmacSignature": 12}, MalformedSignature, id="not-string"),
        pytest.param({"hmacSignature": "%%%"}, MalformedSignature, id="not-base64"),
        pytest.param({"hmacSignature": "AAAA"}, MalformedSignature, id="wrong-length"),
        pytest.param("hmac", MalformedSignature, id="additional-data-not-object"),
    ],
)
def test_signature_missing_or_malformed(additional: object, error: type[Exception]) -> None:
    item = dict(UTIL_ITEM)
    if additional is not None:
        item["additionalData"] = additional
    with pytest.raises(error):
        adyen.verify(notification(item), {}, ITEMS, UTIL_RING, NOW)


def test_wrong_key() -> None:
    keys = KeyRing(secrets=(Secret.of("11" * 32),))
    with pytest.raises(SignatureMismatch):
        adyen.verify(UTIL_BODY, {}, ITEMS, keys, NOW)


def test_key_is_hex_decoded_not_used_as_text() -> None:
    as_text = hmac.digest(UTIL_KEY.encode(), adyen.read(UTIL_BODY)[0].content, "sha256")
    item = signed_item(UTIL_ITEM, base64.b64encode(as_text).decode())
    with pytest.raises(SignatureMismatch):
        adyen.verify(notification(item), {}, ITEMS, UTIL_RING, NOW)


@pytest.mark.parametrize("key", ["not hex", "ABC", ""])
def test_a_key_that_is_not_hex_is_unusable(key: str) -> None:
    keys = KeyRing(secrets=(Secret.of(key),))
    with pytest.raises(UnusableKey) as caught:
        adyen.verify(UTIL_BODY, {}, ITEMS, keys, NOW)
    assert caught.value.status == 500
    with pytest.raises(UnusableKey):
        adyen.sign(notification(UTIL_ITEM), ITEMS, keys, NOW)


# --- the payload form -----------------------------------------------------------------------


def test_payload_round_trip_and_header_name() -> None:
    signed = adyen.sign(b'{"type":"balancePlatform.transfer.created"}', PAYLOAD, UTIL_RING, NOW)
    assert list(signed.headers) == ["hmacsignature"]
    assert adyen.verify(signed.body, signed.headers, PAYLOAD, UTIL_RING, NOW).key_index == 0
    with pytest.raises(SignatureMismatch):
        adyen.verify(signed.body + b" ", signed.headers, PAYLOAD, UTIL_RING, NOW)


def test_payload_missing_header() -> None:
    with pytest.raises(MissingSignature):
        adyen.verify(b"{}", {}, PAYLOAD, UTIL_RING, NOW)


def test_payload_signed_content_is_the_body() -> None:
    assert adyen.signed_content(b"{}", PAYLOAD) == b"{}"


# --- HTTP Basic -----------------------------------------------------------------------------

BASIC = basic_authorization("adyen-ws", "s3cret-pässword")
BASIC_RING = KeyRing(secrets=UTIL_RING.secrets, authorizations=(BASIC,))


def basic(username: str, password: str) -> dict[str, str]:
    return {
        "authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }


def test_basic_credentials_accepted() -> None:
    headers = basic("adyen-ws", "s3cret-pässword")
    assert adyen.verify(UTIL_BODY, headers, ITEMS, BASIC_RING, NOW)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param(basic("adyen-ws", "wrong"), id="wrong-password"),
        pytest.param(basic("other", "s3cret-pässword"), id="wrong-user"),
        pytest.param({"authorization": "Bearer x"}, id="other-scheme"),
        pytest.param({"authorization": "Basic \udcff"}, id="undecodable"),
        pytest.param({"authorization": "Basic \ud800"}, id="lone-surrogate"),
    ],
)
def test_basic_credentials_refused_before_the_body_is_read(headers: dict[str, str]) -> None:
    with pytest.raises(AuthorizationMismatch) as caught:
        adyen.verify(b"not even json", headers, ITEMS, BASIC_RING, NOW)
    assert caught.value.status == 401
    assert "s3cret" not in str(caught.value)


def test_basic_applies_to_the_payload_form_and_sign_sends_it() -> None:
    signed = adyen.sign(b"{}", PAYLOAD, BASIC_RING, NOW)
    assert signed.headers["authorization"] == basic("adyen-ws", "s3cret-pässword")["authorization"]
    headers = dict(signed.headers)
    assert adyen.verify(signed.body, headers, PAYLOAD, BASIC_RING, NOW)
    del headers["authorization"]
    with pytest.raises(AuthorizationMismatch):
        adyen.verify(signed.body, headers, PAYLOAD, BASIC_RING, NOW)


def test_basic_user_name_cannot_hold_a_colon() -> None:
    with pytest.raises(ValueError, match="cannot contain ':'"):
        basic_authorization("a:b", "c")


def test_params_refuse_an_unknown_form() -> None:
    with pytest.raises(ValueError, match="form must be one of"):
        Params(form="batch")  # type: ignore[arg-type]


def test_required_keys() -> None:
    assert adyen.required_keys(ITEMS) == {"secrets"}


def test_signature_of_matches_the_vector() -> None:
    """The inline helper above is the SDK's algorithm (else the tests using it prove little)."""
    assert signature_of(UTIL_ITEM) == UTIL_SIGNATURE
