"""Round wall time of a Tallystick job against a bare Flower FedAvg run, same session.

One local stack (``clients.local_stack``): a coordinator with its SuperLink and ``--hosts``
data hosts, each running ``tally host up`` (a real SuperNode) on its share of the digits.
On those same processes, alternating ``--trials`` times:

- baseline: ``benchmarks/bare_flower_app``, Flower's own ``FedAvg.start`` loop with a
  ClientApp that runs the same Opacus DP-SGD (``privacy.dp_training.train_dp``) on the same
  rows, model, noise multiplier, sample rate, steps and clipping, and nothing else;
- ours: a funded Tallystick job through the API and the shipped app: tokens, node checks,
  privacy ledger, data integrity, signed receipts, receipt verification, signed round
  proofs appended to the transparency log.

A round's wall time is the time between the ends of two consecutive rounds for Flower (its
``evaluate_fn`` runs after each aggregation) and between the starts of two consecutive
rounds for ours (each round summary's ``started_at``; the proof and its log append fall
in between), so start-up, discovery and final evaluation do not count. Both
pay the same Flower polling (the SuperNode's 3 s idle sleep, the Grid's 3 s pull sleep),
which quantises single rounds: compare means over many rounds. Target: overhead <= 5%.
This script writes only into a temporary directory, which it removes.

    python -m benchmarks.bench_round_overhead [--hosts 3] [--rounds 6] [--trials 2] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.timing import cpu_model
from clients.local_stack import LocalStack, digits_rows, write_digits_csv
from clients.sdk import spec_from_options
from coordinator.supernodes import FlowerConnection

BARE_APP = Path(__file__).resolve().parent / "bare_flower_app"
MODEL, BATCH_SIZE, LOCAL_EPOCHS = "logistic-regression", 32, 2
LEARNING_RATE, EPSILON = 0.5, 2.0


def _deltas(ends: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(ends)]


def _bare_round_ends(
    stack: LocalStack, root: Path, rounds: int, hosts: int, trial: int
) -> list[float]:
    assert stack.coordinator is not None
    assert stack.coordinator.superlink is not None
    timings = root / f"bare-{trial}.jsonl"
    config = {
        "model": MODEL,
        "batch-size": BATCH_SIZE,
        "local-epochs": LOCAL_EPOCHS,
        "rounds": rounds,
        "learning-rate": LEARNING_RATE,
        "epsilon": EPSILON,
        "nodes": hosts,
        "timings-file": str(timings),
    }
    connection = FlowerConnection.write(root / "flwr-bench", stack.coordinator.superlink)
    text = " ".join(f"{key}={json.dumps(value)}" for key, value in config.items())
    connection.run("run", str(BARE_APP), "--run-config", text)
    deadline = time.monotonic() + 120 + 120 * rounds
    while time.monotonic() < deadline:
        lines = timings.read_text().splitlines() if timings.exists() else []
        if len(lines) == rounds + 1:  # round 0 (the initial model) and every round
            time.sleep(5)  # let the ServerApp exit before the next run starts
            return [json.loads(line)["time"] for line in lines][1:]
        time.sleep(1)
    raise RuntimeError(f"the bare Flower run did not finish its {rounds} rounds in time")


def _our_round_starts(stack: LocalStack, datasets: list[str], rounds: int) -> list[float]:
    assert stack.coordinator is not None
    buyer = stack.create_account(f"buyer-{time.monotonic_ns()}", "buyer")
    with stack.client(buyer["api_key"]) as client:
        spec = spec_from_options(
            datasets=[f"{dataset}:{EPSILON}" for dataset in datasets],
            model=MODEL,
            rounds=rounds,
            local_epochs=LOCAL_EPOCHS,
            batch_size=BATCH_SIZE,
            learning_rate=str(LEARNING_RATE),
            min_hosts=len(datasets),
        )
        quote = client.quote(spec)["quote"]
        job = client.create_job(
            spec, str(Decimal(quote["total"].split()[0]) + 1), quote["currency"]
        )
        client.fund_job(job["id"])
        client.start_job(job["id"], node_wait_seconds=60, round_timeout_seconds=300)
    run = stack.wait_for_job(buyer["api_key"], job["id"], timeout=120 + 120 * rounds)
    if run["status"] != "completed":
        raise RuntimeError(f"the Tallystick job ended {run['status']}: {run['status_reason']}")
    # Each round's start, to the millisecond: the time from one start to the next is a
    # whole round, its proof and its log append included.
    starts = [datetime.fromisoformat(summary["started_at"]) for summary in run["rounds"]]
    times = [start.timestamp() for start in starts]
    time.sleep(5)
    return times


def main(argv: list[str] | None = None) -> int:
    """Run both contenders alternately and print mean round times and the overhead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--rows", type=int, default=500, help="rows per host")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    features, labels = digits_rows()
    bare: list[float] = []
    ours: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tally-bench-") as directory:
        root = Path(directory)
        stack = LocalStack(root).start()
        try:
            datasets = []
            for number in range(args.hosts):
                part = slice(number * args.rows, (number + 1) * args.rows)
                data = write_digits_csv(
                    root / "data" / str(number), features[part], labels[part], contact=False
                )
                host = stack.add_host(f"host-{number}", data)
                datasets.append(host.dataset_id)
            for host in stack.hosts:
                stack.start_node(host)
            for trial in range(args.trials):
                bare += _deltas(_bare_round_ends(stack, root, args.rounds, args.hosts, trial))
                ours += _deltas(_our_round_starts(stack, datasets, args.rounds))
                shown = args.rounds - 1
                print(f"trial {trial + 1}: bare {bare[-shown:]}, ours {ours[-shown:]}", flush=True)
        finally:
            stack.close()
    result: dict[str, Any] = {
        "cpu": cpu_model(),
        "hosts": args.hosts,
        "rows_per_host": args.rows,
        "rounds_per_run": args.rounds,
        "trials": args.trials,
        "rounds_measured": len(ours),
        "bare_mean_s": round(statistics.mean(bare), 3),
        "bare_median_s": round(statistics.median(bare), 3),
        "ours_mean_s": round(statistics.mean(ours), 3),
        "ours_median_s": round(statistics.median(ours), 3),
        "overhead_mean": round(statistics.mean(ours) / statistics.mean(bare) - 1, 4),
        "target": 0.05,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
