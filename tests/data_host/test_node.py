"""The node's home, manifests, allow-list and worker attestation."""

from __future__ import annotations

import json
import stat
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from data_host.allowlist import AppAllowList, build_fab, fab_hash_of_bytes, fab_hash_of_file
from data_host.attestation import (
    EvidenceKind,
    check_evidence,
    code_measurement,
    load_evidence,
    produce_evidence,
    store_evidence,
)
from data_host.errors import (
    AttestationSetupError,
    DataHostError,
    NodeHomeError,
    WorkRefused,
)
from data_host.home import CONFIG_FILE, init_home, open_home
from data_host.nsm import (
    NSM_IOCTL_REQUEST,
    decode_attestation_response,
    encode_attestation_request,
)
from provenance.attestation import NITRO_EVIDENCE_TYPE
from provenance.dsse import Envelope
from provenance.errors import ManifestError
from provenance.keys import SigningKey
from provenance.manifest import (
    DATASET_MANIFEST_PREDICATE,
    build_statement,
    sign_manifest,
    verify_manifest,
)
from provenance.statement import Statement, sign_statement

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "provenance"))
from nitro_fixtures import AT, make_pki, payload_fields, sign_document

ROOT = "ab" * 32


def _predicate(creator: str, dataset_id: str = "ds_" + "0" * 26) -> dict[str, Any]:
    return {
        "dataset": {"id": dataset_id, "version": 1, "title": "Heart study", "description": ""},
        "creator": creator,
        "license": "CC-BY-4.0",
        "allowed_uses": ["train"],
        "privacy": {
            "accountant": "rdp",
            "delta": "1e-05",
            "lifetime_epsilon": "8.0",
            "max_epsilon_per_job": "3.0",
        },
        "price": {"currency": "USD", "per_sample": "0.002"},
        "schema": {"rows": 100},
        "content": {
            "chunking": {
                "algorithm": "sha256-rfc9162",
                "chunk_size": 1048576,
                "root": ROOT,
                "chunk_count": 1,
                "total_bytes": 10,
                "files": [{"path": "a.csv", "size": 10, "first_chunk": 0, "chunk_count": 1}],
            },
            "redacted": False,
        },
        "pii": {"total": 0},
        "created_at": "2026-11-25T00:00:00Z",
    }


# --- node home ---------------------------------------------------------------------------


def test_init_creates_private_keys_and_config(tmp_path: Path) -> None:
    home = init_home(tmp_path / "node", "alice-node")
    assert stat.S_IMODE(home.root.stat().st_mode) == 0o700
    for key in ("creator.key", "worker.key", "dev-attester.key"):
        assert stat.S_IMODE((home.keys_dir / key).stat().st_mode) == 0o600
    config = json.loads((home.root / CONFIG_FILE).read_text())
    assert config["creator_did"] == home.creator_key().public_key.did
    assert config["worker_did"] == home.worker_key().public_key.did
    assert config["creator_did"] != config["worker_did"]
    reopened = open_home(home.root)
    assert reopened.config == home.config


def test_init_refuses_an_existing_home_and_a_non_empty_directory(tmp_path: Path) -> None:
    home = init_home(tmp_path / "node", "alice")
    before = home.creator_key().public_key.did
    with pytest.raises(NodeHomeError, match="already a node home"):
        init_home(home.root, "alice")
    assert open_home(home.root).creator_key().public_key.did == before
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(NodeHomeError, match="not an empty directory"):
        init_home(tmp_path / "busy", "alice")
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["file"]


@pytest.mark.parametrize("name", ["", "-dash", "has space", "x" * 65, "a/b"])
def test_init_refuses_bad_names_and_writes_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(NodeHomeError, match="node name"):
        init_home(tmp_path / "node", name)
    assert not (tmp_path / "node").exists()


def test_open_refuses_missing_home_unsafe_keys_and_swapped_keys(tmp_path: Path) -> None:
    with pytest.raises(NodeHomeError, match="tally host init"):
        open_home(tmp_path / "nowhere")
    home = init_home(tmp_path / "node", "alice")
    home.creator_key_path.chmod(0o644)
    with pytest.raises(NodeHomeError, match="chmod 600"):
        home.creator_key()
    home.creator_key_path.chmod(0o600)
    home.creator_key_path.unlink()
    home.worker_key_path.rename(home.creator_key_path)
    with pytest.raises(NodeHomeError, match="does not match"):
        home.creator_key()


def test_open_refuses_a_world_writable_home(tmp_path: Path) -> None:
    home = init_home(tmp_path / "node", "alice")
    home.root.chmod(0o777)
    with pytest.raises(NodeHomeError, match="chmod 700"):
        open_home(home.root)


