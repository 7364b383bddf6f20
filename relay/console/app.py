"""The console's web application: server-rendered pages over the index, and replays.

Every page is a Jinja2 template with autoescaping on, so whatever a provider sent
(a body, a header, an order id) is text, never markup; bodies and headers also show
control characters as visible escapes (``\\x1b``) so a terminal sequence cannot hide
text. Every response carries a strict Content-Security-Policy (scripts and styles
only from ``/static``, nothing inline, no framing); the one script is the live page's
poller (``static/live.js``, the project's own).

Reads come from the index (:mod:`relay.console.index`) and the servers' metrics
(:mod:`relay.console.metrics`). A replay is two POSTs, each with the session's CSRF
token: the first computes the plan (what would be replayed, what is already
published, what would fail again, and why: each letter verified again and normalized by
:func:`relay.replay.plan_letter`, the dry run of ``relay replay``) and changes nothing;
the second, from the plan's page and only for the ``replay`` role, runs
:func:`relay.replay.replay` over exactly the planned letters, as ``relay replay`` would,
which files each outcome on the dead-letter topic; the job's page follows it through
replay's progress callback. Each replay writes an audit line (``relay.console.audit``):
who, which letters, how many, and what became of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import logging
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from relay import __version__
from relay.config import Config
from relay.console import charts
from relay.console.auth import Auth, Session
from relay.console.index import (
    ACCEPTED,
    DEAD_LETTERED,
    REPLAY_STATES,
    Index,
    Indexer,
    LetterQuery,
)
from relay.console.metrics import Scraper, increase, quantile
from relay.find import DEFAULT_WINDOW, FindQuery
from relay.inert import escapes
from relay.replay import (
    UNSIGNED_OUTCOME,
    FiledLetter,
    LetterFilter,
    ReplaySummary,
    letter_order_id,
    plan_letter,
    progress_text,
    replay,
    unauthenticated_warning,
)
from relay.sink import KafkaUnavailable
from schemas.records import DeadLetter, ReplayResult
from schemas.values import rfc3339

log = logging.getLogger("relay.console")
audit = logging.getLogger("relay.console.audit")

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 100
PLAN_LIMIT = 10_000
"""Letters one plan may hold; a bigger replay is ``relay replay`` (or several plans)."""
PLAN_SHOWN = 200
RANGES = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

INDEX = web.AppKey("index", Index)
AUTH = web.AppKey("auth", Auth)
CONFIG = web.AppKey("config", Config)
SCRAPER = web.AppKey("scraper", Scraper)
INDEXER = web.AppKey("indexer", Indexer)
TEMPLATES = web.AppKey("templates", jinja2.Environment)


@dataclass(frozen=True, slots=True)
class Selection(LetterFilter):
    """Exactly these filings of letters: what a console plan replays.

    A :class:`relay.replay.LetterFilter` for :func:`relay.replay.replay`, so the replay
    is ``relay replay``'s own; its consumer group is named after the selection.
    """

    filings: frozenset[tuple[str, str, int]] = frozenset()

    def matches(self, letter: DeadLetter) -> bool:
        return (letter.provider, letter.id, letter.attempts) in self.filings

    def group_suffix(self) -> str:
        text = "|".join(f"{p}:{i}:{a}" for p, i, a in sorted(self.filings))
        return "-console-" + hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class PlanItem:
    filed: FiledLetter
    verdict: str
    """``replay``, ``published`` (already on the topic) or ``fail`` (would fail again)."""
    reason: str | None = None
    event_id: str | None = None


@dataclass
class Plan:
    id: str
    operator: str
    what: str
    items: list[PlanItem]
    truncated: bool = False

    def count(self, verdict: str) -> int:
        return sum(1 for item in self.items if item.verdict == verdict)

    def failing(self) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for item in self.items:
            if item.verdict == "fail" and item.reason is not None:
                reasons[item.reason] = reasons.get(item.reason, 0) + 1
        return dict(sorted(reasons.items()))


@dataclass
class Job:
    id: str
    plan: Plan
    operator: str
    started_at: datetime
    progress: str = ""
    """How far the replay is, as :func:`relay.replay.progress_text` says it."""
    summary: ReplaySummary | None = None
    error: str | None = None
    finished_at: datetime | None = None
    task: asyncio.Task[None] | None = None

    def progressed(self, summary: ReplaySummary, elapsed: float) -> None:
        self.progress = progress_text(summary, elapsed)


@dataclass
class Work:
    plans: dict[str, Plan] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)


WORK = web.AppKey("work", Work)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- presentation helpers ---------------------------------------------------------------


def visible(text: str) -> Markup:
    """``text`` escaped, with control and format characters (but newline and tab) shown as
    their escapes (:func:`relay.inert.escapes`: ``\\x1b``, ``\\u202e``) in a marked span:
    a terminal escape or a bidi override is seen, not obeyed."""
    return Markup(str(escape(text)).translate(_marked()))


@functools.cache
def _marked() -> dict[int, str]:
    return {
        code: f'<span class="ctl">{shown}</span>'
        for code, shown in escapes().items()
        if chr(code) not in "\n\t"
    }


def body_text(body: bytes) -> tuple[str, bool]:
    """The body as text, and whether it was valid UTF-8 (else bytes that are not show as
    U+FFFD, and the page says so and offers the exact bytes to download)."""
    try:
        return body.decode("utf-8"), True
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace"), False


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["rfc3339"] = lambda moment: rfc3339(moment) if moment else "-"
    environment.filters["visible"] = visible
    return environment


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session = _session(request)
    page = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(session=session, version=__version__, path=request.path, **context)
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def _query_text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    return value or None


def _parse_moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- middleware -----------------------------------------------------------------------


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if error.status < 400 or error.content_type != "text/plain":
            _harden(error)
            raise
        response = _render(request, "error.html", status=error.status, message=error.text)
    _harden(response)
    return response


def _harden(response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    # Not no-referrer: under it a browser sends "Origin: null" with a form, which says nothing.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")


_OPEN = ("/login", "/static/", "/healthz")


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is asking; a state-changing request must come from this origin with its CSRF
    token, and nothing reaches a page without a session."""
    auth = request.app[AUTH]
    if request.method not in ("GET", "HEAD") and not _same_origin(request):
        raise web.HTTPForbidden(text="cross-origin request refused")
    if auth.proxied and _session(request) is None:
        raise web.HTTPForbidden(text="not through the SSO proxy: no operator named")
    if request.path.startswith(_OPEN):
        return await handler(request)
    session = _session(request)
    if session is None:
        if request.method in ("GET", "HEAD") and request.path != "/live/feed":
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(text="log in first")
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        csrf = form.get("csrf")
        if not auth.csrf_ok(session, csrf if isinstance(csrf, str) else None):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
    return await handler(request)


