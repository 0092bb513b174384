"""A dataset's terms of sale: licence, allowed uses, price, royalty split, privacy caps
and PII policy.

Everything here is checked before a single byte of the dataset is read, and every
error names the option at fault. This module must never accept an inexact price (a
float, an exponent, a negative number), an ε cap that is zero, negative or not finite,
or a royalty split whose shares do not add up to exactly 10,000 basis points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from billing.currency import check_currency
from billing.errors import CurrencyError
from data_host.errors import DatasetTermsError
from privacy.budget import BudgetTerms
from privacy.errors import PrivacyError
from privacy.pii import PiiPolicy
from provenance.errors import KeyFormatError
from provenance.keys import PublicKey
from provenance.manifest import (
    MAX_ROYALTY_PAYEES,
    ROYALTY_BASIS_POINTS,
    RoyaltyShare,
    RoyaltySplit,
)

#: What a buyer may do with a dataset. ``train``: DP training rounds; ``evaluate``:
#: federated evaluation on the held-out split, reported as aggregate metrics only.
ALLOWED_USES = ("train", "evaluate")
DEFAULT_DELTA = 1e-5
DEFAULT_LIFETIME_EPSILON = 10.0
MAX_TITLE_LENGTH = 200
_PRICE_PATTERN = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$")


def parse_price(text: str) -> Decimal:
    """Parse a price per sample: a non-negative exact decimal such as ``0.002``.

    At most 12 digits before and 12 after the point; no sign, exponent or spaces.
    """
    stripped = text.strip()
    if stripped.startswith("-"):
        raise DatasetTermsError(f"--price-per-sample {text!r} is negative; a price must be >= 0")
    if not _PRICE_PATTERN.fullmatch(stripped):
        raise DatasetTermsError(
            f"--price-per-sample {text!r} is not an exact decimal: write digits with an "
            "optional decimal point, e.g. 0.002 (no exponent, sign or thousands separator; "
            "at most 12 decimal places)"
        )
    return Decimal(stripped)


def parse_royalty(text: str) -> tuple[str, int]:
    """Parse one ``--royalty`` value, ``did:key:z…=6000``: a payee and its share in bps."""
    did, sep, share = text.strip().rpartition("=")
    if not sep or not did:
        raise DatasetTermsError(
            f"--royalty {text!r} must be DID=SHARE, e.g. --royalty did:key:z6Mk…=6000 "
            f"(shares in basis points, adding up to {ROYALTY_BASIS_POINTS})"
        )
    if not share.isascii() or not share.isdigit():
        raise DatasetTermsError(
            f"--royalty {text!r}: the share {share!r} must be a whole number of basis points"
        )
    return did, int(share)


def _check_did(did: str, option: str) -> None:
    try:
        canonical = PublicKey.from_did(did).did
    except KeyFormatError as exc:
        raise DatasetTermsError(f"{option}: {exc}") from exc
    if canonical != did:
        raise DatasetTermsError(f"{option} {did!r} is not a canonical did:key")


def check_license(spdx_id: str) -> str:
    """Return the canonical SPDX licence expression for ``spdx_id`` or raise."""
    try:
        return str(canonicalize_license_expression(spdx_id))
    except InvalidLicenseExpression as exc:
        raise DatasetTermsError(
            f"--license {spdx_id!r} is not a known SPDX licence identifier or expression "
            "(e.g. CC-BY-4.0, MIT, Apache-2.0, or LicenseRef-<name> for your own terms)"
        ) from exc


def _check_epsilon(value: float | None, option: str) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value <= 0:
        raise DatasetTermsError(f"{option} {value} is invalid: an ε cap must be a number > 0")


@dataclass(frozen=True)
class DatasetTerms:
    """What a creator says about a dataset when adding it. Validated on construction."""

    title: str
    license: str
    price_per_sample: Decimal
    currency: str
    lifetime_epsilon: float = DEFAULT_LIFETIME_EPSILON
    max_epsilon_per_job: float | None = None
    delta: float = DEFAULT_DELTA
    allowed_uses: tuple[str, ...] = ("train",)
    pii_policy: PiiPolicy = PiiPolicy.BLOCK
    description: str = ""
    label: str | None = None
    #: Who is paid for the dataset: (payee did:key, share in bps), adding up to 10,000.
    #: Empty: the creator alone (the manifest then has no ``price.royalties``).
    royalties: tuple[tuple[str, int], ...] = ()
    #: The payee who takes rounding leftovers (default: the first payee).
    royalty_remainder_to: str | None = None

    def __post_init__(self) -> None:
        title = self.title.strip()
        if not title or len(title) > MAX_TITLE_LENGTH or any(ch in title for ch in "\n\r\t"):
            raise DatasetTermsError(
                f"--title must be 1-{MAX_TITLE_LENGTH} characters on one line, got {self.title!r}"
            )
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "license", check_license(self.license))
        if self.price_per_sample < 0:
            raise DatasetTermsError("--price-per-sample is negative; a price must be >= 0")
        try:
            check_currency(self.currency)
        except CurrencyError as exc:
            raise DatasetTermsError(f"--currency: {exc}") from exc
        _check_epsilon(self.lifetime_epsilon, "--lifetime-epsilon")
        _check_epsilon(self.max_epsilon_per_job, "--max-epsilon-per-job")
        if not math.isfinite(self.delta) or not 0 < self.delta < 1:
            raise DatasetTermsError(f"--delta {self.delta} is invalid: it must lie in (0, 1)")
        if self.max_epsilon_per_job is not None and (
            self.max_epsilon_per_job > self.lifetime_epsilon
        ):
            raise DatasetTermsError(
                f"--max-epsilon-per-job {self.max_epsilon_per_job} exceeds "
                f"--lifetime-epsilon {self.lifetime_epsilon}"
            )
        uses = tuple(dict.fromkeys(self.allowed_uses))
        if not uses:
            raise DatasetTermsError("--allowed-use: at least one use is needed (e.g. train)")
        unknown = [use for use in uses if use not in ALLOWED_USES]
        if unknown:
            raise DatasetTermsError(
                f"--allowed-use {', '.join(unknown)} is unknown; choose from "
                f"{', '.join(ALLOWED_USES)}"
            )
        object.__setattr__(self, "allowed_uses", tuple(sorted(uses)))
        if len(self.description) > 10_000:
            raise DatasetTermsError("--description is over 10,000 characters")
        self._check_royalties()

    def _check_royalties(self) -> None:
        payees = tuple((str(did).strip(), share) for did, share in self.royalties)
        if not payees:
            if self.royalty_remainder_to is not None:
                raise DatasetTermsError(
                    "--royalty-remainder-to needs the payees it chooses from: give --royalty "
                    "DID=SHARE for each"
                )
            return
        if len(payees) > MAX_ROYALTY_PAYEES:
            raise DatasetTermsError(
                f"--royalty is given {len(payees)} times; at most {MAX_ROYALTY_PAYEES} payees"
            )
        seen: set[str] = set()
        for did, share in payees:
            _check_did(did, "--royalty")
            if isinstance(share, bool) or not isinstance(share, int) or share <= 0:
                raise DatasetTermsError(
                    f"--royalty {did}={share}: a share must be a positive whole number of bps"
                )
            if did in seen:
                raise DatasetTermsError(f"--royalty names {did} twice; give each payee once")
            seen.add(did)
        total = sum(share for _, share in payees)
        if total != ROYALTY_BASIS_POINTS:
            raise DatasetTermsError(
                f"--royalty shares add up to {total} bps; they must add up to exactly "
                f"{ROYALTY_BASIS_POINTS} (e.g. 6000 and 4000)"
            )
        remainder = (self.royalty_remainder_to or payees[0][0]).strip()
        _check_did(remainder, "--royalty-remainder-to")
        if remainder not in seen:
            raise DatasetTermsError(
                f"--royalty-remainder-to {remainder} is not one of the --royalty payees"
            )
        object.__setattr__(self, "royalties", payees)
        object.__setattr__(self, "royalty_remainder_to", remainder)

    def royalty_split(self) -> RoyaltySplit | None:
        """The manifest's ``price.royalties``, or ``None`` when the creator is paid alone."""
        if not self.royalties:
            return None
        return RoyaltySplit(
            tuple(RoyaltyShare(did, share) for did, share in self.royalties),
            self.royalty_remainder_to or self.royalties[0][0],
        )

    def budget_terms(self) -> BudgetTerms:
        """The privacy-budget terms the node's ledger enforces for this dataset."""
        try:
            return BudgetTerms(
                delta=self.delta,
                lifetime_epsilon=self.lifetime_epsilon,
                max_epsilon_per_job=self.max_epsilon_per_job,
            )
        except PrivacyError as exc:  # pragma: no cover - checked above; kept as a backstop
            raise DatasetTermsError(str(exc)) from exc

    def check_delta_for_rows(self, rows: int) -> None:
        """Refuse a δ that is not smaller than 1/rows: it would allow leaking a whole row."""
        if rows > 0 and self.delta >= 1 / rows:
            raise DatasetTermsError(
                f"--delta {self.delta} is too large for {rows} rows: it must be below 1/rows "
                f"({1 / rows:.3g}); pick e.g. --delta {10 ** math.floor(math.log10(0.1 / rows)):g}"
            )
