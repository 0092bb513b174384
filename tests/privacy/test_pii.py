"""PII detectors: what a data host reports, redacts and refuses before a dataset is sold.

Secrets below are assembled from pieces at run time so that no complete token sits in
the repository for secret scanners to flag; none of them is a live credential.
"""

from __future__ import annotations

import json
import random
import re
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.errors import PiiBlocked, PiiError
from privacy.pii import (
    PiiKind,
    PiiMatch,
    PiiPolicy,
    PiiScanner,
    PiiTally,
    enforce_policy,
    redaction_token,
)
from privacy.pii.patterns import FRAGMENTS, WORD_BYTES, Fragment
from privacy.pii.validators import IBAN_LENGTHS, luhn_valid

SCANNER = PiiScanner()
PY_RE_SCANNER = PiiScanner(engine="re")


def found(data: bytes, scanner: PiiScanner = SCANNER) -> list[tuple[str, bytes]]:
    """(kind, matched bytes) for every finding in ``data``."""
    return [(kind, data[start:end]) for kind, start, end in scanner.find(data)]


def only(kind: str, value: bytes, before: bytes = b"x ", after: bytes = b" y") -> None:
    """``value``, between ``before`` and ``after``, is found whole as ``kind`` and nothing else."""
    assert found(before + value + after) == [(kind, value)]


# Secrets, assembled (see the module docstring).
AWS_KEY = b"AKIA" + b"IOSFODNN7" + b"EXAMPLE"
AWS_SESSION = b"ASIA" + b"Y34FZKBOKMUTVV7A"
GITHUB_CLASSIC = b"ghp" + b"_" + b"16C7e42F292c6912E7710c838347Ae178B4a"
GITHUB_OAUTH = b"gho" + b"_" + b"x" * 36
GITHUB_FINE = b"github" + b"_pat_" + b"11ABCDEFG0123456789_" + b"a1B2c3D4e5" * 6 + b"zz"
STRIPE_LIVE = b"sk" + b"_live_" + b"4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_RESTRICTED = b"rk" + b"_live_" + b"51H8abcdEFGHijkl0123"
STRIPE_TEST = b"sk" + b"_test_" + b"4eC39HqLyjWDarjtT1zdp7dc"
SLACK_BOT = b"xox" + b"b-" + b"123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
GOOGLE_KEY = b"AIza" + b"SyD" + b"aGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"
OPENAI_LEGACY = b"sk-" + b"Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6l"
OPENAI_PROJECT = b"sk-" + b"proj-" + b"Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"
JWT = (
    b"eyJ" + b"hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    b".eyJ" + b"zdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    b".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BLOCK = (
    b"-----BEGIN " + b"RSA PRIVATE KEY-----\n"
    b"MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    b"VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    b"-----END " + b"RSA PRIVATE KEY-----"
)


# --- true positives -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"john.doe@example.com",
        b"Jane_Doe+newsletter@mail.example.co.uk",
        b"a@b.io",
        b"first-last.99@sub-domain.example.org",
        b"UPPER.CASE@EXAMPLE.COM",
    ],
)
def test_email_is_found(value: bytes) -> None:
    only("email", value)


def test_email_in_csv_json_and_prose() -> None:
    assert found(b'1,"ann@example.com",2\n') == [("email", b"ann@example.com")]
    assert found(b'{"mail":"bob@example.org"}') == [("email", b"bob@example.org")]
    assert found(b"Write to carol@example.net.") == [("email", b"carol@example.net")]
    assert found(b"<dave@example.com>") == [("email", b"dave@example.com")]


@pytest.mark.parametrize(
    "value",
    [
        b"+14155552671",
        b"+442079460958",
        b"+44 20 7946 0958",
        b"+49-30-1234567",
        b"(415) 555-2671",
        b"(415)555-2671",
        b"415-555-2671",
        b"415.555.2671",
        b"+1 415-555-2671",
        b"+1 (415) 555-2671",
        b"+1.415.555.2671",
        b"1-415-555-2671",
    ],
)
def test_phone_is_found(value: bytes) -> None:
    only("phone", value)


