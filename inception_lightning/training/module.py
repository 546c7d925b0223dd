"""InceptionClassifier: trains any registered Inception variant with the papers' recipe."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, Self

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.parsing import lightning_getattr
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError
from typing_extensions import override

from inception_lightning._hparams import save_init_arguments
from inception_lightning.models import ModelName, ModelOptions
from inception_lightning.models.net import InceptionNet
from inception_lightning.models.registry import create_model
from inception_lightning.training.balanced_accuracy import BalancedAccuracy
from inception_lightning.training.checkpoints import (
    CheckpointMismatchError,
    MismatchKind,
    Weights,
    has_average,
    mismatch,
    network_state,
    stored_hyperparameters,
    write_description,
)
from inception_lightning.training.contract import NetworkProvider
from inception_lightning.training.ensembling import average_probs, load_ensemble
from inception_lightning.training.fence import release_group_at_exit
from inception_lightning.training.mixup import BatchMixer
from inception_lightning.training.schedule import InceptionStepDecay
from inception_lightning.training.training_options import (
    ComputeOptions,
    InitOptions,
    LossOptions,
    OptimOptions,
)

# `LossOptions.class_weights` -> the power of `N / (C * n_c)`
_WEIGHT_POWER = {"balanced": 1.0, "square_root": 0.5}

# Images are a batch `[B, 3, S, S]`, or for multi-crop testing the views of one (see
# `data.multicrop`): an iterable of such batches, made on the device one at a time.
Batch = tuple[Tensor | Iterable[Tensor], Tensor]

__all__ = ["CheckpointMismatchError", "InceptionClassifier"]


class InceptionClassifier(LightningModule):
    """Trains `create_model(model, num_classes, ...)` with label smoothing and aux loss.

    Loss: `CE_ls(logits) + aux_weight * CE_ls(aux_logits)`, label-smoothed cross-entropy
    (v3 paper sect. 7), the aux term only with an aux head. Validation and test run in eval mode
    on the main logits and log `loss`, `acc1`, `balanced_acc` (the mean per-class recall), `acc5`
    and `ece` (expected calibration error)
    under `val/` and `test/`; `predict` returns softmax probabilities. A module restored from a
    checkpoint that holds EMA weights (`validate` / `test --ckpt_path`) evaluates those and says
    so: it logs under `val_ema/` and `test_ema/`, the names fit logs the average under.

    Further networks are evaluated beside the trained one through `add_eval_network`: the
    `InceptionEMA` callback adds its averaged weights, logged under `val_ema/` once updated.

    The recipe's other half lives in the Trainer: gradient-norm clipping at 2.0 is
    `Trainer(gradient_clip_val=2.0)` (conf/fit.yaml), mixed precision is `Trainer(precision=...)`;
    fine-tuning's frozen backbone and BatchNorm statistics are the `FineTuning` callback's.

    Args:
        model: a name from `list_models()`.
        num_classes: classifier outputs (LightningCLI links it from the data).
        model_kwargs: how the network is built: width, stem, aux_head, residual_scale,
            drop_rate (`ModelOptions`; a dict with those keys is accepted too, as for every
            group below).
        loss: label_smoothing and aux_weight of the loss (`LossOptions`).
        optimizer: builds the optimiser from two parameter groups, "backbone" and "head";
            None is `InceptionRMSprop` (RMSpropTF, lr 0.045, alpha 0.9, eps 1.0, momentum 0.9).
        scheduler: builds the lr scheduler from the optimiser; None is `InceptionStepDecay`
            (x0.94 every 2 epochs).
        optim: backbone_lr_scale, lr_reference_batch_size and scheduler_interval
            (`OptimOptions`): how the optimiser's learning rates scale, when the scheduler steps.
        init: pretrained, checkpoint_path, trust_pickle (`InitOptions`): the weights the
            network starts from; not saved in checkpoints, which hold the weights themselves.
        compute: channels_last and compile (`ComputeOptions`): how the network runs.
        ensemble_checkpoints: further checkpoints of the same architecture whose softmax the
            test step averages with this model's (their EMA weights, when they have them).
    """

    def __init__(
        self,
        model: ModelName = "inception_v3",
        num_classes: int = 1000,
        # frozen dataclasses, so a shared default is never shared state
        model_kwargs: ModelOptions = ModelOptions(),  # noqa: B008
        loss: LossOptions = LossOptions(),  # noqa: B008
        # None means the paper's recipe. A class default here would leak its init_args (RMSProp's
        # eps=1.0) into any optimiser a YAML file switches to, through jsonargparse.
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        optim: OptimOptions = OptimOptions(),  # noqa: B008
        init: InitOptions = InitOptions(),  # noqa: B008
        compute: ComputeOptions = ComputeOptions(),  # noqa: B008
        ensemble_checkpoints: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.model_options = ModelOptions.of(model_kwargs)
        self.loss_options = LossOptions.of(loss)
        self.optim_options = OptimOptions.of(optim)
        self.compute_options = ComputeOptions.of(compute)
        start = InitOptions.of(init)
        # Saved as plain values, so that checkpoints load with weights_only=True.
        model_kwargs = self.model_options.as_kwargs()
        loss = self.loss_options.as_kwargs()
        optim = self.optim_options.as_kwargs()
        compute = self.compute_options.as_kwargs()
        self.mixer = BatchMixer(self.loss_options, num_classes)
        # Initial weights and optimiser factories stay out: the checkpoint holds the weights,
        # and callables cannot be loaded with weights_only=True.
        save_init_arguments(self, ["optimizer", "scheduler", "init", "ensemble_checkpoints"])
        self.model: InceptionNet = create_model(
            model,
            num_classes=num_classes,
            pretrained=start.pretrained,
            checkpoint_path=start.checkpoint_path,
            trust_pickle=start.trust_pickle,
            **model_kwargs,
        )
        if self.compute_options.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if optimizer is None:  # imported here: timm, which only its optimiser needs (rmsprop.py)
            from inception_lightning.training.rmsprop import InceptionRMSprop

            optimizer = InceptionRMSprop
        self.optimizer = optimizer
        self.scheduler = scheduler or InceptionStepDecay
        self.ensemble_checkpoints = list(ensemble_checkpoints or [])
        self.metrics = nn.ModuleDict(
            {stage: _metrics(num_classes, stage) for stage in ("val", "test")}
        )
        self._compiled_forward: Callable[[Tensor], tuple[Tensor, Tensor | None]] | None = None
        self._eval_providers: dict[str, NetworkProvider] = {}
        self._saved_provider: str | None = None
        self._eval_networks: dict[str, nn.Module] = {}
        self._ensemble: list[nn.Module] = []
        self._evaluated: Weights = "raw"
        self._step_skipped = False
        # a buffer, so that it moves to the device with the module; not saved: the data's
        self.register_buffer("_class_weights", None, persistent=False)

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path | IO[bytes], *args: Any, **kwargs: Any
    ) -> Self:
        """Lightning's `load_from_checkpoint`, on the checkpoint's hyperparameters in today's
        form: those of an older version go through `checkpoints.upgrade_checkpoint` first.

        Lightning would drop the older names it does not know, and build the module with the
        defaults instead; the upgraded ones are given as keyword arguments, which still win.
        """
        stored = stored_hyperparameters(checkpoint_path, kwargs.get("weights_only"))
        return super().load_from_checkpoint(checkpoint_path, *args, **{**stored, **kwargs})

    def add_eval_network(self, name: str, provider: NetworkProvider, saved: bool = False) -> None:
        """Evaluate `provider()` beside `model` in every validation epoch, as `val_<name>/...`.

        The provider is called at the start of each validation epoch; None skips that epoch.
        `saved=True`: checkpoints hold the provided weights whenever there are some.
        """
        self._eval_providers[name] = provider
        if saved:
            self._saved_provider = name
        self._add_metrics(f"val_{name}")

    def saved_network(self) -> tuple[str, nn.Module]:
        """`(name, network)` of the weights a checkpoint written now would hold: a saved
        provider's, else `model`'s (named "ema" when restored from an average to evaluate)."""
        if self._saved_provider is not None:
            network = self._eval_providers[self._saved_provider]()
            if network is not None:
                return self._saved_provider, network
        return self._evaluated, self.model

    def skip_step(self) -> None:
        """Mark the current optimiser step as skipped (by `NonFiniteGuard`)."""
        self._step_skipped = True

    @property
    def step_skipped(self) -> bool:
        """Whether the current optimiser step was skipped."""
        return self._step_skipped

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_skipped = False

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def loss(
        self, logits: Tensor, aux_logits: Tensor | None, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """`(total, main, aux)`: label-smoothed CE on both heads, aux weighted by `aux_weight`.

        `target` holds class indices, or soft targets `[B, num_classes]` (mixup's, with the
        label smoothing already folded in); `class_weights` weigh the classes' terms.
        """
        options = self.loss_options
        smoothing = 0.0 if target.is_floating_point() else options.label_smoothing
        weight = self._class_weights
        main = F.cross_entropy(logits.float(), target, weight, label_smoothing=smoothing)
        if aux_logits is None:
            return main, main, None
        aux = F.cross_entropy(aux_logits.float(), target, weight, label_smoothing=smoothing)
        return main + options.aux_weight * aux, main, aux

    @override
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        images, target = batch
        if self.mixer.active(self.current_epoch):
            images, target = self.mixer(images, target)
        images = self._model_input(images)
        forward = self._compiled_forward or self.model.forward_with_aux
        logits, aux_logits = forward(images)
        total, main, aux = self.loss(logits, aux_logits, target)
        # not prog_bar=True: Lightning would read it back with .item() after every batch, a
        # host-device sync per step; LoggingStepProgressBar shows it on logging steps only
        self.log("train/loss", total)
        self.log("train/loss_main", main)
        if aux is not None:
            self.log("train/loss_aux", aux)
        return total

    @override
    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        images, target = batch
        images = self._model_input(images)
        self._evaluate(self.model(images), target, self._stage("val"))
        for name, network in self._eval_networks.items():
            # under bf16-true the EMA average stays fp32: it takes the images in its own dtype
            dtype = next(network.parameters()).dtype
            self._evaluate(network(images.to(dtype)), target, f"val_{name}")

    @override
    def test_step(self, batch: Batch, batch_idx: int) -> None:
        images, target = batch
        if isinstance(images, Tensor) and not self._ensemble:
            self._evaluate(self.model(self._model_input(images)), target, self._stage("test"))
            return
        views = [images] if isinstance(images, Tensor) else images
        networks = [self.model, *self._ensemble]
        probs = average_probs(networks, (self._model_input(view) for view in views))
        # log-probabilities are logits of the same softmax, so loss and metrics take them as is
        self._evaluate(probs.clamp_min(1e-12).log(), target, self._stage("test"))

    @override
    def predict_step(self, batch: Batch | Tensor, batch_idx: int) -> Tensor:
        """Softmax probabilities `[B, num_classes]` of the batch's images."""
        images = batch[0] if isinstance(batch, list | tuple) else batch
        return self.model(self._model_input(images)).float().softmax(dim=-1)

    def _evaluate(self, logits: Tensor, target: Tensor, stage: str) -> None:
        smoothing = self.loss_options.label_smoothing
        loss = F.cross_entropy(logits.float(), target, label_smoothing=smoothing)
        # the batch size given: Lightning would look for it in the batch, views included
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=len(target))
        metrics = self.metrics[stage]
        metrics.update(logits, target)
        self.log_dict(metrics, batch_size=len(target))

    def _stage(self, stage: str) -> str:
        """The metric prefix for `model`'s weights: `val_ema` when they are a restored average."""
        return f"{stage}_ema" if self._evaluated == "ema" else stage

    def _add_metrics(self, stage: str) -> None:
        if stage not in self.metrics:
            self.metrics[stage] = _metrics(self.hparams.num_classes, stage).to(self.device)

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Describe the checkpoint: classes and preprocessing (the datamodule's), model, weights."""
        trainer = self._attached_trainer()
        datamodule = trainer.datamodule if trainer is not None else None
        preprocessing = getattr(datamodule, "preprocessing", None)
        if dataclasses.is_dataclass(preprocessing):
            preprocessing = dataclasses.asdict(preprocessing)
        hp = self.hparams
        model_args = {"num_classes": hp.num_classes, **self.model_options.as_kwargs()}
        classes = getattr(datamodule, "classes", None)
        write_description(checkpoint, hp.model, model_args, classes, preprocessing)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse weights that do not fit `model`; outside fit, evaluate the set it holds."""
        weights: Weights = "ema" if has_average(checkpoint) else "raw"
        state = network_state(checkpoint, weights)
        source = self._checkpoint_name()
        found = mismatch(state, self.model)
        if found is not None and found.kind is MismatchKind.CLASSES:
            raise CheckpointMismatchError(
                f"{source}'s classifier has {state['head.fc.weight'].shape[0]} classes but this "
                f"run has {self.model.num_classes}: --ckpt_path resumes the same task. To "
                "fine-tune on new classes, start from its weights instead: -c conf/finetune.yaml "
                "--model.init.checkpoint_path CKPT --model.init.pretrained false"
            )
        if found is not None:
            raise CheckpointMismatchError(
                f"{source} holds another architecture's weights than this run's "
                f"{self.hparams.model} ({found.detail}): pass a checkpoint of this model, or the "
                "model config it was trained with"
            )
        trainer = self._attached_trainer()
        fitting = trainer is not None and trainer.state.fn == TrainerFn.FITTING
        if not fitting:
            self._evaluated = weights
            for stage in ("val", "test"):
                self._add_metrics(self._stage(stage))
            rank_zero_info(
                f"{source} holds the {_WEIGHT_NAMES[weights]} in its state_dict: they are "
                f"evaluated, and logged under {self._stage('val')}/ and {self._stage('test')}/"
            )

    def _checkpoint_name(self) -> str:
        trainer = self._attached_trainer()
        path = trainer.ckpt_path if trainer is not None else None
        return str(path) if path else "the checkpoint"

    def _attached_trainer(self) -> Trainer | None:
        """The trainer, or None for a module used alone (`load_from_checkpoint`, ...)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    @override
    def setup(self, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            release_group_at_exit()  # a rank exiting right after a collective could abort
        if stage == "fit":  # training from a restored average: the weights are the raw ones now
            self._evaluated = "raw"
            self._class_weights = self._weights_of_classes()
        compile_model = self.compute_options.compile
        if compile_model is not False and self._compiled_forward is None:
            options = compile_model if isinstance(compile_model, dict) else {}
            self._compiled_forward = torch.compile(self.model.forward_with_aux, **options)
            self.model.compile(**options)

    def _weights_of_classes(self) -> Tensor | None:
        """The loss's per-class weights, from the datamodule's training class counts."""
        choice = self.loss_options.class_weights
        if choice == "none":
            return None
        trainer = self._attached_trainer()
        counts = getattr(trainer.datamodule, "train_class_counts", None) if trainer else None
        if not counts:
            raise ValueError(
                f"class_weights={choice} needs the training images of each class: use a "
                "datamodule that counts them (ImageFolderDataModule), or class_weights none"
            )
        counts_t = torch.tensor(counts, dtype=torch.float32).clamp_min(1.0)
        weights = (counts_t.sum() / (len(counts) * counts_t)) ** _WEIGHT_POWER[choice]
        return weights

    @override
    def on_validation_epoch_start(self) -> None:
        networks = {name: provider() for name, provider in self._eval_providers.items()}
        self._eval_networks = {name: net for name, net in networks.items() if net is not None}

    @override
    def on_validation_epoch_end(self) -> None:
        self._eval_networks = {}

    @override
    def on_test_start(self) -> None:
        hp = self.hparams
        self._ensemble = [
            network.to(self.device, memory_format=self._memory_format)
            for network in load_ensemble(
                self.ensemble_checkpoints, hp.model, hp.num_classes, self.model_options.as_kwargs()
            )
        ]

    @override
    def on_test_end(self) -> None:
        self._ensemble = []

    def _model_input(self, images: Tensor) -> Tensor:
        """The batch's images in the model's dtype and memory format; integer images are refused."""
        if not images.is_floating_point():
            raise TypeError(
                f"the batch holds {images.dtype} images, not normalised floats. "
                "ImageFolderDataModule's loaders yield uint8 crops that the datamodule "
                "normalises on the device: pass the datamodule itself, "
                "trainer.fit(model, datamodule=dm), not its loaders"
            )
        # the datamodules normalise after the transfer, past the precision plugin's input cast:
        # under bf16-true the network's weights tell the dtype
        dtype = next(self.model.parameters()).dtype
        return images.to(dtype).contiguous(memory_format=self._memory_format)

    @property
    def _memory_format(self) -> torch.memory_format:
        channels_last = self.compute_options.channels_last
        return torch.channels_last if channels_last else torch.contiguous_format

    @override
    def configure_optimizers(self) -> dict[str, Any]:
        backbone = list(self.model.features.parameters())
        ids = {id(p) for p in backbone}
        head = [p for p in self.model.parameters() if id(p) not in ids]
        optimizer = self.optimizer(
            [{"params": backbone, "name": "backbone"}, {"params": head, "name": "head"}]
        )
        batch_scale = self._batch_scale()
        for group in optimizer.param_groups:
            backbone = group["name"] == "backbone"
            group_scale = self.optim_options.backbone_lr_scale if backbone else 1.0
            group["lr"] = group["lr"] * batch_scale * group_scale
        scheduler = self.scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.optim_options.scheduler_interval,
                "name": "train/lr",  # LearningRateMonitor's tags: train/lr/{backbone,head}
            },
        }

    def _batch_scale(self) -> float:
        reference = self.optim_options.lr_reference_batch_size
        if reference is None:
            return 1.0
        try:
            batch_size = lightning_getattr(self, "batch_size")
        except AttributeError:
            raise ValueError(
                "optim.lr_reference_batch_size needs the per-device batch size: use a datamodule "
                "with a `batch_size` attribute"
            ) from None
        trainer = self.trainer
        global_batch = batch_size * trainer.world_size * trainer.accumulate_grad_batches
        return global_batch / reference


_WEIGHT_NAMES = {"ema": "EMA weights", "raw": "raw (optimiser's) weights"}


def _metrics(num_classes: int, stage: str) -> MetricCollection:
    """acc1, balanced accuracy, acc5 and ECE, keyed `<stage>/<name>`.

    Balanced accuracy is the mean of the per-class recalls: on an imbalanced set it weighs every
    class alike, where acc1 follows the large classes.
    """
    return MetricCollection(
        {
            "acc1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "balanced_acc": BalancedAccuracy(num_classes),
            "acc5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "ece": MulticlassCalibrationError(num_classes, n_bins=15),
        },
        prefix=f"{stage}/",
        # torchmetrics merges metrics whose states match after the first update: on a batch of
        # one class the top-5 and the per-class top-1 counts can, and one reported the other's
        compute_groups=False,
    )
