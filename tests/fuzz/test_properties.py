"""Property-based hostile input (hypothesis) against the pure layers, every fuzz instance:

- verifying arbitrary bodies and headers raises only a 4xx ``VerificationError``, and never
  verifies;
- a real signed request with any bit of its body or signature flipped never verifies
  (unless, for ``sign``-field schemes, the flip leaves the signed members unchanged);
- the same two, scheme by scheme, for the providers whose schemes have no profile yet
  (Adyen, whose flips may only verify where they leave the signed items unchanged,
  Paddle, Square, and GoCardless, Razorpay, Checkout.com, Coinbase Commerce as
  ``hmac-header`` parameters);
- reading a payload and normalizing an authentic payload of any shape raise only
  ``NormalizationError``: a signed body of hostile shape becomes a dead letter, never a crash;
  and every event that is built decodes (``schemas.decoder``, headers checked): what Relay
  publishes and what the decoder reads are one set (``schemas.ranges``);
- the client address for the allow-list never raises, whatever the peer and header say.

Example counts stay small for CI; ``make fuzz`` runs them with more (``RELAY_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import time
import xml.sax.saxutils
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config import Config, ProviderInstance, parse_config
from relay.http import client_address
from relay.pipeline import Inbound, normalize
from relay.records import to_kafka_record
from relay.samples import signed_sample
from schemas import NormalizationError, parse_payload
from schemas.decoder import decode_event
from tests.fuzz.instances import decode, fuzz_providers, signature_of
from tests.fuzz.mutations import (
    Request,
    adyen_items_equivalent,
    sign_field_equivalent,
    slot_value,
)
from verifiers import VerificationError, adyen, hmac_header, paddle, square
from verifiers.base import Scheme, decode_base64, decode_hex
from verifiers.keys import KeyRing, Secret

EXAMPLES = int(os.environ.get("RELAY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
NOW = time.time()

CONFIG: Config = parse_config({"providers": fuzz_providers()}, env={})
INSTANCES = sorted(CONFIG.providers)


def instance_named(name: str) -> ProviderInstance:
    return CONFIG.providers[name]


def header_names(instance: ProviderInstance) -> list[str]:
    """Every header name the instance's scheme reads, lower-cased as the HTTP layer passes them."""
    params = instance.params
    names = {"content-type", "webhook-id", "webhook-timestamp", "webhook-signature"}
    names |= {"stripe-signature", "x-timestamp", "app-id"}
    for attribute in ("header", "signature_header", "timestamp_header", "app_id_header"):
        value = getattr(params, attribute, "")
        if value:
            names |= {value.lower(), value.lower().replace("_", "-")}
    return sorted(names)


