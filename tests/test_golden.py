"""Golden files for every normalizer: ``tests/golden/<profile>/<case>.*``.

Cases are found by glob, so adding a case is adding files (the format is in
``tests/golden/README.md``). Each case is the exact body bytes, optional
headers and instance context, and the expected event or error reason. Every
successful case also checks the invariants a consumer relies on: the event
validates against the published JSON Schema, ``data.raw`` is the body
unchanged (numbers keep their exact text), amounts are strings or null, a
retry gets the same id, and a changed status gets a new id unless the
provider's own id is used.

A batch profile's case (one with an items reader: ``adyen``, ``gocardless``) is a
whole request, and its ``.out.json`` the list of what each notification becomes,
in the body's order (an event, or ``{"error": reason}`` for its dead letter), or
one ``{"error": reason}`` when the body cannot be read as a batch at all. Each
item's event passes the same checks, its ``raw`` being the item's own bytes.

``RELAY_GOLDEN_UPDATE=1`` rewrites the ``.out.json`` files from the current
normalizers; read every changed file before committing it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import orjson
import pytest

import schemas
from relay.profiles import PROFILES as REGISTRY
from relay.providers.base import BatchItem
from schemas.errors import NormalizationError
from schemas.event import (
    PAYMENT_SCHEMA,
    PAYMENT_SCHEMA_V2,
    CanonicalEvent,
    Message,
    NormalizeContext,
)
from schemas.payload import parse_payload
from verifiers.keys import KeyRing, Secret

GOLDEN = Path(__file__).parent / "golden"
SCHEMA_PATH = Path(schemas.__file__).parent / "payment-event.schema.json"
UPDATE = os.environ.get("RELAY_GOLDEN_UPDATE") == "1"
RECEIVED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
AMOUNT_FIELDS = ("amount", "amount_received", "fee", "fiat_amount")
PAYMENT_SCHEMAS = (PAYMENT_SCHEMA, PAYMENT_SCHEMA_V2)


@dataclass(frozen=True)
class Case:
    profile: str
    name: str
    body: bytes
    headers: dict[str, str]
    context: dict[str, Any]
    out: Path
    wrapped: bool = False
    """The case's input is the provider's notification in a format other than the body
    (``<case>.in.xml``: Braintree's XML), wrapped into a body as the scheme's ``sign`` does."""

    def ctx(self, received_at: datetime = RECEIVED_AT) -> NormalizeContext:
        zone = self.context.get("timezone")
        return NormalizeContext(
            provider=self.context.get("provider", self.profile),
            profile=self.profile,
            received_at=received_at,
            timezone=ZoneInfo(zone) if zone else None,
            flow=self.context.get("flow"),
            status_overrides=self.context.get("status_overrides", {}),
            # As the config loader does: the instance's id header, else the profile's.
            id_header=self.context.get("id_header") or REGISTRY[self.profile].id_header or None,
            order_id_metadata_key=self.context.get("order_id_metadata_key"),
        )


def _cases() -> list[Case]:
    cases = []
    for body_path in sorted([*GOLDEN.glob("*/*.in.json"), *GOLDEN.glob("*/*.in.xml")]):
        name, _, suffix = body_path.name.rpartition(".in.")
        meta_path = body_path.with_name(f"{name}.meta.json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        wrapped = suffix != "json"
        body = body_path.read_bytes()
        if wrapped:  # signed with a throwaway key: the harness reads, it does not verify
            profile = REGISTRY[body_path.parent.name]
            keys = KeyRing(secrets=(Secret.of("golden"),))
            body = profile.scheme.sign(body, profile.params, keys, 0).body
        cases.append(
            Case(
                profile=body_path.parent.name,
                name=name,
                body=body,
                wrapped=wrapped,
                # As the HTTP layer hands them over: lower-case names.
                headers={key.lower(): value for key, value in meta.get("headers", {}).items()},
                context=meta.get("context", {}),
                out=body_path.with_name(f"{name}.out.json"),
            )
        )
    return cases


CASES = _cases()


def _run(case: Case, body: bytes, received_at: datetime = RECEIVED_AT) -> CanonicalEvent:
    """The pipeline's normalize stage: read what the signature pins, then normalize."""
    profile = REGISTRY[case.profile]
    payload = profile.payload(body, profile.params)
    message = Message(body=body, payload=payload, headers=case.headers)
    return profile.normalize(message, case.ctx(received_at))


def _exact(text: bytes | str) -> Any:
    """JSON with every number kept as its text, so ``150.0000`` differs from ``150.0`` and ``"150.0000"``."""
    return json.loads(text, parse_float=_number, parse_int=_number)


def _number(text: str) -> tuple[str, str]:
    return ("number", text)


def _dump(payload: Any) -> bytes:
    """A changed payload back to bytes, its Decimals written as they were parsed."""
    return orjson.dumps(payload, default=_decimal)


def _decimal(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON")


def _write(case: Case, result: CanonicalEvent | NormalizationError) -> None:
    if isinstance(result, NormalizationError):
        text = orjson.dumps({"error": result.reason}, option=orjson.OPT_INDENT_2)
    else:
        text = orjson.dumps(result.envelope(), option=orjson.OPT_INDENT_2)
    case.out.write_bytes(text + b"\n")


def _run_batch(
    case: Case, body: bytes, received_at: datetime = RECEIVED_AT
) -> list[tuple[BatchItem, CanonicalEvent | NormalizationError]]:
    """The pipeline's normalize stage for each item of a batch request, in order."""
    profile = REGISTRY[case.profile]
    assert profile.items is not None
    results: list[tuple[BatchItem, CanonicalEvent | NormalizationError]] = []
    for item in profile.items(body, profile.params):
        message = Message(body=item.body, payload=item.payload, headers=case.headers)
        try:
            results.append((item, profile.normalize(message, case.ctx(received_at))))
        except NormalizationError as error:
            results.append((item, error))
    return results


def _result_document(result: CanonicalEvent | NormalizationError) -> Any:
    if isinstance(result, NormalizationError):
        return {"error": result.reason}
    return result.envelope()


def _test_batch(case: Case) -> None:
    try:
        results = _run_batch(case, case.body)
    except NormalizationError as error:
        document: Any = {"error": error.reason}
    else:
        document = [_result_document(result) for _, result in results]
    if UPDATE:
        case.out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    assert case.out.exists(), f"{case.out} is missing: run with RELAY_GOLDEN_UPDATE=1, then read it"
    expected = _exact(case.out.read_bytes())
    assert _exact(orjson.dumps(document)) == expected
    if isinstance(document, dict):
        return
    ids = []
    for item, result in results:
        if isinstance(result, NormalizationError):
            continue
        published = result.to_json()
        VALIDATOR.validate(json.loads(published))
        # raw is the item itself, embedded byte for byte, and the item is in the body.
        assert item.body in case.body and item.body in published
        assert _exact(published)["data"]["raw"] == _exact(item.body)
        ids.append(result.id)
    # A retry of the request (received later) makes the same events.
    again = _run_batch(case, case.body, RECEIVED_AT + timedelta(minutes=5))
    assert [r.id for _, r in again if isinstance(r, CanonicalEvent)] == ids
    # Every notification its own event: distinct ids, unless the very same one is repeated.
    distinct = {item.identity for item, result in results if isinstance(result, CanonicalEvent)}
    assert len(set(ids)) == len(distinct)


@pytest.mark.parametrize("case", CASES, ids=[f"{case.profile}/{case.name}" for case in CASES])
def test_golden(case: Case) -> None:
    if REGISTRY[case.profile].items is not None:
        _test_batch(case)
        return
    try:
        result: CanonicalEvent | NormalizationError = _run(case, case.body)
    except NormalizationError as error:
        result = error
    if UPDATE:
        _write(case, result)
    assert case.out.exists(), f"{case.out} is missing: run with RELAY_GOLDEN_UPDATE=1, then read it"
    expected = _exact(case.out.read_bytes())
    if "error" in expected:
        assert isinstance(result, NormalizationError), f"expected {expected}, got an event"
        assert result.reason == expected["error"], str(result)
        return
    assert isinstance(result, CanonicalEvent), f"{result.reason}: {result}"
    published = result.to_json()
    assert _exact(published) == expected
    _check_invariants(case, result, published)


# The schema's own pattern pins times to UTC RFC 3339, so no format checker is needed.
VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def _check_invariants(case: Case, event: CanonicalEvent, published: bytes) -> None:
    VALIDATOR.validate(json.loads(published))

    if case.wrapped:
        # raw is the notification the profile reads, as JSON: the body is not JSON.
        profile = REGISTRY[case.profile]
        payload = profile.payload(case.body, profile.params)
        assert _exact(published)["data"]["raw"] == _exact(orjson.dumps(payload))
    else:
        # raw is the body itself, embedded byte for byte.
        assert case.body in published
        assert _exact(published)["data"]["raw"] == _exact(case.body)

    if event.dataschema in PAYMENT_SCHEMAS:
        for name in AMOUNT_FIELDS:
            value = event.data[name]
            assert value is None or isinstance(value, str), f"{name} is {value!r}"

    # A retry (same bytes, received later) is the same event.
    retry = _run(case, case.body, RECEIVED_AT + timedelta(minutes=5))
    assert retry.id == event.id
    again = _exact(retry.to_json())
    assert again.pop("relayreceivedat") != _exact(published)["relayreceivedat"]
    assert again == {
        key: value for key, value in _exact(published).items() if key != "relayreceivedat"
    }

    # A wrapped notification cannot be changed and re-read as JSON: its profile's own tests
    # check that its id follows the status.
    if not case.wrapped:
        _check_identity(case, event)


def _check_identity(case: Case, event: CanonicalEvent) -> None:
    """Where the id is the sender's own (a header's value or a string of the payload), it
    stays when the status (or, for a webhook event, the body) changes; where it is a hash,
    the change is a new event."""
    message = Message(body=case.body, payload=parse_payload(case.body), headers=case.headers)
    source = _id_source(event.id, message)
    # A status read from two fields (PayPal's resolved dispute, ``RESOLVED:<outcome>``) has
    # no one field to change: where the id is then the sender's header, another body must
    # keep it, as for a webhook event.
    composite = (
        source == "headers"
        and event.dataschema in PAYMENT_SCHEMAS
        and not any(_holders(message.payload, event.data["provider_status"]))
    )
    if event.dataschema in PAYMENT_SCHEMAS and not composite:
        changed = _with_other_status(case, event, message.payload)
    elif source == "payload":
        return  # the id is the body's: the .out.json pins where it is read
    else:
        # Another body: one more member where the body is an object (a sender's envelope
        # stays readable), else the body wrapped in one.
        payload = message.payload
        other = {**payload, "changed": True} if isinstance(payload, dict) else {"changed": payload}
        changed = _run(case, _dump(other))
    if source is None:
        assert changed.id != event.id, "a hash id did not change with the status"
    else:
        assert changed.id == event.id, f"the sender's own id (from the {source}) changed"


def _id_source(event_id: str, message: Message) -> str | None:
    if event_id in message.headers.values():
        return "headers"
    if event_id in _strings(message.payload):
        return "payload"
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _with_other_status(case: Case, event: CanonicalEvent, payload: Any) -> CanonicalEvent:
    """The event of a copy of the payload whose status field holds another status of the same
    flow that the profile's golden cases show (without status overrides). The status field is
    the one text or integer member reading as ``data.provider_status`` whose change the
    normalizer reports as the new provider status."""
    current = event.data["provider_status"]
    others = sorted(STATUSES_SEEN[case.profile, event.data["flow"]] - {current})
    assert others, f"{case.profile}: no golden case with another {event.data['flow']} status"
    # The first other status this payload can hold: where one flow has several status tables
    # (Stripe's payment intents and charges), not every status of the flow fits every object.
    for other in others:
        changed_events = []
        for index in range(len(list(_holders(payload, current)))):
            changed = copy.deepcopy(payload)
            holder, key = list(_holders(changed, current))[index]
            holder[key] = int(other) if isinstance(holder[key], int) else other
            try:
                result = _run(case, _dump(changed))
            except NormalizationError:
                continue
            if result.data["provider_status"] == other:
                changed_events.append(result)
        assert len(changed_events) <= 1, (
            f"{len(changed_events)} fields read as the status {current!r}"
        )
        if changed_events:
            return changed_events[0]
    raise AssertionError(f"no field reads as the status {current!r}")


def _holders(value: Any, status: str) -> Iterator[tuple[Any, Any]]:
    """``(container, key)`` of every text or integer member that reads as ``status``."""
    members = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in members:
        if isinstance(item, dict | list):
            yield from _holders(item, status)
        elif isinstance(item, str | int) and not isinstance(item, bool) and str(item) == status:
            yield value, key


def _statuses_seen() -> dict[tuple[str, str], set[str]]:
    """Each profile's provider statuses per flow, from its golden events (no overrides)."""
    seen: dict[tuple[str, str], set[str]] = {}
    for case in CASES:
        if "status_overrides" in case.context or not case.out.exists():
            continue
        expected = json.loads(case.out.read_text())
        if isinstance(expected, list):  # a batch: its items are checked by _test_batch
            continue
        if expected.get("dataschema") in PAYMENT_SCHEMAS:
            data = expected["data"]
            seen.setdefault((case.profile, data["flow"]), set()).add(data["provider_status"])
    return seen


STATUSES_SEEN = _statuses_seen()


def test_golden_tree_is_complete() -> None:
    """Every profile folder is a registered profile, and no file is orphaned (a typo would skip a case)."""
    assert CASES, "no golden cases found"
    profiles = {path.name for path in GOLDEN.iterdir() if path.is_dir()}
    assert profiles <= set(REGISTRY)
    assert set(REGISTRY) <= profiles, "every profile has golden cases"
    names = {case.out.with_name(case.name) for case in CASES}
    for path in GOLDEN.glob("*/*.json"):
        stem = path.name.removesuffix(".json").rsplit(".", 1)
        assert len(stem) == 2 and stem[1] in ("in", "out", "meta"), f"unexpected file {path}"
        assert path.with_name(stem[0]) in names, f"{path} has no .in.json"


def _payment_event() -> dict[str, Any]:
    """A valid payment event from a golden file, for the schema's negative tests."""
    event = json.loads((GOLDEN / "usdt-invoice" / "confirmed.out.json").read_text())
    VALIDATOR.validate(event)
    return event


SCHEMA_VIOLATIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "amount as a JSON number": lambda e: e["data"].update(amount=150.0),
    "amount in exponent notation": lambda e: e["data"].update(amount="1.5e2"),
    "amount with a separator": lambda e: e["data"].update(amount="1,500.00"),
    "payment field left out instead of null": lambda e: e["data"].pop("fee"),
    "field the contract does not have": lambda e: e["data"].update(extra="x"),
    "final disagreeing with the status": lambda e: e["data"].update(final=False),
    "status outside the enum": lambda e: e["data"].update(status="paid"),
    "flow outside the enum": lambda e: e["data"].update(flow="refund"),
    "payment type without a status": lambda e: e.update(type="payment.payin"),
    "time not in UTC": lambda e: e.update(time="2024-01-15T14:32:00+08:00"),
    "no receipt time": lambda e: e.pop("relayreceivedat"),
    "unknown dataschema": lambda e: e.update(dataschema="urn:relay:other:v1"),
    "payment data under the webhook schema": lambda e: e.update(
        dataschema="urn:relay:webhook-event:v1"
    ),
    "another CloudEvents version": lambda e: e.update(specversion="0.3"),
}


@pytest.mark.parametrize("why", SCHEMA_VIOLATIONS)
def test_schema_rejects(why: str) -> None:
    """The schema is no rubber stamp: each of these breaks the contract."""
    event = json.loads((GOLDEN / "usdt-invoice" / "confirmed.out.json").read_text())
    VALIDATOR.validate(event)
    SCHEMA_VIOLATIONS[why](event)
    assert not VALIDATOR.is_valid(event)


def test_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] and schema["title"] and schema["description"]


CARD_SCHEMA_VIOLATIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "currency in lower case": lambda e: e["data"].update(currency="usd"),
    "currency left out instead of null": lambda e: e["data"].pop("currency"),
    "final disagreeing with a card status": lambda e: e["data"].update(final=False),
    "a card event labelled version 1": lambda e: e.update(dataschema=PAYMENT_SCHEMA),
    "a version 2 type under version 1": lambda e: (
        e.update(dataschema=PAYMENT_SCHEMA),
        e["data"].pop("currency"),
    ),
    "status outside the version 2 enum": lambda e: e["data"].update(status="captured"),
}


@pytest.mark.parametrize("why", CARD_SCHEMA_VIOLATIONS)
def test_schema_rejects_in_a_card_event(why: str) -> None:
    """Version 2 is closed too, and a version 1 reader never takes a refund for a pay-in."""
    event = json.loads((GOLDEN / "stripe" / "charge_refunded_fully.out.json").read_text())
    VALIDATOR.validate(event)
    CARD_SCHEMA_VIOLATIONS[why](event)
    assert not VALIDATOR.is_valid(event)