def _session(request: web.Request) -> Session | None:
    """The session of whoever asks: their cookie's, or the one the SSO proxy names."""
    auth = request.app[AUTH]
    if auth.proxied:
        header = request.app[CONFIG].console.proxy_user_header
        return auth.proxy_session(request.remote, request.headers.get(header))
    return auth.session(request.cookies.get(auth.cookie_name))


def _operator_session(request: web.Request) -> Session:
    session = _session(request)
    assert session is not None  # authenticate() let the request through
    return session


def _same_origin(request: web.Request) -> bool:
    """A browser says where a request comes from (``Origin``, ``Sec-Fetch-Site``); one from
    another site is refused whatever cookie it carries."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    # The host only: behind a proxy that ends TLS the scheme seen here is not the browser's.
    return origin is None or origin.partition("://")[2] == request.host


# -- pages ----------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    if request.app[AUTH].proxied or _session(request) is not None:
        raise web.HTTPSeeOther("/")
    return _render(request, "login.html", failed=False)


async def login(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    if auth.proxied:
        raise web.HTTPSeeOther("/")
    form = await request.post()
    token = form.get("token")
    session = auth.login(token.strip()) if isinstance(token, str) else None
    if session is None:
        log.warning("console: login refused", extra={"peer": request.remote})
        return _render(request, "login.html", status=403, failed=True)
    log.info("console: login", extra={"operator": session.operator.name, "peer": request.remote})
    redirect = web.HTTPSeeOther("/")
    redirect.set_cookie(
        auth.cookie_name,
        session.id,
        httponly=True,
        secure=auth.tls,
        samesite="Strict",
        path="/",
        max_age=int(request.app[CONFIG].console.session_ttl_s),
    )
    raise redirect


async def logout(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    auth.logout(_operator_session(request))
    redirect = web.HTTPSeeOther("/login")
    redirect.del_cookie(auth.cookie_name, path="/")
    raise redirect


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok\n")


async def overview(request: web.Request) -> web.StreamResponse:
    index = request.app[INDEX]
    name = request.query.get("range", "24h")
    span = RANGES.get(name, RANGES["24h"])
    bucket_minutes = max(1, int(span.total_seconds() // 60 // 48))
    # 48 buckets, the last one holding this minute.
    start_minute = int(datetime.now(UTC).timestamp() // 60) + 1 - 48 * bucket_minutes
    since = datetime.fromtimestamp(start_minute * 60, UTC)
    buckets = [start_minute + i * bucket_minutes for i in range(48)]
    position = {minute: i for i, minute in enumerate(buckets)}
    providers: dict[str, dict[str, list[float]]] = {}
    totals: dict[str, list[float]] = {ACCEPTED: [0.0] * 48, DEAD_LETTERED: [0.0] * 48}
    for minute, provider, kind, n in index.counts(since, bucket_minutes):
        if minute not in position:
            continue
        per_kind = providers.setdefault(provider, {ACCEPTED: [0.0] * 48, DEAD_LETTERED: [0.0] * 48})
        per_kind[kind][position[minute]] += n
        totals[kind][position[minute]] += n
    labels = [_clock(minute, bucket_minutes) for minute in buckets]
    topic_chart = charts.stacked_bars("Events and dead letters by received time", labels, totals)
    provider_charts = [
        (
            provider,
            charts.stacked_bars(f"{provider}: events and dead letters", labels, series),
            int(sum(series[ACCEPTED])),
            int(sum(series[DEAD_LETTERED])),
        )
        for provider, series in sorted(providers.items())
    ]
    return _render(
        request,
        "overview.html",
        range_name=name,
        ranges=list(RANGES),
        topic_chart=topic_chart,
        provider_charts=provider_charts,
        accepted=int(sum(totals[ACCEPTED])),
        dead_lettered=int(sum(totals[DEAD_LETTERED])),
        stats=index.stats(),
        servers=_server_pictures(request.app[SCRAPER]),
        metrics_urls=request.app[CONFIG].console.metrics_urls,
    )


def _clock(minute: int, bucket_minutes: int) -> str:
    moment = datetime.fromtimestamp(minute * 60, UTC)
    return moment.strftime("%H:%M" if bucket_minutes < 60 * 24 else "%m-%d")


def _server_pictures(scraper: Scraper) -> dict[str, Any] | None:
    """The charts drawn from the servers' metrics: outcomes per interval (duplicates and
    refusals included), acknowledgement latency, the spool."""
    scrapes = list(scraper.scrapes)
    if len(scrapes) < 2:
        return {"charts": [], "error": scraper.last_error, "spool": None, "scrapes": len(scrapes)}
    pairs = list(itertools.pairwise(scrapes))
    labels = [datetime.fromtimestamp(after.at, UTC).strftime("%H:%M:%S") for _, after in pairs]
    outcomes = sorted(
        set().union(*(s.label_values("relay_webhooks_total", "outcome") for s in scrapes))
    )
    order = ["accepted", "spooled", "duplicate", "dead_lettered", "rejected", "unavailable"]
    outcomes.sort(key=lambda name: order.index(name) if name in order else len(order))
    series = {
        outcome: [
            increase(before, after, "relay_webhooks_total", outcome=outcome)
            if not (before.failed or after.failed)
            else 0.0
            for before, after in pairs
        ]
        for outcome in outcomes
    }
    latency = {
        "p50": [_ms(quantile(before, after, 0.5)) for before, after in pairs],
        "p99": [_ms(quantile(before, after, 0.99)) for before, after in pairs],
    }
    spool = {"spool": [after.total("relay_spool_depth") for _, after in pairs]}
    last = scrapes[-1]
    return {
        "charts": [
            (
                "Webhooks answered per scrape interval, by outcome",
                series,
                charts.stacked_bars("Webhooks by outcome", labels, series),
            ),
            (
                "Acknowledgement latency (p50, p99)",
                latency,
                charts.lines("Acknowledgement latency", labels, latency, " ms"),
            ),
            (
                "Spool depth (records waiting for Kafka)",
                spool,
                charts.lines("Spool depth", labels, spool),
            ),
        ],
        "error": scraper.last_error,
        "spool": (last.total("relay_spool_depth"), last.total("relay_spool_oldest_age_seconds")),
        "scrapes": len(scrapes),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _letter_query(request: web.Request) -> LetterQuery:
    state = _query_text(request, "state")
    if state is not None and state not in REPLAY_STATES:
        raise web.HTTPBadRequest(text=f"state: {state!r} is not one of {', '.join(REPLAY_STATES)}")
    return LetterQuery(
        provider=_query_text(request, "provider"),
        reason=_query_text(request, "reason"),
        since=_parse_moment(_query_text(request, "since"), "since"),
        until=_parse_moment(_query_text(request, "until"), "until"),
        state=state,
    )


async def letters(request: web.Request) -> web.StreamResponse:
    index = request.app[INDEX]
    query = _letter_query(request)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        raise web.HTTPBadRequest(text="page: not a number") from None
    rows, total = index.letters(query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return _render(
        request,
        "letters.html",
        query=query,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        providers=index.facets("provider"),
        reasons=index.facets("reason"),
        states=REPLAY_STATES,
        filters={k: v for k, v in request.query.items() if k != "page" and v},
        **_outcome_notes(request, index.stats().replays > 0, index.ignored_outcomes()),
    )


def _outcome_notes(request: web.Request, shown: bool, ignored: int) -> dict[str, Any]:
    """What the replay states shown are worth, as ``relay dlq`` says it: how many outcomes
    were ignored as not signed with the key; or, without a key, that they prove nothing."""
    config = request.app[CONFIG]
    unauthenticated = shown and not config.replay.outcome_key
    return {
        "ignored": ignored,
        "unsigned": UNSIGNED_OUTCOME,
        "unauthenticated": unauthenticated_warning(config) if unauthenticated else None,
    }


async def letter(request: web.Request) -> web.StreamResponse:
    provider, letter_id = request.match_info["provider"], request.match_info["id"]
    filings = request.app[INDEX].filings(provider, letter_id)
    if not filings:
        raise web.HTTPNotFound(text=f"no dead letter {letter_id!r} of {provider!r}")
    config = request.app[CONFIG]
    shown = []
    for filed in filings:
        text, utf8 = body_text(filed.letter.body)
        shown.append(
            {
                "filed": filed,
                "key": f"{filed.partition}:{filed.offset}",
                "order_id": letter_order_id(config, filed.letter),
                "body": text,
                "utf8": utf8,
                "size": len(filed.letter.body),
            }
        )
    return _render(
        request,
        "letter.html",
        provider=provider,
        letter_id=letter_id,
        filings=shown,
        **_outcome_notes(
            request,
            any(filed.replays for filed in filings),
            request.app[INDEX].ignored_outcomes(provider, letter_id),
        ),
    )


async def letter_body(request: web.Request) -> web.StreamResponse:
    """The exact bytes received, as a download: never shown by the browser as a page."""
    found = request.app[INDEX].filed([request.match_info["key"]])
    if not found:
        raise web.HTTPNotFound(text="no such dead letter")
    filed = found[0]
    return web.Response(
        body=filed.letter.body,
        content_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="letter-{filed.partition}-{filed.offset}.bin"'
        },
    )


async def find_page(request: web.Request) -> web.StreamResponse:
    criteria = {
        "order": _query_text(request, "order"),
        "id": _query_text(request, "id"),
        "provider": _query_text(request, "provider"),
    }
    until = _parse_moment(_query_text(request, "until"), "until")
    since = _parse_moment(_query_text(request, "since"), "since") or (
        (until or datetime.now(UTC)) - DEFAULT_WINDOW
    )
    matches: list[Any] = []
    total = 0
    error = None
    searched = any(criteria.values())
    if searched:
        if until is not None and since >= until:
            error = f"since {rfc3339(since)} is not before until {rfc3339(until)}"
        else:
            query = FindQuery(since=since, until=until, **criteria)
            matches, total = request.app[INDEX].find(query)
    return _render(
        request,
        "find.html",
        criteria=criteria,
        since=rfc3339(since) if _query_text(request, "since") else "",
        until=rfc3339(until) if until else "",
        window=(rfc3339(since), rfc3339(until) if until else "now"),
        searched=searched,
        matches=matches,
        total=total,
        error=error,
        providers=sorted(request.app[CONFIG].providers),
    )


async def live_page(request: web.Request) -> web.StreamResponse:
    index = request.app[INDEX]
    rows = index.live(0, 0, limit=25)
    rows.sort(key=lambda row: row.received_at, reverse=True)
    after_event, after_letter = index.last_seq()
    return _render(
        request, "live.html", rows=rows, after_event=after_event, after_letter=after_letter
    )


async def live_feed(request: web.Request) -> web.StreamResponse:
    """What arrived since the given sequence numbers, as JSON for ``static/live.js``."""
    try:
        after_event = int(request.query.get("after_event", "0"))
        after_letter = int(request.query.get("after_letter", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="after_event, after_letter: numbers") from None
    index = request.app[INDEX]
    rows = index.live(after_event, after_letter)
    last_event, last_letter = index.last_seq()
    return web.json_response(
        {
            "after_event": last_event,
            "after_letter": last_letter,
            "rows": [
                {
                    "kind": row.kind.value,
                    "received_at": rfc3339(row.received_at),
                    "provider": row.provider,
                    "id": row.id,
                    "what": row.describe,
                    "order_id": row.order_id,
                    "href": f"/letters/{row.provider}/{row.id}"
                    if row.kind.value == "dead-letter"
                    else None,
                }
                for row in rows
            ],
        }
    )


# -- replay ---------------------------------------------------------------------------


async def plan_replay(request: web.Request) -> web.StreamResponse:
    """The plan of a replay: what would happen to each chosen letter. Changes nothing."""
    form = await request.post()
    index = request.app[INDEX]
    keys = [value for value in form.getall("letter", []) if isinstance(value, str)]
    if form.get("scope") == "filter":
        query = LetterQuery(
            provider=_form_text(form, "provider"),
            reason=_form_text(form, "reason"),
            since=_parse_moment(_form_text(form, "since"), "since"),
            until=_parse_moment(_form_text(form, "until"), "until"),
            state=_form_text(form, "state"),
        )
        keys = index.letter_keys(query, PLAN_LIMIT + 1)
        shown = {k: v for k, v in _query_fields(query).items() if v}
        what = "every letter matching " + (
            ", ".join(f"{k}={v}" for k, v in shown.items()) or "no filter (all of them)"
        )
    else:
        what = f"{len(keys)} chosen letter{'s' if len(keys) != 1 else ''}"
    if not keys:
        raise web.HTTPBadRequest(text="no letters chosen: tick some, or plan by the filter")
    truncated = len(keys) > PLAN_LIMIT
    filed = index.filed(keys[:PLAN_LIMIT])
    config = request.app[CONFIG]
    session = _operator_session(request)
    plan = Plan(
        secrets.token_urlsafe(12),
        session.operator.name,
        what,
        [await _plan_item(config, index, item) for item in filed],
        truncated,
    )
    request.app[WORK].plans[plan.id] = plan
    return _render(request, "plan.html", plan=plan, shown=plan.items[:PLAN_SHOWN])


def _form_text(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _query_fields(query: LetterQuery) -> dict[str, str | None]:
    return {
        "provider": query.provider,
        "reason": query.reason,
        "since": rfc3339(query.since) if query.since else None,
        "until": rfc3339(query.until) if query.until else None,
        "state": query.state,
    }


async def _plan_item(config: Config, index: Index, filed: FiledLetter) -> PlanItem:
    """What a replay would do with one letter: its last replay's result when one already
    published it; else the dry run's (``relay replay --dry-run``: verified again, then
    normalized), and whether the event it makes is already on the topic."""
    last = filed.last_replay
    if last is not None and last.outcome in (ReplayResult.REPLAYED, ReplayResult.DUPLICATE):
        return PlanItem(filed, "published", event_id=last.event_id)
    planned = await plan_letter(config, filed.letter)
    if planned.event is None:
        return PlanItem(filed, "fail", reason=planned.reason)
    if index.event_exists(filed.letter.provider, planned.event.id):
        return PlanItem(filed, "published", event_id=planned.event.id)
    return PlanItem(filed, "replay", event_id=planned.event.id)


async def run_replay(request: web.Request) -> web.StreamResponse:
    session = _operator_session(request)
    if not session.operator.may_replay:
        raise web.HTTPForbidden(text=f"{session.operator.name} may read, not replay")
    work = request.app[WORK]
    plan = work.plans.pop(request.match_info["plan"], None)
    if plan is None:
        raise web.HTTPNotFound(text="no such plan (already run, or the console restarted)")
    job = Job(secrets.token_urlsafe(12), plan, session.operator.name, datetime.now(UTC))
    work.jobs[job.id] = job
    job.task = asyncio.create_task(_replay_job(request.app[CONFIG], job, session))
    raise web.HTTPSeeOther(f"/replay/jobs/{job.id}")


async def _replay_job(config: Config, job: Job, session: Session) -> None:
    filings = frozenset(
        (item.filed.letter.provider, item.filed.letter.id, item.filed.letter.attempts)
        for item in job.plan.items
    )
    who = {"operator": session.operator.name, "role": session.operator.role}
    audit.info(
        "replay started",
        extra={
            **who,
            "job": job.id,
            "what": job.plan.what,
            "letters": len(filings),
            "filings": sorted(f"{p}:{i}:{a}" for p, i, a in filings)[:1000],
        },
    )
    try:
        job.summary = await replay(config, Selection(filings=filings), on_progress=job.progressed)
    except KafkaUnavailable as error:
        job.error = str(error)
    except Exception as error:  # the page says it; the console keeps serving
        log.exception("console: replay failed")
        job.error = f"{type(error).__name__}: {error}"
    job.finished_at = datetime.now(UTC)
    summary = job.summary
    audit.info(
        "replay finished",
        extra={
            **who,
            "job": job.id,
            "letters": len(filings),
            "matched": summary.matched if summary else 0,
            "replayed": summary.replayed if summary else 0,
            "duplicates": summary.duplicates if summary else 0,
            "failed": dict(summary.failed) if summary else {},
            "error": job.error,
        },
    )


async def replay_job(request: web.Request) -> web.StreamResponse:
    job = request.app[WORK].jobs.get(request.match_info["job"])
    if job is None:
        raise web.HTTPNotFound(text="no such replay")
    return _render(request, "job.html", job=job)


# -- the application ------------------------------------------------------------------


def build_console(
    config: Config, index: Index | None = None, *, follow: bool = True
) -> web.Application:
    """The console app; with ``follow`` it keeps the index current and scrapes metrics."""
    app = web.Application(middlewares=[security_headers, authenticate], client_max_size=1 << 20)
    app[CONFIG] = config
    app[AUTH] = Auth(config.console)
    app[INDEX] = index if index is not None else Index(config.console.index_path, config)
    app[TEMPLATES] = _environment()
    _marked()  # built now (0.1 s), not during the first page
    app[SCRAPER] = Scraper(config.console.metrics_urls, config.console.scrape_interval_s)
    app[INDEXER] = Indexer(app[INDEX], config)
    app[WORK] = Work()
    if follow:
        app.cleanup_ctx.append(_background)
    app.add_routes(
        [
            web.get("/login", login_page),
            web.post("/login", login),
            web.post("/logout", logout),
            web.get("/healthz", healthz),
            web.get("/", overview),
            web.get("/letters", letters),
            web.get("/letters/{provider}/{id}", letter),
            web.get("/letter-body/{key}", letter_body),
            web.get("/find", find_page),
            web.get("/live", live_page),
            web.get("/live/feed", live_feed),
            web.post("/replay/plan", plan_replay),
            web.post("/replay/{plan}", run_replay),
            web.get("/replay/jobs/{job}", replay_job),
            web.static("/static", HERE / "static", append_version=False),
        ]
    )
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(app[INDEXER].run())]
    if app[CONFIG].console.metrics_urls:
        tasks.append(asyncio.create_task(app[SCRAPER].run()))
    yield
    for task in [*tasks, *(job.task for job in app[WORK].jobs.values() if job.task)]:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    app[INDEX].close()


def tls_context(config: Config) -> ssl.SSLContext | None:
    console = config.console
    if not console.tls_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(console.tls_certfile, console.tls_keyfile or None)
    return context


def run_console(config: Config) -> None:
    """Serve until interrupted (``relay console``)."""
    console = config.console
    scheme = "https" if console.tls_certfile else "http"
    log.info(
        "console serving",
        extra={"url": f"{scheme}://{console.host}:{console.port}", "index": console.index_path},
    )
    web.run_app(
        build_console(config),
        host=console.host,
        port=console.port,
        ssl_context=tls_context(config),
        print=None,
        access_log=None,
    )
