"""The sanity checks of one method, run together on the same images, and what they mean.

- `mprt/<order>` (`sanity`): do the maps change when the model is randomised in that order?
  A map per unit randomised.
- `smprt/bottom_up` (`mprt`): ... once the method's own noise is averaged out? N maps per unit.
- `emprt` (`mprt`): are the maps simpler on the trained model than on a random one? One map.
- `random_logit`: does another class give another map? One map.
- `road` (`road`, beside deletion and insertion in the explainer): does the model need the
  map's top pixels more than its bottom ones? 2 x 5 imputations and forward passes.

`CHEAP_CHECKS` (a few maps per image) run in the GradCam callback at every validation; the
report runs them all. The trained model's maps are computed once and shared by every check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import torch
from torch import Tensor

from inception_lightning.explain.attribution import Attribution
from inception_lightning.explain.explain_options import CheckName, SanityOptions
from inception_lightning.explain.mprt import efficient_mprt, smooth_mprt
from inception_lightning.explain.random_logit import random_logit
from inception_lightning.explain.sanity import model_randomization
from inception_lightning.explain.verdict import CheckResult

CHECKS: tuple[str, ...] = get_args(CheckName)
CHEAP_CHECKS: tuple[str, ...] = ("mprt", "emprt", "random_logit")
RANDOMIZATION_CHECKS: tuple[str, ...] = ("mprt", "smprt", "emprt", "random_logit")
"""The checks `run_checks` runs; ROAD runs with deletion and insertion (`explainer`)."""

MEANINGS: dict[str, dict[str, str]] = {
    "mprt/top_down": {
        "pass": "randomising the head and the top stages changed the maps: they depend on the "
        "layers that decide the class",
        "fail": "the maps survive randomising the layers that decide: they show the input "
        "(edges, colours) more than the model's reasons",
    },
    "mprt/bottom_up": {
        "pass": "randomising the first layers changed the maps: they depend on what the network "
        "computes, not on the pixels alone",
        "fail": "the maps survive a random stem: the image itself drives them",
    },
    "mprt/independent": {
        "pass": "randomising a single stage, any of them, changes the maps on average",
        "fail": "single stages can be randomised without changing the maps much",
    },
    "smprt": {
        "pass": "with the method's own noise averaged out, the maps still change with the model",
        "fail": "once the method's noise is averaged out, the maps stay the same on a random model",
    },
    "emprt": {
        "pass": "on a random model the maps turn more complex: their structure came from training",
        "fail": "the maps are no simpler on the trained model than on a random one: their "
        "structure does not come from what the model learned",
    },
    "random_logit": {
        "pass": "another class gives another map: the map answers 'why this class?'",
        "fail": "another class gives nearly the same map: it does not say why this class "
        "rather than another",
    },
    "road": {
        "pass": "the model loses confidence faster when the map's top pixels are removed than "
        "its bottom ones: the ranking is faithful to the model",
        "fail": "removing the map's top pixels hurts the model no more than removing its bottom "
        "ones: the ranking is not faithful",
    },
}


def meaning(result: CheckResult) -> str:
    """One line on what the result says, for the report."""
    verdict = result.verdict
    if verdict.outcome == "undecided":
        if verdict.images < verdict.min_images:
            return (
                f"only {verdict.images} images scored (at least {verdict.min_images} decide): "
                "explain more images"
            )
        return "the interval contains the threshold: more images are needed to decide"
    texts = MEANINGS.get(result.name) or MEANINGS[result.kind]
    return texts[verdict.outcome]


def check_names(options: SanityOptions, checks: Sequence[str]) -> list[str]:
    """The results `run_checks` (and the explainer's ROAD) give, in order."""
    names = []
    for check in checks:
        if check == "mprt":
            names += [f"mprt/{order}" for order in options.orders]
        elif check == "smprt":
            names.append("smprt/bottom_up")
        else:
            names.append(check)
    return names


def run_checks(
    attribution: Attribution,
    inputs: Tensor,
    targets: Tensor | Sequence[int],
    num_classes: int,
    options: SanityOptions,
    checks: Sequence[str] = CHEAP_CHECKS,
    seed: int = 0,
    trained: Tensor | None = None,
) -> list[CheckResult]:
    """Run the randomisation checks among `checks` ("road" is the explainer's) on the images.

    Args:
        attribution: the method on the trained model.
        inputs: images `[N, 3, H, W]`; a `costly` method's checks take the first
            `options.pixel_samples`.
        targets: the class explained per image (the true class).
        num_classes: the model's classes (for the random-logit test).
        options: orders, similarity, noise samples, verdict settings.
        checks: names from `CHECKS`.
        seed: seeds the noise, the other classes and the bootstrap (the randomised weights:
            `options.model_seed`).
        trained: the method's signed, un-normalised maps of `inputs` on the trained model, if
            already computed.
    """
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}; choose from {list(CHECKS)}")
    count = options.pixel_samples if attribution.costly else len(inputs)
    inputs = inputs[:count]
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)[:count]
    # raw maps: neither the method's ReLU or absolute value nor its normalisation (the module
    # docstring of `sanity`); Quantus's eMPRT and sMPRT read Captum's signed output too
    attribution = attribution.with_sign("signed")
    if trained is None:
        trained = attribution.attribute(inputs, targets, normalize=False)
    trained = trained[:count].cpu()
    results = []
    if "mprt" in checks:
        for order in options.orders:
            results.append(
                model_randomization(attribution, inputs, targets, order, options, seed, trained)
            )
    if "smprt" in checks:
        samples = options.noise(attribution)
        results.append(
            smooth_mprt(attribution, inputs, targets, samples, "bottom_up", options, seed, trained)
        )
    if "emprt" in checks:
        results.append(efficient_mprt(attribution, inputs, targets, options, seed, trained))
    if "random_logit" in checks and num_classes > 1:
        results.append(
            random_logit(attribution, inputs, targets, num_classes, options, seed, trained)
        )
    return results
