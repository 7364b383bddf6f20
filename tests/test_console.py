"""The console over HTTP against a real broker: who gets in, what a state-changing request
needs, what a read-only operator cannot do, a replay through plan and confirmation, and
hostile letters shown as text. (The same in a real browser: test_console_browser.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from relay.config import Config
from relay.console.app import INDEXER, build_console
from relay.deadletter import make_replay_outcome, replay_outcome_record
from relay.replay import LetterFilter, list_letters
from relay.settings import ReplayConfig
from schemas.records import ReplayResult
from tests.console_support import (
    HOSTILE_BODY,
    HOSTILE_HEADERS,
    HOSTILE_REASON,
    READER_TOKEN,
    REPLAYER_TOKEN,
    console_config,
    file_letters,
    invoice_body,
    invoice_providers,
    letter,
)
from tests.poison import publish


async def _console(aiohttp_client: Any, config: Any) -> Any:
    client = await aiohttp_client(build_console(config))
    for event in client.app[INDEXER].caught_up.values():
        await asyncio.wait_for(event.wait(), 30)
    return client


async def _log_in(client: Any, token: str) -> str:
    """Log in; the page's CSRF token."""
    response = await client.post("/login", data={"token": token}, allow_redirects=False)
    assert response.status == 303
    page = await (await client.get("/")).text()
    return _csrf(page)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def _replays_filed(config: Any) -> int:
    listing = await list_letters(config, LetterFilter(), idle_s=0.5)
    return sum(len(filed.replays) for filed in listing.letters)


async def _confirm(client: Any, plan: str, csrf: str) -> str:
    """Confirm the plan shown on the page ``plan``; the job's page once the replay is done."""
    plan_id = re.search(r'action="/replay/([\w-]+)" id="confirm"', plan)
    assert plan_id
    started = await client.post(
        f"/replay/{plan_id.group(1)}", data={"csrf": csrf}, allow_redirects=False
    )
    assert started.status == 303
    for _ in range(200):
        page = await (await client.get(started.headers["Location"])).text()
        if 'id="job-done"' in page or 'id="job-error"' in page:
            break
        await asyncio.sleep(0.2)
    assert 'id="job-done"' in page, page
    return str(page)


@pytest.fixture
async def seeded(kafka_bootstrap: str, topic: str, tmp_path: Path) -> Any:
    """A console config whose providers now know "refunded", and two letters filed before."""
    config = console_config(
        kafka_bootstrap,
        topic,
        tmp_path,
        providers=invoice_providers(statuses={"refunded": "failed"}),
    )
    letters = [
        letter(invoice_body("ORD-C1", "refunded")),
        letter(HOSTILE_BODY, reason=HOSTILE_REASON, headers=HOSTILE_HEADERS),
    ]
    await file_letters(config, letters)
    return config, letters


