"""The random-logit test (Sixt et al. 2020, "When Explanations Lie", sect. 6.2).

Explain each image once for its class and once for another class drawn at random, and compare
the two maps. A map that answers "why this class?" must change with the class; modified
backpropagation methods (guided backprop among them) return nearly the same picture for every
class, because their maps are dominated by the input and the lower layers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor

from inception_lightning.explain.attribution import Attribution
from inception_lightning.explain.explain_options import SanityOptions
from inception_lightning.explain.sanity import synchronize
from inception_lightning.explain.similarity import SIMILARITIES
from inception_lightning.explain.verdict import CheckResult, bootstrap_verdict


def other_classes(targets: Tensor, num_classes: int, seed: int = 0) -> Tensor:
    """For each target, a class drawn uniformly from the other `num_classes - 1`."""
    if num_classes < 2:
        raise ValueError(f"the random-logit test needs at least 2 classes, got {num_classes}")
    generator = torch.Generator().manual_seed(seed)
    offset = torch.randint(1, num_classes, (len(targets),), generator=generator)
    return (targets.cpu() + offset) % num_classes


def random_logit(
    attribution: Attribution,
    inputs: Tensor,
    targets: Tensor | Sequence[int],
    num_classes: int,
    options: SanityOptions | None = None,
    seed: int = 0,
    trained: Tensor | None = None,
    others: Tensor | None = None,
) -> CheckResult:
    """Compare each image's map of its class with its map of a random other class.

    The similarity is the options' one when it compares maps (Spearman or SSIM); with
    "complexity", which measures a model's randomisation, Spearman is used.

    Args:
        attribution: the method.
        inputs: images `[N, 3, H, W]`.
        targets: the class explained per image.
        num_classes: the classes the model tells apart.
        options: similarity, threshold and verdict settings.
        seed: seeds the other classes and the bootstrap.
        trained: the maps of `targets` (un-normalised), if already computed.
        others: the other class per image; None: `other_classes(targets, num_classes, seed)`.
    """
    options = options or SanityOptions()
    measure, threshold = options.measure, options.pass_threshold
    if measure.higher_passes:  # the complexity rise measures a model's randomisation
        measure = SIMILARITIES["spearman"]
        threshold = measure.threshold
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if trained is None:
        trained = attribution.attribute(inputs, targets, normalize=False).cpu()
    others = other_classes(targets, num_classes, seed) if others is None else others
    start = time.perf_counter()
    maps = attribution.attribute(inputs, others, normalize=False).cpu()
    synchronize(attribution.model)
    seconds = time.perf_counter() - start
    empty = (trained == 0).flatten(1).all(dim=1)
    scores = measure.measure(trained, maps).masked_fill(empty, float("nan"))
    verdict = bootstrap_verdict(
        scores,
        threshold,
        measure.higher_passes,
        options.confidence,
        min_images=options.min_samples,
        seed=seed,
    )
    return CheckResult(
        name="random_logit",
        statistic=f"{measure.label}, map of the class vs of a random other class",
        scores=[float(v) for v in scores],
        verdict=verdict,
        seconds_per_image=seconds / max(1, len(targets)),
        details={"similarity": measure.name, "method": attribution.describe()},
    )
