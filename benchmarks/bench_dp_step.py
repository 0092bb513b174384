"""DP-SGD step time against non-private SGD, for every registry model, on the same data.

For each registry model (``privacy.models.build_model``) on synthetic data of a realistic
size, in the same process and on the same threads:

- baseline: ``train_plain`` (shuffled batches of ``--batch`` rows, SGD, cross-entropy);
- ours: ``train_dp`` (Opacus 1.6 Poisson sampling, clipping, noise, RDP accounting) in
  the mode it picks, ghost clipping for models whose layers all support it; for ``mlp``
  also with per-sample hooks forced, and for ``cnn-small`` (whose convolutions and
  GroupNorm ghost clipping does not cover, so it picks hooks) also with ghost mode forced.

Each contender trains rounds of ``--epochs`` and of ``2 * --epochs`` epochs; the slope
between the two is its steady-state time per optimizer step, and what is left of the
short round is its fixed cost per round (for DP: Opacus's wrapping, the Poisson loader,
the accountant's ε and its cross-check, as a data host pays them every round). Times are
the process's CPU seconds on ``--threads`` torch threads (default 1, so that time lost to
other load on the machine does not count). The target is a DP/plain step ratio <= 2.5x
with ghost clipping. This script only measures; it writes nothing.

    python -m benchmarks.bench_dp_step [--rows 4096] [--batch 64] [--epochs 2] [--runs 3]
                                       [--threads N] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from benchmarks.timing import cpu_model, timed
from privacy.dp_training import (
    DPSettings,
    GradSampleMode,
    plan_round,
    select_grad_sample_mode,
    train_dp,
    train_plain,
)
from privacy.models import TEXT_VOCAB, ModelShape, build_model

#: What each model sees: tabular 64 features, 1x28x28 images, 64-token texts.
SHAPES = {
    "logistic-regression": ModelShape((64,), 2),
    "mlp": ModelShape((64,), 2),
    "cnn-small": ModelShape((1, 28, 28), 10),
    "text-small": ModelShape((64,), 4),
}
#: Extra DP modes measured beside the one ``train_dp`` picks.
FORCED: dict[str, tuple[GradSampleMode, ...]] = {"mlp": ("hooks",), "cnn-small": ("ghost",)}
TARGET_RATIO = 2.5


@dataclass
class Row:
    """One contender against plain training of the same model, per optimizer step.

    ``*_step_ms`` are steady-state costs (the slope between a round of ``epochs`` and one
    of ``2 * epochs``), ``dp_round_fixed_ms`` what a DP round costs beyond its steps
    (Opacus wrapping, the loader, the accountant's ε), and ``*_round_ms`` whole rounds of
    ``epochs`` epochs divided by their steps, fixed costs included.
    """

    model: str
    mode: str
    plain_step_ms: float
    dp_step_ms: float
    dp_round_fixed_ms: float
    plain_round_ms: float
    dp_round_ms: float

    @property
    def step_ratio(self) -> float:
        return self.dp_step_ms / self.plain_step_ms

    @property
    def round_ratio(self) -> float:
        return self.dp_round_ms / self.plain_round_ms


def make_data(name: str, rows: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Synthetic features and labels the model ``name`` takes, learnable but not trivial."""
    shape = SHAPES[name]
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, shape.num_classes, (rows,), generator=generator)
    if name == "text-small":
        tokens = torch.randint(1, TEXT_VOCAB, (rows, *shape.input_shape), generator=generator)
        tokens[:, :4] = labels.unsqueeze(1) + 1  # a label-dependent prefix
        tokens[:, -8:] = 0  # padding
        return tokens, labels
    features = torch.randn((rows, *shape.input_shape), generator=generator)
    features += 0.5 * labels.view(-1, *([1] * len(shape.input_shape))).float()
    return features, labels


