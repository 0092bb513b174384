"""The data host's Flower ClientApp: Flower messages in, ``data_host.worker`` calls out.

The SuperNode (``tally host up``) starts a fresh ``flwr-clientapp`` process for every
message; ``context.node_config["home"]`` names the node home. Three message types:

- ``query``: which node this is (creator DID, worker DID) and which of its datasets are
  usable, with their manifest digests, row, feature and class counts (the only facts
  about the data this answer gives; the class count comes from the label column).
- ``train``: one DP round (see ``data_host.worker.run_training_round``). The reply holds
  the update (``arrays``), the fixed aggregate metrics (``metrics``) and the signed usage
  receipt (``receipt``), or only a ``refusal`` saying which check failed.
- ``evaluate``: the global model's loss and accuracy on the held-out rows.

The app bundle check hashes the bundle this process was started from, as Flower installed
it, exactly as ``flwr build`` would bundle it, and looks that hash up in the node's
allow-list before any data is opened.
"""

from __future__ import annotations

import json
import logging
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from data_host.allowlist import build_fab, fab_hash_of_bytes
from data_host.errors import DataHostError, WorkRefused
from data_host.home import NodeHome, open_home
from data_host.registry import ACTIVE, DatasetRegistry, create_node_tables
from data_host.training_data import dataset_shape
from data_host.worker import EvaluateOrder, TrainOrder, run_evaluation, run_training_round
from privacy.errors import PrivacyError
from provenance.errors import ProvenanceError

_log = logging.getLogger(__name__)

app = ClientApp()

#: Reply record keys (the coordinator's ServerApp reads the same names).
REFUSAL = "refusal"
RECEIPT = "receipt"
NODE = "node"


def _home(context: Context) -> NodeHome:
    home = context.node_config.get("home")
    if not isinstance(home, str) or not home:
        raise WorkRefused("this SuperNode has no node-config 'home'; start it with tally host up")
    return open_home(Path(home))


@lru_cache(maxsize=1)
def running_fab_hash() -> str:
    """The hash of the app bundle this process runs, rebuilt from the files Flower installed.

    Flower installs a bundle under ``$FLWR_HOME/apps/<publisher>.<name>.<version>.<hash8>``
    and puts that directory on ``sys.path``; exactly one such directory must be there, and
    the hash of its files must start with the directory's own eight digits. The hash is
    kept beside the bundle with a fingerprint of its files (names, sizes, modification
    times, inodes) and rebuilt whenever that fingerprint changes.
    """
    from flwr.common.config import get_flwr_home  # type: ignore[attr-defined]

    apps = (get_flwr_home() / "apps").resolve()
    found = {
        Path(entry).resolve()
        for entry in sys.path
        if entry and Path(entry).resolve().parent == apps and Path(entry).is_dir()
    }
    if len(found) != 1:
        raise WorkRefused(
            f"cannot tell which app bundle runs: {len(found)} installed bundles on sys.path"
        )
    app_dir = found.pop()
    fingerprint = _files_fingerprint(app_dir)
    cache = apps / CACHE_DIR / f"{app_dir.name}.json"
    fab_hash = _cached_hash(cache, fingerprint)
    if fab_hash is None:
        fab_hash = fab_hash_of_bytes(build_fab(app_dir))
        _store_hash(cache, fingerprint, fab_hash)
    if not app_dir.name.endswith("." + fab_hash[:8]):
        raise WorkRefused(f"the files of app bundle {app_dir.name} were changed after install")
    return fab_hash


#: Where verified bundle hashes are kept, beside the bundles Flower installed.
CACHE_DIR = ".tally-fab-hashes"


def _files_fingerprint(app_dir: Path) -> str:
    """Every file under ``app_dir`` (byte-code caches aside) with its size, modification
    time and inode: rebuilding the bundle (which imports Flower's CLI, about 2 s) is needed
    only when this changes."""
    import hashlib
    import os

    digest = hashlib.sha256()
    for root, dirs, files in os.walk(app_dir):
        # Python's byte-code caches are never in a bundle; importing the app writes them.
        dirs[:] = sorted(name for name in dirs if name != "__pycache__")
        for name in sorted(files):
            path = Path(root) / name
            info = path.lstat()
            relative = path.relative_to(app_dir).as_posix()
            digest.update(
                f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\n".encode()
            )
    return digest.hexdigest()


def _cached_hash(cache: Path, fingerprint: str) -> str | None:
    try:
        entry = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint:
        return None
    value = entry.get("fab_hash")
    return value if isinstance(value, str) and len(value) == 64 else None


