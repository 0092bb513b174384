"""The data host's ClientApp on real Flower messages, outside a SuperNode: what ``describe``
tells the coordinator, and train messages it refuses, naming the reason, before any data
is opened or any privacy budget is touched."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    Metadata,
    RecordDict,
)
from flwr.app.message.message import make_message

from clients.local_stack import digits_rows, write_digits_csv
from data_host import client_app
from data_host.home import NodeHome, init_home
from data_host.ingest import ingest_dataset
from data_host.registry import DatasetRegistry
from data_host.terms import DatasetTerms
from privacy.budget import PrivacyBudgetLedger
from privacy.pii import PiiPolicy

ROWS = 120


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[NodeHome, list[str]]:
    root = tmp_path_factory.mktemp("client-app")
    home = init_home(root / "home", "alice")
    features, labels = digits_rows()
    ids = []
    for number in range(2):
        part = slice(number * ROWS, (number + 1) * ROWS)
        data = write_digits_csv(root / f"data{number}", features[part], labels[part], contact=False)
        terms = DatasetTerms(
            title=f"digits {number}",
            license="CC-BY-4.0",
            price_per_sample=Decimal("0.001"),
            currency="USD",
            lifetime_epsilon=10.0,
            max_epsilon_per_job=5.0,
            delta=1e-5,
            pii_policy=PiiPolicy.REDACT,
            label="label",
        )
        ids.append(str(ingest_dataset(home, data, terms).dataset.row.id))
    DatasetRegistry(home.engine).revoke(ids[1], "consent withdrawn")
    return home, ids


def _context(home: NodeHome | None) -> Context:
    config: dict[str, bool | float | int | str] = {} if home is None else {"home": str(home.root)}
    return Context(run_id=1, node_id=5, node_config=config, state=RecordDict(), run_config={})


def _message(kind: str, content: RecordDict) -> Message:
    metadata = Metadata(
        run_id=1,
        message_id="a" * 64,
        src_node_id=1,
        dst_node_id=5,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=600.0,
        message_type=kind,
    )
    return make_message(metadata, content)


def _train_config(dataset_id: str, **changes: Any) -> ConfigRecord:
    values: dict[str, Any] = {
        "job-id": "job_" + "a" * 26,
        "server-round": 1,
        "rounds": 3,
        "nonce": "n" * 43,
        "token": "not.a.token",
        "dataset-id": dataset_id,
        "model": "logistic-regression",
        "classes": 10,
        "batch-size": 32,
        "local-epochs": 1,
        "learning-rate": 0.5,
        "max-grad-norm": 1.0,
        "seed": 7,
    }
    values.update(changes)
    return ConfigRecord({key: value for key, value in values.items() if value is not None})


def _arrays() -> ArrayRecord:
    return ArrayRecord(
        {
            "linear.weight": Array(np.zeros((10, 64), dtype=np.float32)),
            "linear.bias": Array(np.zeros(10, dtype=np.float32)),
        }
    )


def _refusal(reply: Message) -> dict[str, Any]:
    record = reply.content.config_records.get(client_app.REFUSAL)
    assert record is not None, reply.content
    return dict(record)


def test_describe_names_the_node_and_the_shape_of_usable_datasets_only(
    node: tuple[NodeHome, list[str]],
) -> None:
    home, (usable, revoked) = node
    query = _message(MessageType.QUERY, RecordDict({"config": ConfigRecord({"job-id": "j"})}))
    reply = client_app.describe(query, _context(home))
    record = reply.content.config_records[client_app.NODE]
    assert record["host-did"] == home.config.creator_did
    assert record["worker-did"] == home.config.worker_did
    listed = {entry["dataset_id"]: entry for entry in json.loads(str(record["datasets"]))}
    assert listed[usable]["rows"] == ROWS
    assert (listed[usable]["features"], listed[usable]["classes"]) == (64, 10)
    # A revoked dataset is listed (its work is refused with the reason) but shows no shape.
    assert "features" not in listed[revoked]
    assert "classes" not in listed[revoked]


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"job-id": 3}, "'job-id' must be text"),
        ({"token": None}, "'token' must be text"),
        ({"server-round": "1"}, "'server-round' must be an integer"),
        ({"batch-size": True}, "'batch-size' must be an integer"),
        ({"learning-rate": "fast"}, "'learning-rate' must be a number"),
        ({"proximal-mu": "0.1"}, "'proximal-mu' must be a number"),
    ],
)
def test_a_malformed_train_config_is_refused_naming_the_key(
    node: tuple[NodeHome, list[str]], changes: dict[str, Any], named: str
) -> None:
    home, (usable, _revoked) = node
    content = RecordDict({"config": _train_config(usable, **changes), "arrays": _arrays()})
    reply = client_app.train(_message(MessageType.TRAIN, content), _context(home))
    refusal = _refusal(reply)
    assert refusal["stage"] == "train"
    assert named in str(refusal["reason"])
    assert not reply.content.array_records


def test_a_train_message_without_the_model_is_refused(node: tuple[NodeHome, list[str]]) -> None:
    home, (usable, _revoked) = node
    content = RecordDict({"config": _train_config(usable)})
    reply = client_app.train(_message(MessageType.TRAIN, content), _context(home))
    assert "must carry a 'config' and an 'arrays' record" in str(_refusal(reply)["reason"])


def test_work_outside_an_installed_app_bundle_is_refused_before_the_budget_is_touched(
    node: tuple[NodeHome, list[str]],
) -> None:
    home, (usable, _revoked) = node
    content = RecordDict({"config": _train_config(usable), "arrays": _arrays()})
    for handler, kind in (
        (client_app.train, MessageType.TRAIN),
        (client_app.evaluate, MessageType.EVALUATE),
    ):
        reply = handler(_message(kind, content), _context(home))
        assert "cannot tell which app bundle runs" in str(_refusal(reply)["reason"])
    assert PrivacyBudgetLedger(home.engine).history(usable) == []


def test_a_supernode_without_a_node_home_refuses_everything() -> None:
    query = _message(MessageType.QUERY, RecordDict({"config": ConfigRecord({"job-id": "j"})}))
    reply = client_app.describe(query, _context(None))
    assert "no node-config 'home'" in str(_refusal(reply)["reason"])


def test_the_running_bundle_is_hashed_once_and_rehashed_when_its_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import sys

    from coordinator.launch import shipped_app
    from data_host.errors import WorkRefused

    shipped, expected = shipped_app()
    apps = tmp_path / "flwr" / "apps"
    installed = apps / f"tallystick.tallystick-app.1.0.0.{expected[:8]}"
    shutil.copytree(shipped, installed)
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    monkeypatch.setattr(sys, "path", [str(installed), *sys.path])
    compute = client_app.running_fab_hash.__wrapped__
    assert compute() == expected
    cache = apps / client_app.CACHE_DIR / f"{installed.name}.json"
    assert json.loads(cache.read_text())["fab_hash"] == expected
    # Importing the app writes byte-code caches; they are no change to the bundle.
    (installed / "tallystick_app" / "__pycache__").mkdir()
    (installed / "tallystick_app" / "__pycache__" / "client.cpython-311.pyc").write_bytes(b"x")
    assert compute() == expected
    # A file changed after install: rebuilt, and the hash no longer matches the install.
    client = installed / "tallystick_app" / "client.py"
    client.write_text(client.read_text() + "\n# changed\n")
    with pytest.raises(WorkRefused, match="changed after install"):
        compute()
