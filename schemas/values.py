"""Field conversions shared by the normalizers: amounts, times, assets, ids.

All of them are pure and raise :class:`NormalizationError` with a reason code
naming the field, so a dead letter says exactly what was wrong.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from schemas import ranges
from schemas.errors import NormalizationError

_MISSING = object()

# Canonical statuses and which of them end a flow (README, "The canonical event").
# Version 1 of the payment event carries STATUSES_V1; version 2 (card and bank
# providers, see schemas.event) all of STATUSES.
STATUSES_V1 = frozenset(
    {
        "pending",
        "processing",
        "succeeded",
        "failed",
        "expired",
        "underpaid",
        "overpaid",
        "partially_paid",
        "under_review",
    }
)
STATUSES = STATUSES_V1 | {
    "authorized",
    "canceled",
    "refunded",
    "partially_refunded",
    "won",
    "lost",
}
FINAL_STATUSES = frozenset(
    {
        "succeeded",
        "failed",
        "expired",
        "underpaid",
        "overpaid",
        "canceled",
        "refunded",
        "won",
        "lost",
    }
)


def require_object(payload: Any, what: str = "the payload") -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise NormalizationError("invalid_field", f"{what} is not a JSON object")
    return payload


def field(payload: Mapping[str, Any], name: str, *, required: bool = False) -> Any:
    """``payload[name]``; None when absent, or ``missing_field`` when required."""
    # A parsed body's objects are dicts: the exact type check spares the ABC check's cost.
    is_mapping = type(payload) is dict or isinstance(payload, Mapping)
    value = payload.get(name, _MISSING) if is_mapping else _MISSING
    if value is _MISSING or (required and value in (None, "")):
        if required:
            raise NormalizationError("missing_field", f"the field {name!r} is missing")
        return None
    return value


def text(value: Any, name: str) -> str | None:
    """A string field as text: ints allowed (ids are sometimes numbers), None and "" as None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise NormalizationError("invalid_field", f"the field {name!r} is not a string")
    return str(value)


def required_text(payload: Mapping[str, Any], name: str) -> str:
    """``payload[name]`` as text; ``missing_field`` when absent, null or empty."""
    value = text(field(payload, name), name)
    if value is None:
        raise NormalizationError("missing_field", f"the field {name!r} is missing")
    return value


def loose_text(payload: Any, *path: str) -> str | None:
    """The text at ``path`` in nested objects as :func:`text` reads it, or None wherever
    that is absent or :func:`text` would refuse it: what a payload that failed to
    normalize (a dead letter's) still names."""
    value = payload
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    try:
        return text(value, path[-1])
    except NormalizationError:
        return None


