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
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from typing_extensions import override

from inception_lightning.callbacks._loggers import has_logger
from inception_lightning.callbacks._media import media_of, report_folder, warn_unshown
from inception_lightning.data.protocol import LabelledImages
from inception_lightning.explain.cam import LayerMethod
from inception_lightning.explain.comparison import run_methods
from inception_lightning.explain.explain_options import (
    MapOptions,
    ReportOptions,
    SampleOptions,
    SanityOptions,
    ScoreOptions,
)
from inception_lightning.explain.explainer import (
    Explainer,
    Explanation,
    load_batch,
    summarize_explanation,
)
from inception_lightning.explain.html_report import safe_name
from inception_lightning.explain.methods import Method
from inception_lightning.explain.numerics import fp32
from inception_lightning.explain.pipeline import ExplainSpec, build_report
from inception_lightning.explain.render import overlay_pictures, randomization_plot
from inception_lightning.explain.sanity import RandomizationCurve
from inception_lightning.models.options import positive_int
from inception_lightning.training.contract import FoundNetwork, find_network, saved_network_of

MIN_GRID = 7


class GradCam(Callback):
    """Log attribution overlays, `gradcam/<stage>/<metric>` scalars and a sanity check for a
    fixed sample, with one or several methods (`explain.methods`).

    Every `every_n_epochs` validation epochs of `fit` (and at every `validate` / `test`), on
    global rank 0 only, the callback explains a class-balanced sample of the validation (test)
    set, drawn once with `seed`, plus up to `sample.max_misclassified` currently misclassified
    images found among the next `sample.misclassified_search` images of the same seeded order.
    Under the
    stage (`val` or `test`) it logs:

    - `gradcam/<stage>/overlays/<class>/<index>`: a picture per explained image, legible at
      TensorBoard's default card size: the image and the map of its class, captioned with the
      probability; for a mistake, the maps of the predicted and of the true class;
    - `gradcam/<stage>/deletion_auc` (lower is better), `.../insertion_auc` (higher is better),
      `.../empty` (maps with no evidence for the true class) and, when the dataset has
      `mask(index)`, `.../pointing_game` and `.../energy_pointing_game` (higher is better),
      averaged over the fixed sample's non-empty maps;
    - the sanity check (`explain.sanity`, Adebayo et al. 2018) on the sample's first
      `sanity.samples` images: `.../sanity_passed` (1 or 0), `.../sanity_rank_correlation` at
      the verdict depth, and `gradcam/<stage>/randomization`, the curves of every method.

    The scalars go through `pl_module.log`, so `ModelCheckpoint` and `EarlyStopping` can
    monitor them (e.g. `monitor: gradcam/val/pointing_game`); rank 0 broadcasts them, so every
    rank logs the same figures and decides alike. With several methods, tags become
    `gradcam/<stage>/<method>/...`. Maps are computed on the weights a checkpoint written now
    would hold (`contract.saved_network_of`: the EMA weights once `InceptionEMA` has updated
    them, else `pl_module.model`), which the pictures' titles and the report name, by every
    method in fp32 whatever the training precision (autocast off; an fp32 copy under
    `bf16-true`), with gradients even inside Lightning's `torch.inference_mode` loops, and the
    module's train/eval flags are restored.

    It explains the one Inception network in the LightningModule (ours, timm's or
    torchvision's: see `models.anatomy`), or the one `network` names. Pictures reach every
    logger that shows them (TensorBoard, MLflow, W&B, CSV: see `_media`).

    At the end of `fit`, an attribution report comparing the methods (`explain.build_report`,
    as the `report` command writes it) is written beside the run, in `report/` of the run's
    folder (TensorBoard's or CSV's log dir, W&B's run files) by default, and logged as the
    run's artifacts where the logger keeps them (MLflow), with a progress bar unless the
    trainer's bar is off.

    Args:
        layers: dotted module name(s) of `pl_module.model` for the layer methods, fused when
            several (LayerCAM's fusion); None: its last Inception block.
        method: "gradcam", "guided_gradcam", "hirescam", "layercam", "integrated_gradients",
            "occlusion", or a list of them.
        every_n_epochs: run at the end of every n-th validation epoch of `fit`.
        seed: seeds the sample, the search for mistakes and the sanity check's
            re-initialisation.
        sample: per_class, max_samples, max_misclassified, misclassified_search
            (`SampleOptions`).
        maps: sign, interpolation, method_options, batch_size (`MapOptions`).
        scores: steps and tolerance of the metrics (`ScoreOptions`).
        sanity: samples, threshold, max_depth of the sanity check (`SanityOptions`;
            `samples: 0` turns it off).
        report: enabled, dir, per_class of the end-of-fit report (`ReportOptions`).
        network: the Inception network's dotted name in the LightningModule, e.g.
            "net.backbone"; None finds the one it holds.
    """

    def __init__(
        self,
        layers: str | Sequence[str] | None = None,
        method: Method | Sequence[Method] = "gradcam",
        every_n_epochs: int = 1,
        seed: int = 0,
        # frozen dataclasses, so a shared default is never shared state
        sample: SampleOptions = SampleOptions(),  # noqa: B008
        maps: MapOptions = MapOptions(),  # noqa: B008
        scores: ScoreOptions = ScoreOptions(),  # noqa: B008
        sanity: SanityOptions = SanityOptions(),  # noqa: B008
        report: ReportOptions = ReportOptions(),  # noqa: B008
        network: str | None = None,
    ) -> None:
        positive_int("every_n_epochs", every_n_epochs)
        self.spec = ExplainSpec(method, layers, MapOptions.of(maps), ScoreOptions.of(scores), seed)
        self.every_n_epochs = every_n_epochs
        self.sampling = SampleOptions.of(sample)
        self.sanity = SanityOptions.of(sanity)
        self.report = ReportOptions.of(report)
        self.network = network
        self._found: FoundNetwork | None = None
        self.samples: dict[str, list[int]] = {}
        self.last: dict[str, Explanation] = {}
        self.last_sanity: dict[str, RandomizationCurve] = {}
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
        self._found = find_network(pl_module, self.network, "GradCam")
        network = saved_network_of(pl_module, self._found)[1]
        self.spec.attributions(network)  # checks names, options; no hook
        has_logger(trainer, self, "its overlays and scores are not logged")
        warn_unshown(trainer, self, "its overlays")

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
        if not self.report.enabled:
            return
        # before the rank check: `trainer.log_dir` is a collective call (a broadcast)
        fallback = Path(trainer.log_dir or trainer.default_root_dir) / "report"
        if not trainer.is_global_zero:
            return
        self.last_weights, saved = saved_network_of(pl_module, self._found)
        info = {
            "model": self._found.anatomy.architecture,
            "weights": self.last_weights,
            "layers": self.spec.layer_names,
            "interpolation": self.spec.maps.interpolation,
            "epochs": trainer.current_epoch,
            "global step": trainer.global_step,
            "best checkpoint": getattr(trainer.checkpoint_callback, "best_model_path", "") or "-",
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        progress = None if trainer.progress_bar_callback is not None else False
        dataset, per_class = _dataset(trainer, "val"), self.report.per_class
        media = media_of(trainer)
        with (
            fp32(saved) as network,
            report_folder(media, self.report.dir, fallback, "GradCam") as out,
        ):
            build_report(self.spec, network, dataset, out, info, per_class, self.sanity, progress)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"samples": {k: list(v) for k, v in self.samples.items()}}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.samples = {k: list(v) for k, v in state_dict["samples"].items()}

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
        self.last_weights, saved = saved_network_of(pl_module, self._found)
        options = self.sampling
        with fp32(saved) as network:
            explainers = self.spec.explainers(network, _dataset(trainer, stage))
            first = next(iter(explainers.values()))
            if stage not in self.samples:
                self.samples[stage] = first.sample(options.per_class, options.max_samples)
            sample = self.samples[stage]
            self._check_grid(first, sample[0])
            extra = first.misclassified(
                sample, options.max_misclassified, options.misclassified_search
            )
            sanity = sample[: self.sanity.samples]
            runs = run_methods(explainers, sample + extra, sanity, self.sanity)
        in_sample = torch.arange(len(sample) + len(extra)) < len(sample)
        classes = first.dataset.classes
        self.last = {run.method: run.explanation for run in runs}
        self.last_sanity = {run.method: run.sanity for run in runs if run.sanity is not None}
        self.last_metrics = {}
        for run in runs:
            prefix = f"gradcam/{stage}/" + ("" if len(runs) == 1 else f"{run.method}/")
            overall = summarize_explanation(run.explanation, classes, in_sample)["overall"]
            names = ("empty", *run.explanation.scores)
            self.last_metrics.update({prefix + k: overall[k] for k in names})
            if run.sanity is not None:
                self.last_metrics[prefix + "sanity_passed"] = float(run.sanity.passed)
                correlation = run.sanity.verdict_correlation
                self.last_metrics[prefix + "sanity_rank_correlation"] = correlation
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
        anatomy = self._found.anatomy
        stages = anatomy.grids(layered.model, size[0])
        fine = [block.module for block in anatomy.blocks if min(stages[block.name]) >= MIN_GRID]
        finest = max(layered.grids(images))
        if min(finest) < MIN_GRID:
            earlier = f"an earlier layer such as {fine[-1]!r}" if fine else "an earlier layer"
            rank_zero_warn(
                f"GradCam: layers {layered.layers} give at best a {finest[0]}x{finest[1]} map "
                f"at {size[0]}x{size[1]} input, coarser than {MIN_GRID}x{MIN_GRID}, so they "
                f"locate little. Use larger inputs, our low-resolution stem "
                f"(create_model(..., stem=79)) or {earlier}."
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
        """`uint8 [H, W, 3]` pictures by tag, to every logger that shows images."""
        for media in media_of(trainer):
            for tag, picture in pictures.items():
                media.image(tag, picture, trainer.global_step)


def _dataset(trainer: pl.Trainer, stage: str) -> Any:
    loaders = trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders
    if isinstance(loaders, Sequence):
        loaders = loaders[0]
    if loaders is None:
        raise ValueError(f"GradCam needs a {stage} dataloader")
    return loaders.dataset


__all__ = ["GradCam"]