@pytest.mark.parametrize(
    "value",
    [
        b"4111111111111111",  # Visa
        b"4222222222222",  # Visa, 13 digits
        b"5555555555554444",  # Mastercard
        b"2223003122003222",  # Mastercard 2-series
        b"378282246310005",  # American Express
        b"6011111111111117",  # Discover
        b"30569309025904",  # Diners Club, 14 digits
        b"3530111333300000",  # JCB
        b"6200000000000005",  # UnionPay
        b"4111 1111 1111 1111",
        b"4111-1111-1111-1111",
        b"3782 822463 10005",
        b"3056 930902 5904",
        b"4000 0000 0000 0000 006",  # Visa, 19 digits in 4-4-4-4-3
        b"4000-0000-0000-0000-006",
    ],
)
def test_payment_card_is_found(value: bytes) -> None:
    only("payment_card", value)


def test_payment_card_next_to_another_group_is_cut_at_the_card() -> None:
    data = b"card 4111 1111 1111 1111 5 exp"
    assert found(data) == [("payment_card", b"4111 1111 1111 1111")]


@pytest.mark.parametrize(
    "value",
    [
        b"DE89370400440532013000",
        b"DE89 3704 0044 0532 0130 00",
        b"GB82WEST12345698765432",
        b"GB82 WEST 1234 5698 7654 32",
        b"FR1420041010050500013M02606",
        b"NO9386011117947",  # the shortest: 15
        b"BE68539007547034",
        b"CH9300762011623852957",
        b"MT84MALT011000012345MTLCAST001S",  # 31, letters inside
    ],
)
def test_iban_is_found(value: bytes) -> None:
    only("iban", value)


def _make_iban(country: bytes, bban: bytes) -> bytes:
    """An IBAN with correct check digits (ISO 7064 MOD 97-10) for ``country`` and ``bban``."""
    as_number = int("".join(str(int(char, 36)) for char in (bban + country + b"00").decode()))
    return country + b"%02d" % (98 - as_number % 97) + bban


def _grouped(value: bytes, size: int = 4) -> bytes:
    return b" ".join(value[i : i + size] for i in range(0, len(value), size))


@settings(max_examples=200)
@given(st.sampled_from(sorted(IBAN_LENGTHS)), st.randoms(use_true_random=False), st.booleans())
def test_every_registry_country_iban_is_found_and_a_changed_digit_is_not(
    country: bytes, rng: random.Random, spaced: bool
) -> None:
    digits = IBAN_LENGTHS[country] - 4
    iban = _make_iban(country, b"%0*d" % (digits, rng.randrange(10**digits)))
    shown = _grouped(iban) if spaced else iban
    assert found(b"IBAN: " + shown + b".") == [("iban", shown)]
    position = rng.randrange(4, len(iban))  # a BBAN digit: MOD 97-10 catches any change
    changed = iban[:position] + b"%d" % ((iban[position] - 47) % 10) + iban[position + 1 :]
    assert found(b"IBAN: " + changed + b".") == []


@settings(max_examples=200)
@given(
    st.sampled_from([b"4", b"51", b"55", b"2221", b"2720", b"6011", b"65", b"3530", b"62"]),
    st.randoms(),
)
def test_luhn_valid_cards_are_found_and_a_changed_digit_is_not(
    prefix: bytes, rng: random.Random
) -> None:
    body = prefix + b"%0*d" % (15 - len(prefix), rng.randrange(10 ** (15 - len(prefix))))
    card = next(body + d for d in (b"%d" % i for i in range(10)) if luhn_valid(body + d))
    for shown in (card, _grouped(card), card[:4] + b"-" + _grouped(card[4:]).replace(b" ", b"-")):
        assert found(b"card " + shown + b",") == [("payment_card", shown)]
    position = rng.randrange(len(prefix), 16)  # Luhn catches any single changed digit
    changed = card[:position] + b"%d" % ((card[position] - 47) % 10) + card[position + 1 :]
    assert found(b"card " + changed + b",") == []