def test_open_refuses_a_corrupt_config(tmp_path: Path) -> None:
    home = init_home(tmp_path / "node", "alice")
    (home.root / CONFIG_FILE).write_text('{"version": 1, "name": "alice"}')
    with pytest.raises(NodeHomeError, match="field .created_at. must be"):
        open_home(home.root)


# --- manifests ---------------------------------------------------------------------------


def test_manifest_round_trip_binds_root_and_creator() -> None:
    creator = SigningKey.generate()
    statement = build_statement(
        dataset_id="ds_" + "0" * 26,
        version=1,
        merkle_root=ROOT,
        predicate=_predicate(creator.public_key.did),
    )
    signed = sign_manifest(statement, creator)
    again = verify_manifest(signed.envelope.to_json())
    assert again.manifest.merkle_root == ROOT
    assert again.manifest.creator == creator.public_key.did
    assert again.digest == signed.digest
    assert statement.predicate_type == DATASET_MANIFEST_PREDICATE


def test_manifest_signed_by_someone_else_is_refused() -> None:
    creator, other = SigningKey.generate(), SigningKey.generate()
    statement = build_statement(
        dataset_id="ds_" + "0" * 26,
        version=1,
        merkle_root=ROOT,
        predicate=_predicate(creator.public_key.did),
    )
    with pytest.raises(ManifestError, match="signing key"):
        sign_manifest(statement, other)
    forged = sign_statement(statement, [other])
    with pytest.raises(ManifestError, match="did not sign it"):
        verify_manifest(forged)
    with pytest.raises(ManifestError, match="signature"):
        verify_manifest(forged, expected_creator=creator.public_key)


def test_tampered_manifest_is_refused() -> None:
    creator = SigningKey.generate()
    statement = build_statement(
        dataset_id="ds_" + "0" * 26,
        version=1,
        merkle_root=ROOT,
        predicate=_predicate(creator.public_key.did),
    )
    envelope = sign_manifest(statement, creator).envelope
    payload = envelope.payload.replace(b"0.002", b"0.001")
    tampered = Envelope(envelope.payload_type, payload, envelope.signatures)
    with pytest.raises(ManifestError, match="signature"):
        verify_manifest(tampered)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("price"), "lacks fields: price"),
        (lambda p: p.update(extra=1), "unknown fields: extra"),
        (lambda p: p["content"]["chunking"].update(root="cd" * 32), "disagrees"),
        (lambda p: p["dataset"].update(version=2), "disagree"),
        (lambda p: p["schema"].update(rows="100"), "schema.rows"),
        (lambda p: p["content"]["chunking"].update(files=[]), "at least one file"),
        (lambda p: p.update(allowed_uses=[]), "allowed_uses"),
    ],
)
def test_malformed_manifests_are_refused_even_when_signed(change: Any, message: str) -> None:
    creator = SigningKey.generate()
    predicate = _predicate(creator.public_key.did)
    change(predicate)
    with pytest.raises(ManifestError, match=message):
        build_statement(
            dataset_id="ds_" + "0" * 26, version=1, merkle_root=ROOT, predicate=predicate
        )
    from provenance.statement import Subject

    raw = Statement(
        (Subject("tallystick:dataset/ds_" + "0" * 26 + "/v1", {"sha256": ROOT}),),
        DATASET_MANIFEST_PREDICATE,
        predicate,
    )
    with pytest.raises(ManifestError):
        verify_manifest(sign_statement(raw, [creator]))


def test_manifest_envelope_that_is_not_json_is_refused() -> None:
    with pytest.raises(ManifestError, match="envelope"):
        verify_manifest(b"{not json")


# --- allow-list --------------------------------------------------------------------------


