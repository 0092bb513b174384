"""Dataset manifests: the creator-signed description of a dataset that buyers pay for.

A manifest is an in-toto Statement (predicate ``…/dataset-manifest/v1``) in a DSSE
envelope signed by the creator key. Its subject is the dataset's RFC 9162 Merkle root
over 1 MiB chunks; its predicate says who made it, under which licence, for which uses,
at what price, under which privacy caps, with which schema and which PII findings, and
lists every file with its size, because the Merkle root alone does not cover file names.
Its price may split the royalty between several payees, named by did:key so that the
split means the same on any coordinator.

This module must never return a manifest whose signature it has not verified, nor one
whose signer is not the creator the manifest names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provenance.canonical import sha256_hex
from provenance.chunking import ALGORITHM as CHUNKING_ALGORITHM_NAME
from provenance.chunking import ChunkedDataset
from provenance.dsse import Envelope
from provenance.errors import KeyFormatError, ManifestError, ProvenanceError
from provenance.keys import PublicKey, SigningKey
from provenance.statement import (
    Statement,
    Subject,
    predicate_type,
    sign_statement,
    verify_statement,
)

DATASET_MANIFEST_PREDICATE = predicate_type("dataset-manifest")
#: How chunk leaves and the root are computed.
CHUNKING_ALGORITHM = CHUNKING_ALGORITHM_NAME
#: The most payees a dataset's royalty split may name.
MAX_ROYALTY_PAYEES = 32
#: What a royalty split's shares add up to (basis points; billing's ``BASIS_POINTS``).
ROYALTY_BASIS_POINTS = 10_000
_DATASET_ID = re.compile(r"^ds_[0-9a-f]{26}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TOP_FIELDS = {
    "dataset",
    "creator",
    "license",
    "allowed_uses",
    "privacy",
    "price",
    "schema",
    "content",
    "pii",
    "created_at",
}


def check_dataset_id(dataset_id: str) -> str:
    """Return ``dataset_id`` if it has the form ``ds_`` + 26 lowercase hex digits."""
    if not _DATASET_ID.fullmatch(dataset_id):
        raise ManifestError(
            f"dataset id {dataset_id!r} is malformed: expected 'ds_' and 26 hex digits"
        )
    return dataset_id


def subject_name(dataset_id: str, version: int) -> str:
    """The Statement subject name of a dataset version."""
    return f"tallystick:dataset/{dataset_id}/v{version}"


@dataclass(frozen=True)
class RoyaltyShare:
    """One payee of a dataset's royalty: a did:key and its share in basis points."""

    did: str
    share_bps: int


