"""What each kind of PII looks like: the regular expressions that find candidates.

Every detector is a *fragment*: a leading boundary, one capturing group that holds the
candidate, and a trailing boundary. RE2 has no look-around, so the boundaries are
consumed bytes (or the start/end of the buffer) and the scanner reads the candidate's
offsets from its group. The boundaries are what keep numbers from being PII: a digit run
preceded by ``.``, ``-`` or ``+`` is a fraction or a signed number, and one followed by
``.5`` or ``e-05`` is the start of a float, so neither can be a card number or a phone.

All patterns are bytes patterns for RE2's Latin-1 mode (one byte is one character), so any
input, valid UTF-8 or not, is scanned byte for byte; every construct is also valid for
Python's ``re``, which benchmarks and cross-checks use on the same pattern.

This module must never hold checksum logic (that is ``validators``) and never use a
construct whose run time depends on more than the length of the input (RE2 guarantees it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from privacy.errors import PiiError
from privacy.pii import validators
from privacy.pii.validators import Check


class PiiKind(StrEnum):
    """A kind of personal or secret data the scanner reports."""

    EMAIL = "email"
    PHONE = "phone"
    PAYMENT_CARD = "payment_card"
    IBAN = "iban"
    US_SSN = "us_ssn"
    IP_ADDRESS = "ip_address"
    SECRET = "secret"  # noqa: S105 - the name of a kind, not a credential


# Bytes that are a "word" to every boundary above; no tail ever consumes one.
WORD_BYTES = rb"[0-9A-Za-z_]"
ANY_BYTE = rb"[\x00-\xff]"


@dataclass(frozen=True)
class Fragment:
    """One detector: ``lead`` (candidate) ``tail``, and the check its candidate must pass.

    The last three fields let the scanner tell which detector matched without asking RE2
    for submatches; each must hold for every candidate the pattern can match (the tests
    check them against the patterns). ``first``: a byte class holding every possible first
    byte. ``required``: every candidate contains at least one of these bytes (empty: no
    such rule). ``ends_in_word``: every candidate ends in a ``WORD_BYTES`` byte, so the
    candidate ends at the last word byte of the match (no tail consumes one).
    """

    kind: PiiKind
    name: str
    lead: bytes
    candidate: bytes
    tail: bytes
    check: Check
    first: bytes = ANY_BYTE
    required: bytes = b""
    ends_in_word: bool = False


# Boundaries. "Word" bytes are ASCII letters, digits and ``_``; bytes >= 0x80 are not words,
# so a finding next to non-ASCII text (``é``, a no-break space) is still found.
# A redaction token (``[PII:email]``) must not turn a neighbour into a finding where the
# value it replaced did not: so no lead accepts the ``]`` a token ends with, and no tail
# the ``[`` it starts with; to its neighbours a token is one more word.
_WORD_LEAD = rb"(?:^|[^0-9A-Za-z_\]])"
_WORD_TAIL = rb"(?:$|[^0-9A-Za-z_\[])"
# A number starts after no digit, letter, ``.`` (a fraction), ``+`` or ``-`` (a sign) ...
_NUMBER_LEAD = rb"(?:^|[^0-9A-Za-z_.+\-\]])"
# ... and ends before no digit or letter (``e-05``), and before no ``.`` or ``-`` that is
# followed by one (``.0`` of a float, ``-01`` of a date); a sentence's full stop is fine.
_NUMBER_TAIL = rb"(?:$|[^0-9A-Za-z_.\-\[]|[.\-](?:$|[^0-9A-Za-z_\[]))"
# IPv4 addresses may follow ``-`` (ranges such as 10.0.0.1-10.0.0.9) and precede it.
_IPV4_LEAD = rb"(?:^|[^0-9A-Za-z_.\]])"
_IPV4_TAIL = rb"(?:$|[^0-9A-Za-z_.\[]|\.(?:$|[^0-9A-Za-z_\[]))"
_IPV6_LEAD = rb"(?:^|[^0-9A-Za-z_.:\]])"
_IPV6_TAIL = rb"(?:$|[^0-9A-Za-z_.:\[]|[.:](?:$|[^0-9A-Za-z_.:\[]))"
_EMAIL_TAIL = rb"(?:$|[^0-9A-Za-z_\-@\[]|\.(?:$|[^0-9A-Za-z_\-\[]))"
_TOKEN_TAIL = rb"(?:$|[^0-9A-Za-z_\-\[])"

# A PEM private key, with its body when its END line follows: the body is what must be
# redacted. Lines end in a newline or, in a JSON string, in the two bytes ``\n``. The body
# has no ``-``, so the search for its END line stops at the first dash (linear time even
# for a file of nothing but BEGIN lines); up to 8 header lines (``Proc-Type: ...``,
# ``DEK-Info: ...``, ``Version: ...``) may precede it.
_PEM_LABEL = rb"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
_PEM_NEWLINE = rb"(?:\r?\n|(?:\\r)?\\n)"
_PEM_HEADER_LINE = rb"(?:[A-Za-z][A-Za-z0-9\-]*: [^\r\n\\]*" + _PEM_NEWLINE + rb")"
_PEM_BODY = rb"[A-Za-z0-9+/=\t\r\n \\]*"

_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_HEX4 = rb"[0-9A-Fa-f]{1,4}"
_V4 = rb"(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
# Candidates only: ``ipaddress`` decides (validators.ipv6_length).
_IPV6 = (
    (
        rb"(?:HEX:){7}HEX"  # eight groups
        rb"|(?:HEX:){6}IPV4"  # six groups and an IPv4 address
        rb"|(?:HEX(?::HEX){0,6})?::(?:(?:HEX:){0,5}IPV4|HEX(?::HEX){0,6})?"  # compressed
    )
    .replace(b"HEX", _HEX4)
    .replace(b"IPV4", _V4)
)


def _card(separator: bytes) -> bytes:
    """Cards written in groups: 4-4-4-x[-y] (Visa, Mastercard, ...) and 4-6-4/5 (Amex, Diners)."""
    s = separator
    return (
        rb"[2-6][0-9]{3}(?:" + s + rb"[0-9]{4}){2}(?:" + s + rb"[0-9]{1,4}){1,2}"
        rb"|[2-6][0-9]{3}" + s + rb"[0-9]{6}" + s + rb"[0-9]{4,5}"
    )


FRAGMENTS: tuple[Fragment, ...] = (
    # Secrets first: their prefixes are the most specific evidence at a position.
    Fragment(
        PiiKind.SECRET,
        "private_key",
        b"",
        rb"-----BEGIN " + _PEM_LABEL + rb"-----"
        rb"(?:" + _PEM_NEWLINE + _PEM_HEADER_LINE + rb"{0,8}" + _PEM_BODY + rb"-----END "
        rb"" + _PEM_LABEL + rb"-----)?",
        b"",
        validators.accept_all,
        first=rb"[-]",
    ),
    Fragment(
        PiiKind.SECRET,
        "token",
        _WORD_LEAD,
        rb"(?:AKIA|ASIA)[0-9A-Z]{16}"
        rb"|gh[pousr]_[A-Za-z0-9]{36}"
        rb"|github_pat_[A-Za-z0-9_]{22,}"
        rb"|[rs]k_(?:live|test)_[A-Za-z0-9]{10,}"
        rb"|xox[abpors]-[A-Za-z0-9\-]{10,}"
        rb"|AIza[A-Za-z0-9_\-]{35}"
        rb"|sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}"
        rb"|sk-[A-Za-z0-9]{32,}"
        rb"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
        _TOKEN_TAIL,
        validators.accept_all,
        first=rb"[Agrsxe]",
    ),
    Fragment(
        PiiKind.EMAIL,
        "email",
        _WORD_LEAD,
        rb"[A-Za-z0-9_][A-Za-z0-9._%+\-]*@"
        rb"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}",
        _EMAIL_TAIL,
        validators.accept_all,
        first=rb"[A-Za-z0-9_]",
        required=b"@",
        ends_in_word=True,
    ),
    Fragment(
        PiiKind.IBAN,
        "iban",
        _WORD_LEAD,
        rb"[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)",
        _WORD_TAIL,
        validators.iban_length,
        first=rb"[A-Z]",
        ends_in_word=True,
    ),
    Fragment(
        PiiKind.PHONE,
        "phone_nanp",
        _NUMBER_LEAD,
        rb"(?:\+?1[ .\-]?)?"
        rb"(?:\([2-9][0-9]{2}\) ?[0-9]{3}-[0-9]{4}"
        rb"|[2-9][0-9]{2}-[0-9]{3}-[0-9]{4}"
        rb"|[2-9][0-9]{2}\.[0-9]{3}\.[0-9]{4})",
        _NUMBER_TAIL,
        validators.accept_all,
        first=rb"[+1(2-9]",
        required=b"-.",
        ends_in_word=True,
    ),
    Fragment(
        PiiKind.PHONE,
        "phone_e164",
        _WORD_LEAD,
        rb"\+[1-9](?:[ \-]?[0-9]){7,14}",  # 8-15 digits, single spaces or dashes between
        _NUMBER_TAIL,
        validators.accept_all,
        first=rb"[+]",
        required=b"+",
        ends_in_word=True,
    ),
    Fragment(
        PiiKind.US_SSN,
        "us_ssn",
        _NUMBER_LEAD,
        rb"[0-9]{3}-[0-9]{2}-[0-9]{4}",
        _NUMBER_TAIL,
        validators.us_ssn_length,
        first=rb"[0-9]",
        required=b"-",
        ends_in_word=True,
    ),
    Fragment(
        PiiKind.PAYMENT_CARD,
        "payment_card",
        _NUMBER_LEAD,
        # Unformatted: 13-16 digits only. Longer PANs (17-19 digits) are rare and written in
        # groups; every random 64-bit id (19 digits) would otherwise be a candidate.
        rb"[2-6][0-9]{12,15}|" + _card(b" ") + b"|" + _card(rb"\-"),
        _NUMBER_TAIL,
        validators.payment_card_length,
        first=rb"[2-6]",
        ends_in_word=True,
    ),
    Fragment(
        PiiKind.IP_ADDRESS,
        "ipv4",
        _IPV4_LEAD,
        _OCTET + rb"(?:\." + _OCTET + rb"){3}",
        _IPV4_TAIL,
        validators.accept_all,
        first=rb"[0-9]",
        required=b".",
        ends_in_word=True,
    ),
    Fragment(
        PiiKind.IP_ADDRESS,
        "ipv6",
        _IPV6_LEAD,
        _IPV6,
        _IPV6_TAIL,
        validators.ipv6_length,
        first=rb"[0-9A-Fa-f:]",
        required=b":",
    ),
)


def select(kinds: Iterable[PiiKind | str] | None) -> tuple[Fragment, ...]:
    """The fragments that detect ``kinds`` (all of them for ``None``), in priority order.

    Raises ``PiiError`` for an unknown kind or an empty selection.
    """
    if kinds is None:
        return FRAGMENTS
    wanted: set[PiiKind] = set()
    for kind in kinds:
        try:
            wanted.add(PiiKind(kind))
        except ValueError:
            known = ", ".join(member.value for member in PiiKind)
            raise PiiError(f"unknown PII kind {kind!r}; the kinds are: {known}") from None
    if not wanted:
        raise PiiError("no PII kinds selected; pass None to scan for every kind")
    return tuple(fragment for fragment in FRAGMENTS if fragment.kind in wanted)


def combined_pattern(fragments: Iterable[Fragment], *, capture: bool = True) -> bytes:
    """One alternation of ``fragments``: group *i* (1-based) is the *i*-th fragment's candidate.

    Leftmost-first semantics: at one start position the earlier fragment wins. Without
    ``capture`` the candidates are not groups: the same matches, found without submatches.
    """
    group = b"(" if capture else b"(?:"
    return b"|".join(
        fragment.lead + group + fragment.candidate + b")" + fragment.tail for fragment in fragments
    )
