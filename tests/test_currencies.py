"""``schemas/currencies.py``: the providers' minor-unit tables and the exact conversion.

Known answers for every exponent and for the currencies where the providers
disagree, the refusals (an unknown currency is a dead letter, never a guess),
and a check over many values that the decimal string is the minor-unit
integer exactly, in the schema's one notation.
"""

from __future__ import annotations

import random
import re
from decimal import Decimal
from typing import Any

import pytest

from schemas.currencies import (
    ADYEN,
    CHECKOUT,
    ISO_4217,
    PADDLE,
    STRIPE,
    CurrencyTable,
    currency_code,
    minor_units,
)
from schemas.errors import NormalizationError
from schemas.values import MAX_AMOUNT_DIGITS

TABLES = (STRIPE, ADYEN, ISO_4217, CHECKOUT)
# payment-event.schema.json's decimal pattern.
DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


@pytest.mark.parametrize(
    ("table", "value", "currency", "expected"),
    [
        (STRIPE, 1099, "usd", "10.99"),
        (STRIPE, 5, "USD", "0.05"),
        (STRIPE, 0, "eur", "0.00"),
        (STRIPE, 500, "jpy", "500"),
        (STRIPE, 1000, "kwd", "1.000"),
        (STRIPE, 5120, "bhd", "5.120"),
        (STRIPE, -150, "gbp", "-1.50"),
        (STRIPE, "1099", "usd", "10.99"),
        (STRIPE, "007", "usd", "0.07"),
        (STRIPE, "-0", "usd", "0.00"),
        # ISK stays two-decimal in Stripe's API: 100 is one krona.
        (STRIPE, 500, "isk", "5.00"),
        (STRIPE, 12345678901234567890123, "usd", "123456789012345678901.23"),
        # Where Adyen differs from ISO 4217 and from Stripe.
        (STRIPE, 1000, "clp", "1000"),
        (ADYEN, 1000, "CLP", "10.00"),
        (STRIPE, 1000, "cve", "10.00"),
        (ADYEN, 1000, "CVE", "1000"),
        (STRIPE, 1000, "idr", "10.00"),
        (ADYEN, 1000, "IDR", "1000"),
        (ADYEN, 1000, "ISK", "10.00"),
        (ADYEN, 1000, "LYD", "1.000"),
        (ADYEN, 1000, "UGX", "1000"),
        # ISO 4217's own: ISK and CLP without decimals, CVE and IDR with two.
        (ISO_4217, 1000, "ISK", "1000"),
        (ISO_4217, 1000, "CLP", "1000"),
        (ISO_4217, 1000, "CVE", "10.00"),
        (ISO_4217, 1000, "IDR", "10.00"),
        (ISO_4217, 12345, "KWD", "12.345"),
        (ISO_4217, 1000, "IQD", "1.000"),
        (PADDLE, "6522", "JPY", "6522"),
        (PADDLE, "65215", "USD", "652.15"),
        (PADDLE, "1000", "HUF", "10.00"),
        # Checkout.com: CLP in hundredths (not on its whole-amount list), ISK whole.
        (CHECKOUT, 150000, "CLP", "1500.00"),
        (CHECKOUT, 1000, "ISK", "1000"),
        (CHECKOUT, 12340, "KWD", "12.340"),
    ],
)
def test_converts_exactly(table: CurrencyTable, value: Any, currency: str, expected: str) -> None:
    assert minor_units(value, currency, table) == expected


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.provider)
def test_every_amount_is_the_minor_units_exactly(table: CurrencyTable) -> None:
    """Over many values and every currency: the string, scaled back, is the integer."""
    rng = random.Random(24)
    for code, exponent in table.exponents.items():
        for value in (0, 1, 9, 10, 99, 100, -1, rng.randrange(10**18), -rng.randrange(10**30)):
            text = minor_units(value, code.lower(), table)
            assert text is not None and DECIMAL.fullmatch(text), (code, value, text)
            # The digits without the point are the integer (no Decimal context rounds them).
            assert int(text.replace(".", "")) == value, (code, value, text)
            assert len(text.partition(".")[2]) == exponent, (code, value, text)