def test_spaced_iban_followed_by_capitals_ends_at_the_country_length() -> None:
    data = b"BE68 5390 0754 7034 EUR"
    assert found(data) == [("iban", b"BE68 5390 0754 7034")]


@pytest.mark.parametrize("value", [b"123-45-6789", b"078-05-1120", b"665-99-0001", b"899-01-0001"])
def test_us_ssn_is_found(value: bytes) -> None:
    only("us_ssn", value)


@pytest.mark.parametrize(
    "value",
    [
        b"192.168.1.1",
        b"8.8.8.8",
        b"255.255.255.255",
        b"0.0.0.0",
        b"1.2.3.4",  # a version string is a valid address too
        b"2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        b"2001:db8::8a2e:370:7334",
        b"2001:db8::1",
        b"fe80::1ff:fe23:4567:890a",
        b"::ffff:192.0.2.1",
        b"FE80::0202:B3FF:FE1E:8329",
    ],
)
def test_ip_address_is_found(value: bytes) -> None:
    only("ip_address", value)


def test_ip_addresses_in_urls_ranges_and_brackets() -> None:
    assert found(b"http://10.0.0.1:8080/x") == [("ip_address", b"10.0.0.1")]
    assert found(b"10.0.0.1-10.0.0.9") == [
        ("ip_address", b"10.0.0.1"),
        ("ip_address", b"10.0.0.9"),
    ]
    assert found(b"[2001:db8::1]:443") == [("ip_address", b"2001:db8::1")]
    assert found(b"from 8.8.4.4.") == [("ip_address", b"8.8.4.4")]


@pytest.mark.parametrize(
    "value",
    [
        AWS_KEY,
        AWS_SESSION,
        GITHUB_CLASSIC,
        GITHUB_OAUTH,
        GITHUB_FINE,
        STRIPE_LIVE,
        STRIPE_RESTRICTED,
        STRIPE_TEST,
        SLACK_BOT,
        GOOGLE_KEY,
        OPENAI_LEGACY,
        OPENAI_PROJECT,
        JWT,
        PEM_BLOCK,
    ],
)
def test_secret_is_found(value: bytes) -> None:
    only("secret", value, before=b"token=", after=b"\n")


def test_private_key_header_without_its_end_is_still_a_secret() -> None:
    data = b"-----BEGIN " + b"OPENSSH PRIVATE KEY----- (truncated)"
    assert found(data) == [("secret", data[: data.index(b" (")])]


def test_findings_have_exact_byte_offsets_sorted_and_apart() -> None:
    data = (
        b"name,email,phone,card\n"
        b"Ann,ann@example.com,+14155552671,4111 1111 1111 1111\n"
        b"Bob,bob@example.org,(415) 555-2671,5555555555554444\n"
    )
    matches = SCANNER.scan(data)
    assert matches == [
        PiiMatch(PiiKind.EMAIL, 26, 41),
        PiiMatch(PiiKind.PHONE, 42, 54),
        PiiMatch(PiiKind.PAYMENT_CARD, 55, 74),
        PiiMatch(PiiKind.EMAIL, 79, 94),
        PiiMatch(PiiKind.PHONE, 95, 109),
        PiiMatch(PiiKind.PAYMENT_CARD, 110, 126),
    ]
    assert [data[m.start : m.end] for m in matches][:3] == [
        b"ann@example.com",
        b"+14155552671",
        b"4111 1111 1111 1111",
    ]
    assert SCANNER.find(data)[0] == ("email", 26, 41)


