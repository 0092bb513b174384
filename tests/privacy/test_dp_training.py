"""The registry's torch models and DP-SGD training with Opacus: validation, ghost clipping,
cumulative accounting across rounds, exact step counts, learning under noise, refusals."""

from __future__ import annotations

import math

import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.validators import ModuleValidator
from torch import Tensor, nn

from privacy.budget import Mechanism, epsilon_of
from privacy.dp_training import (
    DPRoundResult,
    DPSettings,
    NonFiniteLoss,
    TrainingError,
    evaluate,
    ghost_unsupported_layers,
    plan_round,
    select_grad_sample_mode,
    train_dp,
    train_plain,
)
from privacy.model_registry import VETTED_MODELS, UnknownModel
from privacy.models import TEXT_VOCAB, ModelShape, ModelShapeError, build_model, check_features

DELTA = 1e-5

#: A small but realistic shape for every registry model.
SHAPES = {
    "logistic-regression": ModelShape((16,), 2),
    "mlp": ModelShape((16,), 3),
    "cnn-small": ModelShape((1, 12, 12), 4),
    "text-small": ModelShape((20,), 5),
}


def sample_features(shape: ModelShape, rows: int, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    if shape.input_shape == SHAPES["text-small"].input_shape:
        return torch.randint(0, TEXT_VOCAB, (rows, *shape.input_shape), generator=generator)
    return torch.randn((rows, *shape.input_shape), generator=generator)


def separable(rows: int, features: int = 16, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two classes split by a random hyperplane, with a clear margin."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=generator)
    direction = torch.randn(features, generator=generator)
    direction /= direction.norm()
    score = x @ direction
    x += 0.5 * torch.sign(score).unsqueeze(1) * direction  # push both classes off the plane
    return x, (score > 0).long()


def settings(**changes: float) -> DPSettings:
    values: dict[str, float] = {
        "noise_multiplier": 1.0,
        "max_grad_norm": 1.0,
        "batch_size": 64,
        "local_epochs": 1,
        "learning_rate": 0.5,
        "delta": DELTA,
    }
    values.update(changes)
    return DPSettings(**values)  # type: ignore[arg-type]


def count_steps(model: nn.Module) -> list[int]:
    """Batch sizes of every training forward pass of ``model`` (one per optimizer step)."""
    sizes: list[int] = []

    def hook(_module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> None:
        if torch.is_grad_enabled():
            sizes.append(len(inputs[0]))

    model.register_forward_hook(hook)
    return sizes


# -- models ---------------------------------------------------------------------------


def test_the_test_shapes_cover_the_whole_registry() -> None:
    assert set(SHAPES) == set(VETTED_MODELS)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_registry_model_passes_opacus_validation_and_gives_logits(name: str) -> None:
    shape = SHAPES[name]
    model = build_model(name, shape, seed=3)
    assert ModuleValidator.validate(model, strict=True) == []
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    logits = model(sample_features(shape, 7))
    assert logits.shape == (7, shape.num_classes)
    assert logits.dtype == torch.float32
    # Same name, shape and seed: the same weights on every host; another seed: others.
    again = build_model(name, shape, seed=3).state_dict()
    other = build_model(name, shape, seed=4).state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, again[key])
    assert any(not torch.equal(value, other[key]) for key, value in model.state_dict().items())


def test_building_a_model_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    build_model("mlp", SHAPES["mlp"], seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_text_small_ignores_padding_tokens() -> None:
    model = build_model("text-small", SHAPES["text-small"]).eval()
    tokens = torch.tensor([[5, 9, 0, 0, 0], [5, 9, 0, 0, 0]])
    padded_more = torch.tensor([[5, 9, 0, 0, 0, 0, 0, 0, 0, 0]])
    assert torch.allclose(model(tokens)[0], model(padded_more)[0])


def test_build_model_refuses_unknown_names_and_shapes_of_another_modality() -> None:
    with pytest.raises(UnknownModel, match="resnet"):
        build_model("resnet", SHAPES["mlp"])
    with pytest.raises(ModelShapeError, match="1-d for tabular") as tabular:
        build_model("mlp", ModelShape((3, 28, 28), 10))
    assert tabular.value.field == "input_shape"
    with pytest.raises(ModelShapeError, match="3-d for image") as image:
        build_model("cnn-small", ModelShape((784,), 10))
    assert image.value.field == "input_shape"
    with pytest.raises(ModelShapeError, match="height") as small:
        build_model("cnn-small", ModelShape((1, 2, 28), 10))
    assert small.value.field == "input_shape"
    with pytest.raises(ModelShapeError, match="num_classes") as classes:
        ModelShape((4,), 1)
    assert classes.value.field == "num_classes"
    with pytest.raises(ModelShapeError, match="input_shape"):
        ModelShape((4, 0), 2)


def test_check_features_refuses_data_the_model_cannot_take() -> None:
    text = SHAPES["text-small"]
    check_features("text-small", text, sample_features(text, 4))
    with pytest.raises(ModelShapeError, match="int64") as dtype:
        check_features("text-small", text, torch.zeros(4, 20))
    assert dtype.value.field == "features"
    with pytest.raises(ModelShapeError, match=str(TEXT_VOCAB)):
        check_features("text-small", text, torch.full((4, 20), TEXT_VOCAB))
    with pytest.raises(ModelShapeError, match="shape"):
        check_features("mlp", SHAPES["mlp"], torch.zeros(4, 15))
    nan = torch.zeros(4, 16)
    nan[2, 3] = math.nan
    with pytest.raises(ModelShapeError, match="NaN"):
        check_features("mlp", SHAPES["mlp"], nan)


# -- ghost clipping or hooks ------------------------------------------------------------


def test_ghost_clipping_for_linear_and_embedding_models_hooks_for_the_cnn() -> None:
    modes = {
        name: select_grad_sample_mode(build_model(name, shape)) for name, shape in SHAPES.items()
    }
    assert modes == {
        "logistic-regression": "ghost",
        "mlp": "ghost",
        "text-small": "ghost",
        "cnn-small": "hooks",
    }
    unsupported = ghost_unsupported_layers(build_model("cnn-small", SHAPES["cnn-small"]))
    assert any("Conv2d" in layer for layer in unsupported)
    assert any("GroupNorm" in layer for layer in unsupported)
    # One unsupported layer anywhere is enough to fall back.
    mixed = nn.Sequential(nn.Linear(16, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    assert select_grad_sample_mode(mixed) == "hooks"
    assert ghost_unsupported_layers(mixed) == ("1 (LayerNorm)",)


def test_training_reports_the_mode_that_ran() -> None:
    cnn = SHAPES["cnn-small"]
    images, labels = sample_features(cnn, 40), torch.randint(0, 4, (40,))
    model = build_model("cnn-small", cnn)
    assert (
        train_dp(model, images, labels, settings(batch_size=20), prior=[], seed=1).grad_sample_mode
        == "hooks"
    )
    x, y = separable(200)
    mlp = build_model("mlp", SHAPES["mlp"])
    assert train_dp(mlp, x, y, settings(), prior=[], seed=1).grad_sample_mode == "ghost"
    forced = train_dp(mlp, x, y, settings(), prior=[], seed=1, grad_sample_mode="hooks")
    assert forced.grad_sample_mode == "hooks"


@pytest.mark.parametrize("name", ["mlp", "text-small"])
def test_ghost_clipping_takes_the_same_steps_as_per_sample_hooks(name: str) -> None:
    # Same data, seed (so the same Poisson batches and noise) and clipping: the two modes
    # must compute the same clipped, noised gradients, hence the same weights.
    shape = SHAPES[name]
    features = sample_features(shape, 96, seed=1)
    labels = torch.randint(0, shape.num_classes, (96,), generator=torch.Generator().manual_seed(2))
    states = []
    for mode in ("ghost", "hooks"):
        model = build_model(name, shape, seed=0)
        result = train_dp(
            model,
            features,
            labels,
            settings(batch_size=32, max_grad_norm=0.1),
            prior=[],
            seed=3,
            grad_sample_mode=mode,
        )
        assert result.grad_sample_mode == mode
        states.append(model.state_dict())
    ghost, hooks = states
    for key in ghost:
        torch.testing.assert_close(ghost[key], hooks[key], rtol=1e-4, atol=1e-6)


def test_the_token_embedding_norm_sampler_matches_opacus() -> None:
    from opacus.grad_sample.embedding_norm_sample import compute_embedding_norm_sample

    from privacy.models import TokenEmbedding, token_embedding_norm_sample

    layer = TokenEmbedding(50, 8)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (6, 12), generator=generator)
    tokens[:, :4] = 7  # repeated tokens within an example sum before the norm
    tokens[2] = 0
    backprops = torch.randn(6, 12, 8, generator=generator)
    ours = token_embedding_norm_sample(layer, [tokens], backprops)[layer.weight]
    theirs = compute_embedding_norm_sample(layer, [tokens], backprops)[layer.weight]
    torch.testing.assert_close(ours, theirs)
    # Against the definition: the norm of each example's own gradient of the table.
    for row in range(6):
        gradient = torch.zeros(50, 8).index_add_(0, tokens[row], backprops[row])
        torch.testing.assert_close(ours[row], gradient.norm())
    empty = token_embedding_norm_sample(layer, [tokens[:0]], backprops[:0])[layer.weight]
    assert empty.shape == (0,)


# -- accounting across rounds -----------------------------------------------------------


def test_cumulative_epsilon_over_three_rounds_matches_one_opacus_accountant() -> None:
    x, y = separable(1000)
    model = build_model("logistic-regression", SHAPES["logistic-regression"])
    # Rounds 1 and 2 share a setting (Opacus merges their history entries); round 3 does not.
    rounds = [settings(), settings(), settings(noise_multiplier=1.3, batch_size=100)]
    prior: list[Mechanism] = []
    results = []
    for number, round_settings in enumerate(rounds):
        # Each round is its own train_dp call, as on a data host between Flower rounds.
        result = train_dp(model, x, y, round_settings, prior=list(prior), seed=number)
        results.append(result)
        prior.append(result.mechanism)

    fresh = RDPAccountant()
    for mechanism in prior:
        for _ in range(mechanism.steps):
            fresh.step(
                noise_multiplier=mechanism.noise_multiplier, sample_rate=mechanism.sample_rate
            )
    assert results[-1].epsilon_total == pytest.approx(fresh.get_epsilon(DELTA), rel=1e-9)
    assert results[-1].epsilon_total == pytest.approx(epsilon_of(prior, DELTA), rel=1e-12)
    totals = [result.epsilon_total for result in results]
    assert totals == sorted(totals)
    assert totals[0] == pytest.approx(results[0].epsilon_round, rel=1e-12)
    for result in results[1:]:
        assert result.epsilon_total > result.epsilon_round
    # The per-round ε is that round alone, as a fresh accountant prices it.
    alone = RDPAccountant()
    second = prior[1]
    alone.history = [(second.noise_multiplier, second.sample_rate, second.steps)]
    assert results[1].epsilon_round == pytest.approx(alone.get_epsilon(DELTA), rel=1e-9)


def test_prior_must_be_mechanisms() -> None:
    x, y = separable(100)
    model = build_model("logistic-regression", SHAPES["logistic-regression"])
    with pytest.raises(TrainingError, match=r"prior\[0\]") as caught:
        train_dp(model, x, y, settings(), prior=[(1.0, 0.1, 5)], seed=0)  # type: ignore[list-item]
    assert caught.value.field == "prior"


# -- steps and samples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "batch_size", "epochs"),
    [(1000, 50, 2), (2000, 64, 1), (93 * 64, 64, 1), (30, 64, 3)],
)
def test_the_steps_taken_are_the_planned_steps(rows: int, batch_size: int, epochs: int) -> None:
    x, y = separable(rows)
    model = build_model("logistic-regression", SHAPES["logistic-regression"])
    batches = count_steps(model)
    plan = plan_round(rows, batch_size, epochs)
    result = train_dp(
        model, x, y, settings(batch_size=batch_size, local_epochs=epochs), prior=[], seed=2
    )
    assert len(batches) == plan.steps == result.mechanism.steps
    assert result.mechanism.sample_rate == plan.sample_rate
    assert result.samples_used == sum(batches)
    # Poisson batches average rows * q; over many steps the total is close to that.
    expected = plan.steps * rows * plan.poisson_rate
    assert abs(result.samples_used - expected) < 5 * math.sqrt(expected) + 1


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_empty_poisson_batches_are_noise_only_steps(name: str) -> None:
    # 30 rows at an expected batch of 1: about a third of the 30 steps draw no row at all.
    shape = SHAPES[name]
    features = sample_features(shape, 30)
    labels = torch.randint(0, shape.num_classes, (30,), generator=torch.Generator().manual_seed(0))
    model = build_model(name, shape)
    batches = count_steps(model)
    start = {key: value.clone() for key, value in model.state_dict().items()}
    result = train_dp(model, features, labels, settings(batch_size=1), prior=[], seed=0)
    assert 0 in batches
    assert len(batches) == result.mechanism.steps == 30
    assert result.samples_used == sum(batches) < 30
    assert math.isfinite(result.mean_loss)
    assert all(torch.isfinite(value).all() for value in model.state_dict().values())
    assert any(not torch.equal(model.state_dict()[key], start[key]) for key in start)


def test_plan_round_follows_opacus_poisson_loader() -> None:
    # batch_size divides rows: q is batch_size / rows.
    assert plan_round(1000, 50, 2) == plan_round(1000, 50, 2)
    plan = plan_round(1000, 50, 2)
    assert (plan.sample_rate, plan.steps, plan.poisson_rate) == (0.05, 40, 0.05)
    # Otherwise Opacus samples at 1 / ceil(rows / batch_size), a little below batch / rows.
    assert plan_round(2000, 64, 1).poisson_rate == 1 / 32
    # And for some sizes int(1 / (1 / n)) == n - 1: 93 batches become 92 steps, accounted
    # at q = 1/92, above the 1/93 actually used.
    odd = plan_round(93 * 64, 64, 1)
    assert (odd.steps, odd.steps_per_epoch) == (92, 92)
    assert odd.sample_rate == 1 / 92 > odd.poisson_rate == 1 / 93
    # A batch as large as the data: every row, every step.
    assert plan_round(30, 64, 3) == plan_round(30, 30, 3)
    assert plan_round(30, 64, 3).sample_rate == 1.0
    with pytest.raises(TrainingError, match="rows") as caught:
        plan_round(0, 64, 1)
    assert caught.value.field == "rows"


# -- what training does to the model ----------------------------------------------------


def test_dp_logistic_regression_learns_a_separable_problem() -> None:
    x, y = separable(3000, seed=5)
    test_x, test_y = x[2000:], y[2000:]
    model = build_model("logistic-regression", SHAPES["logistic-regression"])
    before = evaluate(model, test_x, test_y)
    result = train_dp(
        model, x[:2000], y[:2000], settings(local_epochs=3, learning_rate=1.0), prior=[], seed=7
    )
    after = evaluate(model, test_x, test_y)
    assert after.examples == 1000
    assert after.accuracy > 0.85 > before.accuracy
    assert after.loss < before.loss
    assert 0 < result.mean_loss < math.log(2) + 0.2
    assert math.isfinite(result.epsilon_total)
    assert result.epsilon_total > 0


def test_the_plain_module_comes_back_trained_and_free_of_opacus() -> None:
    x, y = separable(300)
    model = build_model("mlp", SHAPES["mlp"])
    start = {key: value.clone() for key, value in model.state_dict().items()}
    train_dp(model, x, y, settings(), prior=[], seed=0)
    state = model.state_dict()
    assert set(state) == set(start)
    assert not any(key.startswith("_module.") for key in state)
    assert all(not torch.equal(state[key], start[key]) for key in start)
    for module in model.modules():
        assert not module._forward_hooks
        assert not module._backward_hooks
        assert not hasattr(module, "activations")
    for parameter in model.parameters():
        assert parameter.grad is None
        assert not hasattr(parameter, "grad_sample")
    # It trains without privacy as any module does (no hooks left to get in the way).
    assert math.isfinite(
        train_plain(model, x, y, batch_size=32, local_epochs=1, learning_rate=0.1, seed=0)
    )


def test_same_seed_same_round_other_seed_other_noise() -> None:
    x, y = separable(400)
    runs = []
    for seed in (4, 4, 5):
        model = build_model("mlp", SHAPES["mlp"], seed=0)
        result = train_dp(model, x, y, settings(), prior=[], seed=seed)
        runs.append((result, model.state_dict()))
    (first, first_state), (again, again_state), (other, other_state) = runs
    assert first == again
    assert all(torch.equal(first_state[key], again_state[key]) for key in first_state)
    assert any(not torch.equal(first_state[key], other_state[key]) for key in first_state)
    assert first.samples_used != other.samples_used or first.mean_loss != other.mean_loss


def test_fedprox_keeps_the_local_model_near_the_global_one_at_no_privacy_cost() -> None:
    x, y = separable(400)

    def drift(mu: float) -> tuple[float, DPRoundResult]:
        model = build_model("mlp", SHAPES["mlp"], seed=0)
        start = [p.detach().clone() for p in model.parameters()]
        result = train_dp(model, x, y, settings(proximal_mu=mu, local_epochs=3), prior=[], seed=4)
        moved = sum(
            float((p.detach() - s).norm() ** 2)
            for p, s in zip(model.parameters(), start, strict=True)
        )
        return math.sqrt(moved), result

    free, plain = drift(0.0)
    held, proximal = drift(1.0)
    assert held < 0.8 * free, (held, free)
    # Same data drawn, same noise, same mechanism: the proximal term costs no ε.
    assert proximal.mechanism == plain.mechanism
    assert proximal.epsilon_total == plain.epsilon_total
    assert proximal.samples_used == plain.samples_used


# -- refusals ---------------------------------------------------------------------------


def test_nan_features_are_refused_before_training() -> None:
    x, y = separable(200)
    x[17, 3] = math.nan
    model = build_model("logistic-regression", SHAPES["logistic-regression"])
    start = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(TrainingError, match="NaN") as caught:
        train_dp(model, x, y, settings(), prior=[], seed=0)
    assert caught.value.field == "features"
    with pytest.raises(TrainingError, match="NaN"):
        train_plain(model, x, y, batch_size=32, local_epochs=1, learning_rate=0.1, seed=0)
    assert all(torch.equal(model.state_dict()[key], start[key]) for key in start)


def test_a_loss_that_overflows_stops_the_round_and_restores_the_model() -> None:
    x, y = separable(200)
    x *= 3e37  # finite, but the logits overflow to infinity
    model = build_model("logistic-regression", SHAPES["logistic-regression"])
    start = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(NonFiniteLoss, match="loss"):
        train_dp(model, x, y, settings(), prior=[], seed=0)
    assert all(torch.equal(model.state_dict()[key], start[key]) for key in start)
    assert all(not hasattr(p, "grad_sample") for p in model.parameters())


def test_labels_and_settings_are_checked_with_the_field_named() -> None:
    x, y = separable(100)
    model = build_model("logistic-regression", SHAPES["logistic-regression"])
    with pytest.raises(TrainingError, match=r"\[0, 2\)") as labels:
        train_dp(model, x, y + 1, settings(), prior=[], seed=0)
    assert labels.value.field == "labels"
    with pytest.raises(TrainingError, match="same number of rows"):
        train_dp(model, x, y[:50], settings(), prior=[], seed=0)
    with pytest.raises(TrainingError, match="noise_multiplier") as noise:
        settings(noise_multiplier=0.0)
    assert noise.value.field == "noise_multiplier"
    with pytest.raises(TrainingError, match="delta"):
        settings(delta=1.0)
    with pytest.raises(TrainingError, match="batch_size"):
        settings(batch_size=0)
    with pytest.raises(TrainingError, match="proximal_mu") as mu:
        settings(proximal_mu=-0.1)
    assert mu.value.field == "proximal_mu"
    with pytest.raises(TrainingError, match="overshoots"):
        settings(proximal_mu=4.0, learning_rate=0.5)


def test_a_round_that_strays_from_its_plan_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import privacy.dp_training as dp_training

    x, y = separable(500)
    honest = plan_round(500, 64, 1)
    wrong = dp_training.RoundPlan(
        honest.sample_rate, honest.steps + 1, honest.steps_per_epoch, honest.poisson_rate
    )
    monkeypatch.setattr(dp_training, "plan_round", lambda *_args: wrong)
    model = build_model("logistic-regression", SHAPES["logistic-regression"])
    start = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(dp_training.TrainingMismatch, match="promised") as caught:
        train_dp(model, x, y, settings(), prior=[], seed=0)
    assert caught.value.field == "steps"
    assert all(torch.equal(model.state_dict()[key], start[key]) for key in start)
