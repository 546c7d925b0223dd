"""`inception-lightning summary`: the per-stage table of a network."""

from __future__ import annotations

from inception_lightning.models import ModelName, Stem, create_model
from inception_lightning.models.stage_table import format_summary, summarize_stages


def summary(
    model: ModelName,
    input_size: int = 299,
    stem: Stem = 299,
    width: float = 1.0,
    num_classes: int = 1000,
    aux_head: bool | None = None,
) -> str:
    """Print per-stage output size, channels, parameters and multiply-adds of a network.

    Args:
        model: a registered network.
        input_size: the side of the square input, in pixels.
        stem: 299, or a low-resolution stem: 151, 79 (v3 paper sect. 9).
        width: channel multiplier.
        num_classes: classifier outputs.
        aux_head: attach the auxiliary classifier; null takes the paper's choice.
    """
    network = create_model(
        model, num_classes=num_classes, aux_head=aux_head, width=width, stem=stem
    )
    title = f"{model} at {input_size}x{input_size} (stem {stem})"
    return format_summary(summarize_stages(network, input_size), title)