def test_findings_at_the_very_start_and_end_of_the_buffer() -> None:
    assert SCANNER.find(b"a@example.com") == [("email", 0, 13)]
    assert SCANNER.find(b"4111111111111111") == [("payment_card", 0, 16)]
    assert SCANNER.find(b"x,192.168.0.1") == [("ip_address", 2, 13)]


def test_adjacent_findings_separated_by_one_byte_are_all_found() -> None:
    data = b"a@example.com,b@example.com,8.8.8.8,9.9.9.9"
    assert [kind for kind, _s, _e in SCANNER.find(data)] == [
        "email",
        "email",
        "ip_address",
        "ip_address",
    ]


# --- true negatives that look close ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"4111111111111112",  # Luhn fails
        b"4111 1111 1111 1112",
        b"1234567812345670",  # Luhn passes, but no card network issues 1...
        b"9111111111111119",
        b"411111111111",  # 12 digits
        b"41111111111111111111",  # 20 digits
        b"4000000000000000006",  # a valid 19-digit Visa, but unformatted: an int64 id
        b"3782822463100052",  # Luhn passes, but American Express numbers have 15 digits
        b"4111-1111 1111-1111",  # mixed separators
    ],
)
def test_card_lookalikes_are_not_cards(value: bytes) -> None:
    assert found(b"x " + value + b" y") == []


def test_card_lookalikes_fail_for_the_reason_given() -> None:
    # Each case above that claims "Luhn passes" really does, so only the other rule rejects it.
    for value in (b"1234567812345670", b"4000000000000000006", b"3782822463100052"):
        assert luhn_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        b"DE88370400440532013000",  # checksum
        b"DE8937040044053201300",  # one short for DE (22)
        b"DE893704004405320130001",  # one long
        b"GB82 WEST 1234 5698 7654 3",  # spaced, short
        b"XX89370400440532013000",  # no such country
        b"DE00370400440532013000",  # check digits 00 are never issued
    ],
)
def test_iban_lookalikes_are_not_ibans(value: bytes) -> None:
    assert found(b"x " + value + b" y") == []


def test_iban_length_table_covers_the_registry_extremes() -> None:
    assert IBAN_LENGTHS[b"NO"] == 15
    assert IBAN_LENGTHS[b"LC"] == 32
    assert IBAN_LENGTHS[b"DE"] == 22
    assert all(15 <= length <= 34 for length in IBAN_LENGTHS.values())


@pytest.mark.parametrize(
    "value",
    [
        b"000-12-3456",
        b"666-12-3456",
        b"900-12-3456",
        b"999-99-9999",
        b"123-00-4567",
        b"123-45-0000",
        b"123-45-67890",
        b"1123-45-6789",
        b"123-45-6789-1",
    ],
)
def test_ssn_lookalikes_are_not_ssns(value: bytes) -> None:
    assert found(b"x " + value + b" y") == []


@pytest.mark.parametrize(
    "value",
    [
        b"256.1.1.1",
        b"1.2.3.256",
        b"192.168.01.1",  # a leading zero: octal or decimal?
        b"1.2.3.4.5",
        b"0.1234.5",
        b"1.2.3",
        b"v1.2.3.4",
        b"x[1::2]",  # a Python slice
        b"std::vector<int>",
        b"dead::beef",
        b"12:34:56",
        b"00:1a:2b:3c:4d:5e",  # a MAC address
    ],
)
def test_ip_lookalikes_are_not_addresses(value: bytes) -> None:
    assert found(b"x " + value + b" y") == []


@pytest.mark.parametrize(
    "value",
    [
        b"4155552671",  # bare digit runs are not phones: every id column would be one
        b"14155552671",
        b"+1234567",  # seven digits
        b"+1234567890123456",  # sixteen
        b"415-555-26710",
        b"123-456-7890",  # no North-American area code starts with 1
        b"1.5e+10",
        b"2024-01-02",
    ],
)
def test_phone_lookalikes_are_not_phones(value: bytes) -> None:
    assert found(b"x " + value + b" y") == []


