"""Edge cases of the shared conversions (``schemas.values``) and the JSON reader (``schemas.payload``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.errors import NormalizationError
from schemas.payload import DEFAULT_MAX_DEPTH, parse_payload
from schemas.values import (
    MAX_AMOUNT_DIGITS,
    amount,
    asset_network,
    field,
    from_iso,
    from_local,
    from_unix,
    map_status,
    require_object,
    required_text,
    rfc3339,
    stable_id,
    text,
)

NEW_YORK = ZoneInfo("America/New_York")


def reason(call, *args, **kwargs) -> str:
    with pytest.raises(NormalizationError) as caught:
        call(*args, **kwargs)
    return caught.value.reason


# --- amounts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("150.0000", "150.0000"),
        ("5000000.000001", "5000000.000001"),
        ("0", "0"),
        ("-1.25", "-1.25"),
        (" 1.50 ", "1.50"),
        (5, "5"),
        (0, "0"),
        (Decimal("150.0000"), "150.0000"),
        (Decimal("32.87"), "32.87"),
        (Decimal("1E+3"), "1000"),
        (Decimal("1.5E-7"), "0.00000015"),
        (Decimal("0E-8"), "0.00000000"),
        (None, None),
        ("", None),
    ],
)
def test_amount_keeps_the_providers_digits(value, expected) -> None:
    assert amount(value, "amount") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("+5", "5"), ("007.50", "7.50"), (".5", "0.5"), ("5.", "5"), ("-.25", "-0.25")],
)
def test_amount_rewrites_loose_notation_to_the_published_one(value, expected) -> None:
    assert amount(value, "amount") == expected


@pytest.mark.parametrize(
    "value",
    [
        "1,000.00",
        "1e5",
        "abc",
        "NaN",
        "Infinity",
        "\u0661\u0660\u0660",  # Arabic-Indic 100: Decimal reads it, consumers would not
        "1 000",
        "--1",
        ".",
        1.5,
        True,
        Decimal("NaN"),
        Decimal("Infinity"),
        {"value": "1"},
        ["1"],
    ],
)
def test_amount_refuses_what_is_not_a_plain_decimal(value) -> None:
    assert reason(amount, value, "amount") == "invalid_amount"


def test_amount_refuses_huge_exponents_at_once() -> None:
    started = time.perf_counter()
    assert reason(amount, Decimal("1e999999999"), "amount") == "invalid_amount"
    assert reason(amount, Decimal("1e-999999999"), "amount") == "invalid_amount"
    assert time.perf_counter() - started < 1


def test_amount_digit_limit() -> None:
    widest = "9" * (MAX_AMOUNT_DIGITS - 18) + "." + "1" * 18
    assert amount(widest, "amount") == widest
    assert amount(Decimal(widest), "amount") == widest
    assert reason(amount, Decimal(widest + "1"), "amount") == "invalid_amount"
    assert reason(amount, 10**MAX_AMOUNT_DIGITS, "amount") == "invalid_amount"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 32.87}', "32.87"),
        (b'{"a": 150.0000}', "150.0000"),
        (b'{"a": 5000000.000001}', "5000000.000001"),
        (b'{"a": 0.1}', "0.1"),
        (b'{"a": 1e2}', "100"),
        (b'{"a": 12345678901234567890}', "12345678901234567890"),
    ],
)
def test_json_numbers_reach_amount_exactly(body, expected) -> None:
    assert amount(parse_payload(body)["a"], "a") == expected


# --- fields and text ---------------------------------------------------------


def test_field_absent_null_and_empty() -> None:
    payload = {"a": None, "b": "", "c": 0}
    assert field(payload, "missing") is None
    assert field(payload, "a") is None
    assert field(payload, "b") == ""
    assert field(payload, "c") == 0
    assert field(["not", "a", "mapping"], "a") is None  # type: ignore[arg-type]
    for name in ("missing", "a", "b"):
        assert reason(field, payload, name, required=True) == "missing_field"
    assert field(payload, "c", required=True) == 0


def test_text_and_required_text() -> None:
    assert text("abc", "x") == "abc"
    assert text(1752664386848723000, "x") == "1752664386848723000"
    assert text("", "x") is None
    assert text(None, "x") is None
    for value in (True, 1.5, {"a": 1}, ["a"]):
        assert reason(text, value, "x") == "invalid_field"
    assert required_text({"x": 7}, "x") == "7"
    empty: tuple[dict[str, Any], ...] = ({}, {"x": None}, {"x": ""})
    for payload in empty:
        assert reason(required_text, payload, "x") == "missing_field"


def test_require_object() -> None:
    assert require_object({"a": 1}) == {"a": 1}
    not_objects: tuple[Any, ...] = ([], "x", 1, None)
    for payload in not_objects:
        assert reason(require_object, payload) == "invalid_field"


# --- times -------------------------------------------------------------------


def test_rfc3339_is_utc_with_milliseconds_only_when_needed() -> None:
    assert rfc3339(datetime(2026, 1, 15, 10, 30, tzinfo=UTC)) == "2026-01-15T10:30:00Z"
    plus8 = timezone(timedelta(hours=8))
    assert rfc3339(datetime(2026, 1, 15, 8, 0, 0, 250_000, tzinfo=plus8)) == (
        "2026-01-15T00:00:00.250Z"
    )


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1768480200, "s", "2026-01-15T12:30:00Z"),
        ("1768480200", "s", "2026-01-15T12:30:00Z"),
        (Decimal("1768480200.5"), "s", "2026-01-15T12:30:00.500Z"),
        (1768480200848, "ms", "2026-01-15T12:30:00.848Z"),
        (1768480200, "auto", "2026-01-15T12:30:00Z"),
        (1768480200848, "auto", "2026-01-15T12:30:00.848Z"),
        # The auto boundary: just below 1e11 is seconds (year 5138), 1e11 is milliseconds.
        (99_999_999_999, "auto", "5138-11-16T09:46:39Z"),
        (100_000_000_000, "auto", "1973-03-03T09:46:40Z"),
        (0, "s", None),
        ("0", "s", None),
        (Decimal("0.0"), "ms", None),
        (None, "s", None),
        ("", "s", None),
    ],
)
def test_from_unix(value, unit, expected) -> None:
    assert from_unix(value, "t", unit=unit) == expected


@pytest.mark.parametrize("value", [-1, "-5", "yesterday", True, 1.5, {"t": 1}, "NaN"])
def test_from_unix_refuses(value) -> None:
    assert reason(from_unix, value, "t") == "invalid_time"


def test_from_unix_refuses_out_of_range_at_once() -> None:
    started = time.perf_counter()
    assert reason(from_unix, Decimal("1e999999999"), "t") == "invalid_time"
    assert reason(from_unix, 10**40, "t", unit="ms") == "invalid_time"
    assert reason(from_unix, 253_402_300_800, "t") == "invalid_time"  # year 10000
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2024-01-15T14:32:00Z", None, "2024-01-15T14:32:00Z"),
        ("2024-01-15T22:32:00+08:00", None, "2024-01-15T14:32:00Z"),
        ("2024-01-15T14:32:00.123456Z", None, "2024-01-15T14:32:00.123Z"),
        ("2025-12-03 17:07:48", None, "2025-12-03T17:07:48Z"),
        ("2025-12-03 17:07:48", ZoneInfo("Asia/Shanghai"), "2025-12-03T09:07:48Z"),
        ("2025-12-03T17:07:48+11:00", ZoneInfo("Asia/Shanghai"), "2025-12-03T06:07:48Z"),
        (None, None, None),
        ("", None, None),
    ],
)
def test_from_iso(value, zone, expected) -> None:
    assert from_iso(value, "t", zone=zone) == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "03/12/2025 17:07",
        1768480200,
        True,
        "9999-12-31T23:59:59-01:00",  # the year 10000 in UTC
        "0001-01-01T00:00:00+01:00",  # the year 0 in UTC
    ],
)
def test_from_iso_refuses(value) -> None:
    assert reason(from_iso, value, "t") == "invalid_time"


def test_times_at_the_ends_of_the_range() -> None:
    assert from_iso("9999-12-31T23:59:59Z", "t") == "9999-12-31T23:59:59Z"
    assert from_iso("9999-12-31T22:59:59-01:00", "t") == "9999-12-31T23:59:59Z"
    assert from_iso("0001-01-01T00:00:00Z", "t") == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        # 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT.
        ("2026-03-08 01:59:59", "2026-03-08T06:59:59Z"),
        ("2026-03-08 02:00:00", "2026-03-08T07:00:00Z"),  # skipped: read in EST
        ("2026-03-08 02:30:00", "2026-03-08T07:30:00Z"),
        ("2026-03-08 03:00:00", "2026-03-08T07:00:00Z"),
        ("2026-03-08 03:00:01", "2026-03-08T07:00:01Z"),
        # 2026-11-01: clocks fall back from 02:00 EDT to 01:00 EST; 01:xx happens twice.
        ("2026-11-01 00:59:59", "2026-11-01T04:59:59Z"),
        ("2026-11-01 01:00:00", "2026-11-01T05:00:00Z"),  # first occurrence, EDT
        ("2026-11-01 01:59:59", "2026-11-01T05:59:59Z"),
        ("2026-11-01 02:00:00", "2026-11-01T07:00:00Z"),
        ("2026-01-15 10:30:00", "2026-01-15T15:30:00Z"),
        ("2026-07-04 12:00:00", "2026-07-04T16:00:00Z"),
    ],
)
def test_from_local_new_york_across_dst(wall, expected) -> None:
    assert from_local(wall, "payTime", "%Y-%m-%d %H:%M:%S", NEW_YORK) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026/03/08 01:00:00",
        "2026-03-08T01:00:00",
        "x",
        1700000000,
        "9999-12-31 23:59:59",  # New York time: the year 10000 in UTC
    ],
)
def test_from_local_refuses(value) -> None:
    assert reason(from_local, value, "payTime", "%Y-%m-%d %H:%M:%S", NEW_YORK) == "invalid_time"


def test_from_local_refuses_a_time_before_the_year_1_in_utc() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    assert reason(from_local, "0001-01-01 00:00:00", "t", "%Y-%m-%d %H:%M:%S", shanghai) == (
        "invalid_time"
    )


def test_rfc3339_refuses_a_moment_outside_the_years_1_to_9999_in_utc() -> None:
    late = datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1)))
    with pytest.raises(NormalizationError) as raised:
        rfc3339(late)
    assert raised.value.reason == "invalid_time"


# --- statuses and ids ----------------------------------------------------------

TABLE = {"0": "pending", "2": "succeeded", "4": "underpaid", "-1": "under_review"}


def test_map_status() -> None:
    assert map_status(2, "status", TABLE, {}) == ("succeeded", True)
    assert map_status("2", "status", TABLE, {}) == ("succeeded", True)
    assert map_status(0, "status", TABLE, {}) == ("pending", False)
    assert map_status(-1, "status", TABLE, {}) == ("under_review", False)
    assert map_status(4, "status", TABLE, {}) == ("underpaid", True)
    assert map_status(9, "status", TABLE, {"9": "partially_paid"}) == ("partially_paid", False)
    assert map_status(0, "status", TABLE, {"0": "processing"}) == ("processing", False)
    assert reason(map_status, 9, "status", TABLE, {}) == "unknown_status"
    assert reason(map_status, "SUCCEEDED", "status", TABLE, {}) == "unknown_status"
    assert reason(map_status, None, "status", TABLE, {}) == "missing_field"
    assert reason(map_status, "", "status", TABLE, {}) == "missing_field"


def test_map_status_refuses_an_override_to_a_non_canonical_status() -> None:
    assert reason(map_status, 9, "status", TABLE, {"9": "paid"}) == "unknown_status"


def test_stable_id() -> None:
    first = stable_id("order-1", 2, "10.00", "2026-01-15T15:30:00Z")
    assert first == stable_id("order-1", "2", "10.00", "2026-01-15T15:30:00Z")
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != stable_id("order-1", 3, "10.00", "2026-01-15T15:30:00Z")
    assert stable_id("a", None) == stable_id("a", "")
    # No separator can make two different part lists collide.
    assert stable_id("a\x1fb") != stable_id("a", "b")
    assert stable_id('a", "b') != stable_id("a", "b")
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert stable_id("\ud800") != stable_id("\ud801")  # lone surrogates do not crash


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("TRON_USDT", ("USDT", "TRON")),
        ("USDT_TRC20", ("USDT", "TRON")),
        ("USDT_ERC20", ("USDT", "ETH")),
        ("USDT_BSC", ("USDT", "BSC")),
        ("usdt-trc20", ("USDT", "TRON")),
        ("ETH_USDT", ("USDT", "ETH")),
        ("BSC_USDC", ("USDC", "BSC")),
        ("BASE_USDC", ("USDC", "BASE")),
        ("ARBITRUM_USDC", ("USDC", "ARBITRUM")),
        ("SOL_USDT", ("USDT", "SOL")),
        ("MATIC_USDT", ("USDT", "POLYGON")),
        ("ETH", (None, "ETH")),
        ("TRX", (None, "TRON")),
        ("BASEEVM", (None, "BASE")),
        ("USDT", ("USDT", None)),
        ("AVAX_USDC", ("USDC", "AVAX")),  # an unknown chain is kept, upper-cased
        (None, (None, None)),
        ("", (None, None)),
    ],
)
def test_asset_network(code, expected) -> None:
    assert asset_network(code) == expected


# --- the JSON reader -------------------------------------------------------------


def test_payload_numbers_keep_their_text() -> None:
    payload = parse_payload(b'{"a": 150.0000, "b": 12345678901234567890, "c": 1E+400}')
    assert isinstance(payload["a"], Decimal) and str(payload["a"]) == "150.0000"
    assert payload["b"] == 12345678901234567890 and isinstance(payload["b"], int)
    assert payload["c"] == Decimal("1E+400")


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": 2, "status": 3}',
        b'{"data": {"orderId": "a", "orderId": "b"}}',
        b'[{"k": 1, "k": 1}]',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1} x',
        b"",
        b"\xef\xbb\xbf{}",  # a byte order mark
        b'{"a": "\xff"}',  # not UTF-8
    ],
)
def test_payload_refuses(body) -> None:
    assert reason(parse_payload, body) == "malformed_json"


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1e999999999999999999999}',  # past what decimal holds at all
        b'{"a": -1.5e-999999999999999999999}',
        b'{"a": [1e1000000]}',  # past the exponent bound
        b'{"a": 1e-1000000}',
        b'{"a": {"b": ' + b"1" * 4301 + b"}}",  # past Python's integer parsing limit
        b'{"a": -' + b"1" * 4301 + b"}",
        b'{"a": 1.' + b"0" * 4300 + b"}",  # 4,301 significant digits
        b'  {"a": 1e999999999999999999999}  ',  # the slow path too
        b'  {"a": ' + b"1" * 5000 + b"}  ",
    ],
)
def test_payload_refuses_numbers_out_of_range(body) -> None:
    with pytest.raises(NormalizationError, match="out of range") as raised:
        parse_payload(body)
    assert raised.value.reason == "out_of_range"


def test_payload_reads_numbers_at_the_ends_of_the_range() -> None:
    payload = parse_payload(
        b'{"a": 1e999999, "b": -1e-999999, "c": ' + b"9" * 4300 + b', "d": 1.' + b"0" * 4299 + b"}"
    )
    assert payload["a"] == Decimal("1e999999") and payload["b"] == Decimal("-1e-999999")
    assert payload["c"] == 10**4300 - 1
    assert payload["d"] == 1


def test_payload_nesting_limit() -> None:
    def nested(depth: int) -> bytes:
        return b"[" * depth + b"]" * depth

    assert parse_payload(nested(DEFAULT_MAX_DEPTH)) is not None
    assert reason(parse_payload, nested(DEFAULT_MAX_DEPTH + 1)) == "malformed_json"
    assert reason(parse_payload, nested(100_000)) == "malformed_json"
    assert reason(parse_payload, b'{"a":' * 65 + b"1" + b"}" * 65) == "malformed_json"


def test_payload_brackets_inside_strings_do_not_count() -> None:
    body = b'{"note": "' + b"[{" * 200 + b'\\"]"}'
    assert parse_payload(body) == {"note": "[{" * 200 + '"]'}
