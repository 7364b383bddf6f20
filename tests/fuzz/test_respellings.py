"""Publish only what the provider signed: re-spellings of a captured request publish nothing new.

The attacker holds one captured, validly signed notification and no keys. Whatever they
send in its place (the same content spelled otherwise, an unsigned header changed) must be
refused (4xx) or acknowledged as a duplicate of what the original published: every body
that verifies under one signature yields the same event, and a request replayed with a
fresh id header publishes nothing new.

Per broker of the matrix, one real ``relay serve`` process with every fuzz instance
(``tests.fuzz.instances``; run as ``tests/fuzz/test_http_fuzz.py`` runs it):

1. originals: each sample event of the instance's profile, signed as ``relay send`` signs
   it (``relay.samples``); plus one whose order reference holds non-ASCII text (not in NFC);
   for ``sign``-field profiles one with integral amounts (``"100"``, which the signed string
   writes as it writes ``100.0`` and ``1e2``) and one with two members folded into one value
   (``"orderId":"A&orderNo=B"``), so that splitting is a re-spelling too (left out, and said
   so, where the scheme refuses to sign such a body); for ``usdt-collect-pay`` a
   payout-shaped one (no ``actualAmount``). Each is posted once, and the topics are read:
   the event each original produced;
2. re-spellings, never re-signed: each original again as is, then ``RELAY_FUZZ_EXAMPLES``
   per instance (default 150) drawn by hypothesis from :mod:`tests.fuzz.respell` (number
   forms, null and empty members, member order, whitespace, escapes, Unicode forms, fresh or
   missing id headers, ``&``/``=`` folds and splits, one to three combined);
3. the topics again. Asserted per original: still exactly one event (one per notification
   of a batch sample), the one it produced
   (``id``, ``type``, ``data.status``, ``flow``, ``amount``, ``amount_received``,
   ``merchant_order_id``, ``provider_order_id``); every re-spelling answered 4xx or 2xx (a
   duplicate then: nothing published), never 5xx; the original again answered 2xx; no dead
   letter from a re-spelling (unless the original dead-letters itself); no record that no
   original accounts for.

Each instance's counts are printed (originals, re-spellings sent, refused, acknowledged as
duplicates, records). A failure lists, per extra record, the re-spellings that could have
made it and what differs from the original's event. ``RELAY_FUZZ_SEED`` seeds hypothesis.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from relay.config import Config, ProviderInstance
from relay.kafka import ReadRecord
from relay.profiles import PROFILES
from relay.samples import signed_sample
from tests.conftest import TestBroker
from tests.fuzz.instances import fuzz_providers
from tests.fuzz.mutations import Case, Request
from tests.fuzz.respell import (
    Obj,
    Respelling,
    Target,
    dumps,
    merge_members,
    parse,
    respell,
)
from tests.fuzz.test_http_fuzz import logged_errors, read_records, running, send
from tests.fuzz.topics import record_tokens
from tests.relay_process import RelayProcess
from verifiers import VerificationError

EXAMPLES = int(os.environ.get("RELAY_FUZZ_EXAMPLES", "150"))
SEED = int(os.environ.get("RELAY_FUZZ_SEED", str(random.randrange(1 << 32))))
CONCURRENCY = 16
# The JSON senders: a re-spelling here is of JSON. Braintree's form is re-spelled by the
# flipped bits of test_properties ("%7C" as "%7c" verifies and reads alike).
INSTANCES = sorted(
    name
    for name, table in fuzz_providers().items()
    if "application/json" in PROFILES[table["profile"]].content_types
)

# Non-ASCII in an order reference, not in NFC: "Å" is U+212B ANGSTROM SIGN.
UNICODE_SUFFIX = "-Zoë/\u212bngström"
# The header each profile takes its event id from, where no signature covers it (and
# Standard Webhooks' webhook-id, which its signature does cover).
ID_HEADERS = {
    "usdt-invoice": "X-Webhook-Id",
    "github": "X-GitHub-Delivery",
    "standard-webhooks": "webhook-id",
}
EVENT_HEADERS = {"github": "X-GitHub-Event"}
# sign-field profiles: an original with a member folded into the one before it in the
# signed string (event, first member), so that the split back is a re-spelling to try.
FOLDED = {"usdt-collect-pay": ("success", "orderId"), "v2-payout": ("done", "orderNo")}
# sign-field profiles: an original whose amounts are integral strings ("100"), which the
# signed string writes as it writes 100, 100.0 and 1e2.
INTEGRAL = {"usdt-collect-pay": "success", "v2-payout": "done"}
COMPARED = (
    "id",
    "type",
    "data.status",
    "data.flow",
    "data.amount",
    "data.amount_received",
    "data.merchant_order_id",
    "data.provider_order_id",
)
OUTCOMES = ("accepted", "spooled", "duplicate", "dead_lettered", "rejected", "unavailable", "error")


@dataclass
class Original:
    instance: str
    label: str
    token: str
    request: Request
    status: int = 0
    detail: str = ""
    events: int = 1
    """How many events it publishes: one per notification of a batch sample."""


@dataclass
class Sent:
    original: Original
    respelling: Respelling
    status: int = 0
    detail: str = ""

    @property
    def request(self) -> Request:
        return self.respelling.request


@dataclass
class Run:
    broker: str
    originals: dict[str, list[Original]]
    sent: dict[str, list[Sent]]
    before: list[ReadRecord]
    """Every record once the originals were in."""
    after: list[ReadRecord]
    """Every record once the re-spellings were in too."""
    outcomes_before: dict[str, Counter[str]]
    outcomes_after: dict[str, Counter[str]]
    left_out: dict[str, list[str]] = field(default_factory=dict)
    """Originals the instance's scheme will not sign, said in the counts."""
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- the originals ------------------------------------------------------------------------