NUMERIC_CSV = (
    b"id,x,y,big,ratio,when\n"
    b"1,-0.12345678901234567,1.2e-05,123456789012345,3.14159,2024-01-02 12:34:56\n"
    b"2,0.4111111111111111,-4111111111111111,4111111111111111.0,1e+16,2024-01-02T12:34:56.123Z\n"
    b"3,555.1234,-1234.5678e-10,170000000000,0.0,1700000000123\n"
)


def test_numeric_csv_has_no_findings() -> None:
    assert SCANNER.find(NUMERIC_CSV) == []


@pytest.mark.parametrize(
    "value",
    [
        b"123e4567-e89b-12d3-a456-426614174000",
        b"12345678-1234-4234-9234-123456789012",
        b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        b"d41d8cd98f00b204e9800998ecf8427e",
        b"da39a3ee5e6b4b0d3255bfef95601890afd80709",
        b"1700000000.123456",
        b"Tue, 02 Jan 2024 12:34:56 +0000",
        b"sk-learn-contrib-lightning-extra",
        b"sha256:4111111111111111aaaa",
    ],
)
def test_identifiers_digests_and_timestamps_are_not_pii(value: bytes) -> None:
    assert found(b"x " + value + b" y") == []


@settings(max_examples=400)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=20))
def test_floats_written_with_repr_never_match(values: list[float]) -> None:
    line = ",".join(repr(value) for value in values).encode()
    assert SCANNER.find(line) == []


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.integers(min_value=-(10**30), max_value=-1),
            st.integers(min_value=0, max_value=10**12 - 1),
            st.integers(min_value=10**16, max_value=2**64),  # 64-bit ids and hashes
            st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.6e}"),
            st.floats(min_value=-1e6, max_value=1e6).map(lambda x: f"{x:f}"),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_number_columns_never_match(values: list[object]) -> None:
    data = "\n".join(",".join(str(value) for value in values[i:]) for i in range(3)).encode()
    assert SCANNER.find(data) == []


def test_a_16_digit_integer_that_is_a_valid_card_number_is_reported() -> None:
    # The one kind of number that stays a finding: an unformatted PAN has no other form.
    assert luhn_valid(b"4111111111111111")
    assert SCANNER.find(b"7,4111111111111111,9") == [("payment_card", 2, 18)]


# --- untrusted input ------------------------------------------------------------------------


def test_invalid_utf8_is_scanned_byte_for_byte() -> None:
    data = b"\xff\xfe\x80ann@example.com\xc3\x28 4111111111111111\xed\xa0\x80"
    assert SCANNER.find(data) == [("email", 3, 18), ("payment_card", 21, 37)]


def test_non_ascii_text_next_to_pii() -> None:
    data = "Grüße an jürgen@example.de, IBAN: DE89 3704 0044 0532 0130 00.".encode()
    # ü is not an ASCII letter: the address is found from "rgen" on, the IBAN whole.
    assert found(data) == [
        ("email", b"rgen@example.de"),
        ("iban", b"DE89 3704 0044 0532 0130 00"),
    ]


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_any_bytes_give_sorted_disjoint_in_bounds_findings(data: bytes) -> None:
    matches = SCANNER.scan(data)
    position = 0
    for match in matches:
        assert position <= match.start < match.end <= len(data)
        position = match.end


def test_bytearray_and_memoryview_are_accepted() -> None:
    data = b"x ann@example.com y"
    assert SCANNER.find(bytearray(data)) == SCANNER.find(memoryview(data)) == [("email", 2, 17)]
    words = memoryview(b"x ann@example.com y!").cast("H")  # offsets stay in bytes
    assert SCANNER.find(words) == [("email", 2, 17)]
    assert SCANNER.redact(bytearray(data)) == b"x [PII:email] y"


