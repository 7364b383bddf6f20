"""Braintree's form signature (``bt_signature``/``bt_payload``) and its challenge answer.

Vectors from braintree/braintree_python at commit
80b03f49e8923e30bdaeeace2acacfcfa7a517cb (version 4.45.0), whose tests run with
the keys ``integration_public_key`` / ``integration_private_key``
(``tests/test_helper.py``):

- the challenge: ``tests/unit/test_webhooks.py``,
  ``test_verify_returns_a_correct_challenge_response``: ``20f9f8ed05f77439fe955c977e4c8a53``
  is answered ``integration_public_key|d9b899556c966b3f06945ec21311865d35df3ce4``;
- the notifications: ``WebhookTestingGateway.sample_notification`` (the SDK's own
  signed samples, ``braintree/webhook_testing_gateway.py``) for four kinds, run from
  that commit with the clock frozen at 2024-05-06T07:08:09Z (the sample stamps
  ``utcnow()``), and checked there with the SDK's ``WebhookNotificationGateway.parse``;
  its output dicts are ``vectors/braintree/<kind>.json``, posted here as Braintree
  posts them, form-encoded.

Each of the SDK's refusals in ``test_webhooks.py`` is below too.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import pytest

from verifiers import braintree
from verifiers.braintree import MAX_XML_DEPTH, Params
from verifiers.errors import MalformedBody, MalformedSignature, SignatureMismatch
from verifiers.keys import KeyRing, Secret, UnusableKey

VECTORS = Path(__file__).parent / "vectors" / "braintree"
NOW = 1_700_000_000
KINDS = [
    "subscription_charged_successfully",
    "transaction_settled",
    "dispute_opened",
    "subscription_went_past_due",
]
PARAMS = Params(public_key="integration_public_key")
RING = KeyRing(secrets=(Secret.of("integration_private_key"),))


def sample(kind: str) -> dict[str, str]:
    fields: dict[str, str] = json.loads((VECTORS / f"{kind}.json").read_text())
    return fields


def form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


@pytest.mark.parametrize("kind", KINDS)
def test_the_sdk_s_sample_notifications_verify(kind: str) -> None:
    assert braintree.verify(form(**sample(kind)), {}, PARAMS, RING, NOW).key_index == 0


@pytest.mark.parametrize("kind", KINDS)
def test_the_sdk_s_samples_read_as_their_kind(kind: str) -> None:
    notification = braintree.notification(form(**sample(kind)))["notification"]
    assert notification["kind"] == kind
    assert notification["timestamp"] == "2024-05-06T07:08:09Z"


def test_the_challenge_is_answered_as_the_sdk_answers_it() -> None:
    query = {"bt_challenge": "20f9f8ed05f77439fe955c977e4c8a53"}
    assert (
        braintree.answer_challenge(query, PARAMS, RING)
        == "integration_public_key|d9b899556c966b3f06945ec21311865d35df3ce4"
    )


@pytest.mark.parametrize(
    "challenge", ["bad challenge", "20F9F8ED05F77439FE955C977E4C8A53", "abc", "a" * 33, ""]
)
def test_a_challenge_that_is_not_20_to_32_lower_case_hex_digits_is_refused(
    challenge: str,
) -> None:
    with pytest.raises(MalformedBody):
        braintree.answer_challenge({"bt_challenge": challenge}, PARAMS, RING)


def test_a_query_without_a_challenge_is_not_one() -> None:
    assert braintree.answer_challenge({"other": "1"}, PARAMS, RING) is None


def test_completely_invalid_signature() -> None:
    with pytest.raises(SignatureMismatch):
        braintree.verify(
            form(bt_signature="bad_stuff", bt_payload=sample("transaction_settled")["bt_payload"]),
            {},
            PARAMS,
            RING,
            NOW,
        )


def test_parse_raises_when_public_key_is_wrong() -> None:
    wrong = Params(public_key="wrong_public_key")
    ring = KeyRing(secrets=(Secret.of("wrong_private_key"),))
    with pytest.raises(SignatureMismatch, match="no signature for this instance's public key"):
        braintree.verify(form(**sample("transaction_settled")), {}, wrong, ring, NOW)


def test_the_right_public_key_with_another_private_key_is_refused() -> None:
    ring = KeyRing(secrets=(Secret.of("wrong_private_key"),))
    with pytest.raises(SignatureMismatch):
        braintree.verify(form(**sample("transaction_settled")), {}, PARAMS, ring, NOW)


def test_invalid_signature_when_payload_modified() -> None:
    fields = sample("transaction_settled")
    fields["bt_payload"] = "badstuff" + fields["bt_payload"]
    with pytest.raises(SignatureMismatch):
        braintree.verify(form(**fields), {}, PARAMS, RING, NOW)


def test_invalid_signature_when_payload_contains_invalid_characters() -> None:
    fields = sample("transaction_settled")
    fields["bt_payload"] = "~* invalid! *~"
    with pytest.raises(MalformedBody, match="outside base64"):
        braintree.verify(form(**fields), {}, PARAMS, RING, NOW)


def test_parse_retries_payload_with_a_newline() -> None:
    fields = sample("subscription_went_past_due")
    fields["bt_payload"] = fields["bt_payload"].rstrip()
    assert braintree.verify(form(**fields), {}, PARAMS, RING, NOW).key_index == 0
    # Both spellings pin one notification.
    assert braintree.signed_payload(form(**fields)) == braintree.signed_payload(
        form(**sample("subscription_went_past_due"))
    )


def test_one_more_newline_than_signed_is_refused() -> None:
    fields = sample("subscription_went_past_due")
    fields["bt_payload"] += "\n"
    with pytest.raises(SignatureMismatch):
        braintree.verify(form(**fields), {}, PARAMS, RING, NOW)


def test_a_flipped_signature_digit_is_refused() -> None:
    fields = sample("dispute_opened")
    key, digest = fields["bt_signature"].split("|")
    fields["bt_signature"] = f"{key}|{'0' if digest[0] != '0' else '1'}{digest[1:]}"
    with pytest.raises(SignatureMismatch):
        braintree.verify(form(**fields), {}, PARAMS, RING, NOW)


def test_the_right_digest_in_upper_case_hex_is_refused() -> None:
    """One spelling (README, Security, "Re-spellings"): Braintree writes lower-case hex and
    its SDK compares the text, so the same digest in upper case is a malformed signature."""
    fields = sample("dispute_opened")
    key, digest = fields["bt_signature"].split("|")
    assert digest != digest.upper()
    fields["bt_signature"] = f"{key}|{digest.upper()}"
    with pytest.raises(MalformedSignature):
        braintree.verify(form(**fields), {}, PARAMS, RING, NOW)


def test_the_pair_of_the_instance_s_public_key_is_the_one_checked() -> None:
    fields = sample("dispute_opened")
    fields["bt_signature"] = "other_key|" + "0" * 40 + "&" + fields["bt_signature"]
    assert braintree.verify(form(**fields), {}, PARAMS, RING, NOW)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("integration_public_key|zz", id="not-hex"),
        pytest.param("integration_public_key|abcd", id="short"),
        pytest.param("&".join(f"k{i}|00" for i in range(9)), id="too-many-pairs"),
    ],
)
def test_a_malformed_signature_is_refused(signature: str) -> None:
    fields = sample("dispute_opened")
    fields["bt_signature"] = signature
    with pytest.raises(MalformedSignature):
        braintree.verify(form(**fields), {}, PARAMS, RING, NOW)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"bt_payload=abcd", id="no-signature"),
        pytest.param(b"bt_signature=k%7C00", id="no-payload"),
        pytest.param(b"bt_signature=&bt_payload=abcd", id="empty-signature"),
        pytest.param(b"bt_signature=a&bt_signature=b&bt_payload=abcd", id="signature-twice"),
        pytest.param(b"bt_signature=a&bt_payload=abcd&bt_payload=abcd", id="payload-twice"),
        pytest.param(b'{"bt_signature":"a","bt_payload":"abcd"}', id="json"),
        pytest.param(b"bt_signature=a&bt_payload=ab\xffcd", id="not-ascii"),
        pytest.param(b"&".join(b"f%d=1" % i for i in range(9)), id="too-many-fields"),
    ],
)
def test_a_form_without_exactly_one_of_each_field_is_a_400(body: bytes) -> None:
    with pytest.raises(MalformedBody) as caught:
        braintree.verify(body, {}, PARAMS, RING, NOW)
    assert caught.value.status == 400


def test_an_instance_without_a_public_key_is_unusable() -> None:
    with pytest.raises(UnusableKey):
        braintree.verify(form(**sample("transaction_settled")), {}, Params(), RING, NOW)


def test_sign_writes_what_the_sdk_writes() -> None:
    """Same XML, same key: the SDK's form fields, byte for byte."""
    fields = sample("transaction_settled")
    xml = braintree.signed_payload(form(**fields))
    signed = braintree.sign(xml, PARAMS, RING, NOW)
    assert urllib.parse.parse_qs(signed.body.decode()) == {
        key: [value] for key, value in fields.items()
    }