def amount(value: Any, name: str) -> str | None:
    """A decimal string exactly as the provider meant it, or None.

    Strings are kept as sent once they parse as a finite plain decimal
    (``150.0000`` stays ``150.0000``); a string in a loose notation (``+5``,
    ``007.50``, ``.5``, ``5.``) is rewritten to the same value with the same
    digits after the point (``5``, ``7.50``, ``0.5``, ``5``), so every amount
    Relay publishes matches the schema's one pattern. JSON numbers arrive as
    ``Decimal`` or ``int`` (see :mod:`schemas.payload`) and are written in plain
    notation. Floats are refused: one reaching here is a bug upstream, not a
    value to round. So is an amount longer than ``MAX_AMOUNT_DIGITS`` digits:
    no asset needs it, and a JSON number such as ``1e999999999`` would
    otherwise expand to a gigabyte of text.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        raise NormalizationError("invalid_amount", f"the amount {name!r} is not a decimal")
    if isinstance(value, int):
        return _plain(Decimal(value), name)
    if isinstance(value, Decimal):
        return _plain(value, name)
    if isinstance(value, str):
        stripped = value.strip()
        # Canonical first: most amounts are, and every canonical one is a loose one too.
        if _CANONICAL_DECIMAL.fullmatch(stripped):
            return stripped
        if not _LOOSE_DECIMAL.fullmatch(stripped):
            raise NormalizationError(
                "invalid_amount", f"the amount {name!r} is not a plain decimal number"
            )
        return _plain(Decimal(stripped), name)
    raise NormalizationError("invalid_amount", f"the amount {name!r} is not a decimal")


MAX_AMOUNT_DIGITS = 60
# Written without ``\d``: that also matches non-ASCII digits, which Decimal accepts.
_LOOSE_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
# The one notation Relay publishes; payment-event.schema.json has the same pattern.
_CANONICAL_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


def _plain(value: Decimal, name: str) -> str:
    if not value.is_finite():
        raise NormalizationError("invalid_amount", f"the amount {name!r} is not finite")
    exponent = int(value.as_tuple().exponent)  # finite, so never 'n', 'N' or 'F'
    digits = max(value.adjusted() + 1, 1) + max(-exponent, 0)
    if digits > MAX_AMOUNT_DIGITS:
        raise NormalizationError(
            "invalid_amount", f"the amount {name!r} has more than {MAX_AMOUNT_DIGITS} digits"
        )
    return format(value, "f")


def rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with ``Z``; milliseconds only when the moment has a fraction.

    A moment outside the years 1 to 9999 once in UTC (:mod:`schemas.ranges`) raises
    ``invalid_time``: no event carries it.
    """
    # Most moments are UTC already (received times, ``Z`` times): the conversion is a call
    # for nothing then. A UTC moment's isoformat ends in "+00:00", which "Z" replaces
    # (cheaper than a naive copy by replace() to format).
    try:
        utc = moment if moment.tzinfo is UTC else ranges.utc(moment)
    except ranges.OutOfRange as exc:
        raise NormalizationError("invalid_time", str(exc)) from None
    spec = "milliseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec)[:-6] + "Z"


def from_unix(value: Any, name: str, *, unit: str = "s") -> str | None:
    """UNIX time to RFC 3339 UTC; 0 (as a number or text) and None are None.

    ``unit`` is ``'s'`` (seconds), ``'ms'`` (milliseconds) or ``'auto'``:
    milliseconds from ``AUTO_MS_FROM`` (1e11) up, seconds below. The two
    ranges cannot be confused for any real event time: 1e11 seconds is the
    year 5138, 1e11 milliseconds is March 1973.
    """
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value)) if isinstance(value, int | str | Decimal) else None
    except InvalidOperation:
        number = None
    if isinstance(value, bool) or number is None or not number.is_finite() or number < 0:
        raise NormalizationError("invalid_time", f"the time {name!r} is not a UNIX timestamp")
    if number == 0:
        return None
    # Checked before int(): converting 1e999999999 would take minutes.
    if number >= _MAX_UNIX_MS:
        raise NormalizationError("invalid_time", f"the time {name!r} is out of range")
    if unit == "ms" or (unit == "auto" and number >= AUTO_MS_FROM):
        number /= 1000
    whole = int(number)
    try:
        moment = datetime.fromtimestamp(whole, tz=UTC)
        return rfc3339(moment + timedelta(microseconds=int((number - whole) * 1_000_000)))
    except (OverflowError, ValueError, OSError) as exc:
        raise NormalizationError("invalid_time", f"the time {name!r} is out of range") from exc


AUTO_MS_FROM = Decimal(10) ** 11
# Year 10000 in milliseconds: beyond what datetime can hold in either unit.
_MAX_UNIX_MS = Decimal(253_402_300_800_000)


def from_iso(value: Any, name: str, *, zone: ZoneInfo | None = None) -> str | None:
    """An ISO 8601 time to RFC 3339 UTC. A time without offset is read in ``zone`` (UTC if None)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise NormalizationError("invalid_time", f"the time {name!r} is not a string")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise NormalizationError("invalid_time", f"the time {name!r} is not ISO 8601") from exc
    return rfc3339(_in_utc(_localize(moment, zone), name))


def from_local(value: Any, name: str, fmt: str, zone: ZoneInfo) -> str | None:
    """A zone-less local time in ``fmt`` (e.g. ``%Y-%m-%d %H:%M:%S``) read in ``zone``.

    Ambiguous wall times (the repeated hour when daylight saving ends) take
    the first occurrence (``fold=0``), the earlier instant; nonexistent ones
    (the skipped hour) are shifted forward as :mod:`zoneinfo` does.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise NormalizationError("invalid_time", f"the time {name!r} is not a string")
    try:
        moment = datetime.strptime(value.strip(), fmt)
    except ValueError as exc:
        raise NormalizationError(
            "invalid_time", f"the time {name!r} does not match the documented format"
        ) from exc
    return rfc3339(_in_utc(moment.replace(tzinfo=zone), name))


