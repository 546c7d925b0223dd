"""How alike two sets of maps are, and how complex one map is.

The randomisation checks compare a method's maps on the trained model with its maps on a
randomised copy. Binder et al. 2022 and Hedström et al. 2023 showed that taking absolute values
and normalising the maps before comparing them hides differences, so every measure here takes
the maps as the method gives them:

- `rank_correlation`: Spearman's rank correlation (scale-free: the maps' ranks only);
- `map_ssim`: SSIM on both maps' joint value range (a map that shrank to a tenth of its
  magnitude is not "the same map");
- `complexity_rise`: eMPRT's measure (Hedström et al. 2023, sect. 4.2): how much more complex
  (entropy of a 100-bin histogram) the second map is than the first.

Each returns one value per pair of maps `[N]`. `SIMILARITIES` names them for the options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

COMPLEXITY_BINS = 100
SimilarityName = Literal["spearman", "ssim", "complexity"]


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of each pair of maps `[N, H, W]` -> `[N]`; ties share their
    mean rank, and a constant map correlates 0 with anything.

    torchmetrics' `spearman_corrcoef` sums tied ranks in int32, which overflows on maps of
    more than ~65k pixels with large zero areas (299 px ReLU maps): ranks come out negative.
    These ranks are float64.
    """
    ra, rb = _ranks(a.flatten(1)), _ranks(b.flatten(1))
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    norm = ra.norm(dim=1) * rb.norm(dim=1)
    return torch.where(norm > 0, (ra * rb).sum(dim=1) / norm.clamp(min=1e-300), 0.0).float()


def map_ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM (torchmetrics: Gaussian 11x11 window, sigma 1.5) of each pair of maps
    `[N, H, W]` -> `[N]`, with the pair's joint value range as the data range (as Quantus's
    `ssim`); two equal constant maps score 1.

    Quantus flattens the maps and runs scikit-image's 7-pixel window along the row order; this
    keeps the image's two dimensions, as Wang et al. 2004 define SSIM.
    """
    a, b = a.double(), b.double()
    both = torch.cat([a.flatten(1), b.flatten(1)], dim=1)
    low, span = both.amin(dim=1), both.amax(dim=1) - both.amin(dim=1)
    scale = torch.where(span > 0, span, 1.0).view(-1, 1, 1)
    shift = low.view(-1, 1, 1)
    # SSIM with data range L equals SSIM of the maps divided by L with range 1 (its constants
    # scale with L^2); dividing keeps one call for maps of different ranges.
    ssim = structural_similarity_index_measure(
        ((a - shift) / scale)[:, None], ((b - shift) / scale)[:, None], data_range=1.0,
        reduction="none",
    )  # fmt: skip
    return ssim.float()


def complexity(maps: Tensor, bins: int = COMPLEXITY_BINS) -> Tensor:
    """The entropy (nats) of each map's histogram of `bins` equal bins between its smallest and
    largest value, `[N, H, W]` -> `[N]` (Hedström et al. 2023's H; Quantus's
    `discrete_entropy`); 0 for a constant map."""
    flat = maps.flatten(1).double()
    low = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - low
    index = ((flat - low) / span.clamp(min=1e-300) * bins).floor().clamp(0, bins - 1).long()
    counts = torch.zeros(len(flat), bins, dtype=torch.float64, device=maps.device)
    counts.scatter_add_(1, index, torch.ones_like(flat))
    share = counts / counts.sum(dim=1, keepdim=True)
    entropy = -(share * share.clamp(min=1e-300).log()).sum(dim=1)
    return torch.where(span[:, 0] > 0, entropy, 0.0).float()


def complexity_rise(a: Tensor, b: Tensor, bins: int = COMPLEXITY_BINS) -> Tensor:
    """The relative rise in complexity from the maps `a` to the maps `b`,
    `(H(b) - H(a)) / H(a)` per pair `[N]`: eMPRT's score (Hedström et al. 2023, eq. 6).
    NaN where `a` is constant (H(a) = 0: no complexity to rise from)."""
    before, after = complexity(a, bins), complexity(b, bins)
    return torch.where(before > 0, (after - before) / before.clamp(min=1e-30), float("nan"))


@dataclass(frozen=True)
class Similarity:
    """A way to compare pairs of maps, for the randomisation checks.

    Args:
        name: its option value.
        measure: `(maps_a, maps_b) -> [N]`.
        higher_passes: True when a higher value is the wanted outcome of randomisation
            (a rise in complexity); False for similarities, which should fall.
        threshold: the default pass threshold on the mean over images.
        label: for axes and tables.
    """

    name: str
    measure: Callable[[Tensor, Tensor], Tensor]
    higher_passes: bool
    threshold: float
    label: str


SIMILARITIES: dict[str, Similarity] = {
    s.name: s
    for s in (
        # Adebayo et al.'s reading of rank correlations: below 0.5 the ranking has changed
        Similarity("spearman", rank_correlation, False, 0.5, "rank correlation"),
        Similarity("ssim", map_ssim, False, 0.5, "SSIM"),
        # a map that tracks the model turns noisier (more complex) when the model is random;
        # Hedström et al. read eMPRT > 0 as a pass; a 5% rise keeps sampling noise out
        Similarity("complexity", complexity_rise, True, 0.05, "complexity rise"),
    )
}


def similarity(name: str) -> Similarity:
    """The similarity called `name`, with a clear error for an unknown one."""
    if name not in SIMILARITIES:
        raise ValueError(f"unknown similarity {name!r}; choose from {list(SIMILARITIES)}")
    return SIMILARITIES[name]


def _ranks(x: Tensor) -> Tensor:
    """Ranks `1..P` of each row of `x` `[N, P]` as float64, ties averaged."""
    n, p = x.shape
    positions = torch.arange(1, p + 1, dtype=torch.float64, device=x.device).expand(n, -1)
    ranks = torch.empty(n, p, dtype=torch.float64, device=x.device)
    ranks.scatter_(1, x.argsort(dim=1, stable=True), positions)
    rows = []
    for row, rank in zip(x, ranks, strict=True):
        _, inverse, counts = torch.unique(row, return_inverse=True, return_counts=True)
        sums = torch.zeros(len(counts), dtype=torch.float64, device=x.device)
        rows.append((sums.scatter_add_(0, inverse, rank) / counts)[inverse])
    return torch.stack(rows)
