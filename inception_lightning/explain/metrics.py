"""Attribution metrics: pointing game, energy pointing game, deletion and insertion AUC.

Every function is batched: maps are `[N, H, W]` at the input resolution, masks `[N, H, W]`
booleans, and results are per-image tensors `[N]` on the maps' device; average them for a
score. A map that is zero everywhere (`attribution.empty_maps`) points nowhere: the pointing
games give it NaN, so that averages (`nanmean`) leave it out and reports count it as empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inception_lightning.explain.attribution import empty_maps, eval_mode


def boxes_to_masks(boxes: Tensor | Sequence[Sequence[int]], size: tuple[int, int]) -> Tensor:
    """Boolean masks `[N, H, W]` from boxes `[N, 4]` given as pixel `(x0, y0, x1, y1)`, x1/y1
    exclusive."""
    boxes = torch.as_tensor(boxes, dtype=torch.long).reshape(-1, 4)
    ys = torch.arange(size[0], device=boxes.device).view(1, -1, 1)
    xs = torch.arange(size[1], device=boxes.device).view(1, 1, -1)
    x0, y0, x1, y1 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)


def scaled_tolerance(height: int, width: int) -> int:
    """Zhang et al.'s 15 px tolerance (at 224 px inputs) scaled to an image of this size."""
    return round(15 * min(height, width) / 224)