header_text = st.one_of(
    st.text(max_size=200),
    st.from_regex(r"\A(t=[0-9]{1,20},)?(v1[=,])?[0-9a-fA-F]{0,130}\Z"),
    st.from_regex(r"\A[A-Za-z0-9+/_=-]{0,400}\Z"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


@pytest.mark.parametrize("name", INSTANCES)
@FUZZ
@given(data=st.data(), body=st.binary(max_size=2000))
def test_arbitrary_requests_never_verify(name: str, data: st.DataObject, body: bytes) -> None:
    instance = instance_named(name)
    names = header_names(instance)
    headers = data.draw(st.dictionaries(st.sampled_from(names), header_text, max_size=len(names)))
    if instance.profile.scheme.name == "sign-field" and data.draw(st.booleans()):
        # A JSON object with a sign member, so the scheme gets past reading the body.
        members = data.draw(st.dictionaries(st.text(max_size=10), st.text(max_size=20)))
        body = json.dumps({**members, "sign": data.draw(header_text)}).encode()
    with pytest.raises(VerificationError) as caught:
        instance.profile.scheme.verify(body, headers, instance.params, instance.keys, NOW)
    assert 400 <= caught.value.status < 500


def signed_request(instance: ProviderInstance) -> Request:
    sample = signed_sample(instance, order="fz0000000000000000", now=NOW)
    return Request("POST", "/", list(sample.headers.items()), sample.body)


SIGNED = {name: signed_request(instance_named(name)) for name in INSTANCES}


def verifies(instance: ProviderInstance, request: Request) -> bool:
    headers = {name.lower(): value for name, value in request.headers}
    try:
        instance.profile.scheme.verify(request.body, headers, instance.params, instance.keys, NOW)
    except VerificationError as error:
        assert error.status < 500, error
        return False
    return True


@pytest.mark.parametrize("name", INSTANCES)
def test_the_signed_requests_verify(name: str) -> None:
    """The starting point of the flips below is itself valid (or they would prove nothing)."""
    assert verifies(instance_named(name), SIGNED[name])


@pytest.mark.parametrize("name", INSTANCES)
@FUZZ
@given(data=st.data())
def test_a_flipped_bit_of_the_body_never_verifies(name: str, data: st.DataObject) -> None:
    instance, original = instance_named(name), SIGNED[name]
    position = data.draw(st.integers(0, len(original.body) - 1))
    bit = data.draw(st.integers(0, 7))
    body = bytearray(original.body)
    body[position] ^= 1 << bit
    mutated = Request("POST", "/", original.headers, bytes(body))
    if verifies(instance, mutated):
        if instance.profile.scheme.name == "adyen":  # only the items' signed fields are signed
            assert adyen_items_equivalent(original.body, mutated.body)
            return
        if signature_of(instance).slot.form:
            # Braintree's form: only a re-spelling of the same fields ("%7C" as "%7c"); the
            # signature's hex has one case (verifiers/braintree.py), so it is never one of them.
            assert parse_qsl(original.body.decode()) == parse_qsl(mutated.body.decode())
            return
        assert instance.profile.scheme.name == "sign-field"
        assert sign_field_equivalent(original.body, mutated.body, instance.params.sign_field)


@pytest.mark.parametrize("name", INSTANCES)
@FUZZ
@given(data=st.data())
def test_a_flipped_bit_of_the_signature_never_verifies(name: str, data: st.DataObject) -> None:
    instance, original = instance_named(name), SIGNED[name]
    slot = signature_of(instance).slot
    found = slot_value(original, slot)
    assert found is not None
    text, start, end = found
    position = data.draw(st.integers(start, end - 1))
    flipped = chr(ord(text[position]) ^ (1 << data.draw(st.integers(0, 6))))
    changed = text[:position] + flipped + text[position + 1 :]
    if slot.in_body:
        mutated = Request("POST", "/", original.headers, changed.encode("utf-8", "replace"))
    else:
        headers = [
            (n, changed if n.lower() == slot.name.lower() else v) for n, v in original.headers
        ]
        mutated = Request("POST", "/", headers, original.body)
    if verifies(instance, mutated):
        # Only another spelling of the same bytes may pass, as the scheme reads them: hex in
        # the other case, a base64 character differing only in bits that carry no data (the
        # last one before the padding), padding turned into whitespace around the value.
        encoding = signature_of(instance).encoding
        read = decode_hex if encoding.lower() == "hex" else decode_base64
        spelled = changed[start : end + len(changed) - len(text)]
        assert read(spelled, "the mutated signature") == decode(text[start:end], encoding), (
            text[position],
            flipped,
        )


# --- payloads and normalizers -------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.text(max_size=50),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e999",
            "NaN",
            "2024-02-30",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31 23:59:59",
            "0001-01-01 00:00:00",
            "253402300799",
            "253402300800000",
        ]
    ),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
raw_numbers = st.sampled_from(
    [
        "1e999999999",
        "-1e-999999999",
        "1e999999999999999999999",
        "-1.5e-999999999999999999999",
        "1e999999",
        "1e1000000",
        "9" * 4400,
        "9" * 4301,
        "1" + "0" * 4299,
        "1." + "0" * 4300,
        "-0.0",
        "0.1e-7",
        "1E+2",
    ]
)


@FUZZ
@given(body=st.binary(max_size=3000))
def test_reading_any_body_raises_only_normalization_errors(body: bytes) -> None:
    with contextlib.suppress(NormalizationError):
        parse_payload(body)


def _replace_somewhere(document: Any, data: st.DataObject, value: Any) -> Any:
    """``document`` with one member, at any depth, replaced by ``value``."""
    if isinstance(document, dict) and document and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(document)))
        return {**document, key: _replace_somewhere(document[key], data, value)}
    if isinstance(document, list) and document and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(document) - 1))
        return [
            *document[:index],
            _replace_somewhere(document[index], data, value),
            *document[index + 1 :],
        ]
    return value


