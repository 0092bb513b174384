"""Opacus DP-SGD on the node's first dataset, as Flower's Opacus example does it: the
same model, data, noise multiplier, sample rate, steps and clipping as a Tallystick
round, and no token, policy, budget, integrity, receipt or ledger work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from data_host.home import open_home
from data_host.registry import DatasetRegistry
from data_host.training_data import load_training_data
from privacy.budget import noise_for_target
from privacy.dp_training import DPSettings, plan_round, train_dp
from privacy.models import ModelShape, build_model

app = ClientApp()


@app.train()
def train(message: Message, context: Context) -> Message:
    """One round of DP-SGD on the global model."""
    config = message.content.config_records["config"]
    node = open_home(Path(str(context.node_config["home"])))
    registry = DatasetRegistry(node.engine)
    data = load_training_data(registry.get(registry.list()[0].id))
    rounds, epochs = int(config["rounds"]), int(config["local-epochs"])  # type: ignore[arg-type]
    batch = int(config["batch-size"])  # type: ignore[arg-type]
    plan = plan_round(len(data.train_labels), batch, epochs)
    delta = float(config["delta"])  # type: ignore[arg-type]
    sigma = noise_for_target(float(config["epsilon"]), delta, plan.sample_rate, plan.steps * rounds)  # type: ignore[arg-type]
    model = build_model(
        str(config["model"]),
        ModelShape(data.input_shape, int(config["classes"])),  # type: ignore[arg-type]
    )
    arrays = message.content.array_records["arrays"]
    model.load_state_dict({name: torch.from_numpy(array.numpy()) for name, array in arrays.items()})
    result = train_dp(
        model,
        torch.from_numpy(data.train_features),
        torch.from_numpy(data.train_labels),
        DPSettings(
            noise_multiplier=sigma,
            max_grad_norm=1.0,
            batch_size=batch,
            local_epochs=epochs,
            learning_rate=float(config["learning-rate"]),  # type: ignore[arg-type]
            delta=delta,
        ),
        prior=[],
        seed=0,
    )
    update = {
        k: Array(v.detach().numpy().astype(np.float32)) for k, v in model.state_dict().items()
    }
    metrics = MetricRecord(
        {"num-examples": float(len(data.train_labels)), "train-loss": result.mean_loss}
    )
    return Message(
        RecordDict({"arrays": ArrayRecord(update), "metrics": metrics}), reply_to=message
    )