def pointing_game(maps: Tensor, masks: Tensor, tolerance: int | None = None) -> Tensor:
    """Hits of the pointing game (Zhang et al. 2016, "Top-down neural attention by excitation
    backprop", sect. 5.1): 1.0 when the map's maximum lies within `tolerance` pixels
    (Euclidean) of the object mask, else 0.0; NaN for an empty map. Higher is better.

    Ties for the maximum go to the first in raster order (`argmax`).

    Args:
        maps: `[N, H, W]` attribution maps.
        masks: `[N, H, W]` object masks.
        tolerance: in pixels; None scales the paper's 15 px at 224 px to the map's size
            (5 px at 79 px), so that small images do not make hits nearly free.
    """
    _check(maps, masks)
    n, h, w = maps.shape
    tolerance = scaled_tolerance(h, w) if tolerance is None else tolerance
    flat = maps.reshape(n, -1).argmax(dim=1)
    py, px = (flat // w).view(-1, 1, 1), (flat % w).view(-1, 1, 1)
    ys = torch.arange(h, device=maps.device).view(1, -1, 1)
    xs = torch.arange(w, device=maps.device).view(1, 1, -1)
    disc = (ys - py) ** 2 + (xs - px) ** 2 <= tolerance**2
    hits = (disc & masks.to(maps.device).bool()).flatten(1).any(dim=1).float()
    return hits.masked_fill(empty_maps(maps), float("nan"))


def energy_pointing_game(maps: Tensor, masks: Tensor) -> Tensor:
    """Share of the map's positive energy inside the mask (Wang et al. 2020, Score-CAM,
    sect. 5.2): `sum(relu(map) * mask) / sum(relu(map))`; NaN for an empty map, 0.0 for a
    map with no positive value. Higher is better; a uniform map scores the mask's area fraction.
    """
    _check(maps, masks)
    positive = maps.clamp(min=0).flatten(1)
    inside = (positive * masks.to(maps.device).flatten(1)).sum(dim=1)
    total = positive.sum(dim=1)
    share = torch.where(total > 0, inside / total.clamp(min=torch.finfo(total.dtype).tiny), 0.0)
    return share.masked_fill(empty_maps(maps), float("nan"))


def deletion_auc(
    model: nn.Module,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor | Sequence[int],
    steps: int = 16,
    baseline: float = 0.0,
) -> Tensor:
    """Deletion AUC (Petsiuk et al. 2018, RISE, sect. 4.1). Lower is better; NaN for an
    empty map, which orders no pixel.

    Pixels are set to `baseline` (all channels), most salient first, in `steps` equal steps;
    the curve is the softmax probability of the target after each step, from the intact image
    (x=0) to the fully deleted one (x=1), integrated with the trapezoid rule.

    Args:
        model: maps images to logits; run in eval mode, without gradients.
        inputs: images `[N, C, H, W]`.
        maps: `[N, H, W]` saliency that orders the pixels (ties: raster order).
        targets: the class explained, one per image.
        steps: number of deletion steps; RISE uses one per 224 pixels.
        baseline: value of a deleted pixel (RISE: 0, the dataset mean after normalisation).
    """
    curve = deletion_curve(model, inputs, maps, targets, steps, baseline)
    return auc(curve).masked_fill(empty_maps(maps.to(curve.device)), float("nan"))


def insertion_auc(
    model: nn.Module,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor | Sequence[int],
    steps: int = 16,
    substrate: Tensor | None = None,
) -> Tensor:
    """Insertion AUC (Petsiuk et al. 2018, RISE, sect. 4.1). Higher is better; NaN for an
    empty map.

    Pixels of the image are pasted, most salient first, onto `substrate` in `steps` equal
    steps; the curve runs from the substrate (x=0) to the intact image (x=1).

    Args:
        model: maps images to logits; run in eval mode, without gradients.
        inputs: images `[N, C, H, W]`.
        maps: `[N, H, W]` saliency that orders the pixels (ties: raster order).
        targets: the class explained, one per image.
        steps: number of insertion steps.
        substrate: start images; None takes RISE's Gaussian blur (kernel 11, sigma 5).
    """
    curve = insertion_curve(model, inputs, maps, targets, steps, substrate)
    return auc(curve).masked_fill(empty_maps(maps.to(curve.device)), float("nan"))


def deletion_curve(
    model: nn.Module,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor | Sequence[int],
    steps: int = 16,
    baseline: float = 0.0,
    intact: Tensor | None = None,
) -> Tensor:
    """The curves `[N, steps + 1]` under `deletion_auc` (same arguments), empty maps' too;
    `intact`: see `perturbation_curve`."""
    end = torch.full_like(inputs, baseline)
    return perturbation_curve(model, inputs, end, maps, targets, steps, intact=intact)


def insertion_curve(
    model: nn.Module,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor | Sequence[int],
    steps: int = 16,
    substrate: Tensor | None = None,
    intact: Tensor | None = None,
) -> Tensor:
    """The curves `[N, steps + 1]` under `insertion_auc` (same arguments), empty maps' too;
    `intact`: see `perturbation_curve`."""
    start = blur(inputs) if substrate is None else substrate
    return perturbation_curve(model, inputs, start, maps, targets, steps, True, intact)


def perturbation_curve(
    model: nn.Module,
    inputs: Tensor,
    other: Tensor,
    maps: Tensor,
    targets: Tensor | Sequence[int],
    steps: int,
    insert: bool = False,
    intact: Tensor | None = None,
) -> Tensor:
    """Target probabilities `[N, steps + 1]` as pixels move, most salient first.

    Deletion (`insert=False`) moves pixels of `inputs` to `other`; insertion moves pixels of
    `other` to `inputs`. After step k, the first `round(k * H * W / steps)` pixels have moved.
    `intact`, the target's probability `[N]` on `inputs` when already known (the explainer's
    predictions), saves the forward pass of the curve's intact end.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    n, _, h, w = inputs.shape
    if maps.shape != (n, h, w):
        raise ValueError(f"maps must be {(n, h, w)}, got {tuple(maps.shape)}")
    device = next(model.parameters()).device
    inputs, other = inputs.to(device), other.to(device)
    targets = torch.as_tensor(targets, dtype=torch.long, device=device).view(-1, 1)
    order = maps.to(device).reshape(n, -1).argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(h * w, device=device).expand(n, -1)
    rank = torch.empty_like(order).scatter_(1, order, positions).view(n, 1, h, w)
    curve = []
    with torch.no_grad(), eval_mode(model):
        for k in range(steps + 1):
            if intact is not None and k == (steps if insert else 0):
                curve.append(intact.to(device).float())
                continue
            moved = rank < round(k * h * w / steps)
            x = torch.where(moved, inputs, other) if insert else torch.where(moved, other, inputs)
            probs = model(x).float().softmax(dim=1)
            curve.append(probs.gather(1, targets)[:, 0])
    return torch.stack(curve, dim=1)


def auc(curve: Tensor) -> Tensor:
    """Trapezoid area under curves `[N, K]` sampled evenly on [0, 1]."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def blur(images: Tensor, kernel: int = 11, sigma: float = 5.0) -> Tensor:
    """Gaussian blur of `[N, C, H, W]` images, per channel, reflect-padded."""
    half = kernel // 2
    t = torch.arange(kernel, device=images.device, dtype=images.dtype) - half
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    c = images.shape[1]
    mode = "reflect" if min(images.shape[-2:]) > half else "replicate"
    x = F.pad(images, (half, half, half, half), mode=mode)
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _check(maps: Tensor, masks: Tensor) -> None:
    if maps.dim() != 3 or maps.shape != masks.shape:
        raise ValueError(
            f"maps and masks must both be [N, H, W], got {tuple(maps.shape)} and "
            f"{tuple(masks.shape)}"
        )
