"""``tally host …`` as a creator uses it: the real command, a real node home on disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from tally_runner import ok, refused, tally

from provenance.keys import PublicKey, SigningKey

ADD = [
    "--title",
    "Heart study",
    "--license",
    "CC-BY-4.0",
    "--price-per-sample",
    "0.002",
    "--currency",
    "USD",
    "--max-epsilon-per-job",
    "3",
    "--lifetime-epsilon",
    "8",
]


def _csv(path: Path, rows: int = 300, contact: str = "none") -> Path:
    lines = ["age,contact,label"] + [f"{30 + i % 40},{contact},{i % 2}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("host")
    info = json.loads(ok("host", "init", "--name", "alice", "--home", str(root / "home"), "--json"))
    assert info["creator_did"].startswith("did:key:z")
    return root / "home"


def test_init_writes_private_keys_and_refuses_to_run_twice(node: Path) -> None:
    assert stat.S_IMODE((node / "keys" / "creator.key").stat().st_mode) == 0o600
    line = refused("host", "init", "--name", "alice", "--home", str(node))
    assert "already a node home" in line


def test_add_list_show_verify_revoke(node: Path, tmp_path: Path) -> None:
    source = _csv(tmp_path / "heart.csv")
    added = json.loads(
        ok("host", "dataset", "add", str(source), *ADD, "--home", str(node), "--json")
    )
    dataset_id = added["id"]
    assert added["rows"] == 300
    assert added["status"] == "active"
    listed = json.loads(ok("host", "dataset", "list", "--home", str(node), "--json"))
    assert dataset_id in [item["id"] for item in listed]
    envelope = tmp_path / "manifest.json"
    envelope.write_text(
        ok("host", "dataset", "show", dataset_id, "--manifest", "--home", str(node))
    )
    verified = json.loads(
        ok(
            "verify",
            "envelope",
            "--key",
            str(node / "keys" / "creator.pub"),
            str(envelope),
            "--json",
        )
    )
    assert "dataset-manifest/v1" in json.dumps(verified)
    assert "match the signed manifest" in ok(
        "host", "dataset", "verify", dataset_id, "--home", str(node)
    )
    with source.open("a") as handle:
        handle.write("99,none,1\n")
    result = tally("host", "dataset", "verify", dataset_id, "--home", str(node), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["matches"] is False
    assert report["changed_chunks"] == [{"path": "heart.csv", "chunk": 0}]
    revoked = json.loads(
        ok(
            "host",
            "dataset",
            "revoke",
            dataset_id,
            "--reason",
            "consent withdrawn",
            "--home",
            str(node),
            "--json",
        )
    )
    assert revoked["status"] == "revoked"
    line = refused(
        "host",
        "policy",
        "check",
        dataset_id,
        "--job",
        "j1",
        "--app-hash",
        "cd" * 32,
        "--noise-multiplier",
        "1.1",
        "--sample-rate",
        "0.01",
        "--steps",
        "10",
        "--home",
        str(node),
    )
    assert "refused" in line


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--price-per-sample", "-0.5", "negative"),
        ("--price-per-sample", "1e-3", "exact decimal"),
        ("--license", "Made-Up-1.0", "--license"),
        ("--currency", "ZZZ", "--currency"),
        ("--lifetime-epsilon", "0", "--lifetime-epsilon"),
        ("--max-epsilon-per-job", "-1", "--max-epsilon-per-job"),
    ],
)
def test_bad_terms_exit_non_zero_and_register_nothing(
    node: Path, tmp_path: Path, flag: str, value: str, message: str
) -> None:
    before = ok("host", "dataset", "list", "--home", str(node), "--json")
    args = list(ADD)
    args[args.index(flag) + 1] = value
    line = refused(
        "host", "dataset", "add", str(_csv(tmp_path / "a.csv")), *args, "--home", str(node)
    )
    assert message in line
    assert ok("host", "dataset", "list", "--home", str(node), "--json") == before


def test_pii_is_blocked_by_default_and_redacted_on_request(node: Path, tmp_path: Path) -> None:
    source = _csv(tmp_path / "people.csv", contact="jane.doe@example.org")
    line = refused("host", "dataset", "add", str(source), *ADD, "--home", str(node))
    assert "email" in line
    assert "nothing was registered" in line
    added = json.loads(
        ok(
            "host",
            "dataset",
            "add",
            str(source),
            *ADD,
            "--pii",
            "redact",
            "--home",
            str(node),
            "--json",
        )
    )
    assert added["pii"]["findings"] == {"email": {"contact": 300}}
    assert Path(added["content_path"]).is_relative_to(node / "redacted")
    assert "jane.doe" not in Path(added["content_path"]).read_text()


def test_attest_and_the_allow_list(node: Path) -> None:
    evidence = json.loads(ok("host", "attest", "--home", str(node), "--json"))
    assert evidence["type"] == "dev"
    assert evidence["insecure"] is True
    assert (node / "keys" / "worker.evidence.json").exists()
    allowed = json.loads(
        ok("host", "app", "allow", "EF" * 32, "--label", "audited", "--home", str(node), "--json")
    )
    assert allowed["fab_hash"] == "ef" * 32
    listed = json.loads(ok("host", "app", "list", "--home", str(node), "--json"))
    assert {"fab_hash": "ef" * 32, "label": "audited", "shipped": False} in listed
    assert "SHA-256" in refused("host", "app", "allow", "xyz", "--home", str(node))
    ok("host", "app", "remove", "ef" * 32, "--home", str(node))
    assert "not on this node's allow-list" in refused(
        "host", "app", "remove", "ef" * 32, "--home", str(node)
    )


def test_policy_check_and_budget(node: Path, tmp_path: Path) -> None:
    added = json.loads(
        ok(
            "host",
            "dataset",
            "add",
            str(_csv(tmp_path / "b.csv")),
            *ADD,
            "--home",
            str(node),
            "--json",
        )
    )
    ok("host", "app", "allow", "12" * 32, "--home", str(node))
    common = [
        "--job",
        "j1",
        "--app-hash",
        "12" * 32,
        "--sample-rate",
        "0.05",
        "--steps",
        "100",
        "--home",
        str(node),
    ]
    decision = json.loads(
        ok("host", "policy", "check", added["id"], "--noise-multiplier", "1.2", *common, "--json")
    )
    assert decision["accepted"] is True
    assert float(decision["job_epsilon"]) <= 3
    line = refused("host", "policy", "check", added["id"], "--noise-multiplier", "0.3", *common)
    assert "per-job" in line or "max_epsilon_per_job" in line or "3.0" in line
    budget = json.loads(ok("host", "dataset", "budget", added["id"], "--home", str(node), "--json"))
    assert budget["history"] == []
    assert budget["status"]["spent_epsilon"] in ("0", "0.0")


def test_every_host_command_has_help_with_an_example() -> None:
    for command in (
        ["init"],
        ["attest"],
        ["dataset", "add"],
        ["dataset", "list"],
        ["dataset", "show"],
        ["dataset", "verify"],
        ["dataset", "revoke"],
        ["dataset", "budget"],
        ["app", "allow"],
        ["app", "list"],
        ["app", "remove"],
        ["policy", "check"],
    ):
        assert "Example" in ok("host", *command, "--help"), command


def test_a_fifo_or_link_is_not_an_app_bundle(node: Path, tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "fifo")
    assert "not a regular file" in refused(
        "host", "app", "allow", "--fab", str(tmp_path / "fifo"), "--home", str(node)
    )
    (tmp_path / "real.fab").write_bytes(b"PK")
    (tmp_path / "link.fab").symlink_to(tmp_path / "real.fab")
    assert "cannot open app bundle" in refused(
        "host", "app", "allow", "--fab", str(tmp_path / "link.fab"), "--home", str(node)
    )


def test_a_corrupt_registry_is_one_error_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok("host", "init", "--name", "carol", "--home", str(home))
    (home / "registry.db").write_bytes(b"\x00garbage" * 1024)
    assert "database cannot be used" in refused("host", "dataset", "list", "--home", str(home))


def test_royalty_options_sign_a_split_into_the_manifest(node: Path, tmp_path: Path) -> None:
    own = PublicKey.from_pem((node / "keys" / "creator.pub").read_bytes()).did
    label = SigningKey.generate().public_key.did
    split = ["--royalty", f"{own}=6000", "--royalty", f"{label}=4000"]
    before = ok("host", "dataset", "list", "--home", str(node), "--json")
    line = refused(
        "host", "dataset", "add", str(_csv(tmp_path / "a.csv")), *ADD,
        "--royalty", f"{own}=6000", "--royalty", f"{label}=3000", "--home", str(node),
    )  # fmt: skip
    assert "--royalty shares add up to 9000" in line
    line = refused(
        "host", "dataset", "add", str(_csv(tmp_path / "a.csv")), *ADD, *split,
        "--royalty-remainder-to", SigningKey.generate().public_key.did, "--home", str(node),
    )  # fmt: skip
    assert "--royalty-remainder-to" in line
    assert ok("host", "dataset", "list", "--home", str(node), "--json") == before
    added = json.loads(
        ok(
            "host",
            "dataset",
            "add",
            str(_csv(tmp_path / "b.csv")),
            *ADD,
            *split,
            "--royalty-remainder-to",
            label,
            "--home",
            str(node),
            "--json",
        )
    )
    assert added["price"]["royalties"] == {
        "payees": [{"did": own, "share_bps": 6000}, {"did": label, "share_bps": 4000}],
        "remainder_to": label,
    }
    assert "--royalty-remainder-to" in ok("host", "dataset", "add", "--help")
