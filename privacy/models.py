"""The torch modules behind the registry's vetted architectures (``privacy.model_registry``).

``build_model`` turns a registry name and the shape of a dataset into a freshly initialised
``torch.nn.Module`` that Opacus can train with DP-SGD: no BatchNorm (GroupNorm instead), no
buffers, nothing ``ModuleValidator`` refuses. Initialisation depends only on the seed, so
every data host of a job that builds the same name, shape and seed starts from bit-identical
weights. This module builds models; it never trains them, reads data, or accepts code from a
buyer. It and ``privacy.dp_training`` are the only modules of ``privacy`` that import torch
(and Opacus, whose per-example samplers it extends for ``TokenEmbedding``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from privacy.errors import PrivacyError
from privacy.model_registry import VettedModel, vetted_model

#: Hashed token buckets of ``text-small``: text inputs are int64 token ids in [0, TEXT_VOCAB).
TEXT_VOCAB: int = 4096
#: The token id ``text-small`` treats as padding (left out of the average).
TEXT_PADDING_ID: int = 0
#: Width of ``text-small``'s token embeddings.
TEXT_EMBEDDING_DIM: int = 64
#: ``mlp``'s hidden layer widths, as the registry describes it.
MLP_HIDDEN: tuple[int, int] = (64, 32)
#: ``cnn-small``'s convolution channels, GroupNorm groups and pooled feature-map side.
CNN_CHANNELS: tuple[int, int] = (16, 32)
CNN_GROUPS: tuple[int, int] = (4, 8)
CNN_POOLED_SIDE: int = 4

#: Bounds on a dataset's shape: they keep a malformed listing from building a huge model.
MAX_FEATURES = 100_000
MAX_CLASSES = 10_000
MAX_CHANNELS = 16
MIN_IMAGE_SIDE = 4
MAX_IMAGE_SIDE = 1024
MAX_SEQUENCE_LENGTH = 8192

#: The input rank each modality's models take (batch dimension excluded).
_RANK = {"tabular": 1, "image": 3, "text": 1}
_SHAPE_HINT = {
    "tabular": "num_features,",
    "image": "channels, height, width",
    "text": "sequence_length,",
}


class ModelShapeError(PrivacyError):
    """A model cannot be built for this data: a bad shape or a modality the model lacks.

    ``field`` names what is wrong (``"input_shape"``, ``"num_classes"``, ``"modality"``).
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelShape:
    """What the data looks like to a model, one example at a time.

    ``input_shape`` is ``(num_features,)`` for tabular data, ``(channels, height, width)``
    for images and ``(sequence_length,)`` of int64 token ids below ``TEXT_VOCAB`` for text;
    ``num_classes`` (at least 2) is the number of label values. Construction checks that
    every number is a positive integer within bounds; whether the rank fits a model's
    modality is checked by ``build_model``.
    """

    input_shape: tuple[int, ...]
    num_classes: int

    def __post_init__(self) -> None:
        shape = self.input_shape
        if not isinstance(shape, tuple) or not shape or not all(_is_int(d) for d in shape):
            raise ModelShapeError(
                f"input_shape must be a non-empty tuple of integers, got {shape!r}",
                field="input_shape",
            )
        if any(d < 1 for d in shape):
            raise ModelShapeError(
                f"input_shape must have every dimension >= 1, got {shape!r}", field="input_shape"
            )
        classes = self.num_classes
        if not _is_int(classes) or not 2 <= classes <= MAX_CLASSES:
            raise ModelShapeError(
                f"num_classes must be an integer from 2 to {MAX_CLASSES}, got {classes!r}",
                field="num_classes",
            )


class LogisticRegression(nn.Module):
    """``logistic-regression``: one linear layer from the features to the class logits."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        """Logits of shape ``(batch, num_classes)`` for ``features`` of ``(batch, features)``."""
        logits: Tensor = self.linear(features)
        return logits


class MLP(nn.Module):
    """``mlp``: two hidden layers (``MLP_HIDDEN``) with ReLU, then a linear head."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        first, second = MLP_HIDDEN
        self.layers = nn.Sequential(
            nn.Linear(num_features, first),
            nn.ReLU(),
            nn.Linear(first, second),
            nn.ReLU(),
            nn.Linear(second, num_classes),
        )

    def forward(self, features: Tensor) -> Tensor:
        """Logits of shape ``(batch, num_classes)`` for ``features`` of ``(batch, features)``."""
        logits: Tensor = self.layers(features)
        return logits


