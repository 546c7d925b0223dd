"""GradCam: attribution maps, their metrics and sanity checks on a validation sample, during
training."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from typing_extensions import override

from inception_lightning.callbacks._checks import non_negative_int, one_of, positive_int
from inception_lightning.callbacks._loggers import has_logger
from inception_lightning.callbacks._probe import short_name
from inception_lightning.data.protocol import LabelledImages
from inception_lightning.explain.attribution import (
    INTERPOLATIONS,
    SIGN_MODES,
    Attribution,
    Interpolation,
    SignMode,
)
from inception_lightning.explain.cam import LayerMethod
from inception_lightning.explain.checks import CHEAP_CHECKS, CHECKS
from inception_lightning.explain.comparison import run_methods
from inception_lightning.explain.explainer import (
    Explainer,
    Explanation,
    load_batch,
    summarize_explanation,
)
from inception_lightning.explain.html_report import safe_name, write_report
from inception_lightning.explain.methods import Method, as_methods, make_attribution
from inception_lightning.explain.numerics import fp32
from inception_lightning.explain.predictions import predict_dataset
from inception_lightning.explain.render import overlay_pictures, randomization_plot
from inception_lightning.explain.sanity import SanityOptions
from inception_lightning.explain.verdict import CheckResult
from inception_lightning.models import InceptionNet, iter_blocks
from inception_lightning.training.contract import saved_network_of

MIN_GRID = 7
VERDICT_VALUES = {"pass": 1.0, "undecided": 0.0, "fail": -1.0}


class GradCam(Callback):
    """Log attribution overlays, `gradcam/<stage>/<metric>` scalars and a sanity check for a
    fixed sample, with one or several methods (`explain.methods`).

    Every `every_n_epochs` validation epochs of `fit` (and at every `validate` / `test`), on
    global rank 0 only, the callback explains a class-balanced sample of the validation (test)
    set, drawn once with `seed`, plus up to `max_misclassified` currently misclassified images
    found among the next `misclassified_search` images of the same seeded order. Under the
    stage (`val` or `test`) it logs:

    - `gradcam/<stage>/overlays/<class>/<index>`: a picture per explained image, legible at
      TensorBoard's default card size: the image and the map of its class, captioned with the
      probability; for a mistake, the maps of the predicted and of the true class;
    - `gradcam/<stage>/deletion_auc` (lower is better), `.../insertion_auc` (higher is better),
      `.../empty` (maps with no evidence for the true class) and, when the dataset has
      `mask(index)`, `.../pointing_game` and `.../energy_pointing_game` (higher is better),
      averaged over the fixed sample's non-empty maps;
    - the cheap sanity checks (`explain.checks.CHEAP_CHECKS`: MPRT in each order, eMPRT, the
      random-logit test; `sanity.checks` chooses others) on the sample's first
      `sanity.samples` images: `.../sanity/<check>` (the mean score) and
      `.../sanity/<check>_verdict` (1 pass, 0 undecided, -1 fail) per check, and
      `gradcam/<stage>/randomization`, the curves of every method.

    The scalars go through `pl_module.log`, so `ModelCheckpoint` and `EarlyStopping` can
    monitor them (e.g. `monitor: gradcam/val/pointing_game`); rank 0 broadcasts them, so every
    rank logs the same figures and decides alike. With several methods, tags become
    `gradcam/<stage>/<method>/...`. Maps are computed on the weights a checkpoint written now
    would hold (`contract.saved_network_of`: the EMA weights once `InceptionEMA` has updated
    them, else `pl_module.model`), which the pictures' titles and the report name, by every
    method in fp32 whatever the training precision (autocast off; an fp32 copy under
    `bf16-true`), with gradients even inside Lightning's `torch.inference_mode` loops, and the
    module's train/eval flags are restored.

    At the end of `fit`, an attribution report comparing the methods (`explain.write_report`)
    is written beside the run, in `<trainer.log_dir>/report` by default, with a progress bar
    unless the trainer's bar is off.

    Args:
        layers: dotted module name(s) of `pl_module.model` for the layer methods, fused when
            several (LayerCAM's fusion); None: its last Inception block.
        method: "gradcam", "guided_gradcam", "hirescam", "layercam", "integrated_gradients",
            "occlusion", or a list of them.
        every_n_epochs: run at the end of every n-th validation epoch of `fit`.
        per_class: sample images per class.
        max_samples: the most sample images in all.
        max_misclassified: extra misclassified images per run.
        misclassified_search: images scanned for them per run.
        sign: "relu", "abs" or "signed"; None: each method's default (see `explain.methods`).
        interpolation: how layer maps are upsampled to the input size.
        method_options: per method, its own settings, e.g.
            `{"integrated_gradients": {"steps": 64, "noise_samples": 8}}`.
        steps: deletion/insertion steps.
        tolerance: pointing-game tolerance in pixels; None scales Zhang et al.'s 15 px at
            224 px to the input size.
        batch_size: images per forward/backward pass.
        seed: seeds the sample and the sanity checks' draws.
        sanity: the sanity checks' settings (`explain.SanityOptions`; `samples: 0` turns them
            off); None: `SanityOptions()` with the cheap checks at every run, and all of them
            (ROAD and sMPRT too) in the report at the end of `fit`.
        report: write an attribution report comparing the methods at the end of `fit`.
        report_dir: the report's folder; None: `report/` in the run's log directory (beside
            its TensorBoard files), so two runs never share one.
        report_per_class: report images per class.
    """

    def __init__(
        self,
        layers: str | Sequence[str] | None = None,
        method: Method | Sequence[Method] = "gradcam",
        every_n_epochs: int = 1,
        per_class: int = 2,
        max_samples: int = 32,
        max_misclassified: int = 8,
        misclassified_search: int = 128,
        sign: SignMode | None = None,
        interpolation: Interpolation = "bilinear",
        method_options: dict[str, dict[str, Any]] | None = None,
        steps: int = 16,
        tolerance: int | None = None,
        batch_size: int = 32,
        seed: int = 0,
        sanity: SanityOptions | None = None,
        report: bool = True,
        report_dir: str | Path | None = None,
        report_per_class: int = 8,
    ) -> None:
        names = [layers] if isinstance(layers, str) else layers
        if names is not None and (not names or not all(isinstance(n, str) and n for n in names)):
            raise ValueError(f"layers must be a module name or a non-empty list of them: {layers}")
        for name, value in (
            ("every_n_epochs", every_n_epochs),
            ("per_class", per_class),
            ("max_samples", max_samples),
            ("steps", steps),
            ("batch_size", batch_size),
            ("report_per_class", report_per_class),
        ):
            positive_int(name, value)
        non_negative_int("max_misclassified", max_misclassified)
        non_negative_int("misclassified_search", misclassified_search)
        non_negative_int("tolerance", tolerance, allow_none=True)
        one_of("sign", sign, (None, *SIGN_MODES))
        one_of("interpolation", interpolation, INTERPOLATIONS)
        self.methods = as_methods(method)
        unknown = set(method_options or {}) - set(self.methods)
        if unknown:
            raise ValueError(f"method_options names {sorted(unknown)}, not in {self.methods}")
        self.method_options = dict(method_options or {})
        self.layers = None if names is None else list(names)
        self.every_n_epochs = every_n_epochs
        self.per_class = per_class
        self.max_samples = max_samples
        self.max_misclassified = max_misclassified
        self.misclassified_search = misclassified_search
        self.sign = sign
        self.interpolation = interpolation
        self.steps = steps
        self.tolerance = tolerance
        self.batch_size = batch_size
        self.seed = seed
        self.sanity = sanity or SanityOptions()
        self.report = report
        self.report_dir = None if report_dir is None else Path(report_dir)
        self.report_per_class = report_per_class
        self.samples: dict[str, list[int]] = {}
        self.last: dict[str, Explanation] = {}
        self.last_sanity: dict[str, list[CheckResult]] = {}
        self.last_metrics: dict[str, float] = {}
        self.last_weights = "raw"
        """The weight set ("ema" or "raw") of the last explanations."""
        self._warned = False

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if isinstance(trainer.strategy, FSDPStrategy | ModelParallelStrategy):
            raise ValueError(
                "GradCam runs the model on rank 0 alone, which sharded strategies (FSDP, "
                "ModelParallel) cannot do; use DDP or a single device"
            )
        self._attributions(saved_network_of(pl_module)[1])  # checks names, options; no hook
        has_logger(trainer, self, "its overlays and scores are not logged")

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        due = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if trainer.state.fn != TrainerFn.FITTING or due:
            self._run(trainer, pl_module, "val")

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._run(trainer, pl_module, "test")

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.report:
            return
        # before the rank check: `trainer.log_dir` is a collective call (a broadcast)
        out = self.report_dir or Path(trainer.log_dir or trainer.default_root_dir) / "report"
        if not trainer.is_global_zero:
            return
        progress = None if trainer.progress_bar_callback is not None else False
        self.last_weights, saved = saved_network_of(pl_module)
        with fp32(saved) as network:
            explainers = self._explainers(trainer, network, "val")
            for explainer in explainers.values():
                explainer.progress = progress
            first = next(iter(explainers.values()))
            indices = first.sample(self.report_per_class)
            checks = self._checks(explainers, CHECKS)
            sanity = self._sanity_indices(indices)
            runs = run_methods(explainers, indices, sanity, self.sanity, checks)
            predictions = predict_dataset(first.attribution, first.dataset, progress)
        info = {
            "model": first.attribution.model.name,
            "weights": self.last_weights,
            "layers": " + ".join(self.layers) if self.layers else "last Inception block",
            "interpolation": self.interpolation,
            "epochs": trainer.current_epoch,
            "global step": trainer.global_step,
            "best checkpoint": getattr(trainer.checkpoint_callback, "best_model_path", "") or "-",
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        classes = first.dataset.classes
        index = write_report(out, runs, classes, info, self.report_per_class, predictions)
        rank_zero_info(f"GradCam: attribution report in {index}")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"samples": {k: list(v) for k, v in self.samples.items()}}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.samples = {k: list(v) for k, v in state_dict["samples"].items()}

    def _attributions(self, network: InceptionNet) -> dict[str, Attribution]:
        return {
            method: make_attribution(
                method,
                network,
                self.layers,
                self.sign,
                self.interpolation,
                self.batch_size,
                self.method_options.get(method),
            )
            for method in self.methods
        }

    def _explainers(
        self, trainer: pl.Trainer, network: InceptionNet, stage: str
    ) -> dict[str, Explainer]:
        dataset = _dataset(trainer, stage)
        return {
            method: Explainer(attribution, dataset, self.steps, self.tolerance, self.seed)
            for method, attribution in self._attributions(network).items()
        }

    def _checks(self, explainers: dict[str, Explainer], default: Sequence[str]) -> list[str]:
        """The checks to run (the options', else `default`); ROAD runs in the explainers."""
        checks = list(self.sanity.checks or default)
        for explainer in explainers.values():
            explainer.road = "road" in checks and self.sanity.samples > 0
        return checks

    def _sanity_indices(self, sample: Sequence[int]) -> list[int]:
        return list(sample[: self.sanity.samples])

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not isinstance(_dataset(trainer, stage), LabelledImages):
            rank_zero_warn(
                f"GradCam: the {stage} set yields multi-crop views (test_crops > 1), not images; "
                "nothing is explained"
            )
            return  # on every rank alike: none waits on the broadcast below
        metrics = self._explain(trainer, pl_module, stage) if trainer.is_global_zero else None
        # One broadcast: every rank logs rank 0's figures, so monitoring callbacks agree.
        metrics = trainer.strategy.broadcast(metrics, src=0)
        if metrics:
            pl_module.log_dict(metrics)

    def _explain(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str
    ) -> dict[str, float]:
        """Explain the stage's sample, log its pictures, and return its scalars."""
        self.last_weights, saved = saved_network_of(pl_module)
        with fp32(saved) as network:
            explainers = self._explainers(trainer, network, stage)
            first = next(iter(explainers.values()))
            if stage not in self.samples:
                self.samples[stage] = first.sample(self.per_class, self.max_samples)
            sample = self.samples[stage]
            self._check_grid(first, sample[0])
            extra = first.misclassified(sample, self.max_misclassified, self.misclassified_search)
            checks = self._checks(explainers, CHEAP_CHECKS)
            sanity = self._sanity_indices(sample)
            runs = run_methods(explainers, sample + extra, sanity, self.sanity, checks)
        in_sample = torch.arange(len(sample) + len(extra)) < len(sample)
        classes = first.dataset.classes
        self.last = {run.method: run.explanation for run in runs}
        self.last_sanity = {run.method: run.checks for run in runs if run.checks}
        self.last_metrics = {}
        for run in runs:
            prefix = f"gradcam/{stage}/" + ("" if len(runs) == 1 else f"{run.method}/")
            overall = summarize_explanation(run.explanation, classes, in_sample)["overall"]
            names = ("empty", *run.explanation.scores)
            self.last_metrics.update({prefix + k: overall[k] for k in names})
            for check in run.checks:
                tag = f"{prefix}sanity/{check.name.replace('/', '_')}"
                self.last_metrics[tag] = check.verdict.mean
                self.last_metrics[tag + "_verdict"] = VERDICT_VALUES[check.verdict.outcome]
            note = f"{self.last_weights} weights" if len(runs) == 1 else run.method
            self._log_overlays(trainer, prefix + "overlays", run.explanation, classes, note)
        if self.last_sanity:
            picture = randomization_plot(self.last_sanity)
            self._log_images(trainer, {f"gradcam/{stage}/randomization": picture})
        return self.last_metrics

    def _check_grid(self, explainer: Explainer, index: int) -> None:
        layered = explainer.attribution
        if self._warned or not isinstance(layered, LayerMethod):
            return
        self._warned = True
        images = load_batch(explainer.dataset, [index]).images
        size = tuple(images.shape[-2:])
        network: InceptionNet = layered.model
        stages = network.spatial_sizes(size[0])
        fine = [
            name for name, _ in iter_blocks(network) if min(stages[short_name(name)]) >= MIN_GRID
        ]
        finest = max(layered.grids(images))
        if min(finest) < MIN_GRID:
            earlier = f"an earlier layer such as {fine[-1]!r}" if fine else "an earlier layer"
            rank_zero_warn(
                f"GradCam: layers {layered.layers} give at best a {finest[0]}x{finest[1]} map "
                f"at {size[0]}x{size[1]} input, coarser than {MIN_GRID}x{MIN_GRID}, so they "
                f"locate little. Use the low-resolution stem (create_model(..., stem='79')) or "
                f"{earlier}."
            )

    def _log_overlays(
        self,
        trainer: pl.Trainer,
        tag: str,
        expl: Explanation,
        classes: Sequence[str],
        note: str,
    ) -> None:
        """A picture per image, as `<tag>/<class index>_<class>/<dataset index>` (grouped by
        class in TensorBoard's order), its title ending with `note`."""
        pictures = overlay_pictures(expl, classes, note)
        names = (
            f"{tag}/{label}_{safe_name(classes[label])}/{index}"
            for label, index in zip(expl.labels.tolist(), expl.indices.tolist(), strict=True)
        )
        self._log_images(trainer, dict(zip(names, pictures, strict=True)))

    def _log_images(self, trainer: pl.Trainer, pictures: dict[str, np.ndarray]) -> None:
        """`uint8 [H, W, 3]` pictures by tag, to every logger that takes images."""
        for logger in trainer.loggers:
            add_image = getattr(logger.experiment, "add_image", None)
            for tag, picture in pictures.items() if add_image else ():
                add_image(tag, picture, trainer.global_step, dataformats="HWC")


def _dataset(trainer: pl.Trainer, stage: str) -> Any:
    loaders = trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders
    if isinstance(loaders, Sequence):
        loaders = loaders[0]
    if loaders is None:
        raise ValueError(f"GradCam needs a {stage} dataloader")
    return loaders.dataset


__all__ = ["GradCam"]