def test_empty_input() -> None:
    assert SCANNER.scan(b"") == []
    assert SCANNER.redact(b"") == b""


def test_large_buffer_finds_pii_at_both_ends() -> None:
    filler = b"0.5,17,abc\n" * 200_000
    data = b"ann@example.com\n" + filler + b"8.8.8.8"
    assert SCANNER.find(data) == [("email", 0, 15), ("ip_address", len(data) - 7, len(data))]


# --- engines agree --------------------------------------------------------------------------

_PIECES = [
    b"ann@example.com",
    b"4111111111111111",
    b"4111 1111 1111 1111",
    b"+14155552671",
    b"(415) 555-2671",
    b"DE89370400440532013000",
    b"123-45-6789",
    b"192.168.1.1",
    b"2001:db8::1",
    AWS_KEY,
    JWT,
    b"0.5",
    b"-12",
    b"1e-05",
    b"2024-01-02",
    b"abc",
    b"1",
    b"\xff",
    b"(415) 555-2671",
    b"+44 20 7946 0958",
    b"fe80::1ff:fe23:4567:890a",
    b"::ffff:192.0.2.1",
    b"DE89 3704 0044 0532 0130 00",
    b"3782 822463 10005",
    SLACK_BOT,
    b"-----BEGIN " + b"EC PRIVATE KEY-----",
    PEM_BLOCK,
    b"1.2.3",
    b"0",
    b"x",
]
_GLUE = [b"", b" ", b",", b".", b"-", b"\n", b"@", b":", b"+", b'"', b"[", b"]", b"(", b"_"]


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(_GLUE)), max_size=12))
def test_re2_and_python_re_agree(parts: list[tuple[bytes, bytes]]) -> None:
    data = b"".join(piece + glue for piece, glue in parts)
    assert SCANNER.find(data) == PY_RE_SCANNER.find(data)


def test_scanner_is_shared_safely_by_threads() -> None:
    data = NUMERIC_CSV * 50 + b"ann@example.com,4111111111111111,8.8.8.8\n" * 200
    expected = SCANNER.find(data)
    results: list[list[tuple[str, int, int]]] = []

    def work() -> None:
        for _ in range(5):
            results.append(SCANNER.find(data))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert all(result == expected for result in results)
    assert len(expected) == 600


# --- selecting kinds ------------------------------------------------------------------------


def test_kinds_limit_what_is_reported() -> None:
    data = b"ann@example.com 4111111111111111 8.8.8.8"
    assert PiiScanner([PiiKind.EMAIL]).find(data) == [("email", 0, 15)]
    assert [
        k for k, _s, _e in PiiScanner([PiiKind.PAYMENT_CARD, PiiKind.IP_ADDRESS]).find(data)
    ] == [
        "payment_card",
        "ip_address",
    ]
    assert PiiScanner().kinds == frozenset(PiiKind)
    assert PiiScanner().engine == "re2"


def test_unknown_or_no_kinds_are_refused() -> None:
    with pytest.raises(PiiError, match="unknown PII kind 'passport'"):
        PiiScanner(["passport"])  # type: ignore[list-item]
    with pytest.raises(PiiError, match="no PII kinds selected"):
        PiiScanner([])
    with pytest.raises(PiiError, match="unknown regex engine"):
        PiiScanner(engine="pcre")  # type: ignore[arg-type]


# --- redaction ------------------------------------------------------------------------------


def test_redaction_token_is_safe_inside_csv_and_json() -> None:
    for kind in PiiKind:
        token = redaction_token(kind)
        assert token == b"[PII:" + kind.value.encode() + b"]"
        assert not set(token) & set(b",\"'\\\n\r\t")
        assert json.loads(b'"' + token + b'"') == token.decode()
    assert redaction_token("email") == b"[PII:email]"
    with pytest.raises(PiiError, match="unknown PII kind"):
        redaction_token("name")