async def test_nothing_without_a_session_and_nothing_with_a_wrong_token(
    aiohttp_client: Any, seeded: Any
) -> None:
    config, letters = seeded
    client = await _console(aiohttp_client, config)
    for path in ("/", "/letters", "/find?order=ORD-C1", f"/letters/invoices/{letters[0].id}"):
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/login"), path
    assert (await client.get("/live/feed")).status == 401
    assert (await client.post("/replay/plan", data={"letter": "0:0"})).status == 401

    refused = await client.post("/login", data={"token": "not-" + REPLAYER_TOKEN})
    assert refused.status == 403
    assert "set-cookie" not in refused.headers
    assert (await client.get("/", allow_redirects=False)).status == 303

    # A token is taken from a POSTed form only: never from the URL.
    in_url = await client.get(f"/login?token={REPLAYER_TOKEN}", allow_redirects=False)
    assert "set-cookie" not in in_url.headers
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_the_session_cookie_and_the_headers_of_every_page(
    aiohttp_client: Any, seeded: Any
) -> None:
    config, _ = seeded
    client = await _console(aiohttp_client, config)
    response = await client.post("/login", data={"token": REPLAYER_TOKEN}, allow_redirects=False)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("relay_console=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on 127.0.0.1; over TLS it is __Host- and Secure
    page = await client.get("/")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in await page.text()  # the overview has no script at all


async def test_state_changes_need_the_csrf_token_and_this_origin(
    aiohttp_client: Any, seeded: Any
) -> None:
    config, _ = seeded
    client = await _console(aiohttp_client, config)
    csrf = await _log_in(client, REPLAYER_TOKEN)
    letters_page = await (await client.get("/letters")).text()
    key = re.search(r'name="letter" value="(\d+:\d+)"', letters_page)
    assert key
    chosen = {"scope": "chosen", "letter": key.group(1)}

    assert (await client.post("/replay/plan", data=chosen)).status == 403  # no CSRF token
    wrong = {**chosen, "csrf": "0" * 64}
    assert (await client.post("/replay/plan", data=wrong)).status == 403
    # The cookie sent by a page of another site (what a stolen or riding cookie looks like):
    # refused by its origin, even with the right token.
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await client.post("/replay/plan", data={**chosen, "csrf": csrf}, headers=headers)
        assert response.status == 403, headers

    plan = await client.post("/replay/plan", data={**chosen, "csrf": csrf})
    assert plan.status == 200
    plan_id = re.search(r'action="/replay/([\w-]+)" id="confirm"', await plan.text())
    assert plan_id
    # Confirming needs the token too, and a GET never replays.
    assert (await client.get(f"/replay/{plan_id.group(1)}")).status == 405
    assert (await client.post(f"/replay/{plan_id.group(1)}")).status == 403
    cross = await client.post(
        f"/replay/{plan_id.group(1)}",
        data={"csrf": csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert cross.status == 403
    await asyncio.sleep(1)
    assert await _replays_filed(config) == 0  # nothing was replayed


async def test_a_read_only_operator_sees_the_plan_and_cannot_replay(
    aiohttp_client: Any, seeded: Any
) -> None:
    config, _ = seeded
    client = await _console(aiohttp_client, config)
    csrf = await _log_in(client, READER_TOKEN)
    plan = await client.post("/replay/plan", data={"scope": "filter", "csrf": csrf})
    text = await plan.text()
    assert plan.status == 200
    assert 'id="read-only"' in text and 'id="confirm"' not in text
    plan_ids = re.findall(r"/replay/([\w-]{16})", text)
    assert plan_ids == []
    # Even with a plan id taken from the replayer's session, the reader's POST is refused.
    replayer = await _console(aiohttp_client, config)
    replayer_csrf = await _log_in(replayer, REPLAYER_TOKEN)
    theirs = await replayer.post("/replay/plan", data={"scope": "filter", "csrf": replayer_csrf})
    plan_id = re.search(r'action="/replay/([\w-]+)" id="confirm"', await theirs.text())
    assert plan_id
    response = await client.post(f"/replay/{plan_id.group(1)}", data={"csrf": csrf})
    assert response.status == 403
    assert "may read, not replay" in await response.text()
    await asyncio.sleep(1)
    assert await _replays_filed(config) == 0


async def test_replay_shows_the_plan_then_replays_as_relay_replay_does(
    aiohttp_client: Any, seeded: Any, caplog: pytest.LogCaptureFixture
) -> None:
    config, letters = seeded
    client = await _console(aiohttp_client, config)
    csrf = await _log_in(client, REPLAYER_TOKEN)
    plan = await client.post("/replay/plan", data={"scope": "filter", "csrf": csrf})
    text = await plan.text()
    # ORD-C1 would be published; the hostile letter's order id holds markup, which the
    # usdt-invoice normalizer refuses: the plan says it would fail again, and why.
    assert re.search(r'id="plan-replay">1<', text)
    assert re.search(r'id="plan-published">0<', text)
    assert "would fail again" in text
    with caplog.at_level(logging.INFO, logger="relay.console.audit"):
        page = await _confirm(client, text, csrf)
    assert re.search(r'id="job-replayed">1<', page)
    # Filed on the dead-letter topic exactly as relay replay files it.
    listed = await list_letters(config, LetterFilter(), idle_s=0.5)
    outcomes = {
        (filed.letter.id, filed.letter.attempts): [r.outcome.value for r in filed.replays]
        for filed in listed.letters
    }
    assert outcomes == {
        (letters[0].id, 1): ["replayed"],
        (letters[1].id, 1): ["failed_again"],
        (letters[1].id, 2): [],  # filed again, for a later replay
    }
    [started_line, finished_line] = [r for r in caplog.records if r.name == "relay.console.audit"]
    assert (started_line.operator, started_line.letters) == ("ana", 2)  # type: ignore[attr-defined]
    assert finished_line.replayed == 1  # type: ignore[attr-defined]

    # The order's story: the letter, then the event its replay published.
    for _ in range(100):
        found = await (await client.get("/find?order=ORD-C1")).text()
        if found.count('class="event"') == 1:
            break
        await asyncio.sleep(0.2)
    assert found.count('class="dead-letter"') == 1 and found.count('class="event"') == 1


async def test_the_plan_says_which_letters_would_not_verify_and_the_replay_agrees(
    aiohttp_client: Any, seeded: Any
) -> None:
    """A forged letter (a refund the provider never signed) and one filed before Relay kept
    signature headers: the plan says they would fail again as unverified and unverifiable,
    as ``relay replay --dry-run`` does, and the replay refuses exactly those."""
    config, letters = seeded
    genuine = letters[0]
    forged = dataclasses.replace(
        genuine,
        id="f" * 32,
        body=invoice_body("ORD-FORGED", "refunded"),
        signature_headers={"x-webhook-signature": "0" * 64},
    )
    unsigned = dataclasses.replace(genuine, id="e" * 32, signature_headers=None)
    await file_letters(config, [forged, unsigned])
    client = await _console(aiohttp_client, config)
    csrf = await _log_in(client, REPLAYER_TOKEN)
    chosen = [
        _key_of(await (await client.get("/letters")).text(), item.id)
        for item in (genuine, forged, unsigned)
    ]
    plan = await client.post(
        "/replay/plan", data={"csrf": csrf, "scope": "chosen", "letter": chosen}
    )
    text = await plan.text()
    assert re.search(r'id="plan-replay">1<', text)
    assert "would fail again: unverified</th><td>1<" in text
    assert "would fail again: unverifiable</th><td>1<" in text
    page = await _confirm(client, text, csrf)
    assert re.search(r'id="job-replayed">1<', page), page
    assert "failed again: unverified</th><td>1<" in page
    assert "failed again: unverifiable</th><td>1<" in page


async def test_the_pages_show_only_signed_replay_outcomes_and_flag_the_rest(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """A forged outcome claiming a letter was replayed: with [replay] outcome_key set, the
    letter stays never replayed and the pages count the outcome as ignored; without a key
    it is shown, and the pages say nothing tells it from a real one (as relay dlq does)."""
    unkeyed = console_config(kafka_bootstrap, topic, tmp_path, providers=invoice_providers())
    keyed = dataclasses.replace(unkeyed, replay=ReplayConfig(outcome_key="k" * 40))
    filed = letter(invoice_body("ORD-SIGNED", "refunded"))
    await file_letters(keyed, [filed])
    claim = make_replay_outcome(filed, ReplayResult.REPLAYED, event_id="evt-forged")
    await publish(keyed.kafka, [replay_outcome_record(claim, keyed.kafka.dead_letter_topic)])

    client = await _console(aiohttp_client, keyed)
    await _log_in(client, READER_TOKEN)
    listing = await (await client.get("/letters")).text()
    assert re.search(r'class="state none">-<', listing)
    assert "1 replay outcome ignored: not signed with [replay] outcome_key" in listing
    page = await (await client.get(f"/letters/invoices/{filed.id}")).text()
    assert "Never replayed." in page and "evt-forged" not in page
    assert 'id="outcomes-ignored"' in page and 'id="outcomes-unauthenticated"' not in page

    elsewhere = dataclasses.replace(unkeyed.console, index_path=str(tmp_path / "unkeyed.sqlite3"))
    client = await _console(aiohttp_client, dataclasses.replace(unkeyed, console=elsewhere))
    await _log_in(client, READER_TOKEN)
    listing = await (await client.get("/letters")).text()
    assert re.search(r'class="state replayed">replayed<', listing)
    assert (
        "Replay states shown unauthenticated: no [replay] outcome_key is set, so anyone who "
        f"can write to {unkeyed.kafka.dead_letter_topic} can forge what they say"
    ) in listing
    page = await (await client.get(f"/letters/invoices/{filed.id}")).text()
    assert "evt-forged" in page and 'id="outcomes-unauthenticated"' in page


async def test_hostile_letters_are_text(aiohttp_client: Any, seeded: Any) -> None:
    config, letters = seeded
    client = await _console(aiohttp_client, config)
    await _log_in(client, READER_TOKEN)
    page = await (await client.get(f"/letters/invoices/{letters[1].id}")).text()
    assert "<script>window" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__pwned=1" in page
    assert "&lt;img src=x onerror=" in page  # the reason, as text
    assert "\x1b" not in page and '<span class="ctl">\\x1b</span>[2J' in page
    listing = await (await client.get("/letters")).text()
    assert "<img src=x" not in listing and "&lt;img src=x" in listing
    body = await client.get(f"/letter-body/{_key_of(listing, letters[1].id)}")
    assert body.headers["Content-Type"] == "application/octet-stream"
    assert body.headers["Content-Disposition"].startswith("attachment")
    assert await body.read() == HOSTILE_BODY  # the exact bytes received


def _key_of(listing: str, letter_id: str) -> str:
    match = re.search(
        r'name="letter" value="(\d+:\d+)"[^\n]*\n(?:.*\n){0,8}?.*' + letter_id, listing
    )
    assert match, letter_id
    return match.group(1)


def _behind_proxy(config: Config, networks: str, replayers: tuple[str, ...] = ()) -> Config:
    console = dataclasses.replace(
        config.console,
        operators=(),
        proxy_user_header="X-Forwarded-Email",
        trusted_proxies=(ipaddress.ip_network(networks),),
        proxy_replay_users=replayers,
    )
    return dataclasses.replace(config, console=console)


async def test_behind_an_sso_proxy_only_the_proxy_is_believed(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    config = console_config(kafka_bootstrap, topic, tmp_path)
    trusted = _behind_proxy(config, "127.0.0.0/8", ("ana@example.com",))
    client = await aiohttp_client(build_console(trusted, follow=False))
    assert (await client.get("/")).status == 403  # the proxy named nobody
    page = await client.get("/", headers={"X-Forwarded-Email": "rui@example.com"})
    assert page.status == 200 and "rui@example.com (read)" in await page.text()
    page = await client.get("/", headers={"X-Forwarded-Email": "ana@example.com"})
    assert "ana@example.com (replay)" in await page.text()

    elsewhere = _behind_proxy(console_config(kafka_bootstrap, topic, tmp_path / "b"), "10.0.0.0/8")
    client = await aiohttp_client(build_console(elsewhere, follow=False))
    forged = await client.get("/", headers={"X-Forwarded-Email": "ana@example.com"})
    assert forged.status == 403  # from a peer that is not the proxy: the header is not believed
