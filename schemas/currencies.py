"""Minor-unit exponents per provider, and the exact conversion from minor units.

Card and bank providers send amounts as integers in the currency's minor unit
(1099 is 10.99 USD, 500 is 500 JPY, 1000 is 1.000 KWD), and each provider
decides for itself how many decimals a currency has: Stripe keeps ISK at two
decimals where ISO 4217 has none, Adyen gives CLP two and CVE none. So every
provider has its own table here, each transcribed from the page its provider
publishes (cited on the table), and :func:`minor_units` converts with the
table of the provider that sent the amount.

A currency missing from a provider's table is never guessed: a factor of a
hundred is the price of a wrong guess. :func:`currency_code` and
:func:`minor_units` raise ``NormalizationError('unknown_currency')``, the
message goes to the dead-letter topic, and ``relay replay`` publishes it once
the table knows the currency.

The conversion is integer arithmetic on the digits: no float, no Decimal
context, no rounding. Like the rest of ``schemas/``, this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from schemas.errors import NormalizationError
from schemas.values import MAX_AMOUNT_DIGITS


@dataclass(frozen=True, slots=True)
class CurrencyTable:
    """One provider's currencies: upper-case ISO 4217 code to the number of decimals the
    provider's minor unit has (0, 2 or 3), and where that was read."""

    provider: str
    source: str
    exponents: Mapping[str, int]


def _table(provider: str, source: str, **groups: str) -> CurrencyTable:
    """A table from groups of space-separated codes named ``d0``, ``d2``, ``d3``."""
    exponents: dict[str, int] = {}
    for group, codes in groups.items():
        for code in codes.split():
            if code in exponents:
                raise ValueError(f"{provider}: {code} is listed twice")
            exponents[code] = int(group.removeprefix("d"))
    return CurrencyTable(provider, source, MappingProxyType(exponents))


# https://docs.stripe.com/currencies: the presentment currencies, whose amounts the API
# takes and sends "in the currency's smallest unit"; the zero-decimal list; the
# three-decimal list (BHD JOD KWD OMR TND: the API sends all three decimals, the last one
# always 0). Special cases on the same page: ISK stays a two-decimal currency in the API
# (100 is one krona, amounts divisible by 100: support.stripe.com/questions/
# deprecation-of-fractional-isk-charges-and-refunds); HUF and TWD are charged with two
# decimals (zero-decimal only for payouts, which still send amounts in hundredths).
# UGX is left out on purpose: the page lists it as zero-decimal, but Stripe's own Android
# SDK (stripe-android, CurrencyFormatter.SERVER_DECIMAL_DIGITS) reads the API's UGX
# amounts with two decimals. Until the two agree a UGX amount is a dead letter, not a
# guess that is wrong by a factor of a hundred either way.
STRIPE = _table(
    "stripe",
    "https://docs.stripe.com/currencies",
    d0="BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF",
    d2=(
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BWP BYN"
        " BZD CAD CDF CHF CNY COP CRC CVE CZK DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD"
        " GTQ GYD HKD HNL HTG HUF IDR ILS INR ISK JMD KES KGS KHR KYD KZT LAK LBP LKR LRD LSL"
        " MAD MDL MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK"
        " PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SEK SGD SHP SLE SOS SRD STD SZL THB TJS TOP"
        " TRY TTD TWD TZS UAH USD UYU UZS WST XCD YER ZAR ZMW"
    ),
    d3="BHD JOD KWD OMR TND",
)

# https://docs.adyen.com/development-resources/currency-codes: the "Decimals" column of
# the currency codes table. Where it marks "differs from standard", Adyen's number is the
# one its API uses: CLP 2, CVE 0, IDR 0, ISK 2.
ADYEN = _table(
    "adyen",
    "https://docs.adyen.com/development-resources/currency-codes",
    d0="CVE DJF GNF IDR JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF",
    d2=(
        "AED ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BRL BSD BWP BYN BZD CAD CHF"
        " CLP CNH CNY COP CRC CUP CZK DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ"
        " GYD HKD HNL HTG HUF ILS INR ISK JMD KES KGS KHR KYD KZT LAK LKR MAD MDL MKD MMK MNT"
        " MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR"
        " RON RSD RUB SAR SBD SCR SEK SGD SHP SLE SOS SRD STN SVC SZL THB TOP TRY TTD TWD TZS"
        " UAH USD UYU UZS VEF WST XCD XCG YER ZAR ZMW"
    ),
    d3="BHD IQD JOD KWD LYD OMR TND",
)

# ISO 4217 itself, for providers that publish no table of their own: those that send major
# units as decimals (Wise, PayPal, Braintree: only the code is checked, so a currency outside
# the standard is unknown_currency) and those that send "the smallest denomination" (Square,
# Razorpay: its exponent converts it). The current codes and their "Minor unit" column of
# list one (https://www.six-group.com/en/products-services/
# financial-information/data-standards.html), as datasets/currency-codes transcribes it
# (data/codes-all.csv at ab9b0ae88e8bffd4ac1c468ce9c784738d3376ba): withdrawn codes (BGN
# since Bulgaria's euro), those without a minor unit (gold, the SDR, the no-currency code)
# and the four-decimal funds codes (CLF, UYW: units of account, not what a payment is made
# in) are left out.
ISO_4217 = _table(
    "iso-4217",
    "https://www.six-group.com/en/products-services/financial-information/data-standards.html",
    d0="BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    d2=(
        "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN"
        " BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD"
        " FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW"
        " KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR"
        " MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG"
        " SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD"
        " USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG"
    ),
    d3="BHD IQD JOD KWD LYD OMR TND",
)