def test_redact_replaces_every_finding_and_the_result_scans_clean() -> None:
    data = (
        b'id,contact,card,note\n1,ann@example.com,"4111 1111 1111 1111",ok\n'
        b"2,(415) 555-2671,5555555555554444,from 10.0.0.1\n"
    )
    redacted = SCANNER.redact(data)
    assert redacted == (
        b'id,contact,card,note\n1,[PII:email],"[PII:payment_card]",ok\n'
        b"2,[PII:phone],[PII:payment_card],from [PII:ip_address]\n"
    )
    assert SCANNER.scan(redacted) == []
    assert redacted.count(b",") == data.count(b",")


def test_redact_with_given_matches_and_secret_blocks() -> None:
    data = b"key:\n" + PEM_BLOCK + b"\nend"
    matches = SCANNER.scan(data)
    assert SCANNER.redact(data, matches) == b"key:\n[PII:secret]\nend"
    assert SCANNER.redact(data, []) == data


def test_redact_refuses_findings_that_do_not_fit() -> None:
    data = b"ann@example.com"
    with pytest.raises(PiiError, match="does not fit a 15-byte buffer"):
        SCANNER.redact(data, [PiiMatch(PiiKind.EMAIL, 0, 99)])
    with pytest.raises(PiiError, match="does not fit"):
        SCANNER.redact(data, [PiiMatch(PiiKind.EMAIL, 4, 8), PiiMatch(PiiKind.EMAIL, 2, 6)])


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(_GLUE)), max_size=12))
def test_redacted_output_always_scans_clean(parts: list[tuple[bytes, bytes]]) -> None:
    data = b"".join(piece + glue for piece, glue in parts)
    assert SCANNER.scan(SCANNER.redact(data)) == []


# --- tally and policy -----------------------------------------------------------------------


def test_tally_counts_per_kind_and_column_and_merges() -> None:
    tally = PiiTally()
    tally.add("email", "contact")
    tally.add("email", "contact", 2)
    tally.add(PiiKind.PHONE, "contact")
    tally.add("payment_card", "card", 0)
    other = PiiTally()
    other.add("email", "backup_contact", 4)
    other.add("ip_address", "note")
    tally.merge(other)
    assert tally.counts() == {
        "email": {"backup_contact": 4, "contact": 3},
        "ip_address": {"note": 1},
        "phone": {"contact": 1},
    }
    assert tally.total == 9
    assert other.total == 5  # merging leaves the other tally as it was


def test_tally_refuses_unknown_kinds_and_bad_counts() -> None:
    tally = PiiTally()
    with pytest.raises(PiiError, match="unknown PII kind 'name' \\(column 'who'\\)"):
        tally.add("name", "who")
    with pytest.raises(PiiError, match="non-negative integer"):
        tally.add("email", "who", -1)
    assert tally.total == 0


def test_tally_to_dict_is_deterministic_json() -> None:
    first, second = PiiTally(), PiiTally()
    first.add("phone", "b")
    first.add("email", "a", 2)
    second.add("email", "a")
    second.add("phone", "b")
    second.add("email", "a")
    record = first.to_dict(
        policy=PiiPolicy.REDACT, engine="re2", scanned_bytes=1234, not_scanned=["z.png", "a.bin"]
    )
    assert record == {
        "policy": "redact",
        "engine": "re2",
        "scanned_bytes": 1234,
        "total": 3,
        "findings": {"email": {"a": 2}, "phone": {"b": 1}},
        "not_scanned": ["a.bin", "z.png"],
    }
    again = second.to_dict(
        policy=PiiPolicy.REDACT, engine="re2", scanned_bytes=1234, not_scanned=["a.bin", "z.png"]
    )
    assert json.dumps(record) == json.dumps(again)
    with pytest.raises(PiiError, match="scanned_bytes must not be negative"):
        first.to_dict(policy=PiiPolicy.ALLOW, engine="re2", scanned_bytes=-1, not_scanned=[])


