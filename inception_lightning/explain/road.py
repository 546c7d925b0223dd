"""ROAD: RemOve And Debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy
for Attribution Methods", ICML).

Deletion and insertion replace pixels by a constant or a blur, which the model never saw in
training: the score then partly measures how the model reacts to out-of-distribution inputs,
and MoRF and LeRF orders can rank methods differently. ROAD fills removed pixels by noisy
linear imputation (`imputation`), which leaks little of the removed region's shape, and reads
the model's probability of the target class:

- MoRF: remove the most relevant pixels first; a faithful map makes the probability fall fast
  (lower area is better);
- LeRF: remove the least relevant first; the probability should hold (higher is better);
- the combined score, `(LeRF - MoRF) / 2` averaged over the removal fractions (as
  pytorch-grad-cam's `ROADCombined`): above 0 when the map's top pixels matter more to the
  model than its bottom ones; a random ordering scores about 0. Higher is better.

Rong et al. report the accuracy on the imputed images; the probability of the target (as
pytorch-grad-cam) gives a score per image for the verdict's bootstrap. `RoadCurves` keeps both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from inception_lightning.explain.attribution import empty_maps, eval_mode, model_device
from inception_lightning.explain.explain_options import SanityOptions
from inception_lightning.explain.imputation import NOISE, noisy_linear_imputation
from inception_lightning.explain.sanity import synchronize
from inception_lightning.explain.verdict import CheckResult, Curve, bootstrap_verdict

FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Shares of the pixels removed (pytorch-grad-cam averages 0.1, 0.2, ..., 0.9; every other
one gives the same curve at half the imputations)."""


@dataclass(frozen=True)
class RoadCurves:
    """MoRF and LeRF curves of a batch: at `fractions[k]` of the pixels removed (0 first),
    the target's probability and whether it is still the top class.

    Args:
        fractions: `[K + 1]`, from 0.0 (the intact image).
        morf: target probabilities `[N, K + 1]`, most relevant pixels removed first.
        lerf: target probabilities `[N, K + 1]`, least relevant first.
        morf_hits: 1.0 where the target is still the top class, `[N, K + 1]`.
        lerf_hits: the same for LeRF.
        seconds: the time the imputations and forwards took.
    """

    fractions: list[float]
    morf: Tensor
    lerf: Tensor
    morf_hits: Tensor
    lerf_hits: Tensor
    seconds: float

    @property
    def combined(self) -> Tensor:
        """`(LeRF - MoRF) / 2` averaged over the removal fractions, per image `[N]`."""
        return ((self.lerf[:, 1:] - self.morf[:, 1:]) / 2).mean(dim=1)


def road_curves(
    model: nn.Module,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor | Sequence[int],
    fractions: Sequence[float] = FRACTIONS,
    noise: float = NOISE,
    seed: int = 0,
    batch_size: int = 32,
    intact: Tensor | None = None,
) -> RoadCurves:
    """ROAD's MoRF and LeRF curves; NaN rows for empty maps, which order no pixel.

    At fraction `f`, the `round(f * H * W)` pixels ranked first (MoRF: highest map value
    first; LeRF: lowest first; ties in raster order) are imputed in every channel.

    Args:
        model: maps images to logits; run in eval mode, without gradients (e.g. a
            `numerics.Bf16Forward`).
        inputs: images `[N, C, H, W]`.
        maps: `[N, H, W]` saliency that orders the pixels.
        targets: the class explained per image.
        fractions: shares of the pixels removed, each in (0, 1).
        noise: the imputation noise's standard deviation (model-input units).
        seed: seeds the noise.
        batch_size: images imputed and passed forward at once.
        intact: softmax probabilities `[N, C]` of the intact images, if known (the baseline
            forward the explainer already ran); else computed.
    """
    if not all(0 < f < 1 for f in fractions):
        raise ValueError(f"ROAD's fractions must lie in (0, 1), got {list(fractions)}")
    n, _, h, w = inputs.shape
    if maps.shape != (n, h, w):
        raise ValueError(f"maps must be {(n, h, w)}, got {tuple(maps.shape)}")
    device = model_device(model)
    start = time.perf_counter()
    inputs = inputs.to(device)
    targets = torch.as_tensor(targets, dtype=torch.long, device=device).view(-1)
    order = maps.to(device).reshape(n, -1).argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(h * w, device=device).expand(n, -1)
    rank = torch.empty_like(order).scatter_(1, order, positions).view(n, h, w)
    counts = [round(f * h * w) for f in fractions]
    removed = torch.stack(
        [rank < c for c in counts] + [rank >= h * w - c for c in counts]
    )  # [2K, N, H, W]: MoRF masks, then LeRF masks
    removed = removed.reshape(-1, h, w)
    which = torch.arange(len(removed), device=device) % n  # the image of each mask
    generator = torch.Generator(device=device).manual_seed(seed)
    chunks = []
    for begin in range(0, len(removed), batch_size):
        part = slice(begin, begin + batch_size)
        imputed = noisy_linear_imputation(inputs[which[part]], removed[part], noise, generator)
        chunks.append(_probabilities(model, imputed, batch_size))
    probs = torch.cat(chunks).view(2 * len(counts), n, -1)
    if intact is None:
        intact = _probabilities(model, inputs, batch_size)
    intact = intact.to(device)[None]
    k = len(fractions)
    morf = torch.cat([intact, probs[:k]]).permute(1, 0, 2)  # [N, K + 1, C]
    lerf = torch.cat([intact, probs[k:]]).permute(1, 0, 2)
    index = targets.view(-1, 1, 1).expand(-1, k + 1, 1)
    empty = empty_maps(maps.to(device))[:, None]
    synchronize(model)
    seconds = time.perf_counter() - start

    def target_prob(p: Tensor) -> Tensor:
        return p.gather(2, index)[..., 0].masked_fill(empty, float("nan")).cpu()

    def hits(p: Tensor) -> Tensor:
        top = (p.argmax(dim=2) == targets[:, None]).float()
        return top.masked_fill(empty, float("nan")).cpu()

    return RoadCurves(
        [0.0, *map(float, fractions)], target_prob(morf), target_prob(lerf), hits(morf),
        hits(lerf), seconds,
    )  # fmt: skip


def road_check(
    curves: RoadCurves, options: SanityOptions | None = None, seed: int = 0
) -> CheckResult:
    """ROAD's verdict: does the map rank the pixels the model needs first? Passes when the
    combined score's interval lies above 0 (a random ordering's score)."""
    options = options or SanityOptions()
    combined = curves.combined
    verdict = bootstrap_verdict(
        combined, 0.0, True, options.confidence, min_images=options.min_samples, seed=seed
    )
    return CheckResult(
        name="road",
        statistic="(LeRF - MoRF) / 2, target probability, mean over removal fractions",
        scores=[float(v) for v in combined],
        verdict=verdict,
        seconds_per_image=curves.seconds / max(1, len(combined)),
        curve=Curve(
            x=curves.fractions,
            y=[float(v) for v in (curves.lerf - curves.morf).nanmean(dim=0) / 2],
            xlabel="share of the pixels removed",
            ylabel="(LeRF - MoRF) / 2",
        ),
        details={"fractions": curves.fractions[1:]},
    )


def _probabilities(model: nn.Module, images: Tensor, batch_size: int) -> Tensor:
    """Softmax probabilities `[N, C]` in batches, in eval mode without gradients."""
    out = []
    with torch.no_grad(), eval_mode(model):
        for begin in range(0, len(images), batch_size):
            out.append(model(images[begin : begin + batch_size]).float().softmax(dim=1))
    return torch.cat(out)
