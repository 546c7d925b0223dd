"""InceptionClassifier: trains any registered Inception variant with the papers' recipe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.parsing import lightning_getattr
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError
from typing_extensions import override

from inception_lightning.models.net import InceptionNet
from inception_lightning.models.registry import create_model
from inception_lightning.training.contract import NetworkProvider
from inception_lightning.training.evaluation import SCHEMES, average_probs, load_ensemble
from inception_lightning.training.optim import InceptionRMSprop, InceptionStepDecay

Batch = tuple[Tensor, Tensor]


class CheckpointMismatchError(ValueError):
    """A checkpoint was trained for another number of classes."""


class InceptionClassifier(LightningModule):
    """Trains `create_model(model, num_classes, **model_kwargs)` with label smoothing and aux loss.

    Loss: `CE_ls(logits) + aux_weight * CE_ls(aux_logits)`, label-smoothed cross-entropy
    (v3 paper sect. 7), the aux term only with an aux head. Validation and test run in eval mode
    on the main logits and log `loss`, `acc1`, `acc5` and `ece` (expected calibration error)
    under `val/` and `test/`.

    Further networks are evaluated beside the trained one through `add_eval_network`: the
    `InceptionEMA` callback adds its averaged weights, logged under `val_ema/` once updated.

    The recipe's other half lives in the Trainer: gradient-norm clipping at 2.0 is
    `Trainer(gradient_clip_val=2.0)` (conf/fit.yaml), mixed precision is `Trainer(precision=...)`;
    fine-tuning's frozen backbone and BatchNorm statistics are the `FineTuning` callback's.

    Args:
        model: a name from `list_models()`.
        num_classes: classifier outputs (LightningCLI links it from the data).
        model_kwargs: further `create_model` arguments (width, stem, aux_head, drop_rate, ...).
        label_smoothing: epsilon of the label-smoothed loss.
        aux_weight: weight of the aux loss (TF-slim: 0.4).
        optimizer: builds the optimiser from two parameter groups, "backbone" and "head";
            None is `InceptionRMSprop` (RMSpropTF, lr 0.045, alpha 0.9, eps 1.0, momentum 0.9).
        scheduler: builds the lr scheduler from the optimiser; None is `InceptionStepDecay`
            (x0.94 every 2 epochs).
        scheduler_interval: step the scheduler every "epoch" or every optimiser "step".
        lr_reference_batch_size: if set, every lr is multiplied by
            `global batch size / lr_reference_batch_size` (linear scaling); the per-device batch
            size is read from the datamodule's `batch_size`.
        pretrained: start from timm's released weights (the heads are re-initialised when
            `num_classes` differs).
        checkpoint_path: start from a local state dict (ours, a Lightning checkpoint, or timm's).
        trust_pickle: let `checkpoint_path` unpickle arbitrary objects (refused by default:
            only for files you made yourself).
        backbone_lr_scale: the backbone group's lr relative to the heads'.
        channels_last: use the channels-last memory format for the network and the images.
        compile_model: `torch.compile` the network; a dict gives `torch.compile` arguments.
        test_crops: evaluate the test set on 1, 12 or 144 views per image (see `multicrop`).
        test_crop_size: the view size for 12 and 144 crops.
        ensemble_checkpoints: further checkpoints of the same architecture whose softmax the
            test step averages with this model's (their EMA weights, when they have them).
    """

    def __init__(
        self,
        model: str = "inception_v3",
        num_classes: int = 1000,
        model_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.1,
        aux_weight: float = 0.4,
        # None means the paper's recipe. A class default here would leak its init_args (RMSProp's
        # eps=1.0) into any optimiser a YAML file switches to, through jsonargparse.
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        lr_reference_batch_size: int | None = None,
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        trust_pickle: bool = False,
        backbone_lr_scale: float = 1.0,
        channels_last: bool = False,
        compile_model: bool | dict[str, Any] = False,
        test_crops: int = 1,
        test_crop_size: int = 299,
        ensemble_checkpoints: list[str] | None = None,
    ) -> None:
        super().__init__()
        if test_crops not in SCHEMES:
            raise ValueError(f"test_crops must be one of {SCHEMES}, got {test_crops}")
        # Initial weights and optimiser factories stay out: the checkpoint holds the weights,
        # and callables cannot be loaded with weights_only=True.
        self.save_hyperparameters(
            ignore=[
                "optimizer",
                "scheduler",
                "pretrained",
                "checkpoint_path",
                "trust_pickle",
                "ensemble_checkpoints",
            ]
        )
        self.model: InceptionNet = create_model(
            model,
            num_classes=num_classes,
            pretrained=pretrained,
            checkpoint_path=checkpoint_path,
            trust_pickle=trust_pickle,
            **(model_kwargs or {}),
        )
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = optimizer or InceptionRMSprop
        self.scheduler = scheduler or InceptionStepDecay
        self.ensemble_checkpoints = list(ensemble_checkpoints or [])
        self.metrics = nn.ModuleDict(
            {stage: _metrics(num_classes, stage) for stage in ("val", "test")}
        )
        self._compiled_forward: Callable[[Tensor], tuple[Tensor, Tensor | None]] | None = None
        self._eval_providers: dict[str, NetworkProvider] = {}
        self._eval_networks: dict[str, nn.Module] = {}
        self._ensemble: list[nn.Module] = []

    def add_eval_network(self, name: str, provider: NetworkProvider) -> None:
        """Evaluate `provider()` beside `model` in every validation epoch, as `val_<name>/...`.

        The provider is called at the start of each validation epoch; None skips that epoch.
        """
        stage = f"val_{name}"
        self._eval_providers[name] = provider
        if stage not in self.metrics:
            self.metrics[stage] = _metrics(self.hparams.num_classes, stage).to(self.device)

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def loss(
        self, logits: Tensor, aux_logits: Tensor | None, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """`(total, main, aux)`: label-smoothed CE on both heads, aux weighted by `aux_weight`."""
        main = F.cross_entropy(logits.float(), target, label_smoothing=self.hparams.label_smoothing)
        if aux_logits is None:
            return main, main, None
        aux = F.cross_entropy(
            aux_logits.float(), target, label_smoothing=self.hparams.label_smoothing
        )
        return main + self.hparams.aux_weight * aux, main, aux

    @override
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        images, target = batch
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
        self._evaluate(self.model(images), target, "val")
        for name, network in self._eval_networks.items():
            # under bf16-true the EMA average stays fp32: it takes the images in its own dtype
            dtype = next(network.parameters()).dtype
            self._evaluate(network(images.to(dtype)), target, f"val_{name}")

    @override
    def test_step(self, batch: Batch, batch_idx: int) -> None:
        images, target = batch
        images = self._model_input(images)
        if self.hparams.test_crops == 1 and not self._ensemble:
            self._evaluate(self.model(images), target, "test")
            return
        networks = [self.model, *self._ensemble]
        probs = average_probs(
            networks, images, self.hparams.test_crops, self.hparams.test_crop_size
        )
        # log-probabilities are logits of the same softmax, so loss and metrics take them as is
        self._evaluate(probs.clamp_min(1e-12).log(), target, "test")

    def _evaluate(self, logits: Tensor, target: Tensor, stage: str) -> None:
        loss = F.cross_entropy(logits.float(), target, label_smoothing=self.hparams.label_smoothing)
        self.log(f"{stage}/loss", loss, sync_dist=True)
        metrics = self.metrics[stage]
        metrics.update(logits, target)
        self.log_dict(metrics)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, with the fine-tuning recipe, a checkpoint whose classifier has other classes."""
        saved = checkpoint.get("state_dict", {}).get("model.head.fc.weight")
        if saved is not None and saved.shape[0] != self.model.num_classes:
            raise CheckpointMismatchError(
                f"the checkpoint's classifier has {saved.shape[0]} classes but this run has "
                f"{self.model.num_classes}: --ckpt_path resumes the same task. To fine-tune on "
                "new classes, start from its weights instead: -c conf/finetune.yaml "
                "--model.checkpoint_path CKPT --model.pretrained false"
            )

    @override
    def setup(self, stage: str) -> None:
        compile_model = self.hparams.compile_model
        if compile_model is not False and self._compiled_forward is None:
            options = compile_model if isinstance(compile_model, dict) else {}
            self._compiled_forward = torch.compile(self.model.forward_with_aux, **options)
            self.model.compile(**options)

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
                self.ensemble_checkpoints, hp.model, hp.num_classes, hp.model_kwargs or {}
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
        return torch.channels_last if self.hparams.channels_last else torch.contiguous_format

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
            group_scale = self.hparams.backbone_lr_scale if group["name"] == "backbone" else 1.0
            group["lr"] = group["lr"] * batch_scale * group_scale
        scheduler = self.scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.hparams.scheduler_interval},
        }

    def _batch_scale(self) -> float:
        reference = self.hparams.lr_reference_batch_size
        if reference is None:
            return 1.0
        try:
            batch_size = lightning_getattr(self, "batch_size")
        except AttributeError:
            raise ValueError(
                "lr_reference_batch_size needs the per-device batch size: use a datamodule "
                "with a `batch_size` attribute"
            ) from None
        trainer = self.trainer
        global_batch = batch_size * trainer.world_size * trainer.accumulate_grad_batches
        return global_batch / reference


def _metrics(num_classes: int, stage: str) -> MetricCollection:
    """acc1, acc5 and ECE, keyed `<stage>/<name>`."""
    return MetricCollection(
        {
            "acc1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "acc5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "ece": MulticlassCalibrationError(num_classes, n_bins=15),
        },
        prefix=f"{stage}/",
    )