def _app_dir(tmp_path: Path, version: str = "1.0.0") -> Path:
    app = tmp_path / f"app-{version}"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "__init__.py").write_text("")
    (app / "pkg" / "apps.py").write_text("app = None\n")
    (app / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "testapp"
version = "{version}"
dependencies = ["flwr>=1.42"]

[tool.flwr.app]
publisher = "tests"

[tool.flwr.app.components]
serverapp = "pkg.apps:app"
clientapp = "pkg.apps:app"

[tool.flwr.app.config]
rounds = 1
"""
    )
    return app


def test_fab_hash_is_deterministic_and_matches_flowers(tmp_path: Path) -> None:
    app = _app_dir(tmp_path)
    first, second = build_fab(app), build_fab(app)
    assert first == second
    fab = tmp_path / "app.fab"
    fab.write_bytes(first)
    assert fab_hash_of_file(fab) == fab_hash_of_bytes(first)
    assert fab_hash_of_bytes(build_fab(_app_dir(tmp_path, "1.0.1"))) != fab_hash_of_bytes(first)


def test_allow_list_refuses_unknown_bundles_until_allowed(tmp_path: Path) -> None:
    home = init_home(tmp_path / "node", "alice")
    allow_list = AppAllowList(home.engine)
    digest = fab_hash_of_bytes(build_fab(_app_dir(tmp_path)))
    with pytest.raises(WorkRefused, match="not on this node's allow-list"):
        allow_list.require_allowed(digest)
    entry = allow_list.allow(digest.upper(), "audited")
    assert entry.fab_hash == digest
    assert allow_list.require_allowed(digest).label == "audited"
    allow_list.remove(digest)
    with pytest.raises(WorkRefused):
        allow_list.require_allowed(digest)
    with pytest.raises(DataHostError, match="not on this node's allow-list"):
        allow_list.remove(digest)
    with pytest.raises(DataHostError, match="SHA-256"):
        allow_list.allow("not-a-hash", "x")


# --- attestation -------------------------------------------------------------------------


def test_dev_evidence_binds_the_worker_key_and_code(tmp_path: Path) -> None:
    home = init_home(tmp_path / "node", "alice")
    evidence = produce_evidence(home, EvidenceKind.AUTO)
    assert evidence.type == "dev"
    verified = store_evidence(home, evidence)
    assert verified.insecure
    assert verified.worker_public_key == home.worker_public_key.raw
    assert verified.measurements == {"code": code_measurement()}
    assert load_evidence(home) == evidence


def test_evidence_from_another_attester_or_for_another_key_is_refused(tmp_path: Path) -> None:
    alice = init_home(tmp_path / "alice", "alice")
    bob = init_home(tmp_path / "bob", "bob")
    with pytest.raises(AttestationSetupError, match="trusted dev attesters"):
        store_evidence(alice, produce_evidence(bob, EvidenceKind.DEV))
    assert not alice.evidence_path.exists()
    with pytest.raises(AttestationSetupError, match="tally host attest"):
        load_evidence(alice)


def test_code_measurement_changes_with_the_code(tmp_path: Path) -> None:
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text("x = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        before = code_measurement(["fakepkg"])
        (package / "__init__.py").write_text("x = 2\n")
        assert code_measurement(["fakepkg"]) != before
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fakepkg", None)


def test_nitro_evidence_comes_from_the_nsm_and_binds_the_worker_key(tmp_path: Path) -> None:
    home = init_home(tmp_path / "node", "alice")
    pki = make_pki()
    requests: list[bytes] = []

    def fake_nsm(request: bytes) -> bytes:
        import cbor2

        requests.append(request)
        asked = cbor2.loads(request)["Attestation"]
        fields = payload_fields(
            pki, public_key=asked["public_key"], user_data=asked["user_data"], nonce=asked["nonce"]
        )
        return bytes(cbor2.dumps({"Attestation": {"document": sign_document(pki, fields)}}))

    evidence = produce_evidence(home, EvidenceKind.AUTO, nonce=b"n" * 16, transport=fake_nsm)
    assert evidence.type == NITRO_EVIDENCE_TYPE
    verified = check_evidence(
        home, evidence, nitro_roots=(pki.root.der,), now=AT + timedelta(seconds=5)
    )
    assert not verified.insecure
    assert verified.nonce == b"n" * 16
    assert verified.user_data is not None
    assert b"alice" in verified.user_data
    assert len(requests) == 1


def test_nsm_request_and_error_responses() -> None:
    import cbor2

    request = cbor2.loads(encode_attestation_request(b"k" * 32, None, b"nonce"))
    assert request == {
        "Attestation": {"public_key": b"k" * 32, "user_data": None, "nonce": b"nonce"}
    }
    with pytest.raises(AttestationSetupError, match="over 1024"):
        encode_attestation_request(b"k" * 2000, None, None)
    with pytest.raises(AttestationSetupError, match="InvalidArgument"):
        decode_attestation_response(cbor2.dumps({"Error": "InvalidArgument"}))
    with pytest.raises(AttestationSetupError, match="no attestation document"):
        decode_attestation_response(cbor2.dumps({"Attestation": {}}))
    with pytest.raises(AttestationSetupError, match="not CBOR"):
        decode_attestation_response(b"\xff\xff")
    # _IOWR(0x0A, 0, 32): the value the Linux NSM driver expects on 64-bit machines.
    assert NSM_IOCTL_REQUEST == 0xC0200A00
