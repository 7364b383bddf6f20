"""Property-based hostile input (hypothesis) against the pure layers, every fuzz instance:

- verifying arbitrary bodies and headers raises only a 4xx ``VerificationError``, and never
  verifies;
- a real signed request with any bit of its body or signature flipped never verifies
  (unless, for ``sign``-field schemes, the flip leaves the signed members unchanged);
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
import time
from datetime import UTC, datetime
from typing import Any

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
from tests.fuzz.mutations import Request, sign_field_equivalent, slot_value
from verifiers import VerificationError
from verifiers.base import decode_base64, decode_hex

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
    try:
        event_out = normalize(Inbound(instance, body, headers, received))
    except NormalizationError:
        return
    record = to_kafka_record(event_out, "topic")
    decode_event(record.value, record.headers)


# --- addresses ----------------------------------------------------------------------------

addresses = st.one_of(st.ip_addresses().map(str), st.text(max_size=40))
EVERY_ADDRESS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@FUZZ
@given(peer=st.one_of(st.none(), addresses), hops=st.lists(addresses, max_size=5))
def test_client_address_never_raises(peer: str | None, hops: list[str]) -> None:
    for trusted in ((), EVERY_ADDRESS):
        client_address(peer, [", ".join(hops)], trusted)