def _store_hash(cache: Path, fingerprint: str, fab_hash: str) -> None:
    import os
    import tempfile

    try:
        cache.parent.mkdir(mode=0o700, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({"fingerprint": fingerprint, "fab_hash": fab_hash}, out)
        os.replace(temporary, cache)
    except OSError as exc:  # a cache that cannot be written only costs time
        _log.info("cannot cache the app bundle hash in %s: %s", cache.parent, exc)


def _arrays(record: ArrayRecord) -> dict[str, np.ndarray[Any, Any]]:
    return {name: array.numpy() for name, array in record.items()}


def _text(config: ConfigRecord, key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str):
        raise WorkRefused(f"message config {key!r} must be text")
    return value


def _number(config: ConfigRecord, key: str) -> float:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkRefused(f"message config {key!r} must be a number")
    return float(value)


def _whole(config: ConfigRecord, key: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkRefused(f"message config {key!r} must be an integer")
    return value


def _content(message: Message) -> tuple[ConfigRecord, ArrayRecord]:
    config = message.content.config_records.get("config")
    arrays = message.content.array_records.get("arrays")
    if config is None or arrays is None:
        raise WorkRefused("the message must carry a 'config' and an 'arrays' record")
    return config, arrays


def _refusal(message: Message, stage: str, reason: str) -> Message:
    _log.warning("refused %s: %s", stage, reason)
    content = RecordDict({REFUSAL: ConfigRecord({"stage": stage, "reason": reason[:500]})})
    return Message(content, reply_to=message)


def _guarded(stage: str, message: Message, work: Any) -> Message:
    try:
        reply: Message = work()
        return reply
    except WorkRefused as exc:
        return _refusal(message, stage, str(exc))
    except (DataHostError, PrivacyError, ProvenanceError) as exc:
        return _refusal(message, stage, f"{type(exc).__name__}: {exc}")


@app.query()
def describe(message: Message, context: Context) -> Message:
    """Say which node this is and which datasets it can train on: for each, its manifest
    digest, rows, feature count and class count (read from its label column)."""

    def work() -> Message:
        node = _home(context)
        create_node_tables(node.engine)
        registry = DatasetRegistry(node.engine)
        datasets = []
        for row in registry.list():
            entry: dict[str, object] = {
                "dataset_id": row.id,
                "manifest_digest": row.manifest_digest,
                "rows": row.rows,
            }
            if row.status == ACTIVE:
                try:
                    entry["features"], entry["classes"] = dataset_shape(registry.get(row.id))
                except (DataHostError, PrivacyError) as exc:
                    _log.info("dataset %s cannot train a classifier: %s", row.id, exc)
            # A revoked dataset is listed without its shape: its train messages are
            # refused with the node's own reason, which the round proofs then record.
            datasets.append(entry)
        record = ConfigRecord(
            {
                "host-did": node.config.creator_did,
                "worker-did": node.config.worker_did,
                "datasets": json.dumps(datasets, sort_keys=True),
            }
        )
        return Message(RecordDict({NODE: record}), reply_to=message)

    return _guarded("describe", message, work)


@app.train()
def train(message: Message, context: Context) -> Message:
    """One DP round on one dataset; the reply carries update, metrics and signed receipt."""

    def work() -> Message:
        node = _home(context)
        config, arrays = _content(message)
        order = TrainOrder(
            job_id=_text(config, "job-id"),
            round=_whole(config, "server-round"),
            rounds=_whole(config, "rounds"),
            nonce=_text(config, "nonce"),
            token=_text(config, "token"),
            dataset_id=_text(config, "dataset-id"),
            model=_text(config, "model"),
            classes=_whole(config, "classes"),
            batch_size=_whole(config, "batch-size"),
            local_epochs=_whole(config, "local-epochs"),
            learning_rate=_number(config, "learning-rate"),
            max_grad_norm=_number(config, "max-grad-norm"),
            seed=_whole(config, "seed"),
            proximal_mu=_number(config, "proximal-mu") if "proximal-mu" in config else 0.0,
            fab_hash=running_fab_hash(),
            global_arrays=_arrays(arrays),
        )
        outcome = run_training_round(node, order)
        content = RecordDict(
            {
                "arrays": ArrayRecord({k: Array(v) for k, v in outcome.arrays.items()}),
                "metrics": MetricRecord(dict(outcome.metrics)),
                RECEIPT: ConfigRecord({"envelope": outcome.envelope.to_json()}),
            }
        )
        return Message(content, reply_to=message)

    return _guarded("train", message, work)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """Evaluate the global model on the held-out rows; aggregate metrics only."""

    def work() -> Message:
        node = _home(context)
        config, arrays = _content(message)
        order = EvaluateOrder(
            job_id=_text(config, "job-id"),
            round=_whole(config, "server-round"),
            nonce=_text(config, "nonce"),
            token=_text(config, "token"),
            dataset_id=_text(config, "dataset-id"),
            model=_text(config, "model"),
            classes=_whole(config, "classes"),
            fab_hash=running_fab_hash(),
            global_arrays=_arrays(arrays),
        )
        outcome = run_evaluation(node, order)
        metrics = MetricRecord(
            {
                "num-examples": float(outcome.examples),
                "eval-loss": outcome.loss,
                "eval-accuracy": outcome.accuracy,
            }
        )
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    return _guarded("evaluate", message, work)