class SmallCNN(nn.Module):
    """``cnn-small``: two conv blocks (3x3 conv, GroupNorm, ReLU, 2x2 max-pool) and a head.

    The feature map is average-pooled to ``CNN_POOLED_SIDE`` square before the linear head,
    so the head's size does not grow with the image.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        first, second = CNN_CHANNELS
        first_groups, second_groups = CNN_GROUPS
        self.features = nn.Sequential(
            nn.Conv2d(channels, first, kernel_size=3, padding=1),
            nn.GroupNorm(first_groups, first),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, kernel_size=3, padding=1),
            nn.GroupNorm(second_groups, second),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(CNN_POOLED_SIDE),
            nn.Flatten(),
        )
        self.head = nn.Linear(second * CNN_POOLED_SIDE * CNN_POOLED_SIDE, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """Logits of shape ``(batch, num_classes)`` for ``images`` of ``(batch, C, H, W)``."""
        logits: Tensor = self.head(self.features(images))
        return logits


class TokenEmbedding(nn.Embedding):
    """``text-small``'s token table: an ``nn.Embedding`` with Opacus samplers of its own.

    It behaves exactly as ``nn.Embedding``. It is a type of its own so that the faster
    ghost-clipping norm sampler below serves this layer only, leaving Opacus's
    registration for every other ``nn.Embedding`` in the process as it is.
    """


def token_embedding_norm_sample(
    layer: nn.Embedding, activations: list[Tensor], backprops: Tensor
) -> dict[Tensor, Tensor]:
    """Per-example gradient norms of an embedding table, for Opacus's ghost clipping.

    The same algorithm and result as Opacus 1.6's ``compute_embedding_norm_sample``
    (sum each example's output gradients per distinct token, then the norm over those
    sums), but the (example, token) pairs are found with a 1-d ``torch.unique`` over
    ``example * vocabulary + token`` instead of ``torch.unique(dim=0)`` over pairs, which
    on CPU costs about 4 ms per batch of 64 x 64 tokens (half of a whole DP step). Unlike
    Opacus's, it also takes the empty batches Poisson sampling draws now and then.
    """
    ids = activations[0]
    rows, columns = ids.shape[0], math.prod(ids.shape[1:])
    tokens = ids.reshape(rows, columns)  # explicit sizes: -1 is ambiguous for an empty batch
    gradients = backprops.reshape(rows * columns, backprops.shape[-1])
    example = torch.arange(rows, device=tokens.device).repeat_interleave(columns)
    keys = example * layer.num_embeddings + tokens.reshape(-1)
    pairs, position = torch.unique(keys, return_inverse=True)
    summed = torch.zeros(
        len(pairs), gradients.shape[-1], device=gradients.device, dtype=gradients.dtype
    ).index_add_(0, position, gradients)
    squared = torch.zeros(rows, device=gradients.device, dtype=gradients.dtype).scatter_add_(
        0, torch.div(pairs, layer.num_embeddings, rounding_mode="floor"), (summed * summed).sum(1)
    )
    return {layer.weight: squared.sqrt()}


def _register_opacus_samplers() -> None:
    """Teach Opacus ``TokenEmbedding``: its norm sampler above, Opacus's own grad sampler.

    Opacus looks samplers up by exact type, so without this a subclass would fall back to
    functorch per-example gradients in either mode.
    """
    from opacus.grad_sample import register_grad_sampler, register_norm_sampler
    from opacus.grad_sample.embedding import compute_embedding_grad_sample

    register_grad_sampler(TokenEmbedding)(compute_embedding_grad_sample)
    register_norm_sampler(TokenEmbedding)(token_embedding_norm_sample)


_register_opacus_samplers()


class SmallTextClassifier(nn.Module):
    """``text-small``: hashed token embeddings, averaged over non-padding tokens, and a head.

    Tokens equal to ``TEXT_PADDING_ID`` are left out of the average (a sequence of padding
    alone averages to zeros). The padding row of the embedding gets no gradient, because
    its positions are masked (no ``padding_idx``, so Opacus's per-example norms and the
    gradient autograd computes are of the same function).
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.embedding = TokenEmbedding(TEXT_VOCAB, TEXT_EMBEDDING_DIM)
        self.head = nn.Linear(TEXT_EMBEDDING_DIM, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        """Logits of shape ``(batch, num_classes)`` for int64 ``tokens`` of ``(batch, length)``."""
        mask = (tokens != TEXT_PADDING_ID).unsqueeze(-1).to(self.head.weight.dtype)
        summed = (self.embedding(tokens) * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1.0)
        logits: Tensor = self.head(summed / counts)
        return logits


def _tabular_features(name: str, shape: ModelShape) -> int:
    (features,) = shape.input_shape
    if features > MAX_FEATURES:
        raise ModelShapeError(
            f"{name} takes at most {MAX_FEATURES} features, got input_shape {shape.input_shape}",
            field="input_shape",
        )
    return features


def _build_logistic_regression(shape: ModelShape) -> nn.Module:
    return LogisticRegression(_tabular_features("logistic-regression", shape), shape.num_classes)


def _build_mlp(shape: ModelShape) -> nn.Module:
    return MLP(_tabular_features("mlp", shape), shape.num_classes)


def _build_cnn_small(shape: ModelShape) -> nn.Module:
    channels, height, width = shape.input_shape
    if channels > MAX_CHANNELS:
        raise ModelShapeError(
            f"cnn-small takes at most {MAX_CHANNELS} channels, got input_shape "
            f"{shape.input_shape} (channels, height, width)",
            field="input_shape",
        )
    for side, size in (("height", height), ("width", width)):
        if not MIN_IMAGE_SIDE <= size <= MAX_IMAGE_SIDE:
            raise ModelShapeError(
                f"cnn-small takes images with {side} from {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE} "
                f"pixels, got input_shape {shape.input_shape} (channels, height, width)",
                field="input_shape",
            )
    return SmallCNN(channels, shape.num_classes)


def _build_text_small(shape: ModelShape) -> nn.Module:
    (length,) = shape.input_shape
    if length > MAX_SEQUENCE_LENGTH:
        raise ModelShapeError(
            f"text-small takes sequences of at most {MAX_SEQUENCE_LENGTH} tokens, "
            f"got input_shape {shape.input_shape}",
            field="input_shape",
        )
    return SmallTextClassifier(shape.num_classes)


_BUILDERS: dict[str, Callable[[ModelShape], nn.Module]] = {
    "logistic-regression": _build_logistic_regression,
    "mlp": _build_mlp,
    "cnn-small": _build_cnn_small,
    "text-small": _build_text_small,
}


def modality_of(entry: VettedModel, shape: ModelShape) -> str:
    """The modality of ``entry`` that data of ``shape`` fits, by input rank.

    Raises ``ModelShapeError`` (field ``input_shape``) when the rank fits none of the
    model's modalities: a 3-d image shape for ``mlp``, a 1-d shape for ``cnn-small``.
    """
    rank = len(shape.input_shape)
    for modality in entry.modalities:
        if _RANK[modality] == rank:
            return modality
    expected = " or ".join(
        f"{_RANK[m]}-d for {m} data ({_SHAPE_HINT[m]})" for m in entry.modalities
    )
    raise ModelShapeError(
        f"{entry.name} takes {expected}; got {rank}-d input_shape {shape.input_shape}",
        field="input_shape",
    )


def build_model(name: str, shape: ModelShape, *, seed: int = 0) -> nn.Module:
    """A freshly initialised module of the registry architecture ``name`` for ``shape``.

    The weights depend only on ``name``, ``shape`` and ``seed``: they are drawn from a
    forked torch RNG seeded with ``seed``, so the caller's global RNG is left untouched.
    The module is returned in training mode, on the CPU, in float32, and passes
    ``opacus.validators.ModuleValidator.validate(model, strict=True)``.

    Raises ``UnknownModel`` for a name the registry lacks, and ``ModelShapeError`` (whose
    ``field`` says which) for a shape that does not fit the model's modality or bounds,
    for a non-integer seed, or for a registry entry with no torch builder.
    """
    entry = vetted_model(name)
    if not isinstance(shape, ModelShape):
        raise ModelShapeError(
            f"shape must be a ModelShape, got {type(shape).__name__}", field="shape"
        )
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise ModelShapeError(
            f"seed must be an integer from 0 to 2**63 - 1, got {seed!r}", field="seed"
        )
    modality_of(entry, shape)
    builder = _BUILDERS.get(entry.name)
    if builder is None:
        raise ModelShapeError(
            f"model {entry.name!r} is in the registry but has no torch builder", field="model"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(shape)
    return model.train()


def check_features(name: str, shape: ModelShape, features: Tensor) -> None:
    """Check that ``features`` is a batch the model ``name`` built for ``shape`` can take.

    ``features`` must be ``(rows, *shape.input_shape)``: float32 (the models' dtype) and finite for
    tabular and image data, int64 token ids in ``[0, TEXT_VOCAB)`` for text. Raises
    ``UnknownModel`` or ``ModelShapeError`` (field ``features``) saying what is wrong.
    """
    entry = vetted_model(name)
    modality = modality_of(entry, shape)
    if not isinstance(features, Tensor):
        raise ModelShapeError(
            f"features must be a torch.Tensor, got {type(features).__name__}", field="features"
        )
    if tuple(features.shape[1:]) != shape.input_shape or features.dim() < 2:
        raise ModelShapeError(
            f"features must have shape (rows, {', '.join(map(str, shape.input_shape))}) for "
            f"{name}, got {tuple(features.shape)}",
            field="features",
        )
    if modality == "text":
        if features.dtype != torch.int64:
            raise ModelShapeError(
                f"text features must be int64 token ids, got {features.dtype}", field="features"
            )
        if features.numel() and (int(features.min()) < 0 or int(features.max()) >= TEXT_VOCAB):
            raise ModelShapeError(
                f"text token ids must be in [0, {TEXT_VOCAB}), got ids from "
                f"{int(features.min())} to {int(features.max())}",
                field="features",
            )
        return
    if features.dtype != torch.float32:
        raise ModelShapeError(
            f"{modality} features must be float32, got {features.dtype}",
            field="features",
        )
    if not bool(torch.isfinite(features).all()):
        raise ModelShapeError(f"{modality} features hold NaN or infinite values", field="features")
