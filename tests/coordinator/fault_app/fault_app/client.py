"""The data host's ClientApp with faults, as a malicious or failing node would have it.

Faults (by dataset id, from ``faults.json`` in the node home), applied to the real train
reply (a refusal passes through unchanged):

- ``other-key-receipt``: the receipt re-signed by a key that is not the worker key;
- ``nan-update``: a NaN in the update; receipt re-signed by the worker key over it;
- ``wrong-shape-update``: an update array with one extra row; receipt re-signed likewise;
- ``die-in-round-1``: in round 1, after training, the node's whole process tree
  (``tally host up``, SuperNode, SuperExec, this ClientApp) is killed with SIGKILL.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from data_host import client_app as real
from data_host.home import open_home
from provenance.dsse import Envelope
from provenance.keys import SigningKey
from provenance.model_digest import arrays_digest
from provenance.statement import sign_statement, verify_statement
from provenance.usage import USAGE_RECEIPT_PREDICATE, UsageReceipt

from . import load_faults

app = ClientApp()


@app.query()
def describe(message: Message, context: Context) -> Message:
    """The real describe."""
    return real.describe(message, context)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """The real evaluate."""
    return real.evaluate(message, context)


def _ancestors() -> list[int]:
    """This process's ancestors up to and including ``tally host up``, nearest first."""
    chain = []
    pid = os.getppid()
    while pid > 1:
        chain.append(pid)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"host" in command and b"up" in command:
            return chain
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    raise RuntimeError("this ClientApp does not run under tally host up")


def _die() -> None:
    for pid in reversed(_ancestors()):  # the supervisor first, so that nothing restarts
        os.kill(pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _resign(reply: Message, key: SigningKey, arrays: dict[str, Any] | None, worker: Any) -> None:
    receipt_record = reply.content.config_records["receipt"]
    envelope = Envelope.from_json(receipt_record["envelope"])  # type: ignore[arg-type]
    receipt = UsageReceipt.from_statement(
        verify_statement(envelope, [worker], predicate_type=USAGE_RECEIPT_PREDICATE)
    )
    if arrays is not None:
        reply.content.array_records["arrays"] = ArrayRecord(
            {name: Array(value) for name, value in arrays.items()}
        )
        receipt = dataclasses.replace(receipt, update_digest=arrays_digest(arrays))
    signed = sign_statement(receipt.to_statement(), [key])
    reply.content.config_records["receipt"] = ConfigRecord({"envelope": signed.to_json()})


@app.train()
def train(message: Message, context: Context) -> Message:
    """The real train, then the fault named for the message's dataset."""
    reply = real.train(message, context)
    home = open_home(Path(str(context.node_config["home"])))
    config = message.content.config_records["config"]
    fault = load_faults(home.root).get(str(config["dataset-id"]))
    if fault is None or real.REFUSAL in reply.content.config_records:
        return reply
    arrays = {name: array.numpy() for name, array in reply.content.array_records["arrays"].items()}
    first = sorted(arrays)[0]
    if fault == "other-key-receipt":
        _resign(reply, SigningKey.generate(), None, home.worker_public_key)
    elif fault == "nan-update":
        arrays[first] = arrays[first].copy()
        arrays[first].flat[0] = np.nan
        _resign(reply, home.worker_key(), arrays, home.worker_public_key)
    elif fault == "wrong-shape-update":
        arrays[first] = np.concatenate([arrays[first], arrays[first][:1]])
        _resign(reply, home.worker_key(), arrays, home.worker_public_key)
    elif fault == "die-in-round-1":
        if config["server-round"] == 1:
            _die()
    else:
        raise ValueError(f"unknown client fault {fault!r}")
    return reply
