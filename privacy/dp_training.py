"""DP-SGD local training of one federated round with Opacus 1.6, and plain evaluation.

``train_dp`` runs one round of a job on one data host: Poisson-sampled batches, per-example
clipping (ghost clipping where every trainable layer supports it, per-sample hooks where
not), Gaussian noise, SGD on cross-entropy. Opacus's RDP accountant is preloaded with the
job's earlier rounds, so that after training it prices the whole job; that ε is checked
against ``privacy.budget.epsilon_of`` (the ledger's arithmetic) and the round fails if the
two disagree, or if Opacus took a different number of steps than ``plan_round`` promised.

This module trains and measures; it never decides whether a round may run (the budget
ledger does, before any data is read), never writes a record, and never releases data:
only the trained module's parameters and the numbers in ``DPRoundResult`` leave it.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from privacy.budget import ACCOUNTANT, Mechanism, epsilon_of
from privacy.errors import PrivacyError

#: How per-example gradient norms are computed: "ghost" (Opacus's ghost clipping, norms
#: without per-example gradients) or "hooks" (per-example gradients from module hooks).
GradSampleMode = Literal["ghost", "hooks"]
#: Relative tolerance between Opacus's cumulative ε and ``epsilon_of``'s.
EPSILON_AGREEMENT = 1e-9
#: The largest FedProx proximal coefficient μ a round accepts.
MAX_PROXIMAL_MU = 100.0

# Opacus warns on every engine that secure RNG is off (we ask for reproducible pseudo-RNG,
# see ``train_dp``) and torch on every backward through the hooks when inputs need no grad.
_QUIET = (
    r"Secure RNG turned off",
    r"Full backward hook is firing when gradients are computed with respect to module outputs",
)


class TrainingError(PrivacyError):
    """A training or evaluation request cannot run; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite; the model is left as it was before the round."""


class TrainingMismatch(TrainingError):
    """Opacus did something other than planned: a different step count, sample rate or ε.

    This is a defect (in this module or in an Opacus upgrade), never a user error; the
    round's result must not be released or recorded.
    """


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_positive_int(name: str, value: object) -> None:
    if not _is_int(value) or cast(int, value) < 1:
        raise TrainingError(f"{name} must be an integer >= 1, got {value!r}", field=name)


def _check_positive_real(name: str, value: object) -> None:
    if not _is_real(value) or not math.isfinite(cast(float, value)) or cast(float, value) <= 0:
        raise TrainingError(f"{name} must be a finite number > 0, got {value!r}", field=name)


@dataclass(frozen=True)
class DPSettings:
    """The DP-SGD hyper-parameters of one round.

    ``noise_multiplier`` is sigma (noise std over ``max_grad_norm``), ``max_grad_norm`` the
    per-example clipping bound C, ``batch_size`` the expected Poisson batch size asked for,
    ``local_epochs`` the passes over the data, ``learning_rate`` SGD's step size and
    ``delta`` the δ at which ε is reported. ``proximal_mu`` (FedProx's μ, 0 for none) adds
    ``μ/2·‖w - w_global‖²`` to the objective, ``w_global`` being the weights the round
    starts from. Construction refuses anything else with a ``TrainingError`` naming the
    field.
    """

    noise_multiplier: float
    max_grad_norm: float
    batch_size: int
    local_epochs: int
    learning_rate: float
    delta: float
    proximal_mu: float = 0.0

    def __post_init__(self) -> None:
        _check_positive_real("noise_multiplier", self.noise_multiplier)
        _check_positive_real("max_grad_norm", self.max_grad_norm)
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("local_epochs", self.local_epochs)
        _check_positive_real("learning_rate", self.learning_rate)
        if not _is_real(self.delta) or not 0.0 < self.delta < 1.0:
            raise TrainingError(
                f"delta must be a number with 0 < delta < 1, got {self.delta!r}", field="delta"
            )
        if not _is_real(self.proximal_mu) or not 0.0 <= self.proximal_mu <= MAX_PROXIMAL_MU:
            raise TrainingError(
                f"proximal_mu must be a number from 0 to {MAX_PROXIMAL_MU:g}, "
                f"got {self.proximal_mu!r}",
                field="proximal_mu",
            )
        if self.learning_rate * self.proximal_mu >= 2.0:
            raise TrainingError(
                f"proximal_mu {self.proximal_mu!r} with learning_rate {self.learning_rate!r}: "
                "their product must stay below 2, or the proximal step overshoots and diverges",
                field="proximal_mu",
            )


class _ProximalSGD(torch.optim.SGD):
    """SGD on the loss plus FedProx's ``μ/2·‖w - w_global‖²``.

    Opacus privatises the loss's gradient (clipping, noise); this optimizer then adds the
    proximal term's gradient ``μ·(w - w_global)`` before the update. That term depends only
    on the current and the global weights, never on a row of data, so it is
    post-processing of the private gradient and leaves the privacy accounting unchanged.
    """

    def __init__(self, params: Sequence[nn.Parameter], lr: float, mu: float) -> None:
        super().__init__(params, lr=lr)
        self._mu = mu
        self._anchors = {id(p): p.detach().clone() for p in params}

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    parameter.grad.add_(parameter - self._anchors[id(parameter)], alpha=self._mu)
        return super().step(closure)


@dataclass(frozen=True)
class RoundPlan:
    """What a round of DP-SGD will do, known before any data is read.

    ``sample_rate`` is the q Opacus's accountant records for every step and ``steps`` the
    number of noisy steps (``local_epochs * steps_per_epoch``): together with the noise
    multiplier they are the round's ``Mechanism``. ``poisson_rate`` is the probability with
    which each row is drawn into each batch; it is never above ``sample_rate``, so the
    recorded ε is an upper bound on the round's privacy loss (see ``plan_round``).
    """

    sample_rate: float
    steps: int
    steps_per_epoch: int
    poisson_rate: float

    def mechanism(self, noise_multiplier: float) -> Mechanism:
        """The ``Mechanism`` this plan runs at ``noise_multiplier``."""
        return Mechanism(noise_multiplier, self.sample_rate, self.steps, ACCOUNTANT)


def plan_round(rows: int, batch_size: int, local_epochs: int) -> RoundPlan:
    """The sample rate and exact step count of a round over ``rows`` rows.

    This mirrors what ``PrivacyEngine.make_private(poisson_sampling=True)`` does with a
    ``DataLoader(batch_size=batch_size)`` in Opacus 1.6, float for float:

    - the Poisson probability is ``1 / len(loader)`` = ``1 / ceil(rows / batch_size)``,
      which is ``batch_size / rows`` only when ``batch_size`` divides ``rows`` (otherwise a
      little less) and 1 when ``batch_size >= rows``;
    - the ``DPDataLoader`` yields ``int(1 / poisson_rate)`` batches per epoch, which in
      floating point is one fewer than ``ceil(rows / batch_size)`` for some sizes
      (``int(1 / (1 / 93)) == 92``);
    - the accountant records ``1 / len(dp_loader)`` = ``1 / steps_per_epoch`` per step,
      which is then a little *more* than the probability actually used.

    Raises ``TrainingError`` naming a field that is not an integer >= 1.
    """
    _check_positive_int("rows", rows)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("local_epochs", local_epochs)
    batches = -(-rows // batch_size)  # len(DataLoader(batch_size=...)), drop_last=False
    poisson_rate = 1 / batches
    steps_per_epoch = int(1 / poisson_rate)
    return RoundPlan(
        sample_rate=1 / steps_per_epoch,
        steps=local_epochs * steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        poisson_rate=poisson_rate,
    )


def ghost_unsupported_layers(model: nn.Module) -> tuple[str, ...]:
    """Names and types of the trainable layers that Opacus 1.6 cannot ghost-clip.

    A layer is supported when its exact type has a registered norm sampler (in Opacus 1.6:
    ``nn.Linear`` and ``nn.Embedding``); others (convolutions, GroupNorm, ...) would fall
    back to per-example gradients inside ghost mode.
    """
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.utils.module_utils import trainable_modules

    supported = GradSampleModuleFastGradientClipping.NORM_SAMPLERS
    return tuple(
        f"{name or '<root>'} ({type(module).__name__})"
        for name, module in trainable_modules(model)
        if type(module) not in supported
    )


def select_grad_sample_mode(model: nn.Module) -> GradSampleMode:
    """``"ghost"`` if every trainable layer supports ghost clipping, else ``"hooks"``."""
    return "hooks" if ghost_unsupported_layers(model) else "ghost"


@dataclass(frozen=True)
class DPRoundResult:
    """What one DP-SGD round did.

    ``mechanism`` is the round itself (noise multiplier, sample rate, steps) for the budget
    ledger; ``samples_used`` the rows drawn over all its Poisson batches (a row drawn twice
    counts twice); ``mean_loss`` the training cross-entropy averaged over those rows;
    ``epsilon_round`` the ε of this round alone and ``epsilon_total`` of the job so far,
    this round included, both at ``delta``; ``grad_sample_mode`` how per-example norms
    were computed.
    """

    mechanism: Mechanism
    samples_used: int
    mean_loss: float
    epsilon_round: float
    epsilon_total: float
    delta: float
    grad_sample_mode: GradSampleMode


@dataclass(frozen=True)
class EvalResult:
    """Cross-entropy ``loss`` (mean per example) and ``accuracy`` over ``examples`` rows."""

    loss: float
    accuracy: float
    examples: int


class _Rows(Dataset[tuple[Tensor, Tensor]]):
    """Features and labels by row; a whole batch is gathered with one indexing operation."""

    def __init__(self, features: Tensor, labels: Tensor) -> None:
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.features[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        picked = torch.as_tensor(indices, dtype=torch.int64)
        return self.features[picked], self.labels[picked]


def _batched(batch: Any) -> Any:
    """The collate function for ``_Rows``: its ``__getitems__`` already returns a batch."""
    return batch


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message)
        yield


def _check_data(model: nn.Module, features: Tensor, labels: Tensor) -> int:
    """Refuse data a model cannot honestly train on; return the number of rows."""
    if not isinstance(model, nn.Module):
        raise TrainingError(
            f"model must be a torch.nn.Module, got {type(model).__name__}", field="model"
        )
    if not isinstance(features, Tensor) or features.dim() < 2:
        raise TrainingError(
            "features must be a tensor of shape (rows, ...), got "
            f"{tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__}",
            field="features",
        )
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
        raise TrainingError(
            "labels must be a 1-d int64 tensor of class indices, got "
            + (
                f"{labels.dtype} of shape {tuple(labels.shape)}"
                if isinstance(labels, Tensor)
                else type(labels).__name__
            ),
            field="labels",
        )
    rows = len(labels)
    if rows == 0 or len(features) != rows:
        raise TrainingError(
            f"features and labels must have the same number of rows (> 0), got "
            f"{len(features)} and {rows}",
            field="labels",
        )
    if features.is_floating_point() and not bool(torch.isfinite(features).all()):
        bad = int((~torch.isfinite(features)).sum())
        raise TrainingError(f"features hold {bad} NaN or infinite values", field="features")
    if not features.is_floating_point():
        for module in model.modules():
            if isinstance(module, nn.Embedding) and features.numel():
                low, high = int(features.min()), int(features.max())
                if low < 0 or high >= module.num_embeddings:
                    raise TrainingError(
                        f"token ids must be in [0, {module.num_embeddings}), got values from "
                        f"{low} to {high}",
                        field="features",
                    )
    with torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            classes = int(model(features[:1]).shape[-1])
        except (RuntimeError, IndexError, TypeError) as exc:
            raise TrainingError(
                f"the model cannot take these features: {exc}", field="features"
            ) from exc
        finally:
            model.train(was_training)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise TrainingError(
            f"labels must be class indices in [0, {classes}), got values from {low} to {high}",
            field="labels",
        )
    return rows


def _check_loss(loss: float, step: int) -> None:
    if not math.isfinite(loss):
        raise NonFiniteLoss(
            f"the training loss became {loss} at step {step}; lower learning_rate or check "
            "the features' scale",
            field="learning_rate",
        )


def _detach_opacus(model: nn.Module, wrapped: Any) -> None:
    """Remove Opacus's hooks and bookkeeping from the plain ``model`` after training."""
    wrapped.to_standard_module()
    for module in model.modules():
        for attribute in ("activations", "max_batch_len"):
            if attribute in module.__dict__:
                delattr(module, attribute)
    for parameter in model.parameters():
        parameter.grad = None


def _history_after(
    earlier: list[Mechanism], mechanism: Mechanism
) -> list[tuple[float, float, int]]:
    """The RDP accountant's history once ``mechanism`` has run after ``earlier``.

    ``RDPAccountant.step`` merges a step into the last entry when the noise multiplier and
    sample rate are the same, so a round at the previous round's setting extends its entry.
    """
    history = [(float(m.noise_multiplier), float(m.sample_rate), int(m.steps)) for m in earlier]
    setting = (float(mechanism.noise_multiplier), float(mechanism.sample_rate))
    if history and history[-1][:2] == setting:
        history[-1] = (*setting, history[-1][2] + mechanism.steps)
    else:
        history.append((*setting, mechanism.steps))
    return history


def _same_epsilon(left: float, right: float) -> bool:
    if math.isinf(left) or math.isinf(right):
        return left == right
    return math.isclose(left, right, rel_tol=EPSILON_AGREEMENT, abs_tol=0.0)


def train_dp(
    model: nn.Module,
    features: Tensor,
    labels: Tensor,
    settings: DPSettings,
    *,
    prior: Sequence[Mechanism],
    seed: int,
    grad_sample_mode: GradSampleMode | None = None,
) -> DPRoundResult:
    """Train ``model`` in place for one round of DP-SGD; return what the round spent.

    ``model`` is a plain module (as ``privacy.models.build_model`` makes, or loaded with
    the global weights); its parameters are updated in place and it is returned free of
    Opacus's wrapper, so ``model.state_dict()`` has the plain keys (no ``_module.``).
    ``features`` (rows first) and ``labels`` (int64 class indices) are the data host's
    rows. ``prior`` are the mechanisms of this job's earlier rounds on this dataset, which
    ran in other processes; they are preloaded into the accountant's history so that
    ``epsilon_total`` is the job's cumulative ε.

    Opacus's ``PrivacyEngine(accountant="rdp")`` runs with Poisson sampling, flat clipping
    at ``max_grad_norm``, SGD and mean cross-entropy. ``grad_sample_mode`` defaults to
    ``select_grad_sample_mode(model)``; forcing ``"ghost"`` on a model with other layers
    makes Opacus compute those layers' norms from per-example gradients. Sampling and noise
    come from torch generators seeded from ``seed`` (``secure_mode=False``): the same
    model, data, settings and seed give the same result on the same build. That
    pseudo-random noise is what Opacus calls unfit for production guarantees; secure mode
    needs ``torchcsprng``, which is not a dependency.

    Raises ``TrainingError`` (field named) for bad data, settings or prior, ``NonFiniteLoss``
    for a NaN or infinite loss, and ``TrainingMismatch`` if the steps or sample rate Opacus
    used differ from ``plan_round`` or its ε from ``epsilon_of``. On any error the model's
    parameters are restored to what they were before the call.
    """
    if not isinstance(settings, DPSettings):
        raise TrainingError(
            f"settings must be DPSettings, got {type(settings).__name__}", field="settings"
        )
    if not _is_int(seed) or not 0 <= seed < 2**62:
        raise TrainingError(
            f"seed must be an integer from 0 to 2**62 - 1, got {seed!r}", field="seed"
        )
    earlier = list(prior)
    for position, mechanism in enumerate(earlier):
        if not isinstance(mechanism, Mechanism) or mechanism.accountant != ACCOUNTANT:
            raise TrainingError(
                f"prior[{position}] must be an {ACCOUNTANT!r} Mechanism, got {mechanism!r}",
                field="prior",
            )
    mode = grad_sample_mode or select_grad_sample_mode(model)
    if mode not in ("ghost", "hooks"):
        raise TrainingError(
            f"grad_sample_mode must be 'ghost' or 'hooks', got {mode!r}", field="grad_sample_mode"
        )
    rows = _check_data(model, features, labels)
    plan = plan_round(rows, settings.batch_size, settings.local_epochs)

    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise TrainingError(
            "the model has layers Opacus cannot train privately: "
            + "; ".join(str(error) for error in errors),
            field="model",
        )

    saved = copy.deepcopy(model.state_dict())
    try:
        with _quiet():
            return _run_round(model, features, labels, settings, earlier, seed, mode, plan)
    except BaseException:
        model.load_state_dict(saved)
        for parameter in model.parameters():
            parameter.grad = None
        raise


def _run_round(
    model: nn.Module,
    features: Tensor,
    labels: Tensor,
    settings: DPSettings,
    earlier: list[Mechanism],
    seed: int,
    mode: GradSampleMode,
    plan: RoundPlan,
) -> DPRoundResult:
    """The body of ``train_dp``, after every input has been checked."""
    from opacus import PrivacyEngine

    mechanism = plan.mechanism(settings.noise_multiplier)
    sampling = torch.Generator().manual_seed(2 * seed)
    noise = torch.Generator().manual_seed(2 * seed + 1)
    loader = DataLoader(
        _Rows(features, labels),
        batch_size=settings.batch_size,
        collate_fn=_batched,
        generator=sampling,
    )
    engine = PrivacyEngine(accountant=ACCOUNTANT, secure_mode=False)
    engine.accountant.history = [
        (float(m.noise_multiplier), float(m.sample_rate), int(m.steps)) for m in earlier
    ]
    optimizer: torch.optim.Optimizer
    if settings.proximal_mu > 0:
        optimizer = _ProximalSGD(
            list(model.parameters()), lr=settings.learning_rate, mu=settings.proximal_mu
        )
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=settings.learning_rate)
    criterion: Any = nn.CrossEntropyLoss()
    model.train()
    made = engine.make_private(
        module=model,
        optimizer=optimizer,
        criterion=criterion,
        data_loader=loader,
        noise_multiplier=settings.noise_multiplier,
        max_grad_norm=settings.max_grad_norm,
        poisson_sampling=True,
        grad_sample_mode=mode,
        noise_generator=noise,
    )
    if mode == "ghost":  # Opacus 1.6 returns the wrapped criterion as well
        wrapped, dp_optimizer, criterion, dp_loader = made
    else:
        wrapped, dp_optimizer, dp_loader = made
    try:
        if len(dp_loader) != plan.steps_per_epoch or dp_loader.sample_rate != plan.poisson_rate:
            raise TrainingMismatch(
                f"Opacus samples {len(dp_loader)} batches per epoch at q = "
                f"{dp_loader.sample_rate!r}; plan_round expected {plan.steps_per_epoch} at "
                f"q = {plan.poisson_rate!r}",
                field="batch_size",
            )
        steps = samples = 0
        loss_sum = 0.0
        for _epoch in range(settings.local_epochs):
            for batch_features, batch_labels in dp_loader:
                dp_optimizer.zero_grad()
                loss = criterion(wrapped(batch_features), batch_labels)
                drawn = len(batch_labels)
                if drawn:  # an empty Poisson batch has a NaN mean loss but is a valid step
                    value = float(loss.item())
                    _check_loss(value, steps)
                    loss_sum += value * drawn
                    samples += drawn
                loss.backward()
                dp_optimizer.step()
                steps += 1
    finally:
        _detach_opacus(model, wrapped)

    history = [(float(a), float(b), int(c)) for a, b, c in engine.accountant.history]
    expected = _history_after(earlier, mechanism)
    if steps != plan.steps or history != expected:
        raise TrainingMismatch(
            f"the round took {steps} optimizer steps and left the accountant's history at "
            f"{history[len(earlier) - 1 if earlier else 0 :]}; plan_round promised "
            f"{plan.steps} steps at q = {plan.sample_rate!r}",
            field="steps",
        )
    opacus_total = float(engine.accountant.get_epsilon(settings.delta))
    total = epsilon_of([*earlier, mechanism], settings.delta)
    if not _same_epsilon(opacus_total, total):
        raise TrainingMismatch(
            f"Opacus prices the job at ε = {opacus_total!r} but epsilon_of at {total!r}",
            field="epsilon",
        )
    return DPRoundResult(
        mechanism=mechanism,
        samples_used=samples,
        mean_loss=loss_sum / samples if samples else math.nan,
        epsilon_round=epsilon_of([mechanism], settings.delta),
        epsilon_total=total,
        delta=settings.delta,
        grad_sample_mode=mode,
    )


