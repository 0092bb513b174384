"""Checksum and range checks that turn a regex candidate into a finding, or drop it.

Each check receives the candidate's bytes exactly as the pattern captured them and returns
how many of those bytes form a valid value (0 when none do): a candidate may carry one
group too many (``4111 1111 1111 1111 2``), and the valid value is then its longest prefix
that ends where a group ends. Checks run only on candidates, never on whole buffers.

This module must never raise on any input bytes, never decode text as anything but ASCII
digits and letters it has already matched, and never look outside the candidate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

Check = Callable[[bytes], int]
"""A candidate check: the candidate's bytes in, the length of its valid prefix out (0: none)."""

_DIGITS = frozenset(b"0123456789")

# Payment-card brands: (prefix length, lowest prefix, highest prefix, allowed lengths).
# Issuer ranges from the card networks' published IIN tables; 13 is the shortest PAN we report.
_CARD_BRANDS: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (1, 4, 4, frozenset({13, 16, 19})),  # Visa
    (2, 51, 55, frozenset({16})),  # Mastercard
    (4, 2221, 2720, frozenset({16})),  # Mastercard 2-series
    (2, 34, 34, frozenset({15})),  # American Express
    (2, 37, 37, frozenset({15})),  # American Express
    (4, 6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (3, 644, 649, frozenset({16, 17, 18, 19})),  # Discover
    (2, 65, 65, frozenset({16, 17, 18, 19})),  # Discover
    (3, 300, 305, frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    (2, 36, 36, frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    (2, 38, 39, frozenset({16, 17, 18, 19})),  # Diners Club
    (4, 3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (2, 62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (2, 50, 50, frozenset({13, 14, 15, 16, 17, 18, 19})),  # Maestro
    (2, 56, 69, frozenset({13, 14, 15, 16, 17, 18, 19})),  # Maestro
)

# IBAN length per country: the SWIFT IBAN Registry (ISO 13616), plus RU (33), in use since 2024.
IBAN_LENGTHS: dict[bytes, int] = {
    b"AD": 24, b"AE": 23, b"AL": 28, b"AT": 20, b"AZ": 28, b"BA": 20, b"BE": 16, b"BG": 22,
    b"BH": 22, b"BI": 27, b"BR": 29, b"BY": 28, b"CH": 21, b"CR": 22, b"CY": 28, b"CZ": 24,
    b"DE": 22, b"DJ": 27, b"DK": 18, b"DO": 28, b"EE": 20, b"EG": 29, b"ES": 24, b"FI": 18,
    b"FK": 18, b"FO": 18, b"FR": 27, b"GB": 22, b"GE": 22, b"GI": 23, b"GL": 18, b"GR": 27,
    b"GT": 28, b"HN": 28, b"HR": 21, b"HU": 28, b"IE": 22, b"IL": 23, b"IQ": 23, b"IS": 26,
    b"IT": 27, b"JO": 30, b"KW": 30, b"KZ": 20, b"LB": 28, b"LC": 32, b"LI": 21, b"LT": 20,
    b"LU": 20, b"LV": 21, b"LY": 25, b"MC": 27, b"MD": 24, b"ME": 22, b"MK": 19, b"MN": 20,
    b"MR": 27, b"MT": 31, b"MU": 30, b"NI": 28, b"NL": 18, b"NO": 15, b"OM": 23, b"PK": 24,
    b"PL": 28, b"PS": 29, b"PT": 25, b"QA": 29, b"RO": 24, b"RS": 22, b"RU": 33, b"SA": 24,
    b"SC": 31, b"SD": 18, b"SE": 24, b"SI": 19, b"SK": 24, b"SM": 27, b"SO": 23, b"ST": 25,
    b"SV": 28, b"TL": 23, b"TN": 24, b"TR": 26, b"UA": 29, b"VA": 22, b"VG": 24, b"XK": 20,
    b"YE": 30,
}  # fmt: skip


def accept_all(candidate: bytes) -> int:
    """For kinds whose pattern alone decides: the whole candidate is the finding."""
    return len(candidate)


# Luhn digit values, by ASCII byte: as they are, and doubled with 9 taken off above 9.
_LUHN_PLAIN = bytes.maketrans(b"0123456789", bytes(range(10)))
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))


def luhn_valid(digits: bytes) -> bool:
    """Whether ASCII ``digits`` pass the Luhn (mod 10) check that every card number carries.

    Anything but ASCII digits (including no digits at all) is not valid.
    """
    if not digits.isdigit():
        return False
    plain = sum(digits[-1::-2].translate(_LUHN_PLAIN))
    return (plain + sum(digits[-2::-2].translate(_LUHN_DOUBLED))) % 10 == 0


def _brand_lengths() -> tuple[frozenset[int], ...]:
    """For each 4-digit prefix 0000-9999, the card lengths its issuers use (empty: none)."""
    table: list[frozenset[int]] = [frozenset()] * 10_000
    for prefix_length, low, high, lengths in _CARD_BRANDS:
        scale = 10 ** (4 - prefix_length)
        for prefix in range(low * scale, (high + 1) * scale):
            table[prefix] = table[prefix] | lengths
    return tuple(table)


# Every brand's prefix has at most 4 digits and every card at least 13.
_BRAND_LENGTHS = _brand_lengths()


def card_brand_valid(digits: bytes) -> bool:
    """Whether ``digits`` start with a card network's issuer prefix and have its length."""
    if len(digits) < 13 or not digits.isdigit():
        return False
    return len(digits) in _BRAND_LENGTHS[int(digits[:4])]


def _groups(candidate: bytes) -> list[tuple[int, bytes]]:
    """Split ``candidate`` at single spaces or dashes: (end offset of group, group digits)."""
    groups: list[tuple[int, bytes]] = []
    end = -1
    for group in candidate.replace(b"-", b" ").split(b" "):
        end += len(group) + 1
        groups.append((end, group))
    return groups


def payment_card_length(candidate: bytes) -> int:
    """Longest prefix of ``candidate`` (digit groups split by one space or dash) that is a card.

    A card is 13-19 digits with a known issuer prefix and length, passing the Luhn check;
    written without separators, 13-16 digits (longer runs are ids, not cards).
    """
    if candidate.isdigit():
        return len(candidate) if len(candidate) <= 16 and _is_card(candidate) else 0
    groups = _groups(candidate)
    digits = b"".join(group for _end, group in groups)
    count = len(digits)
    for end, group in reversed(groups):
        if count <= 19 and _is_card(digits[:count]):
            return end
        count -= len(group)
        if count < 13:
            break
    return 0


def _is_card(digits: bytes) -> bool:
    return len(digits) <= 19 and card_brand_valid(digits) and luhn_valid(digits)


def us_ssn_length(candidate: bytes) -> int:
    """``AAA-GG-SSSS`` as issued: area not 000, 666 or 900-999, group not 00, serial not 0000."""
    area, group, serial = candidate[0:3], candidate[4:6], candidate[7:11]
    if area in (b"000", b"666") or area[:1] == b"9" or group == b"00" or serial == b"0000":
        return 0
    return len(candidate)


def iban_length(candidate: bytes) -> int:
    """Prefix of ``candidate`` that is an IBAN: its country's length and a mod-97 remainder of 1.

    The candidate is upper-case letters and digits, in one run or in space-separated groups
    of four; the country code fixes where the IBAN ends, which must be the end of a group.
    """
    expected = IBAN_LENGTHS.get(candidate[:2])
    if expected is None:
        return 0
    spaced = candidate[4:5] == b" "
    end = expected + (expected - 1) // 4 if spaced else expected
    if end > len(candidate) or candidate[end : end + 1] not in (b"", b" "):
        return 0  # too short, or the country's length ends inside a group
    iban = candidate[:end].replace(b" ", b"")
    if iban[2:4] in (b"00", b"01", b"99"):
        return 0  # check digits ISO 13616 never assigns
    return end if _mod97(iban[4:] + iban[:4]) == 1 else 0


# Letters as ISO 7064 numbers (A=10 ... Z=35), for ``str.translate``.
_IBAN_LETTERS = {letter: str(letter - 55) for letter in range(ord("A"), ord("Z") + 1)}


def _mod97(text: bytes) -> int:
    """ISO 7064 MOD 97-10 over letters (A=10 ... Z=35) and digits."""
    if text.isascii():
        decimal = text.decode("ascii").translate(_IBAN_LETTERS)
        if decimal.isdecimal():
            return int(decimal) % 97
    remainder = 0
    for byte in text:
        if byte in _DIGITS:
            remainder = (remainder * 10 + byte - 48) % 97
        else:
            remainder = (remainder * 100 + byte - 55) % 97
    return remainder


def ipv6_length(candidate: bytes) -> int:
    """A textual IPv6 address that :mod:`ipaddress` accepts and that cannot be something else.

    Compressed forms need three hexadecimal groups (or an embedded IPv4 address) and a
    decimal digit, so that ``x[1::2]`` slices and ``a::b`` names are not addresses.
    """
    text = candidate.decode("ascii", errors="replace")
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return 0
    if "::" in text:
        groups = [group for group in text.split(":") if group]
        if len(groups) < 3 and "." not in text:
            return 0
        if not any(byte in _DIGITS for byte in candidate):
            return 0
    return len(candidate)