def _localize(moment: datetime, zone: ZoneInfo | None) -> datetime:
    if moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=zone or UTC)


def _in_utc(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC; ``invalid_time`` naming the field when that is outside the years
    1 to 9999 (``9999-12-31 23:59:59`` in New York is in the year 10000)."""
    if moment.tzinfo is UTC:
        return moment
    try:
        return ranges.utc(moment)
    except ranges.OutOfRange:
        raise NormalizationError(
            "invalid_time", f"the time {name!r} is outside the years 1 to 9999 in UTC"
        ) from None


def map_status(
    value: Any, name: str, table: Mapping[str, str], overrides: Mapping[str, str]
) -> tuple[str, bool]:
    """Provider status to ``(canonical status, final)``; unknown values raise ``unknown_status``.

    ``overrides`` (instance config) win over the profile's ``table``. Values
    are matched as text, so ``2`` and ``"2"`` are the same status.
    """
    if value is None or value == "":
        raise NormalizationError("missing_field", f"the status field {name!r} is missing")
    key = str(value)
    status = overrides.get(key) or table.get(key)
    if status is None:
        raise NormalizationError(
            "unknown_status", f"the status {key!r} in {name!r} is not a known status"
        )
    if status not in STATUSES:
        # A mistyped override must not publish an event that breaks the schema;
        # as a dead letter it can be replayed once the config is fixed.
        raise NormalizationError(
            "unknown_status", f"the status {key!r} maps to {status!r}, not a canonical status"
        )
    return status, status in FINAL_STATUSES


def stable_id(*parts: Any) -> str:
    """A stable event id from the fields that identify one notification.

    The parts are written as text (None as empty), encoded as a JSON array
    (unambiguous whatever characters the values hold, and ASCII even for lone
    surrogates), then hashed with SHA-256; the first 32 hex digits (128 bits)
    are the id.
    """
    encoded = json.dumps(["" if part is None else str(part) for part in parts])
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()[:32]


# Chain names as providers spell them, to the canonical network code.
_NETWORKS = {
    "TRON": "TRON",
    "TRX": "TRON",
    "TRC20": "TRON",
    "ETH": "ETH",
    "ERC20": "ETH",
    "ETHEREUM": "ETH",
    "BSC": "BSC",
    "BEP20": "BSC",
    "BNB": "BSC",
    "ARBITRUM": "ARBITRUM",
    "SOL": "SOL",
    "SOLANA": "SOL",
    "BASE": "BASE",
    "BASEEVM": "BASE",
    "MATIC": "POLYGON",
    "POLYGON": "POLYGON",
}
_ASSETS = frozenset({"USDT", "USDC"})


def asset_network(code: Any) -> tuple[str | None, str | None]:
    """Split codes such as ``TRON_USDT``, ``USDT_TRC20``, ``ETH`` or ``BASEEVM``.

    Returns ``(asset, network)``; a part the code does not name is None. An
    unknown network word is kept upper-cased rather than dropped.
    """
    if code is None or code == "":
        return None, None
    upper = str(code).upper()
    # A provider sends a handful of codes, so the split is remembered; only for short codes,
    # so that the cache stays a few kilobytes whatever a sender writes.
    if len(upper) <= _CACHED_CODE_CHARS:
        return _split_known_code(upper)
    return _split_code(upper)


def _split_code(upper: str) -> tuple[str | None, str | None]:
    parts = [part for part in _CODE_SEPARATORS.split(upper) if part]
    asset = next((part for part in parts if part in _ASSETS), None)
    rest = [part for part in parts if part not in _ASSETS]
    network = None
    if rest:
        network = _NETWORKS.get(rest[0], rest[0])
    return asset, network


_CODE_SEPARATORS = re.compile(r"[_\-\s]+")
_CACHED_CODE_CHARS = 32
_split_known_code = functools.lru_cache(maxsize=256)(_split_code)