@dataclass(frozen=True)
class RoyaltySplit:
    """A dataset's signed royalty split (``price.royalties``): payees whose shares add to
    10,000 bps, and the payee who takes the rounding leftover. Checked by ``from_dict``."""

    payees: tuple[RoyaltyShare, ...]
    remainder_to: str

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: ``{"payees": [{"did", "share_bps"}], "remainder_to": did}``."""
        return {
            "payees": [{"did": p.did, "share_bps": p.share_bps} for p in self.payees],
            "remainder_to": self.remainder_to,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "price.royalties") -> RoyaltySplit:
        """Parse the manifest form strictly; a ``ManifestError`` names the field at fault."""
        if not isinstance(data, dict):
            raise ManifestError(f"manifest field {where} must be an object")
        if set(data) != {"payees", "remainder_to"}:
            raise ManifestError(
                f"manifest field {where} must have exactly the fields payees and remainder_to, "
                f"got {', '.join(sorted(map(str, data))) or 'none'}"
            )
        payees = _require(data, "payees", list, f"{where}.")
        if not 1 <= len(payees) <= MAX_ROYALTY_PAYEES:
            raise ManifestError(
                f"manifest field {where}.payees must list 1 to {MAX_ROYALTY_PAYEES} payees, "
                f"got {len(payees)}"
            )
        shares: list[RoyaltyShare] = []
        for position, item in enumerate(payees):
            at = f"{where}.payees[{position}]"
            if not isinstance(item, dict) or set(item) != {"did", "share_bps"}:
                raise ManifestError(
                    f"manifest field {at} must be an object with exactly did and share_bps"
                )
            did = _did(_require(item, "did", str, f"{at}."), f"{at}.did")
            share = _require(item, "share_bps", int, f"{at}.")
            if not 0 < share <= ROYALTY_BASIS_POINTS:
                raise ManifestError(
                    f"manifest field {at}.share_bps must be from 1 to {ROYALTY_BASIS_POINTS}, "
                    f"got {share}"
                )
            if any(earlier.did == did for earlier in shares):
                raise ManifestError(f"manifest field {at}.did names payee {did} a second time")
            shares.append(RoyaltyShare(did, share))
        total = sum(share.share_bps for share in shares)
        if total != ROYALTY_BASIS_POINTS:
            raise ManifestError(
                f"manifest field {where}.payees: shares add to {total} bps, not "
                f"{ROYALTY_BASIS_POINTS}"
            )
        remainder = _require(data, "remainder_to", str, f"{where}.")
        if remainder not in {share.did for share in shares}:
            raise ManifestError(
                f"manifest field {where}.remainder_to {remainder!r} is not one of the payees"
            )
        return cls(tuple(shares), remainder)


def _did(text: str, where: str) -> str:
    """``text`` if it is an Ed25519 did:key in its canonical spelling."""
    try:
        canonical = PublicKey.from_did(text).did
    except KeyFormatError as exc:
        raise ManifestError(f"manifest field {where}: {exc}") from exc
    if canonical != text:
        raise ManifestError(f"manifest field {where} {text!r} is not a canonical did:key")
    return text


@dataclass(frozen=True)
class DatasetManifest:
    """A parsed, verified dataset manifest. ``predicate`` is exactly what was signed."""

    dataset_id: str
    version: int
    merkle_root: str
    creator: str
    predicate: Mapping[str, Any]

    @property
    def title(self) -> str:
        """The dataset's title."""
        return str(self.predicate["dataset"]["title"])

    @property
    def chunking(self) -> Mapping[str, Any]:
        """The signed chunking section: algorithm, chunk size, root and every file."""
        return self.predicate["content"]["chunking"]  # type: ignore[no-any-return]

    @property
    def royalties(self) -> RoyaltySplit | None:
        """The signed royalty split, or ``None``: then the creator is paid alone."""
        data = self.predicate["price"].get("royalties")
        return None if data is None else RoyaltySplit.from_dict(data)

    def chunked_dataset(self, leaf_hashes: bytes) -> ChunkedDataset:
        """Rebuild the signed chunk tree from stored leaf hashes; raises if they disagree."""
        try:
            return ChunkedDataset.from_dict(self.chunking, leaf_hashes)
        except ProvenanceError as exc:
            raise ManifestError(f"dataset {self.dataset_id}: stored chunk hashes: {exc}") from exc


@dataclass(frozen=True)
class SignedManifest:
    """A verified manifest with its envelope and the digest that names it elsewhere."""

    manifest: DatasetManifest
    envelope: Envelope

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the signed Statement bytes: the manifest's identity in tokens,
        receipts and the log. Signatures are not covered, so re-signing keeps it."""
        return manifest_digest(self.envelope)


def manifest_digest(envelope: Envelope) -> str:
    """The digest of a manifest envelope's payload (see ``SignedManifest.digest``)."""
    return sha256_hex(envelope.payload)


def build_statement(
    *, dataset_id: str, version: int, merkle_root: str, predicate: Mapping[str, Any]
) -> Statement:
    """The manifest Statement for a dataset version; checks the predicate's shape first."""
    check_dataset_id(dataset_id)
    _check_predicate(dict(predicate), dataset_id, version, merkle_root)
    return Statement(
        subjects=(Subject(subject_name(dataset_id, version), {"sha256": merkle_root}),),
        predicate_type=DATASET_MANIFEST_PREDICATE,
        predicate=dict(predicate),
    )


def sign_manifest(statement: Statement, creator_key: SigningKey) -> SignedManifest:
    """Sign a manifest Statement with the creator key, then verify what was signed."""
    creator = statement.predicate.get("creator")
    if creator != creator_key.public_key.did:
        raise ManifestError(
            f"the manifest names creator {creator!r} but the signing key is "
            f"{creator_key.public_key.did}"
        )
    envelope = sign_statement(statement, [creator_key])
    return verify_manifest(envelope, expected_creator=creator_key.public_key)


