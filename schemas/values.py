"""Field conversions shared by the normalizers: amounts, times, assets, ids.

All of them are pure and raise :class:`NormalizationError` with a reason code
naming the field, so a dead letter says exactly what was wrong.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from schemas.errors import NormalizationError

_MISSING = object()

# Canonical statuses and which of them end an order's life.
STATUSES = frozenset(
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
FINAL_STATUSES = frozenset({"succeeded", "failed", "expired", "underpaid", "overpaid"})


def require_object(payload: Any, what: str = "the payload") -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise NormalizationError("invalid_field", f"{what} is not a JSON object")
    return payload


def field(payload: Mapping[str, Any], name: str, *, required: bool = False) -> Any:
    """``payload[name]``; None when absent, or ``missing_field`` when required."""
    value = payload.get(name, _MISSING) if isinstance(payload, Mapping) else _MISSING
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


def amount(value: Any, name: str) -> str | None:
    """A decimal string exactly as the provider meant it, or None.

    Strings are kept as sent once they parse as a finite decimal (``150.0000``
    stays ``150.0000``). JSON numbers arrive as ``Decimal`` or ``int`` (see
    :mod:`schemas.payload`) and are written in plain notation. Floats are
    refused: one reaching here is a bug upstream, not a value to round.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        raise NormalizationError("invalid_amount", f"the amount {name!r} is not a decimal")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NormalizationError("invalid_amount", f"the amount {name!r} is not finite")
        return format(value, "f")
    if isinstance(value, str):
        stripped = value.strip()
        try:
            parsed = Decimal(stripped)
        except InvalidOperation:
            raise NormalizationError(
                "invalid_amount", f"the amount {name!r} is not a decimal number"
            ) from None
        if not parsed.is_finite() or not _PLAIN_DECIMAL.fullmatch(stripped):
            raise NormalizationError(
                "invalid_amount", f"the amount {name!r} is not a plain decimal number"
            )
        return stripped
    raise NormalizationError("invalid_amount", f"the amount {name!r} is not a decimal")


_PLAIN_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with ``Z``; milliseconds only when the moment has a fraction."""
    utc = moment.astimezone(UTC)
    spec = "milliseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def from_unix(value: Any, name: str, *, unit: str = "s") -> str | None:
    """UNIX seconds (``unit='s'``) or milliseconds (``'ms'``) to RFC 3339 UTC; 0 and None are None."""
    if value is None or value == "" or value == 0:
        return None
    try:
        number = Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number < 0:
        raise NormalizationError("invalid_time", f"the time {name!r} is not a UNIX timestamp")
    seconds = number / 1000 if unit == "ms" else number
    whole = int(seconds)
    try:
        moment = datetime.fromtimestamp(whole, tz=UTC)
        return rfc3339(moment + timedelta(microseconds=int((seconds - whole) * 1_000_000)))
    except (OverflowError, ValueError, OSError) as exc:
        raise NormalizationError("invalid_time", f"the time {name!r} is out of range") from exc


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
    return rfc3339(_localize(moment, zone))


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
    return rfc3339(moment.replace(tzinfo=zone))


def _localize(moment: datetime, zone: ZoneInfo | None) -> datetime:
    if moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=zone or UTC)


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
    return status, status in FINAL_STATUSES


def stable_id(*parts: Any) -> str:
    """A stable event id from the fields that identify one notification.

    The parts are written as text (None as empty) and joined with the ASCII
    unit separator, which cannot occur in the values, then hashed with SHA-256;
    the first 32 hex digits (128 bits) are the id.
    """
    joined = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


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
    parts = [part for part in re.split(r"[_\-\s]+", str(code).upper()) if part]
    asset = next((part for part in parts if part in _ASSETS), None)
    rest = [part for part in parts if part not in _ASSETS]
    network = None
    if rest:
        network = _NETWORKS.get(rest[0], rest[0])
    return asset, network
