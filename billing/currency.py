"""ISO 4217 currencies and their minor units: money is always integer minor units.

This module must never round silently: converting an amount that does not fit a
currency's minor unit is an error, not a rounding.
"""

from __future__ import annotations

from decimal import Decimal

from billing.errors import CurrencyError

#: Active ISO 4217 codes whose minor unit is not 2 decimal places.
_EXPONENT_EXCEPTIONS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}
#: Active ISO 4217 codes with two decimal places.
_TWO_DECIMALS = [
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BMD",
    "BND",
    "BOB",
    "BOV",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHE",
    "CHF",
    "CHW",
    "CNY",
    "COP",
    "COU",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IRR",
    "JMD",
    "KES",
    "KGS",
    "KHR",
    "KPW",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MXV",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "USD",
    "USN",
    "UYU",
    "UZS",
    "VED",
    "VES",
    "WST",
    "XCD",
    "XCG",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
]
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS, 2),
    **_EXPONENT_EXCEPTIONS,
}


def check_currency(code: str) -> str:
    """Return ``code`` if it is an active ISO 4217 currency code, else raise ``CurrencyError``."""
    if code not in CURRENCY_EXPONENTS:
        hint = " (codes are upper case)" if code.upper() in CURRENCY_EXPONENTS else ""
        raise CurrencyError(f"currency {code!r} is not an ISO 4217 currency code{hint}")
    return code


def minor_unit_exponent(code: str) -> int:
    """How many decimal places the currency's minor unit has (USD: 2, JPY: 0, KWD: 3)."""
    return CURRENCY_EXPONENTS[check_currency(code)]


def to_minor_units(amount: Decimal, code: str) -> int:
    """Convert an exact ``amount`` to integer minor units; refuse a fraction of a minor unit."""
    scaled = amount.scaleb(minor_unit_exponent(code))
    if scaled != scaled.to_integral_value():
        raise CurrencyError(
            f"{amount} {code} is not a whole number of minor units "
            f"({minor_unit_exponent(code)} decimal places)"
        )
    return int(scaled)
