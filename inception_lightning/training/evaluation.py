"""Test-time evaluation: multi-crop (GoogLeNet paper sect. 10) and checkpoint ensembles.

Both average softmax probabilities.

144 crops: the image resized to 4 scales (shorter side 256, 288, 320 and 352 for a 224 crop,
here scaled to `crop_size`), 3 squares per scale (left, centre, right; top, centre, bottom for
portrait images), 6 crops per square (4 corners, centre, the whole square resized) and their
horizontal mirrors: 4 x 3 x 6 x 2 = 144.

12 crops: the same scheme at the first scale and the centre square only: 1 x 1 x 6 x 2. The
v3 and v4 papers report 12-crop results without defining them; this is the sub-scheme of the
144-crop one that has 12 views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from inception_lightning.models.registry import create_model

SCALE_RATIOS = (256 / 224, 288 / 224, 320 / 224, 352 / 224)
SCHEMES = (1, 12, 144)


def crop_views(images: Tensor, crop_size: int, crops: int) -> Iterator[Tensor]:
    """The views of a batch for the 12- or 144-crop scheme, each `[B, C, crop_size, crop_size]`.

    Args:
        images: `[B, C, H, W]`; larger than `crop_size` is best (they are resized anyway).
        crop_size: the network's input size.
        crops: 12 or 144.
    """
    if crops not in (12, 144):
        raise ValueError(f"crops must be 12 or 144, got {crops}")
    ratios = SCALE_RATIOS if crops == 144 else SCALE_RATIOS[:1]
    for ratio in ratios:
        scaled = _resize_shorter(images, round(crop_size * ratio))
        squares = _squares(scaled) if crops == 144 else _squares(scaled)[1:2]
        for square in squares:
            for view in _six_crops(square, crop_size):
                yield view
                yield view.flip(-1)


def average_probs(
    networks: Sequence[Callable[[Tensor], Tensor]],
    images: Tensor,
    crops: int = 1,
    crop_size: int = 299,
) -> Tensor:
    """Softmax averaged over the views of a crop scheme and over networks (an ensemble).

    Args:
        networks: classifiers returning logits; one network is a single model.
        images: `[B, C, H, W]`.
        crops: 1 (the images as given), 12 or 144.
        crop_size: the networks' input size, for 12 and 144 crops.

    Returns:
        `[B, num_classes]` probabilities.
    """
    if crops not in SCHEMES:
        raise ValueError(f"crops must be one of {SCHEMES}, got {crops}")
    total, count = None, 0
    views = [images] if crops == 1 else list(crop_views(images, crop_size, crops))
    for network in networks:
        for view in views:
            probs = network(view).float().softmax(dim=-1)
            total = probs if total is None else total + probs
            count += 1
    if total is None:
        raise ValueError("average_probs needs at least one network")
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


def _resize_shorter(images: Tensor, size: int) -> Tensor:
    height, width = images.shape[-2:]
    scale = size / min(height, width)
    out = (max(size, round(height * scale)), max(size, round(width * scale)))
    return F.interpolate(images, size=out, mode="bilinear", antialias=True, align_corners=False)


def _squares(images: Tensor) -> list[Tensor]:
    """Left, centre, right squares (top, centre, bottom when taller than wide)."""
    height, width = images.shape[-2:]
    side = min(height, width)
    offsets = (0, (max(height, width) - side) // 2, max(height, width) - side)
    if width >= height:
        return [images[..., :, o : o + side] for o in offsets]
    return [images[..., o : o + side, :] for o in offsets]


def _six_crops(square: Tensor, size: int) -> list[Tensor]:
    """Four corners, the centre, and the whole square resized to `size`."""
    side = square.shape[-1]
    far, mid = side - size, (side - size) // 2
    corners = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
    views = [square[..., y : y + size, x : x + size] for y, x in corners]
    whole = F.interpolate(
        square, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return [*views, whole]