def slope(
    runs: int,
    make_action: Callable[[int], Callable[[], object]],
    steps: Callable[[int], int],
    epochs: int,
) -> tuple[float, float, float]:
    """(ms per step, fixed ms per round, whole-round ms per step) from rounds of two lengths.

    Times are CPU seconds of this process (the fastest of ``runs``, short and long rounds
    alternating), so time the VM loses to other load or to the hypervisor does not count.
    """
    short, long = make_action(epochs), make_action(2 * epochs)
    short()  # warm-up: allocator, kernels, first-call imports
    short_s = long_s = math.inf
    for _ in range(runs):
        short_s = min(short_s, timed(short)[1])
        long_s = min(long_s, timed(long)[1])
    per_step = (long_s - short_s) / (steps(2 * epochs) - steps(epochs))
    fixed = short_s - per_step * steps(epochs)
    return per_step * 1000, fixed * 1000, short_s / steps(epochs) * 1000


def measure(name: str, args: argparse.Namespace) -> list[Row]:
    """Plain and DP ms/step of model ``name`` in its own mode and any forced ones."""
    features, labels = make_data(name, args.rows)
    shape = SHAPES[name]

    def plain_steps(epochs: int) -> int:
        return int(epochs * math.ceil(args.rows / args.batch))

    def dp_steps(epochs: int) -> int:
        return plan_round(args.rows, args.batch, epochs).steps

    def plain(epochs: int) -> Callable[[], object]:
        model = build_model(name, shape, seed=0)
        return lambda: train_plain(
            model,
            features,
            labels,
            batch_size=args.batch,
            local_epochs=epochs,
            learning_rate=0.1,
            seed=0,
        )

    def private(mode: GradSampleMode) -> Callable[[int], Callable[[], object]]:
        def make(epochs: int) -> Callable[[], object]:
            model = build_model(name, shape, seed=0)
            settings = DPSettings(
                noise_multiplier=1.0,
                max_grad_norm=1.0,
                batch_size=args.batch,
                local_epochs=epochs,
                learning_rate=0.1,
                delta=1e-5,
            )
            return lambda: train_dp(
                model, features, labels, settings, prior=[], seed=0, grad_sample_mode=mode
            )

        return make

    plain_step, _plain_fixed, plain_round = slope(args.runs, plain, plain_steps, args.epochs)
    picked = select_grad_sample_mode(build_model(name, shape))
    rows = []
    for mode in (picked, *FORCED.get(name, ())):
        dp_step, dp_fixed, dp_round = slope(args.runs, private(mode), dp_steps, args.epochs)
        label = mode if mode == picked else f"{mode} (forced)"
        rows.append(Row(name, label, plain_step, dp_step, dp_fixed, plain_round, dp_round))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4096, help="training rows per model")
    parser.add_argument("--batch", type=int, default=64, help="(expected) batch size")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed run")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per contender")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: CPU time is wall time)"
    )
    parser.add_argument("--quick", action="store_true", help="2048 rows, 1 epoch, 2 runs")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.epochs, args.runs = 2048, 1, 2
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")

    rows = [row for name in SHAPES for row in measure(name, args)]
    if args.json:
        print(
            json.dumps(
                [
                    {**asdict(row), "step_ratio": row.step_ratio, "round_ratio": row.round_ratio}
                    for row in rows
                ],
                indent=2,
            )
        )
        return
    print(
        f"cpu: {cpu_model()} ({os.cpu_count()} logical), torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{args.rows} rows, batch {args.batch}, rounds of {args.epochs} and {2 * args.epochs} "
        f"epoch(s), best of {args.runs} in CPU time; DP: noise 1.0, clip 1.0, Poisson sampling"
    )
    print(
        f"{'model':<20} {'DP mode':<15} {'plain ms/step':>13} {'DP ms/step':>10} "
        f"{'DP/plain':>8} {'DP fixed ms/round':>17} {'round DP/plain':>14}"
    )
    for row in rows:
        print(
            f"{row.model:<20} {row.mode:<15} {row.plain_step_ms:>13.3f} {row.dp_step_ms:>10.3f} "
            f"{row.step_ratio:>7.2f}x {row.dp_round_fixed_ms:>17.1f} {row.round_ratio:>13.2f}x"
        )
    ghost = [row.step_ratio for row in rows if row.mode == "ghost"]
    if ghost:
        print(f"worst ghost-clipping step ratio: {max(ghost):.2f}x (target <= {TARGET_RATIO}x)")


if __name__ == "__main__":
    main()