# Paddle Billing: the currencies its API takes and sends (paddle-python-sdk,
# paddle_billing/Entities/Shared/CurrencyCode.py), amounts "as a string in the lowest
# denomination for a currency" with the currency's decimal_places in its common notation
# (developer.paddle.com/api-reference/currencies), which are ISO 4217's: JPY, KRW, CLP and
# VND without decimals, the rest with two. Paddle takes no three-decimal currency.
PADDLE = _table(
    "paddle",
    "https://developer.paddle.com/api-reference/currencies",
    d0="CLP JPY KRW VND",
    d2=(
        "ARS AUD BRL CAD CHF CNY COP CZK DKK EUR GBP HKD HUF ILS INR MXN NOK NZD PEN PLN RUB"
        " SEK SGD THB TRY TWD UAH USD ZAR"
    ),
)


# https://www.checkout.com/docs/payments/accept-payments/format-the-amount-value: "the full
# amount" for BIF DJF GNF ISK JPY KMF KRW PYG RWF UGX VUV VND XAF XOF XPF, "divided by
# 1000" for BHD JOD KWD LYD OMR TND (the last digit always 0), "divided by 100" for every
# other currency. Read as ISO 4217's two-decimal currencies plus CLP, which the page does
# not list as whole (ISO 4217 has it without decimals, so Checkout.com's CLP amounts are in
# hundredths). IQD, three-decimal in ISO 4217 and absent from the page's 1000 list, is left
# out rather than guessed.
CHECKOUT = _table(
    "checkout",
    "https://www.checkout.com/docs/payments/accept-payments/format-the-amount-value",
    d0="BIF DJF GNF ISK JPY KMF KRW PYG RWF UGX VUV VND XAF XOF XPF",
    d2=" ".join(
        sorted([code for code, exponent in ISO_4217.exponents.items() if exponent == 2] + ["CLP"])
    ),
    d3="BHD JOD KWD LYD OMR TND",
)


def currency_code(value: Any, table: CurrencyTable, name: str = "currency") -> str:
    """The provider's currency code as upper-case ISO 4217, once ``table`` knows it.

    Providers spell codes in either case (Stripe sends ``usd``); anything the table
    does not list, a non-string included, is ``unknown_currency``; a missing one is
    ``missing_field``.
    """
    if value is None or value == "":
        raise NormalizationError("missing_field", f"the currency {name!r} is missing")
    code = value.upper() if isinstance(value, str) else None
    if code is None or code not in table.exponents:
        shown = repr(value) if isinstance(value, str) and len(value) <= 16 else "the value"
        raise NormalizationError(
            "unknown_currency",
            f"the currency {name!r} ({shown}) is not in {table.provider}'s minor-unit table",
        )
    return code


def minor_units(
    value: Any, currency: Any, table: CurrencyTable, name: str = "amount"
) -> str | None:
    """An amount in minor units as an exact decimal string in the major unit, or None.

    ``value`` is an integer (a JSON number) or a string of ASCII digits with an optional
    leading ``-`` (some providers send minor units as text); ``currency`` is the code as
    the provider sent it, looked up in ``table`` as :func:`currency_code` does. The result
    has exactly as many decimals as the currency's minor unit: ``1099`` USD is ``10.99``,
    ``500`` JPY is ``500``, ``1000`` KWD is ``1.000``. A fraction, a float, a boolean or
    more than ``MAX_AMOUNT_DIGITS`` digits is ``invalid_amount``. None when ``value`` is
    None or empty: the provider did not send the amount.
    """
    if value is None or value == "":
        return None
    exponent = table.exponents[currency_code(currency, table)]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise NormalizationError("invalid_amount", f"the amount {name!r} is not a whole number")
    text = str(value) if isinstance(value, int) else value.strip()
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    # Written without isdigit(): that also accepts non-ASCII digits, which int() reads.
    if not digits or not digits.isascii() or not digits.isdecimal():
        raise NormalizationError(
            "invalid_amount", f"the amount {name!r} is not a whole number of minor units"
        )
    digits = digits.lstrip("0") or "0"
    if len(digits) > MAX_AMOUNT_DIGITS:
        raise NormalizationError(
            "invalid_amount", f"the amount {name!r} has more than {MAX_AMOUNT_DIGITS} digits"
        )
    sign = "-" if negative and digits != "0" else ""
    if exponent == 0:
        return sign + digits
    padded = digits.rjust(exponent + 1, "0")
    return f"{sign}{padded[:-exponent]}.{padded[-exponent:]}"