@pytest.mark.parametrize("name", INSTANCES)
@FUZZ
@given(data=st.data())
def test_normalizing_an_authentic_payload_of_any_shape_never_crashes(
    name: str, data: st.DataObject
) -> None:
    instance = instance_named(name)
    samples = instance.profile.samples
    event = data.draw(st.sampled_from(sorted(samples)))
    sample = samples[event].build(NOW, "fz0000000000000000")
    if "application/json" not in instance.profile.content_types:
        # Braintree's XML notification: changed as data, written back, signed into its form.
        signed = instance.profile.scheme.sign(sample.body, instance.params, instance.keys, NOW)
        tree = instance.profile.payload(signed.body, instance.params)
        changed = _replace_somewhere(tree, data, data.draw(json_values))
        xml = (
            "".join(_xml(tag, value) for tag, value in changed.items())
            if isinstance(changed, dict) and changed
            else _xml("notification", changed)
        )
        body = instance.profile.scheme.sign(xml.encode(), instance.params, instance.keys, NOW).body
        try:
            event_out = normalize(Inbound(instance, body, {}, datetime.fromtimestamp(NOW, UTC)))
        except NormalizationError:
            return
        to_kafka_record(event_out, "topic")
        return
    document = json.loads(sample.body)
    if data.draw(st.booleans()):
        body = json.dumps(_replace_somewhere(document, data, data.draw(json_values))).encode()
    else:
        # A number json.dumps cannot write, spliced in as text.
        placeholder = "\u0000number"
        replaced = _replace_somewhere(document, data, placeholder)
        body = json.dumps(replaced).replace('"\\u0000number"', data.draw(raw_numbers)).encode()
    headers = {name.lower(): value for name, value in sample.headers.items()}
    received = datetime.fromtimestamp(NOW, UTC)
    reader = instance.profile.items
    if reader is not None:
        # A batch: signed as its sender would sign it (Adyen's items carry their signatures,
        # which the items reader reads), then every item normalized as the pipeline does.
        with contextlib.suppress(VerificationError, NormalizationError):
            body = instance.profile.scheme.sign(body, instance.params, instance.keys, NOW).body
            for position, item in enumerate(reader(body, instance.params)):
                with contextlib.suppress(NormalizationError):
                    inbound = Inbound(instance, body, headers, received, item=position)
                    to_kafka_record(normalize(inbound, item), "topic")
        return
    try:
        event_out = normalize(Inbound(instance, body, headers, received))
    except NormalizationError:
        return
    record = to_kafka_record(event_out, "topic")
    decode_event(record.value, record.headers)


def _xml(tag: str, value: Any) -> str:
    """A value of Braintree's notification as data, back to its XML (see verifiers.braintree)."""
    if value is None:
        return f'<{tag} nil="true"/>'
    if isinstance(value, list):
        return f'<{tag} type="array">' + "".join(_xml("item", item) for item in value) + f"</{tag}>"
    if isinstance(value, dict):
        inner = "".join(
            _xml(key if _NAME.fullmatch(key) else "x", item) for key, item in value.items()
        )
        return f"<{tag}>{inner}</{tag}>"
    text = "".join(char for char in str(value) if char.isprintable())
    return f"<{tag}>{xml.sax.saxutils.escape(text)}</{tag}>"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


# --- schemes before their profiles -------------------------------------------------------
# The providers whose schemes exist without a profile yet (Adyen, Paddle, Square, and the
# hmac-header parameters of GoCardless, Razorpay, Checkout.com, Coinbase Commerce), attacked
# scheme by scheme with the same two properties.

ADYEN_KEY = "ab" * 32
ADYEN_NOTIFICATION = json.dumps(
    {
        "live": "false",
        "notificationItems": [
            {
                "NotificationRequestItem": {
                    "pspReference": f"PSP{index}",
                    "merchantAccountCode": "FuzzMerchant",
                    "merchantReference": "order:1",
                    "amount": {"value": 1130, "currency": "EUR"},
                    "eventCode": "AUTHORISATION",
                    "success": "true",
                    "eventDate": "2024-01-01T00:00:00Z",
                }
            }
            for index in range(2)
        ],
    }
).encode()
PLAIN_BODY = b'{"id":"evt_fz","type":"payment.succeeded","amount":"10.00"}'
GUARD = (Secret.of("fuzz-authorization"),)


@dataclass(frozen=True)
class SchemeCase:
    scheme: Scheme
    params: Any
    keys: KeyRing
    body: bytes
    headers: tuple[str, ...]
    """The header names the scheme reads, lower-case."""


def _hmac_case(header: str, **options: Any) -> SchemeCase:
    keys = KeyRing(secrets=(Secret.of(f"fuzz-{header}-secret"),), **options)
    return SchemeCase(hmac_header, hmac_header.Params(header=header), keys, PLAIN_BODY, (header,))


