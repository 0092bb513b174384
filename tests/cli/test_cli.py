"""The ``tally`` command line, run as a real process the way users run it."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from tally_runner import ok, refused

from provenance.keys import SigningKey, write_public_key
from provenance.statement import Statement, Subject, predicate_type, sign_statement
from provenance.tlog.records import envelope_bytes


@pytest.fixture(scope="module")
def built_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log with two batches, built with the CLI."""
    root = tmp_path_factory.mktemp("log")
    ok("keygen", "--name", "example.com/log", "--out", "keys", cwd=root)
    (root / "entry.txt").write_bytes(b"an entry from a file\n")
    key = "keys/example.com_log.key"
    ok(
        "log",
        "append",
        "--log",
        "log.db",
        "--key",
        key,
        "--origin",
        "example.com/log",
        "--text",
        "first",
        "--text",
        "second",
        cwd=root,
    )
    ok("log", "append", "--log", "log.db", "--key", key, "entry.txt", "--text", "third", cwd=root)
    ok("log", "checkpoint", "--log", "log.db", "--out", "checkpoint.txt", cwd=root)
    ok("log", "proof", "--log", "log.db", "--index", "1", "--out", "second.tlog-proof", cwd=root)
    ok(
        "log",
        "proof",
        "--log",
        "log.db",
        "--leaf-file",
        "entry.txt",
        "--out",
        "file.tlog-proof",
        cwd=root,
    )
    return root


def test_keygen_writes_owner_only_private_key(tmp_path: Path) -> None:
    data = json.loads(
        ok("keygen", "--name", "alice", "--out", str(tmp_path), "--witness", "--json")
    )
    assert stat.S_IMODE((tmp_path / "alice.key").stat().st_mode) == 0o600
    assert data["verifier_key"].startswith("alice+")
    assert data["did"].startswith("did:key:z6Mk")
    assert data["witness_verifier_key"] != data["verifier_key"]
    assert (tmp_path / "alice.vkey").read_text().strip() == data["verifier_key"]
    assert "refusing to overwrite" in refused("keygen", "--name", "alice", "--out", str(tmp_path))
    assert "--name" in refused("keygen", "--name", "bad name", "--out", str(tmp_path))


def test_log_append_is_content_addressed(built_log: Path) -> None:
    result = json.loads(
        ok(
            "log",
            "append",
            "--log",
            "log.db",
            "--key",
            "keys/example.com_log.key",
            "--text",
            "second",
            "--json",
            cwd=built_log,
        )
    )
    assert result["indexes"] == [1]
    assert result["new_entries"] == 0
    assert result["size"] == 4


def test_log_tiles_writes_the_static_layout(built_log: Path, tmp_path: Path) -> None:
    data = json.loads(
        ok("log", "tiles", "--log", "log.db", "--out", str(tmp_path), "--json", cwd=built_log)
    )
    assert data == {"size": 4, "files": 3, "out": str(tmp_path)}
    assert (tmp_path / "tile/0/000.p/4").stat().st_size == 4 * 32
    assert (tmp_path / "tile/entries/000.p/4").exists()
    ok(
        "verify",
        "checkpoint",
        "--key",
        str(built_log / "keys/example.com_log.vkey"),
        str(tmp_path / "checkpoint"),
    )


def test_verify_checkpoint(built_log: Path) -> None:
    out = ok(
        "verify",
        "checkpoint",
        "--key",
        "keys/example.com_log.vkey",
        "checkpoint.txt",
        cwd=built_log,
    )
    assert "OK" in out
    assert "size 4" in out
    data = json.loads(
        ok(
            "verify",
            "checkpoint",
            "--key",
            "keys/example.com_log.vkey",
            "checkpoint.txt",
            "--json",
            cwd=built_log,
        )
    )
    assert data["size"] == 4
    message = refused(
        "verify",
        "checkpoint",
        "--key",
        "keys/example.com_log.vkey",
        "--origin",
        "elsewhere",
        "checkpoint.txt",
        cwd=built_log,
    )
    assert "origin is 'example.com/log', expected 'elsewhere'" in message


