"""The explaining pipeline from a network and a dataset: `ExplainSpec` and `build_report`.

The `GradCam` callback (at the end of `fit`) and the `report` command (for a checkpoint) write
the same attribution report; each gathers its inputs (the network, the dataset, the options,
the run's details, progress and the forward passes' precision) and calls `build_report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from inception_lightning.data.protocol import LabelledImages
from inception_lightning.explain.attribution import Attribution
from inception_lightning.explain.checks import CHECKS
from inception_lightning.explain.comparison import run_methods
from inception_lightning.explain.explain_options import MapOptions, SanityOptions, ScoreOptions
from inception_lightning.explain.explainer import Explainer
from inception_lightning.explain.html_report import write_report
from inception_lightning.explain.methods import Method, as_methods, make_attribution
from inception_lightning.explain.predictions import predict_dataset


@dataclass(frozen=True)
class ExplainSpec:
    """What explaining runs: the methods, the layers they map, how they map and score.

    Args:
        methods: one or several of `methods.METHODS`, checked.
        layers: dotted module name(s) for the layer methods, fused when several; None: the
            network's last Inception block.
        maps: sign, interpolation, the methods' own settings, batch size.
        scores: deletion/insertion steps and the pointing-game tolerance.
        seed: seeds the sample, the search for mistakes and the sanity check.
    """

    methods: Method | Sequence[Method]
    layers: str | Sequence[str] | None = None
    maps: MapOptions = MapOptions()  # noqa: RUF009 (frozen, so never shared state)
    scores: ScoreOptions = ScoreOptions()  # noqa: RUF009
    seed: int = 0

    def __post_init__(self) -> None:
        methods = as_methods(self.methods)
        layers = [self.layers] if isinstance(self.layers, str) else self.layers
        if layers is not None and (not layers or not all(isinstance(n, str) and n for n in layers)):
            raise ValueError(
                f"layers must be a module name or a non-empty list of them: {self.layers}"
            )
        unknown = set(self.maps.method_options or {}) - set(methods)
        if unknown:
            raise ValueError(
                f"maps.method_options names {sorted(unknown)}, not in the methods {methods}"
            )
        object.__setattr__(self, "methods", tuple(methods))
        object.__setattr__(self, "layers", None if layers is None else tuple(layers))

    @property
    def layer_names(self) -> str:
        """The layers in words, for a report's details."""
        return " + ".join(self.layers) if self.layers else "last Inception block"

    def attributions(self, network: nn.Module) -> dict[str, Attribution]:
        """Each method bound to `network` (raises for a bad layer name or method setting)."""
        maps = self.maps
        return {
            method: make_attribution(
                method,
                network,
                self.layers,
                maps.sign,
                maps.interpolation,
                maps.batch_size,
                maps.options_of(method),
            )
            for method in self.methods
        }

    def explainers(
        self,
        network: nn.Module,
        dataset: LabelledImages,
        progress: bool | None = False,
        forward: nn.Module | None = None,
    ) -> dict[str, Explainer]:
        """An `Explainer` per method, on `dataset`.

        Args:
            network: the model to explain.
            dataset: the images, labels and (optionally) object masks.
            progress: show progress (None: on a terminal; see `console.track`).
            forward: runs the forward-only work instead of the network (e.g. `Bf16Forward`).
        """
        steps, tolerance = self.scores.steps, self.scores.tolerance
        return {
            method: Explainer(attribution, dataset, steps, tolerance, self.seed, progress, forward)
            for method, attribution in self.attributions(network).items()
        }


def build_report(
    spec: ExplainSpec,
    network: nn.Module,
    dataset: LabelledImages,
    out: str | Path,
    info: Mapping[str, Any],
    per_class: int = 8,
    sanity: SanityOptions = SanityOptions(),  # noqa: B008 (frozen, so never shared state)
    progress: bool | None = None,
    forward: nn.Module | None = None,
    checks: Sequence[str] = CHECKS,
) -> Path:
    """Write the attribution report comparing `spec`'s methods on `dataset`; return index.html.

    A seeded, class-balanced sample of `per_class` images per class is explained by each
    method; each method's maps are sanity-checked on the sample's first `sanity.samples`
    images, at most `sanity.pixel_samples` for integrated gradients and occlusion (MPRT in
    each order, sMPRT, eMPRT, the random-logit test and ROAD, each with a
    bootstrap verdict: `explain.checks`); every image of the dataset is predicted for the
    accuracy per class, the confusion matrix and the reliability diagram
    (`html_report.write_report`).

    Args:
        spec: the methods and how they map and score.
        network: the model, in the precision and on the device the maps are computed.
        dataset: the images, labels and (optionally) object masks.
        out: the report folder (created; nothing is written outside it).
        info: run and model details, shown as given.
        per_class: images explained per class.
        sanity: the sanity checks' options; its `checks`, when given, replace `checks`.
        progress: show progress bars (None: on a terminal; see `console.track`).
        forward: runs the forward-only work (predictions, deletion and insertion curves)
            instead of the network, e.g. `Bf16Forward`; maps always come from the network.
        checks: the checks to run (`checks.CHECKS`): every one by default.
    """
    checks = list(sanity.checks or checks)
    explainers = spec.explainers(network, dataset, progress, forward)
    for explainer in explainers.values():
        explainer.road = "road" in checks and sanity.samples > 0
    first = next(iter(explainers.values()))
    indices = first.sample(per_class)
    runs = run_methods(explainers, indices, indices[: sanity.samples], sanity, checks)
    predictions = predict_dataset(first.attribution, dataset, progress, forward)
    return write_report(out, runs, dataset.classes, info, per_class, predictions)
