"""Test-time evaluation: softmax averaged over the views of an image and over checkpoints.

The views are those of the multi-crop schemes of the GoogLeNet paper (sect. 10), cut by the
data side (`data.multicrop`); here they are only averaged, one view at a time, so that memory
holds one view of the batch and its activations, however many views there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import Tensor, nn

from inception_lightning.models.registry import create_model


def average_probs(
    networks: Sequence[Callable[[Tensor], Tensor]], views: Iterable[Tensor]
) -> Tensor:
    """Softmax averaged over views and networks (an ensemble), one forward pass at a time.

    Args:
        networks: classifiers returning logits; one network is a single model.
        views: batches `[B, C, H, W]` of the same B images, e.g. their crops; iterated once.

    Returns:
        `[B, num_classes]` probabilities.
    """
    if not networks:
        raise ValueError("average_probs needs at least one network")
    total, count = None, 0
    for view in views:
        for network in networks:
            probs = network(view).float().softmax(dim=-1)
            total = probs if total is None else total.add_(probs)
            count += 1
    if total is None:
        raise ValueError("average_probs needs at least one view")
    return total / count


def load_ensemble(
    paths: Sequence[str], name: str, num_classes: int, model_kwargs: dict[str, Any]
) -> list[nn.Module]:
    """Networks of one architecture from checkpoints or state dicts, in eval mode, on the CPU.

    Lightning checkpoints give their `state_dict`: the EMA weights when the run kept them.
    """
    return [
        create_model(name, num_classes, checkpoint_path=path, **model_kwargs).eval()
        for path in paths
    ]