@pytest.mark.parametrize(
    ("table", "value", "currency", "reason"),
    [
        (STRIPE, 100, "xyz", "unknown_currency"),
        (STRIPE, 100, "usd ", "unknown_currency"),
        (STRIPE, 100, 840, "unknown_currency"),
        # The sources disagree on UGX's decimals in Stripe's API: not guessed.
        (STRIPE, 100, "ugx", "unknown_currency"),
        # XTS, the code ISO 4217 reserves for testing, is no payment's currency.
        (ADYEN, 100, "XTS", "unknown_currency"),
        # Paddle takes no three-decimal currency.
        (PADDLE, "1000", "KWD", "unknown_currency"),
        # Not on Checkout.com's thousandths list, three-decimal in ISO 4217: not guessed.
        (CHECKOUT, 1000, "IQD", "unknown_currency"),
        (STRIPE, 100, None, "missing_field"),
        (STRIPE, 100, "", "missing_field"),
        (STRIPE, 10.5, "usd", "invalid_amount"),
        (STRIPE, 100.0, "usd", "invalid_amount"),
        (STRIPE, True, "usd", "invalid_amount"),
        (STRIPE, Decimal("100"), "usd", "invalid_amount"),
        (STRIPE, "10.99", "usd", "invalid_amount"),
        (STRIPE, "1e3", "usd", "invalid_amount"),
        (STRIPE, "+100", "usd", "invalid_amount"),
        (STRIPE, "-", "usd", "invalid_amount"),
        (STRIPE, "١٢٣", "usd", "invalid_amount"),  # Arabic-Indic digits: int() reads them
        (STRIPE, 10 ** (MAX_AMOUNT_DIGITS + 1), "usd", "invalid_amount"),
        (STRIPE, "9" * (MAX_AMOUNT_DIGITS + 1), "usd", "invalid_amount"),
    ],
)
def test_refuses(table: CurrencyTable, value: Any, currency: Any, reason: str) -> None:
    with pytest.raises(NormalizationError) as info:
        minor_units(value, currency, table)
    assert info.value.reason == reason


def test_an_unknown_currency_is_refused_before_the_amount_is_read() -> None:
    """A dead letter says what to fix first: the table, not an amount it cannot scale."""
    with pytest.raises(NormalizationError) as info:
        minor_units(10.5, "xyz", STRIPE)
    assert info.value.reason == "unknown_currency"


def test_no_amount_is_none_whatever_the_currency() -> None:
    assert minor_units(None, "usd", STRIPE) is None
    assert minor_units("", None, STRIPE) is None


def test_currency_code_is_upper_case_iso() -> None:
    assert currency_code("usd", STRIPE) == "USD"
    assert currency_code("Kwd", STRIPE) == "KWD"
    assert currency_code("CNH", ADYEN) == "CNH"


def test_an_unknown_currency_message_is_short_and_names_the_table() -> None:
    with pytest.raises(NormalizationError) as info:
        currency_code("x" * 10_000, STRIPE)
    assert len(info.value.message) < 120
    assert "stripe" in info.value.message


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.provider)
def test_tables_are_data_with_a_source(table: CurrencyTable) -> None:
    assert table.source.startswith("https://")
    assert len(table.exponents) > 100
    for code, exponent in table.exponents.items():
        assert re.fullmatch("[A-Z]{3}", code), code
        assert exponent in (0, 2, 3), code


def test_the_providers_disagree_where_their_pages_say() -> None:
    """The differences between the two tables, for the currencies both list."""
    both = STRIPE.exponents.keys() & ADYEN.exponents.keys()
    differ = {code for code in both if STRIPE.exponents[code] != ADYEN.exponents[code]}
    # CLP and ISK: Adyen 2 (CLP "differs from standard"); Stripe CLP 0 (zero-decimal), ISK 2.
    # CVE and IDR: Adyen 0 ("differs from standard"), Stripe 2. MGA: Stripe zero-decimal.
    assert differ == {"CLP", "CVE", "IDR"}
    assert "MGA" not in ADYEN.exponents
