"""Does a map depend on the model? Cascading model-parameter randomisation.

Adebayo et al. 2018, "Sanity Checks for Saliency Maps", sect. 3.1: on a copy of the network,
re-initialise the parameters from the output downwards, one unit at a time and cumulatively,
and compare each depth's maps with the trained network's maps. A method whose maps survive the
randomisation of the layers that make the decision explains the input, not the model.

Here the units are the classifier head, then the network's stages (`features` children: stem
layers and Inception blocks) from the last to the first, each re-initialised with its modules'
own `reset_parameters` (the network's initialisation; the paper draws from a truncated normal).
At each depth we measure, per image, the Spearman rank correlation and the SSIM between the
trained map and the randomised one, and average over the images.

The verdict: a method passes when the mean rank correlation has fallen below
`RANK_THRESHOLD` (0.5) once the head and the top `VERDICT_STAGES` (2) stages are random. By
then the class evidence the trained network computed is gone; a map that still ranks the
pixels as before (correlation >= 0.5, "moderately strong" on the usual reading) is driven by
the input or by the lower layers' edges. An edge detector scores 1.0 at every depth.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure

from inception_lightning.explain.attribution import Attribution, empty_maps
from inception_lightning.models.anatomy import anatomy_of

RANK_THRESHOLD = 0.5
VERDICT_STAGES = 2


@dataclass(frozen=True)
class RandomizationCurve:
    """The result of `cascading_randomization`, ready for JSON (`as_dict`).

    Args:
        method: the attribution's description.
        depths: at depth d, the units randomised so far end with `depths[d]` (head first).
        rank_correlation: mean Spearman rank correlation with the trained maps, per depth.
        ssim: mean SSIM with the trained maps, per depth.
        threshold: the pass threshold on the rank correlation.
        verdict_depth: the depth the verdict reads.
        images: images compared.
        empty: images left out because their trained map was empty.
    """

    method: str
    depths: list[str]
    rank_correlation: list[float]
    ssim: list[float]
    threshold: float
    verdict_depth: int
    images: int
    empty: int

    @property
    def verdict_correlation(self) -> float:
        """The mean rank correlation at the verdict depth (NaN when no image was compared)."""
        return self.rank_correlation[self.verdict_depth]

    @property
    def passed(self) -> bool:
        """Whether the correlation fell below the threshold at the verdict depth."""
        return self.verdict_correlation < self.threshold

    def as_dict(self) -> dict:
        """Fields plus `passed` and `verdict_correlation`, as plain Python values."""
        record = asdict(self)
        record.update(passed=self.passed, verdict_correlation=self.verdict_correlation)
        return record


def cascade_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The units to re-initialise, from the output down; only those with parameters.

    An Inception network (ours, timm's or torchvision's: see `models.anatomy`) gives its
    classifier head, then its stages from the last to the first; any other model gives its
    direct children in reverse registration order, which must then be the forward order.
    """
    anatomy = anatomy_of(model)
    if anatomy is not None:
        names = [*anatomy.heads[:1], *reversed(anatomy.stages.values())]
        units = [(name, model.get_submodule(name)) for name in names]
    else:
        units = list(reversed(list(model.named_children())))
    return [(name, unit) for name, unit in units if any(True for _ in unit.parameters())]


def reinitialize_(module: nn.Module) -> None:
    """Re-initialise every submodule that has `reset_parameters` (BatchNorm statistics too)."""
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()


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
    """SSIM (torchmetrics, Gaussian 11x11, sigma 1.5) of each pair of maps `[N, H, W]` -> `[N]`,
    on the maps' range: [0, 1], or [-1, 1] for signed maps."""
    data_range = 2.0 if bool((a < 0).any() or (b < 0).any()) else 1.0
    return structural_similarity_index_measure(
        a[:, None].float(), b[:, None].float(), data_range=data_range, reduction="none"
    )


def cascading_randomization(
    attribution: Attribution,
    inputs: Tensor,
    targets: Tensor | Sequence[int],
    threshold: float = RANK_THRESHOLD,
    verdict_stages: int = VERDICT_STAGES,
    max_depth: int | None = None,
    seed: int = 0,
) -> RandomizationCurve:
    """Randomise a copy of `attribution.model` from the head down and compare maps.

    The model itself is not changed; the global random state is restored afterwards.

    Args:
        attribution: the method on the trained model.
        inputs: images `[N, 3, H, W]`.
        targets: the class to explain for each image (the same for every depth).
        threshold: the pass threshold on the mean rank correlation.
        verdict_stages: stages randomised below the head when the verdict is read.
        max_depth: stop after this many units (None: down to the first layer).
        seed: seeds the re-initialisation.
    """
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    trained = attribution.attribute(inputs, targets).cpu()
    keep = ~empty_maps(trained)
    inputs, targets, trained = inputs[keep.to(inputs.device)], targets[keep], trained[keep]
    with torch.inference_mode(False):  # the copy's parameters must not be inference tensors
        randomized = copy.deepcopy(attribution.model)
    units = cascade_units(randomized)[:max_depth]
    if not units:
        raise ValueError(f"{type(randomized).__name__} has no parameters to randomise")
    on_copy = attribution.with_model(randomized)
    depths, rank, ssim = [], [], []
    devices = [p.device for p in randomized.parameters() if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for name, unit in units:
            with torch.inference_mode(False), torch.no_grad():
                reinitialize_(unit)
            depths.append(name)
            if len(trained) == 0:
                rank.append(float("nan"))
                ssim.append(float("nan"))
                continue
            maps = on_copy.attribute(inputs, targets).cpu()
            rank.append(float(rank_correlation(trained, maps).mean()))
            ssim.append(float(map_ssim(trained, maps).mean()))
    return RandomizationCurve(
        method=attribution.describe(),
        depths=depths,
        rank_correlation=rank,
        ssim=ssim,
        threshold=threshold,
        verdict_depth=min(verdict_stages, len(depths) - 1),
        images=int(keep.sum()),
        empty=int((~keep).sum()),
    )


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
