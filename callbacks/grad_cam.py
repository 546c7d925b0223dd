"""GradCam: Grad-CAM maps and attribution metrics of a validation sample, during training."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
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
from inception_lightning.explain.explainer import Explainer, Explanation, load, summarize
from inception_lightning.explain.gradcam import (
    INTERPOLATIONS,
    SIGN_MODES,
    GradCAM,
    Interpolation,
    SignMode,
    default_layer,
)
from inception_lightning.explain.precision import fp32
from inception_lightning.explain.predictions import predict_dataset
from inception_lightning.explain.render import overlay_pictures
from inception_lightning.explain.report import safe_name, write_report
from inception_lightning.models import InceptionNet, iter_blocks
from inception_lightning.training.contract import saved_network_of

MIN_GRID = 7


class GradCam(Callback):
    """Log Grad-CAM overlays and `gradcam/<stage>/<metric>` scalars for a fixed sample.

    Every `every_n_epochs` validation epochs of `fit` (and at every `validate` / `test`), on
    global rank 0 only, the callback explains a class-balanced sample of the validation (test)
    set, drawn once with `seed`, plus up to `max_misclassified` currently misclassified images
    found among the next `misclassified_search` images of the same seeded order. Under the
    stage (`val` or `test`) it logs:

    - `gradcam/<stage>/overlays/<class>/<index>`: a picture per explained image, legible at
      TensorBoard's default card size: the image and the map of its class, captioned with the
      probability; for a mistake, the maps of the predicted and of the true class;
    - `gradcam/<stage>/deletion_auc` (lower is better), `.../insertion_auc` (higher is better)
      and, when the dataset has `mask(index)`, `.../pointing_game` and
      `.../energy_pointing_game` (higher is better), averaged over the fixed sample only.

    The scalars go through `pl_module.log`, so `ModelCheckpoint` and `EarlyStopping` can
    monitor them (e.g. `monitor: gradcam/val/pointing_game`); rank 0 broadcasts them, so every
    rank logs the same figures and decides alike. With several layers, tags become
    `gradcam/<stage>/<layer>/...`. Maps are computed on the weights a checkpoint written now
    would hold (`contract.saved_network_of`: the EMA weights once `InceptionEMA` has updated
    them, else `pl_module.model`), which the pictures' titles and the report name, in fp32
    whatever the training precision (autocast off; an fp32 copy under `bf16-true`), with
    gradients even inside Lightning's `torch.inference_mode` loops, and the module's
    train/eval flags are restored.

    At the end of `fit`, an attribution report (`explain.write_report`) is written beside the
    run, in `<trainer.log_dir>/report` by default, with a progress bar unless the trainer's
    bar is off.

    Args:
        layers: dotted module name(s) of `pl_module.model`; None: its last Inception block.
        every_n_epochs: run at the end of every n-th validation epoch of `fit`.
        per_class: sample images per class.
        max_samples: the most sample images in all.
        max_misclassified: extra misclassified images per run.
        misclassified_search: images scanned for them per run.
        sign: "relu" (Grad-CAM), "abs" or "signed"; see `GradCAM`.
        interpolation: how maps are upsampled to the input size.
        steps: deletion/insertion steps.
        tolerance: pointing-game tolerance in pixels; None scales Zhang et al.'s 15 px at
            224 px to the input size.
        batch_size: images per forward/backward pass.
        seed: seeds the sample.
        report: write an attribution report at the end of `fit` (first layer).
        report_dir: the report's folder; None: `report/` in the run's log directory (beside
            its TensorBoard files), so two runs never share one.
        report_per_class: report images per class.
    """

    def __init__(
        self,
        layers: str | Sequence[str] | None = None,
        every_n_epochs: int = 1,
        per_class: int = 2,
        max_samples: int = 32,
        max_misclassified: int = 8,
        misclassified_search: int = 128,
        sign: SignMode = "relu",
        interpolation: Interpolation = "bilinear",
        steps: int = 16,
        tolerance: int | None = None,
        batch_size: int = 32,
        seed: int = 0,
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
        one_of("sign", sign, SIGN_MODES)
        one_of("interpolation", interpolation, INTERPOLATIONS)
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
        self.report = report
        self.report_dir = None if report_dir is None else Path(report_dir)
        self.report_per_class = report_per_class
        self.samples: dict[str, list[int]] = {}
        self.last: dict[str, Explanation] = {}
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
        self._cams(saved_network_of(pl_module)[1])  # checks the layer names: no hook registered
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
            explainer = self._explainers(trainer, network, "val")[0]
            explainer.progress = progress
            expl = explainer.explain(explainer.sample(self.report_per_class))
            predictions = predict_dataset(explainer.cam, explainer.dataset, progress)
        network = explainer.cam.model
        info = {
            "model": network.name,
            "weights": self.last_weights,
            "layer": explainer.cam.layer,
            "sign": self.sign,
            "interpolation": self.interpolation,
            "epochs": trainer.current_epoch,
            "global step": trainer.global_step,
            "best checkpoint": getattr(trainer.checkpoint_callback, "best_model_path", "") or "-",
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        classes = explainer.dataset.classes
        index = write_report(out, expl, classes, info, self.report_per_class, predictions)
        rank_zero_info(f"GradCam: attribution report in {index}")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"samples": {k: list(v) for k, v in self.samples.items()}}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.samples = {k: list(v) for k, v in state_dict["samples"].items()}

    def _cams(self, network: InceptionNet) -> list[GradCAM]:
        names = self.layers or [default_layer(network)]
        args = (self.sign, self.interpolation, self.batch_size)
        return [GradCAM(network, name, *args) for name in names]

    def _explainers(
        self, trainer: pl.Trainer, network: InceptionNet, stage: str
    ) -> list[Explainer]:
        dataset = _dataset(trainer, stage)
        return [
            Explainer(cam, dataset, self.steps, self.tolerance, self.seed)
            for cam in self._cams(network)
        ]

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
            first = explainers[0]
            if stage not in self.samples:
                self.samples[stage] = first.sample(self.per_class, self.max_samples)
            sample = self.samples[stage]
            self._check_grid(explainers, sample[0])
            extra = first.misclassified(sample, self.max_misclassified, self.misclassified_search)
            self.last = {e.cam.layer: e.explain(sample + extra) for e in explainers}
        in_sample = torch.arange(len(sample) + len(extra)) < len(sample)
        classes = first.dataset.classes
        self.last_metrics = {}
        for layer, expl in self.last.items():
            prefix = f"gradcam/{stage}/" + ("" if len(explainers) == 1 else f"{layer}/")
            overall = summarize(expl, classes, in_sample)["overall"]
            self.last_metrics.update({prefix + k: overall[k] for k in expl.scores})
            self._log_overlays(trainer, prefix + "overlays", expl, classes)
        return self.last_metrics

    def _check_grid(self, explainers: list[Explainer], index: int) -> None:
        if self._warned:
            return
        self._warned = True
        images = load(explainers[0].dataset, [index]).images
        size = tuple(images.shape[-2:])
        network: InceptionNet = explainers[0].cam.model
        stages = network.spatial_sizes(size[0])
        fine = [
            name for name, _ in iter_blocks(network) if min(stages[short_name(name)]) >= MIN_GRID
        ]
        for cam in (e.cam for e in explainers):
            grid = cam.grid(images)
            if min(grid) < MIN_GRID:
                earlier = f"an earlier layer such as {fine[-1]!r}" if fine else "an earlier layer"
                rank_zero_warn(
                    f"GradCam: layer {cam.layer!r} gives a {grid[0]}x{grid[1]} map at "
                    f"{size[0]}x{size[1]} input, coarser than {MIN_GRID}x{MIN_GRID}, so it "
                    f"locates little. Use the low-resolution stem "
                    f"(create_model(..., stem='79')) or {earlier}."
                )

    def _log_overlays(
        self, trainer: pl.Trainer, tag: str, expl: Explanation, classes: Sequence[str]
    ) -> None:
        """A picture per image, as `<tag>/<class index>_<class>/<dataset index>` (grouped by
        class in TensorBoard's order)."""
        pictures = overlay_pictures(expl, classes, f"{self.last_weights} weights")
        names = [
            f"{tag}/{label}_{safe_name(classes[label])}/{index}"
            for label, index in zip(expl.labels.tolist(), expl.indices.tolist(), strict=True)
        ]
        for logger in trainer.loggers:
            add_image = getattr(logger.experiment, "add_image", None)
            for name, picture in zip(names, pictures, strict=True) if add_image else ():
                add_image(name, picture, trainer.global_step, dataformats="HWC")


def _dataset(trainer: pl.Trainer, stage: str) -> Any:
    loaders = trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders
    if isinstance(loaders, Sequence):
        loaders = loaders[0]
    if loaders is None:
        raise ValueError(f"GradCam needs a {stage} dataloader")
    return loaders.dataset


__all__ = ["GradCam"]