def target_of(instance: ProviderInstance) -> Target:
    profile = instance.profile.name
    sign_field = (
        instance.params.sign_field if instance.profile.scheme.name == "sign-field" else None
    )
    return Target(
        sign_field=sign_field,
        id_header=ID_HEADERS.get(profile) or instance.id_header,
        event_header=EVENT_HEADERS.get(profile),
    )


def _with_suffix(doc: Any, token: str) -> None:
    """Every string holding the token gets the non-ASCII suffix after it."""

    def visit(node: Any) -> Any:
        if isinstance(node, str):
            return node.replace(token, token + UNICODE_SUFFIX)
        if isinstance(node, Obj):
            node[:] = [(name, visit(value)) for name, value in node]
        elif isinstance(node, list):
            node[:] = [visit(value) for value in node]
        return node

    visit(doc)


def _integral(value: Any) -> Any:
    """``"100.00"`` as ``"100"``: a decimal string with a whole part, without its fraction."""
    if isinstance(value, str) and re.fullmatch(r"[1-9][0-9]*\.[0-9]+", value):
        return value.partition(".")[0]
    return value


def originals_of(
    instance: ProviderInstance, clock: Callable[[], float], left_out: list[str]
) -> list[Original]:
    profile = instance.profile.name
    path = f"/webhooks/{instance.name}"

    def token() -> str:
        return f"fz{random.getrandbits(64):016x}"

    def plain(event: str) -> Original:
        order = token()
        sample = signed_sample(instance, event=event, order=order, now=clock())
        becomes = instance.profile.samples[event].becomes
        return Original(
            instance.name,
            event,
            order,
            Request("POST", path, list(sample.headers.items()), sample.body),
            events=1 if isinstance(becomes, str) else len(becomes),
        )

    def edited(event: str, label: str, edit: Callable[[Any, str], None]) -> Original:
        # The sample's body changed, then signed: only ever the original is signed.
        order, now = token(), clock()
        sample = instance.profile.samples[event].build(now, order)
        doc = parse(sample.body)
        edit(doc, order)
        signed = signed_sample(instance, body=dumps(doc), now=now)
        headers = {**sample.headers, **signed.headers}
        return Original(
            instance.name, label, order, Request("POST", path, list(headers.items()), signed.body)
        )

    events = list(instance.profile.samples)
    originals = [plain(event) for event in events]
    originals.append(edited(events[0], f"{events[0]}, non-ASCII reference", _with_suffix))
    sign_field = target_of(instance).sign_field
    if profile in FOLDED:
        event, first = FOLDED[profile]

        def fold(doc: Any, order: str) -> None:
            assert merge_members(doc, first, sign_field) is not None

        try:
            originals.append(edited(event, f"{event}, {first} folded with the next member", fold))
        except VerificationError:
            # The scheme signs no body whose string reads two ways, so no captured
            # notification holds one; folding members into one value is still tried.
            left_out.append(f"{event}, {first} folded (the scheme will not sign it)")
    if profile in INTEGRAL:

        def integral(doc: Any, order: str) -> None:
            doc[:] = [(name, _integral(value)) for name, value in doc]

        originals.append(
            edited(INTEGRAL[profile], f"{INTEGRAL[profile]}, integral amounts", integral)
        )
    if profile == "usdt-collect-pay":

        def payout(doc: Any, order: str) -> None:
            doc[:] = [(name, value) for name, value in doc if name != "actualAmount"]

        originals.append(edited("success", "success, payout-shaped (no actualAmount)", payout))
    for original in originals:
        # Re-spellings differ from their original by exactly what they list.
        assert dumps(parse(original.request.body)) == original.request.body, original
    return originals