def train_plain(
    model: nn.Module,
    features: Tensor,
    labels: Tensor,
    *,
    batch_size: int,
    local_epochs: int,
    learning_rate: float,
    seed: int,
) -> float:
    """Train ``model`` in place without privacy; return the mean training loss per row.

    The non-private baseline of ``train_dp``: the same SGD, loss and data path, but
    shuffled fixed-size batches (``ceil(rows / batch_size)`` steps per epoch), no clipping
    and no noise. Raises ``TrainingError`` for bad inputs and ``NonFiniteLoss`` for a NaN
    or infinite loss (the model is then left as it was before the call).
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("local_epochs", local_epochs)
    _check_positive_real("learning_rate", learning_rate)
    if not _is_int(seed) or not 0 <= seed < 2**62:
        raise TrainingError(
            f"seed must be an integer from 0 to 2**62 - 1, got {seed!r}", field="seed"
        )
    _check_data(model, features, labels)
    loader = DataLoader(
        _Rows(features, labels),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=_batched,
        generator=torch.Generator().manual_seed(2 * seed),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    criterion = nn.CrossEntropyLoss()
    saved = copy.deepcopy(model.state_dict())
    model.train()
    steps = samples = 0
    loss_sum = 0.0
    try:
        for _epoch in range(local_epochs):
            for batch_features, batch_labels in loader:
                optimizer.zero_grad()
                loss = criterion(model(batch_features), batch_labels)
                value = float(loss.item())
                _check_loss(value, steps)
                loss.backward()
                optimizer.step()
                steps += 1
                samples += len(batch_labels)
                loss_sum += value * len(batch_labels)
    except BaseException:
        model.load_state_dict(saved)
        raise
    finally:
        for parameter in model.parameters():
            parameter.grad = None
    return loss_sum / samples


def evaluate(
    model: nn.Module, features: Tensor, labels: Tensor, *, batch_size: int = 256
) -> EvalResult:
    """Mean cross-entropy and accuracy of ``model`` on ``features`` and ``labels``.

    Runs in eval mode without gradients (the model's mode is restored afterwards). Raises
    ``TrainingError`` for bad inputs and ``NonFiniteLoss`` if the loss is not finite.
    """
    _check_positive_int("batch_size", batch_size)
    rows = _check_data(model, features, labels)
    was_training = model.training
    model.eval()
    loss_sum = 0.0
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, rows, batch_size):
                logits = model(features[start : start + batch_size])
                target = labels[start : start + batch_size]
                loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
                correct += int((logits.argmax(dim=-1) == target).sum())
    finally:
        model.train(was_training)
    loss = loss_sum / rows
    if not math.isfinite(loss):
        raise NonFiniteLoss(f"the evaluation loss is {loss}", field="features")
    return EvalResult(loss=loss, accuracy=correct / rows, examples=rows)