# --- the XML, read only after the signature verified, as hostile input ---------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<notification><kind>&lol9;</kind></notification>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE n [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<notification><kind>&xxe;</kind></notification>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE n SYSTEM "http://attacker.example/n.dtd">
<notification><kind>check</kind></notification>"""


@pytest.mark.parametrize(
    "xml",
    [
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(EXTERNAL_ENTITY, id="external-entity"),
        pytest.param(EXTERNAL_DTD, id="external-dtd"),
        pytest.param(b"<notification><kind>check</kind>", id="not-well-formed"),
        pytest.param(b"<a>" * (MAX_XML_DEPTH + 1) + b"</a>" * (MAX_XML_DEPTH + 1), id="too-deep"),
        pytest.param(b"<n>" + b"<i/>" * 20_001 + b"</n>", id="too-many-elements"),
        pytest.param(b"<n><kind>a</kind><kind>b</kind></n>", id="element-twice"),
    ],
)
def test_hostile_xml_is_refused_quickly_even_when_signed(xml: bytes) -> None:
    body = braintree.sign(xml, PARAMS, RING, NOW).body
    assert braintree.verify(body, {}, PARAMS, RING, NOW)  # signed: only the parser stands
    started = time.perf_counter()
    with pytest.raises(MalformedBody):
        braintree.notification(body)
    print(f"{xml[:30]!r}: refused in {(time.perf_counter() - started) * 1000:.2f} ms")


def test_an_unsigned_xml_bomb_is_never_parsed() -> None:
    """Verification reads the form and the HMAC only: the bomb is refused as unsigned."""
    body = braintree.sign(BILLION_LAUGHS, PARAMS, KeyRing(secrets=(Secret.of("x"),)), NOW).body
    with pytest.raises(SignatureMismatch):
        braintree.verify(body, {}, PARAMS, RING, NOW)


def test_nil_and_arrays_read_as_null_and_lists() -> None:
    xml = (
        b'<notification><kind>k</kind><a nil="true"/><b type="array"><i>1</i><i>2</i></b>'
        b'<c type="array"/></notification>'
    )
    body = braintree.sign(xml, PARAMS, RING, NOW).body
    assert braintree.notification(body) == {
        "notification": {"kind": "k", "a": None, "b": ["1", "2"], "c": []}
    }