def test_block_policy_refuses_with_counts_per_kind_and_column() -> None:
    tally = PiiTally()
    tally.add("email", "contact", 3)
    tally.add("us_ssn", "ssn")
    with pytest.raises(PiiBlocked) as raised:
        enforce_policy(tally, PiiPolicy.BLOCK, dataset="patients.csv")
    message = str(raised.value)
    assert "'patients.csv'" in message
    assert "4 PII finding(s)" in message
    assert "email in column 'contact': 3" in message
    assert "us_ssn in column 'ssn': 1" in message
    assert "'redact'" in message


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(PiiError, match="unknown PII policy 'warn'"):
        enforce_policy(PiiTally(), "warn", dataset="d")  # type: ignore[arg-type]


def test_merging_a_tally_into_itself_doubles_it() -> None:
    tally = PiiTally()
    tally.add("email", "a", 2)
    tally.merge(tally)
    assert tally.counts() == {"email": {"a": 4}}


def test_other_policies_and_clean_data_pass() -> None:
    tally = PiiTally()
    enforce_policy(tally, PiiPolicy.BLOCK, dataset="clean.csv")
    tally.add("email", "contact")
    enforce_policy(tally, PiiPolicy.REDACT, dataset="d")
    enforce_policy(tally, PiiPolicy.ALLOW, dataset="d")


def test_block_message_never_holds_the_values_found() -> None:
    data = b"ann@example.com,4111111111111111"
    tally = PiiTally()
    for kind, _start, _end in SCANNER.find(data):
        tally.add(kind, "col")
    with pytest.raises(PiiBlocked) as raised:
        enforce_policy(tally, PiiPolicy.BLOCK, dataset="d.csv")
    assert "ann@" not in str(raised.value)
    assert "4111" not in str(raised.value)


# --- the scanner's dispatch hints ---------------------------------------------------------


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda fragment: fragment.name)
@settings(max_examples=200)
@given(data=st.data())
def test_every_candidate_fits_its_fragments_dispatch_hints(
    fragment: Fragment, data: st.DataObject
) -> None:
    # The scanner tells detectors apart by these hints; a wrong one would mislabel findings.
    candidate = data.draw(st.from_regex(fragment.candidate, fullmatch=True))
    assert re.fullmatch(fragment.first, candidate[:1])
    if fragment.required:
        assert any(byte in fragment.required for byte in candidate)
    if fragment.ends_in_word:
        assert re.fullmatch(WORD_BYTES, candidate[-1:])


_KIND_SETS = [None, [PiiKind.EMAIL], [PiiKind.PHONE, PiiKind.US_SSN], [PiiKind.IP_ADDRESS]]
_PY_RE_BY_KINDS = [PiiScanner(kinds, engine="re") for kinds in _KIND_SETS]
_RE2_BY_KINDS = [PiiScanner(kinds) for kinds in _KIND_SETS]


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(_GLUE)), max_size=12),
    st.integers(0, len(_KIND_SETS) - 1),
    st.sampled_from([bytes, bytearray, memoryview]),
)
def test_re2_and_python_re_agree_on_kind_subsets_and_buffers(
    parts: list[tuple[bytes, bytes]], which: int, wrap: type
) -> None:
    data = b"".join(piece + glue for piece, glue in parts)
    expected = _PY_RE_BY_KINDS[which].find(data)
    assert _RE2_BY_KINDS[which].find(wrap(data)) == expected


def test_a_match_longer_than_the_short_path_is_labelled_the_same() -> None:
    # Long matches are told apart by RE2 with submatches rather than by Python's re.
    key = GITHUB_FINE + b"A" * 100
    data = b"x " + key + b" 4111 1111 1111 1111 " + PEM_BLOCK
    assert found(data) == found(data, PY_RE_SCANNER)
    assert [kind for kind, _value in found(data)] == ["secret", "payment_card", "secret"]