# --- the re-spellings ---------------------------------------------------------------------


def draw_respellings(originals: list[Original], target: Target, salt: int) -> list[Sent]:
    """Each original again as is, then ``EXAMPLES`` re-spellings drawn by hypothesis.

    Hypothesis only draws here (nothing fails, so nothing shrinks): a re-spelling posted
    twice is a duplicate the second time, so examples cannot be replayed one by one against
    a server that remembers them. The posting and the judging come after.
    """
    drawn = [
        Sent(original, Respelling((), "the original again", original.request))
        for original in originals
    ]

    @seed(SEED + salt)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )
    @given(data=st.data())
    def draw(data: st.DataObject) -> None:
        original = data.draw(st.sampled_from(originals), label="original")
        drawn.append(Sent(original, respell(original.request, target, data)))

    draw()
    return drawn


# --- running it ---------------------------------------------------------------------------


async def post_all(relay: RelayProcess, items: list[Original] | list[Sent]) -> None:
    host, port = "127.0.0.1", relay.port
    base = f"http://{host}:{port}"
    semaphore = asyncio.Semaphore(CONCURRENCY)
    # A connection per request: a pooled one that the server closed while idle would fail
    # the request sent on it, which would read as a request Relay never answered.
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(item: Original | Sent) -> None:
            token = item.token if isinstance(item, Original) else item.original.token
            case = Case("respelling", "", token, item.request, must_reject=False)
            async with semaphore:
                item.status, _, item.detail = await send(session, base, host, port, case)

        await asyncio.gather(*(one(item) for item in items))


async def outcomes(relay: RelayProcess, config: Config) -> dict[str, Counter[str]]:
    return {
        name: Counter(
            {
                outcome: int(
                    await relay.metric("relay_webhooks_total", provider=name, outcome=outcome)
                )
                for outcome in OUTCOMES
            }
        )
        for name in INSTANCES
    }


async def exercise(broker: TestBroker, topic: str, var: Path) -> Run:
    started = time.monotonic()
    async with running(broker, topic, var) as (config, relay):
        last = 0.0

        def clock() -> float:
            # A millisecond apart at least: some samples derive their ids from the time.
            nonlocal last
            last = max(time.time(), last + 0.002)
            return last

        left_out: dict[str, list[str]] = {name: [] for name in INSTANCES}
        originals = {
            name: originals_of(config.providers[name], clock, left_out[name]) for name in INSTANCES
        }
        sent = {
            name: draw_respellings(originals[name], target_of(config.providers[name]), index)
            for index, name in enumerate(INSTANCES)
        }
        every_original = [original for group in originals.values() for original in group]
        tokens = {original.token for original in every_original}
        topics = [config.kafka.topic, config.kafka.dead_letter_topic]

        await post_all(relay, every_original)
        await relay.wait_drained(60)
        before = await read_records(broker.bootstrap_servers, topics, tokens)
        outcomes_before = await outcomes(relay, config)

        # Interleaved across instances, so that no instance's run waits for another's.
        every_sent = [item for group in sent.values() for item in group]
        random.Random(SEED).shuffle(every_sent)
        await post_all(relay, every_sent)
        await relay.wait_drained(60)
        after = await read_records(broker.bootstrap_servers, topics, tokens)
        outcomes_after = await outcomes(relay, config)
        errors = logged_errors(relay)
    return Run(
        broker.name,
        originals,
        sent,
        before,
        after,
        outcomes_before,
        outcomes_after,
        left_out,
        errors,
        time.monotonic() - started,
    )