SCHEME_CASES: dict[str, SchemeCase] = {
    "adyen": SchemeCase(
        adyen, adyen.Params(), KeyRing(secrets=(Secret.of(ADYEN_KEY),)), ADYEN_NOTIFICATION, ()
    ),
    "adyen-basic": SchemeCase(
        adyen,
        adyen.Params(),
        KeyRing(secrets=(Secret.of(ADYEN_KEY),), authorizations=GUARD),
        ADYEN_NOTIFICATION,
        ("authorization",),
    ),
    "adyen-payload": SchemeCase(
        adyen,
        adyen.Params(form="payload"),
        KeyRing(secrets=(Secret.of(ADYEN_KEY),)),
        PLAIN_BODY,
        ("hmacsignature",),
    ),
    "paddle": SchemeCase(
        paddle,
        paddle.Params(),
        KeyRing(secrets=(Secret.of("pdl_ntfset_fuzz"),)),
        PLAIN_BODY,
        ("paddle-signature",),
    ),
    "square": SchemeCase(
        square,
        square.Params(notification_url="https://relay.example/webhooks/square"),
        KeyRing(secrets=(Secret.of("fuzz-square-key"),)),
        PLAIN_BODY,
        (square.HEADER,),
    ),
    "gocardless": SchemeCase(
        hmac_header,
        hmac_header.Params(header="webhook-signature", refusal_status=498),
        KeyRing(secrets=(Secret.of("fuzz-gocardless-secret"),)),
        PLAIN_BODY,
        ("webhook-signature",),
    ),
    "razorpay": _hmac_case("x-razorpay-signature"),
    "checkout": _hmac_case("cko-signature", authorizations=GUARD),
    "coinbase": _hmac_case("x-cc-webhook-signature"),
}
SCHEME_NAMES = sorted(SCHEME_CASES)

scheme_header_text = st.one_of(
    header_text,
    st.from_regex(r"\A(ts=[0-9]{1,20};)?(h1=[0-9a-fA-F]{0,70};?){0,10}\Z"),
    st.just("fuzz-authorization"),
)
adyen_bodies = st.builds(
    lambda items: json.dumps({"notificationItems": items}).encode(),
    st.lists(
        st.builds(
            lambda item, signature: {
                "NotificationRequestItem": {**item, "additionalData": {"hmacSignature": signature}}
            },
            st.dictionaries(
                st.sampled_from([*adyen.SIGNED_FIELDS, "amount"]), json_scalars, max_size=8
            ),
            st.one_of(header_text, json_scalars),
        ),
        max_size=4,
    ),
)


def scheme_verifies(case: SchemeCase, body: bytes, headers: dict[str, str]) -> bool:
    try:
        case.scheme.verify(body, headers, case.params, case.keys, NOW)
    except VerificationError as error:
        assert 400 <= error.status < 500, error
        return False
    return True


@pytest.mark.parametrize("name", SCHEME_NAMES)
@FUZZ
@given(data=st.data(), body=st.binary(max_size=2000))
def test_arbitrary_requests_never_verify_under_any_scheme(
    name: str, data: st.DataObject, body: bytes
) -> None:
    case = SCHEME_CASES[name]
    if case.scheme is adyen and case.params.form == "items" and data.draw(st.booleans()):
        body = data.draw(adyen_bodies)
    names = [*case.headers, "authorization"]
    headers = data.draw(st.dictionaries(st.sampled_from(names), scheme_header_text))
    assert not scheme_verifies(case, body, headers)


@pytest.mark.parametrize("name", SCHEME_NAMES)
@FUZZ
@given(data=st.data())
def test_a_flipped_bit_of_a_signed_request_never_verifies_under_any_scheme(
    name: str, data: st.DataObject
) -> None:
    case = SCHEME_CASES[name]
    signed = case.scheme.sign(case.body, case.params, case.keys, NOW)
    headers = {key.lower(): value for key, value in signed.headers.items()}
    assert scheme_verifies(case, signed.body, headers)
    if data.draw(st.booleans()) or not headers:
        body = bytearray(signed.body)
        body[data.draw(st.integers(0, len(body) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        if scheme_verifies(case, bytes(body), headers):
            # Only Adyen's items leave bytes unsigned: what they sign must be unchanged.
            assert case.scheme is adyen
            assert adyen.signed_content(bytes(body), case.params) == adyen.signed_content(
                signed.body, case.params
            )
    else:
        name = data.draw(st.sampled_from(sorted(headers)))
        text = headers[name]
        position = data.draw(st.integers(0, len(text) - 1))
        flipped = chr(ord(text[position]) ^ (1 << data.draw(st.integers(0, 6))))
        changed = {**headers, name: text[:position] + flipped + text[position + 1 :]}
        if scheme_verifies(case, signed.body, changed):
            # Only another spelling of the same bytes: hex in the other case, base64
            # padding turned into whitespace (which the decoders strip).
            assert name != "authorization"
            case_only = flipped.lower() == text[position].lower() != flipped
            assert case_only or (text[position] == "=" and flipped.isspace())


# --- addresses ----------------------------------------------------------------------------

addresses = st.one_of(st.ip_addresses().map(str), st.text(max_size=40))
EVERY_ADDRESS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@FUZZ
@given(peer=st.one_of(st.none(), addresses), hops=st.lists(addresses, max_size=5))
def test_client_address_never_raises(peer: str | None, hops: list[str]) -> None:
    for trusted in ((), EVERY_ADDRESS):
        client_address(peer, [", ".join(hops)], trusted)
