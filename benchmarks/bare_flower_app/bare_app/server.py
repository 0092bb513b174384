"""Flower's own FedAvg loop (``Strategy.start``) over every connected node; the time at
the end of each round goes to the run config's ``timings-file`` (one JSON line each)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from privacy.models import ModelShape, build_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``rounds`` FedAvg rounds of DP training on all nodes."""
    config = context.run_config
    nodes = int(config.get("nodes", 3))
    timings = Path(str(config["timings-file"]))
    model = build_model(
        str(config["model"]),
        ModelShape((int(config["features"]),), int(config["classes"])),
        seed=0,
    )
    arrays = ArrayRecord(
        {k: Array(v.detach().numpy().astype(np.float32)) for k, v in model.state_dict().items()}
    )

    def round_ended(server_round: int, _arrays: ArrayRecord) -> MetricRecord:
        with timings.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"round": server_round, "time": time.time()}) + "\n")
        return MetricRecord({})

    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=nodes,
        min_available_nodes=nodes,
    )
    strategy.start(
        grid=grid,
        initial_arrays=arrays,
        num_rounds=int(config["rounds"]),
        train_config=ConfigRecord(
            {
                key: config[key]
                for key in (
                    "model",
                    "batch-size",
                    "local-epochs",
                    "learning-rate",
                    "epsilon",
                    "delta",
                    "rounds",
                    "classes",
                )
            }
        ),
        evaluate_fn=round_ended,
    )