@pytest.fixture(scope="module")
def run(broker: TestBroker, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The whole exercise once per broker; the tests below judge it instance by instance."""
    var = tmp_path_factory.mktemp("respellings")
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(exercise(broker, f"t-{uuid.uuid4().hex[:12]}", var))
    finally:
        loop.close()


# --- judging ------------------------------------------------------------------------------


def _event(record: Any) -> dict[str, Any]:
    return json.loads(record.value)


def compared(record: Any) -> dict[str, Any]:
    event = _event(record)
    data = event.get("data") or {}
    return {
        name: (data.get(name[5:]) if name.startswith("data.") else event.get(name))
        for name in COMPARED
    }


def _where(record: Any) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _letter(record: Any) -> dict[str, Any]:
    return json.loads(record.value)


def _owner(record: Any) -> str:
    """The instance a record is from: its CloudEvent source, or its dead letter's provider."""
    if record.topic.endswith(".dlq"):
        return str(_letter(record).get("provider"))
    return str(_event(record).get("source", "")).removeprefix("relay/")


def suspects(record: Any, candidates: list[Sent]) -> list[Sent]:
    """The acknowledged re-spellings that could have made ``record``, likeliest first: its
    body is theirs and, where several share a body, so are the headers it keeps (a dead
    letter) or the id header it was published under (an event)."""

    def lowered(sent: Sent) -> dict[str, str]:
        return {name.lower(): value for name, value in sent.request.headers}

    def dropped(sent: Sent) -> bool:
        names = lowered(sent)
        return any(name.lower() not in names for name, _ in sent.original.request.headers)

    if record.topic.endswith(".dlq"):
        letter = _letter(record)
        body = base64.b64decode(letter["body_base64"])
        kept = {name.lower(): value for name, value in letter.get("headers", {}).items()}
        found = [sent for sent in candidates if sent.request.body == body]
        narrowed = [sent for sent in found if {n: lowered(sent).get(n) for n in kept} == kept]
    else:
        event_id = _event(record).get("id")
        found = [sent for sent in candidates if sent.request.body in record.value]
        narrowed = [sent for sent in found if event_id in lowered(sent).values()]
    # Otherwise (an id from no header: a hash of the content) a re-spelling that dropped a
    # header the original had, or else any but the original sent again.
    return sorted(
        narrowed or found, key=lambda sent: (not dropped(sent), not sent.respelling.kinds)
    )


@dataclass
class Verdict:
    failures: list[str]
    counts: str


def judge(run: Run, name: str) -> Verdict:
    originals, sent = run.originals[name], run.sent[name]
    failures: list[str] = []

    def grouped(records: list[Any]) -> tuple[dict[str, list[Any]], list[Any]]:
        by_token: dict[str, list[Any]] = {original.token: [] for original in originals}
        unowned = []
        for record in records:
            tokens = record_tokens(record) & set(by_token)
            for token in tokens:
                by_token[token].append(record)
            if not tokens and _owner(record) == name:
                unowned.append(record)
        return by_token, unowned

    before, _ = grouped(run.before)
    after, unowned = grouped(run.after)
    made_by: Counter[str] = Counter()

    for original in originals:
        what = f"original {original.label!r} ({original.token})"
        if not 200 <= original.status < 300:
            failures.append(f"{what} was answered {original.status}: {original.detail[:200]}")
            continue
        first_events = [r for r in before[original.token] if not r.topic.endswith(".dlq")]
        dead_lettered = any(r.topic.endswith(".dlq") for r in before[original.token])
        if len(first_events) != original.events:
            failures.append(f"{what} published {len(first_events)} events, not {original.events}")
            continue
        owns = {_where(event) for event in first_events}
        expected = compared(first_events[0])
        candidates = [
            item for item in sent if item.original is original and 200 <= item.status < 300
        ]
        for record in after[original.token]:
            if _where(record) in owns:
                continue
            if record.topic.endswith(".dlq"):
                if dead_lettered:
                    continue
                letter = _letter(record)
                change = f"a dead letter ({letter.get('reason')}: {letter.get('message', '')[:80]})"
            else:
                got = compared(record)
                diff = {
                    key: (expected[key], got[key]) for key in COMPARED if expected[key] != got[key]
                }
                change = f"another event, {diff or 'equal in every compared field'}"
            culprits = suspects(record, candidates)
            made_by.update(
                kind for item in culprits[:1] for kind in item.respelling.kinds or ("none",)
            )
            failures.append(
                f"{what}: {change}; from "
                + (
                    " | ".join(item.respelling.description for item in culprits[:3])
                    or "no re-spelling found"
                )
            )

    for item in sent:
        if not (200 <= item.status < 300 or 400 <= item.status < 500):
            failures.append(
                f"re-spelling of {item.original.label!r} answered {item.status or 'nothing'}: "
                f"{item.respelling.description} -> {item.detail[:200]}"
            )
        elif not item.respelling.kinds and not 200 <= item.status < 300:
            failures.append(
                f"the original {item.original.label!r} sent again was answered {item.status}: "
                f"{item.detail[:200]}"
            )
    for record in unowned:
        failures.append(f"a record from no original: {record.topic} {record.value[:200]!r}")

    statuses = Counter(item.status for item in sent)
    refused = {code: n for code, n in sorted(statuses.items()) if 400 <= code < 500}
    delta = run.outcomes_after[name] - run.outcomes_before[name]
    events = sum(1 for r in run.after if not r.topic.endswith(".dlq") and _owner(r) == name)
    letters = sum(1 for r in run.after if r.topic.endswith(".dlq") and _owner(r) == name)
    kinds = Counter(kind for item in sent for kind in item.respelling.kinds)
    counts = (
        f"[{run.broker}] {name}: {len(originals)} originals; {len(sent)} re-spellings sent "
        f"({len(originals)} of them the original again): refused {sum(refused.values())} "
        f"{refused}, acknowledged {sum(n for c, n in statuses.items() if 200 <= c < 300)} "
        f"(as duplicates {delta['duplicate']}, published {delta['accepted'] + delta['spooled']}, "
        f"dead-lettered {delta['dead_lettered']}), 5xx {sum(n for c, n in statuses.items() if c >= 500)}; "
        f"records: {events} events, {letters} dead letters "
        f"(from the originals: {sum(len([r for r in before[o.token] if not r.topic.endswith('.dlq')]) for o in originals)} events)"
        + (f"; kinds behind the extra records: {dict(made_by)}" if made_by else "")
        + f"\n    transformations drawn: {dict(sorted(kinds.items()))}"
        + (f"\n    originals left out: {run.left_out[name]}" if run.left_out[name] else "")
    )
    return Verdict(failures, counts)


@pytest.mark.parametrize("name", INSTANCES)
def test_respellings_publish_nothing_new(
    run: Run, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    verdict = judge(run, name)
    with capsys.disabled():
        print("\n" + verdict.counts)
    shown = "\n  ".join(verdict.failures[:25])
    more = f"\n  ... and {len(verdict.failures) - 25} more" if len(verdict.failures) > 25 else ""
    assert not verdict.failures, (
        f"{name}: {len(verdict.failures)} records or answers that re-spellings of its "
        f"originals should not have caused (seed {SEED}):\n  {shown}{more}"
    )


def test_relay_logged_no_error(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\n[{run.broker}] re-spellings: seed {SEED}, {EXAMPLES} examples per instance, "
            f"{sum(len(v) for v in run.sent.values())} re-spellings in {run.seconds:.1f} s"
        )
    assert run.errors == [], run.errors[:20]