def test_verify_checkpoint_refuses_tampering_and_other_keys(
    built_log: Path, tmp_path: Path
) -> None:
    text = (built_log / "checkpoint.txt").read_bytes()
    (tmp_path / "tampered.txt").write_bytes(text.replace(b"\n4\n", b"\n5\n", 1))
    message = refused(
        "verify",
        "checkpoint",
        "--key",
        str(built_log / "keys/example.com_log.vkey"),
        str(tmp_path / "tampered.txt"),
    )
    assert "does not verify" in message
    ok("keygen", "--name", "example.com/log", "--out", str(tmp_path / "k"))
    message = refused(
        "verify",
        "checkpoint",
        "--key",
        str(tmp_path / "k/example.com_log.vkey"),
        str(built_log / "checkpoint.txt"),
    )
    assert "no signature by a trusted key" in message
    assert "not of the form" in refused(
        "verify", "checkpoint", "--key", "nonsense+x", str(built_log / "checkpoint.txt")
    )


def test_verify_tlog_proof_with_each_leaf_form(built_log: Path) -> None:
    vkey = "keys/example.com_log.vkey"
    leaf = hashlib.sha256(b"\x00second").digest()
    for option in (
        ["--leaf", "second"],
        ["--leaf-hash", leaf.hex()],
        ["--leaf-hash", base64.b64encode(leaf).decode()],
        ["--leaf-hash", base64.urlsafe_b64encode(leaf).decode().rstrip("=")],
    ):
        out = ok("verify", "tlog-proof", "--key", vkey, *option, "second.tlog-proof", cwd=built_log)
        assert "entry 1 is in example.com/log at size" in out
    ok(
        "verify",
        "tlog-proof",
        "--key",
        vkey,
        "--leaf-file",
        "entry.txt",
        "file.tlog-proof",
        cwd=built_log,
    )


def test_verify_tlog_proof_failures_are_one_line(built_log: Path, tmp_path: Path) -> None:
    vkey = str(built_log / "keys/example.com_log.vkey")
    proof = str(built_log / "second.tlog-proof")
    assert "inclusion" in refused("verify", "tlog-proof", "--key", vkey, "--leaf", "first", proof)
    assert "exactly one of" in refused("verify", "tlog-proof", "--key", vkey, proof)
    assert "decodes to 3 bytes" in refused(
        "verify", "tlog-proof", "--key", vkey, "--leaf-hash", "AAAA", proof
    )
    assert "64 hex digits" in refused(
        "verify", "tlog-proof", "--key", vkey, "--leaf-hash", "z!z", proof
    )
    assert "1 is more than the 0" in refused(
        "verify", "tlog-proof", "--key", vkey, "--leaf", "second", "--min-witnesses", "1", proof
    )
    text = (built_log / "second.tlog-proof").read_text()
    truncated = tmp_path / "truncated.tlog-proof"
    head, checkpoint = text.split("\n\n", 1)
    truncated.write_text("\n".join(head.split("\n")[:-1]) + "\n\n" + checkpoint)
    assert "shorter" in refused(
        "verify", "tlog-proof", "--key", vkey, "--leaf", "second", str(truncated)
    )
    assert "cannot read" in refused(
        "verify", "tlog-proof", "--key", vkey, "--leaf", "x", str(tmp_path / "missing")
    )


def test_verify_envelope(tmp_path: Path) -> None:
    key = SigningKey.generate()
    write_public_key(key.public_key, tmp_path / "creator.pub")
    statement = Statement(
        (Subject("data", {"sha256": "00" * 32}),), predicate_type("dataset-manifest")
    )
    envelope = sign_statement(statement, [key])
    (tmp_path / "env.json").write_bytes(envelope_bytes(envelope))
    out = ok(
        "verify", "envelope", "--key", str(tmp_path / "creator.pub"), str(tmp_path / "env.json")
    )
    assert "payloadType application/vnd.in-toto+json" in out
    assert "dataset-manifest/v1" in out
    document = json.loads((tmp_path / "env.json").read_text())
    document["payload"] = base64.b64encode(base64.b64decode(document["payload"]) + b" ").decode()
    (tmp_path / "tampered.json").write_text(json.dumps(document))
    message = refused(
        "verify",
        "envelope",
        "--key",
        str(tmp_path / "creator.pub"),
        str(tmp_path / "tampered.json"),
    )
    assert "0 valid signature" in message


def test_log_commands_on_missing_or_foreign_files(tmp_path: Path) -> None:
    assert "does not exist" in refused("log", "checkpoint", "--log", str(tmp_path / "none.db"))
    ok("keygen", "--name", "k", "--out", str(tmp_path))
    assert "give --origin" in refused(
        "log",
        "append",
        "--log",
        str(tmp_path / "new.db"),
        "--key",
        str(tmp_path / "k.key"),
        "--text",
        "x",
    )
    assert not (tmp_path / "new.db").exists()
    (tmp_path / "k.key").chmod(0o644)
    assert "chmod 600" in refused(
        "log",
        "append",
        "--log",
        str(tmp_path / "new.db"),
        "--key",
        str(tmp_path / "k.key"),
        "--origin",
        "k",
        "--text",
        "x",
    )


