"""`FineTuning`: train the new heads on a frozen backbone first, and keep BatchNorm statistics."""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.hooks import RemovableHandle
from typing_extensions import override

from inception_lightning._compat import find_unused_parameters
from inception_lightning.training.contract import find_network

BN_POLICIES = ("train", "frozen")


class FineTuning(Callback):
    """The fine-tuning half of a recipe: a frozen backbone at first, frozen BN statistics.

    It works on the one Inception network in the LightningModule (ours, timm's or
    torchvision's), or on the one `network` names. The backbone is everything but the heads its
    anatomy names (the classifier and the aux head, which always train: our `head` and `aux`,
    timm's `fc`, `last_linear` or `classif`, torchvision's `fc` and `AuxLogits`). With
    `InceptionClassifier`, the backbone's learning rate relative to the heads' is the module's
    `optim.backbone_lr_scale`.

    Args:
        freeze_backbone_epochs: train only the heads for this many epochs. Under DDP this
            turns on DDP's search for unused parameters (`ddp_find_unused_parameters_true`),
            since frozen parameters get no gradient.
        bn_policy: "train" updates BatchNorm statistics in training; "frozen" runs every BN
            layer as in eval mode, so running statistics never move (their affine weights still
            train), whatever `train()` calls happen.
        network: the Inception network's dotted name in the LightningModule, e.g.
            "net.backbone"; None finds the one it holds.

    Raises:
        ValueError: for a bad argument.
        NetworkNotFoundError: at the start of fit, for a module with no Inception network or
            several, or a `network` that names none.
    """

    def __init__(
        self,
        freeze_backbone_epochs: int = 0,
        bn_policy: Literal["train", "frozen"] = "train",
        network: str | None = None,
    ) -> None:
        if isinstance(freeze_backbone_epochs, bool) or freeze_backbone_epochs < 0:
            raise ValueError(
                "freeze_backbone_epochs must be a non-negative integer, "
                f"got {freeze_backbone_epochs!r}"
            )
        if bn_policy not in BN_POLICIES:
            raise ValueError(f"bn_policy must be one of {BN_POLICIES}, got {bn_policy!r}")
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.bn_policy = bn_policy
        self.network = network
        self._backbone: list[nn.Parameter] = []
        self._handles: list[RemovableHandle] = []

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Under DDP with a frozen start, let DDP expect parameters without gradients."""
        # Set here, before the strategy wraps the model, so that the fine-tuning recipe composes
        # with conf/trainer/ddp.yaml: DDP's reducer would otherwise wait for the frozen
        # backbone's gradients and fail at the second step.
        if (
            stage == "fit"
            and self.freeze_backbone_epochs
            and isinstance(trainer.strategy, DDPStrategy)
        ):
            find_unused_parameters(trainer.strategy)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        found = find_network(pl_module, self.network, type(self).__name__)
        self._backbone = list(found.anatomy.backbone_parameters(found.network))
        if self.bn_policy == "frozen":
            self._handles = [
                module.register_forward_pre_hook(_as_in_eval)
                for module in found.network.modules()
                if isinstance(module, _BatchNorm)
            ]

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.freeze_backbone_epochs > 0:
            trainable = trainer.current_epoch >= self.freeze_backbone_epochs
            for parameter in self._backbone:
                parameter.requires_grad_(trainable)

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._remove_hooks()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._backbone = []


def _as_in_eval(module: nn.Module, args: tuple[Any, ...]) -> tuple[Tensor, ...] | None:
    """A BatchNorm forward pre-hook: run on the running statistics, never update them."""
    module.training = False
    return None