def verify_manifest(
    envelope: Envelope | bytes, *, expected_creator: PublicKey | None = None
) -> SignedManifest:
    """Verify a manifest envelope: a creator signature, the Statement and the predicate.

    The signer is found from the signatures' key ids (did:key) and must be the creator
    the predicate names; with ``expected_creator`` it must also be that key.
    """
    try:
        parsed = envelope if isinstance(envelope, Envelope) else Envelope.from_json(envelope)
    except ProvenanceError as exc:
        raise ManifestError(f"manifest envelope: {exc}") from exc
    candidates = _signer_candidates(parsed, expected_creator)
    try:
        statement = verify_statement(parsed, candidates, predicate_type=DATASET_MANIFEST_PREDICATE)
    except ProvenanceError as exc:
        raise ManifestError(f"manifest signature: {exc}") from exc
    predicate = statement.predicate
    creator = predicate.get("creator")
    if not isinstance(creator, str) or creator not in {key.did for key in candidates}:
        raise ManifestError(
            f"manifest creator {creator!r} did not sign it; signed by "
            f"{', '.join(key.did for key in candidates)}"
        )
    if len(statement.subjects) != 1:
        raise ManifestError("a dataset manifest must have exactly one subject")
    subject = statement.subjects[0]
    root = subject.digest.get("sha256")
    dataset = predicate.get("dataset")
    if not isinstance(dataset, dict):
        raise ManifestError("manifest field 'dataset' must be an object")
    dataset_id = dataset.get("id")
    version = dataset.get("version")
    if not isinstance(dataset_id, str) or not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError("manifest dataset.id must be a string and dataset.version an integer")
    check_dataset_id(dataset_id)
    if subject.name != subject_name(dataset_id, version) or not isinstance(root, str):
        raise ManifestError(
            f"manifest subject {subject.name!r} does not name dataset {dataset_id} v{version} "
            "with a sha256 digest"
        )
    _check_predicate(predicate, dataset_id, version, root)
    manifest = DatasetManifest(dataset_id, version, root, creator, predicate)
    return SignedManifest(manifest, parsed)


def _signer_candidates(envelope: Envelope, expected: PublicKey | None) -> list[PublicKey]:
    if expected is not None:
        return [expected]
    keys: list[PublicKey] = []
    for signature in envelope.signatures:
        try:
            keys.append(PublicKey.from_did(signature.keyid))
        except KeyFormatError:
            continue
    if not keys:
        raise ManifestError("manifest envelope has no signature with a did:key key id")
    return keys


def _require(
    mapping: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str
) -> Any:
    value = mapping.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ManifestError(f"manifest field {where}{name} must be of type {expected}")
    return value


def _check_predicate(
    predicate: Mapping[str, Any], dataset_id: str, version: int, merkle_root: str
) -> None:
    """Check the predicate's shape: every field a reader relies on is present and typed."""
    missing = _TOP_FIELDS - set(predicate)
    if missing:
        raise ManifestError(f"manifest lacks fields: {', '.join(sorted(missing))}")
    unknown = set(predicate) - _TOP_FIELDS
    if unknown:
        raise ManifestError(f"manifest has unknown fields: {', '.join(sorted(unknown))}")
    dataset = _require(predicate, "dataset", dict, "")
    if dataset.get("id") != dataset_id or dataset.get("version") != version:
        raise ManifestError("manifest dataset.id/version disagree with its subject")
    if not isinstance(version, int) or version < 1:
        raise ManifestError("manifest dataset.version must be a positive integer")
    _require(dataset, "title", str, "dataset.")
    _require(predicate, "creator", str, "")
    _require(predicate, "license", str, "")
    uses = _require(predicate, "allowed_uses", list, "")
    if not uses or not all(isinstance(use, str) for use in uses):
        raise ManifestError("manifest field allowed_uses must be a non-empty list of strings")
    privacy = _require(predicate, "privacy", dict, "")
    for name in ("lifetime_epsilon", "delta", "accountant"):
        _require(privacy, name, str, "privacy.")
    if privacy.get("max_epsilon_per_job") is not None:
        _require(privacy, "max_epsilon_per_job", str, "privacy.")
    price = _require(predicate, "price", dict, "")
    _require(price, "per_sample", str, "price.")
    _require(price, "currency", str, "price.")
    if "royalties" in price:
        RoyaltySplit.from_dict(price["royalties"])
    schema = _require(predicate, "schema", dict, "")
    _require(schema, "rows", int, "schema.")
    content = _require(predicate, "content", dict, "")
    _require(content, "redacted", bool, "content.")
    chunking = _require(content, "chunking", dict, "content.")
    if chunking.get("root") != merkle_root or not _HEX64.fullmatch(merkle_root):
        raise ManifestError("manifest content.chunking.root disagrees with its subject digest")
    if chunking.get("algorithm") != CHUNKING_ALGORITHM:
        raise ManifestError(f"manifest content.chunking.algorithm must be {CHUNKING_ALGORITHM!r}")
    for name in ("chunk_size", "chunk_count", "total_bytes"):
        _require(chunking, name, int, "content.chunking.")
    files = _require(chunking, "files", list, "content.chunking.")
    if not files:
        raise ManifestError("manifest content.chunking.files must list at least one file")
    for position, item in enumerate(files):
        where = f"content.chunking.files[{position}]."
        if not isinstance(item, dict):
            raise ManifestError(f"manifest {where[:-1]} must be an object")
        _require(item, "path", str, where)
        for name in ("size", "first_chunk", "chunk_count"):
            _require(item, name, int, where)
    _require(predicate, "pii", dict, "")
    _require(predicate, "created_at", str, "")
