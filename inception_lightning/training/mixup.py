"""Mixup and cutmix on the training batch, on its device, through timm's `Mixup`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from inception_lightning.training.training_options import LossOptions

if TYPE_CHECKING:
    from timm.data import Mixup


class BatchMixer:
    """Mixes a batch's images and turns its labels into the matching soft targets.

    timm's `Mixup` in its "batch" mode: one blend weight (or one box) per batch, each image
    mixed with the batch's reversed order, on the batch's device; the targets are
    `lam * smooth(y) + (1 - lam) * smooth(y reversed)`, with label smoothing folded in
    (`timm.data.mixup_target`), so cross-entropy against them is the label-smoothed loss of
    the mixed images. A cut box clipped by the border corrects `lam` to the area it kept.

    Args:
        loss: the loss options: the alphas, probabilities, switch-off epoch and the label
            smoothing folded into the targets.
        num_classes: classifier outputs.
    """

    def __init__(self, loss: LossOptions, num_classes: int) -> None:
        self.options = loss
        self.mixup: Mixup | None = None  # never called: `active` is False for every epoch
        if loss.mixes:
            # imported here: importing timm imports all its models (about 1 s of a start)
            from timm.data import Mixup

            self.mixup = Mixup(
                mixup_alpha=loss.mixup_alpha,
                cutmix_alpha=loss.cutmix_alpha,
                prob=loss.mixup_prob,
                switch_prob=loss.switch_prob,
                mode="batch",
                label_smoothing=loss.label_smoothing,
                num_classes=num_classes,
            )

    def active(self, epoch: int) -> bool:
        """Whether batches of `epoch` are mixed."""
        off = self.options.mixup_off_epoch
        return self.options.mixes and (off is None or epoch < off)

    def __call__(self, images: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """`(mixed images, soft targets [B, num_classes])`; `images` stay as they are.

        timm draws the blend weight, the box and the switch from NumPy's global generator,
        which `ResumableDataLoader` saves and restores, so a resumed run mixes alike.
        """
        if len(images) % 2:
            raise ValueError(
                f"mixup/cutmix pair each image with another of its batch: the batch size must "
                f"be even, got a batch of {len(images)}"
            )
        # a copy: timm mixes in place, and the batch Lightning holds (which callbacks read)
        # should stay the clean one
        return self.mixup(images.clone(), target)