def test_demo_refuses_a_non_empty_workdir(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert "is not empty" in refused("demo", "--workdir", str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_append_with_a_contradicting_origin_appends_nothing(built_log: Path) -> None:
    before = (built_log / "checkpoint.txt").read_bytes()
    message = refused(
        "log",
        "append",
        "--log",
        "log.db",
        "--key",
        "keys/example.com_log.key",
        "--origin",
        "other.example/log",
        "--text",
        "x",
        cwd=built_log,
    )
    assert "does not match the log's origin 'example.com/log'" in message
    ok("log", "checkpoint", "--log", "log.db", "--out", "again.txt", cwd=built_log)
    assert (built_log / "again.txt").read_bytes() == before


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    # Minutes, not seconds: every message starts a ClientApp that imports torch and Opacus.
    summary = json.loads(ok("demo", "--workdir", str(tmp_path / "demo"), "--json", timeout=600))
    # Three manifests, then the job's two transitions (draft, funded), all witnessed.
    assert summary["size"] == 5
    assert summary["witnessed_by"] == ["demo.tallystick.local/witness"]
    assert summary["development_mode"] is True
    job = summary["job"]
    assert job["status"] == "funded"
    assert job["events"] == [["draft", 3], ["funded", 4]]
    hosts = summary["hosts"]
    assert len(hosts) == 3
    assert [host["log_index"] for host in hosts] == [0, 1, 2]
    assert len({host["creator"] for host in hosts}) == 3
    assert all(h["worker_attestation"] == {"type": "dev", "insecure": True} for h in hosts)
    assert all(h["token"]["insecure_attestation"] is True for h in hosts)
    assert len({h["token"]["jti"] for h in hosts}) == 3
    assert [host["redacted"] for host in hosts] == [False, False, True]
    assert hosts[2]["pii_findings"] == hosts[2]["rows"] > 0  # one e-mail address per row
    training = summary["training"]
    assert [item["round"] for item in training["rounds"]] == [1, 2, 3]
    assert all(len(item["accepted"]) == 3 for item in training["rounds"])
    final = training["final"]
    assert float(final["accuracy"]) > float(final["majority_baseline"]) + 0.3
    # A proof, three receipts and a settlement a round.
    assert final["records_verified"] == 3 * (1 + 3 + 1)
    money = training["billing"]
    held = int(money["held_minor"])
    settled = [int(item["settled_minor"]) for item in money["rounds"]]
    assert held == job["quote"]["total_minor"]
    assert all(amount > 0 for amount in settled)
    # Every minor unit of the hold is accounted for: paid to creators, fees, refunded.
    paid = sum(int(amount) for amount in money["creators_paid_minor"])
    assert paid + int(money["fees_minor"]) == sum(settled)
    assert sum(settled) + int(money["refund_minor"]) == held
    assert int(money["refund_minor"]) > 0
    demo = tmp_path / "demo"
    for number, host in enumerate(hosts):
        ok(
            "verify",
            "envelope",
            "--key",
            str(Path(host["home"]) / "keys" / "creator.pub"),
            str(demo / f"dataset-{number}.dsse.json"),
        )
        ok("host", "dataset", "verify", host["dataset_id"], "--home", host["home"])
    ok(
        "verify",
        "tlog-proof",
        "--key",
        str(demo / "keys/log.vkey"),
        "--witness",
        str(demo / "keys/witness.vkey"),
        "--min-witnesses",
        "1",
        "--leaf-file",
        str(demo / "entry-0.json"),
        str(demo / "entry-0.tlog-proof"),
    )


@pytest.mark.parametrize(
    "command",
    [
        ["demo"],
        ["keygen"],
        ["verify", "checkpoint"],
        ["verify", "tlog-proof"],
        ["verify", "envelope"],
        ["log", "append"],
        ["log", "checkpoint"],
        ["log", "proof"],
        ["log", "consistency"],
        ["log", "tiles"],
        ["billing", "balance"],
        ["billing", "statement"],
        ["dispute", "open"],
        ["dispute", "show"],
        ["dispute", "resolve"],
        ["job", "start"],
        ["job", "watch"],
        ["job", "model"],
    ],
)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    assert "Example: tally" in ok(*command, "--help")
