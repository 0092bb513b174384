"""The registry of vetted model architectures a buyer may train on creators' data.

Buyers never ship code to a data host: they pick one of these names and set its
hyper-parameters. Every architecture here uses only layers Opacus can train with per-sample
gradients (no BatchNorm; GroupNorm instead), so each can be trained with DP-SGD. This
module names and describes them; it must not import torch (the coordinator, which only
validates jobs, imports it cheaply).
"""

from __future__ import annotations

from dataclasses import dataclass

from privacy.errors import PrivacyError

#: The kinds of data a dataset can hold, as the catalog classifies them.
MODALITIES = ("tabular", "image", "text")


class UnknownModel(PrivacyError):
    """A model name that is not in the registry."""


@dataclass(frozen=True)
class VettedModel:
    """One architecture: its registry name, what it is, and the data it can learn from."""

    name: str
    title: str
    modalities: tuple[str, ...]
    description: str

    def to_dict(self) -> dict[str, object]:
        """JSON form for the API and the CLI."""
        return {
            "name": self.name,
            "title": self.title,
            "modalities": list(self.modalities),
            "description": self.description,
        }


VETTED_MODELS: dict[str, VettedModel] = {
    model.name: model
    for model in (
        VettedModel(
            "logistic-regression",
            "Logistic regression",
            ("tabular",),
            "One linear layer over the numeric features; softmax over the label's classes.",
        ),
        VettedModel(
            "mlp",
            "Multi-layer perceptron",
            ("tabular",),
            "Two hidden layers (64, 32) with ReLU over the numeric features.",
        ),
        VettedModel(
            "cnn-small",
            "Small convolutional network",
            ("image",),
            "Two convolution blocks with GroupNorm and a linear head, for small images.",
        ),
        VettedModel(
            "text-small",
            "Small text classifier",
            ("text",),
            "Hashed token embeddings averaged into a linear head (no recurrent layers).",
        ),
    )
}


def vetted_model(name: str) -> VettedModel:
    """The registry entry for ``name``; the error lists the names there are."""
    try:
        return VETTED_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(VETTED_MODELS))
        raise UnknownModel(
            f"model {name!r} is not in the registry; choose one of: {known}"
        ) from None
