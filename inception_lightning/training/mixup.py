"""Mixup and cutmix on the training batch, on its device, through timm's `Mixup`."""

from __future__ import annotations

from dataclasses import dataclass

from timm.data import Mixup
from torch import Tensor


@dataclass(frozen=True)
class MixupOptions:
    """Mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019) of training batches, as timm's
    `train.py` applies them (`--mixup`, `--cutmix`, `--mixup-prob`, `--mixup-switch-prob`,
    `--mixup-off-epoch`); both alphas 0 (the default) leave the batches alone.

    Args:
        mixup_alpha: alpha of the Beta distribution of mixup's blend weight; 0 turns mixup off
            (timm's recipes: 0.8).
        cutmix_alpha: alpha of the Beta distribution of cutmix's kept area; 0 turns cutmix off
            (timm's recipes: 1.0).
        prob: probability that a batch is mixed at all.
        switch_prob: with both on, the probability that a mixed batch is cut rather than
            blended.
        off_epoch: from this epoch on (counted from 0) batches are no longer mixed, so that the
            last epochs train on clean images; None: mixed to the end.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5
    off_epoch: int | None = None

    def __post_init__(self) -> None:
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"mixup.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("prob", "switch_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"mixup.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.off_epoch is not None and self.off_epoch < 0:
            raise ValueError(f"mixup.off_epoch must be >= 0, got {self.off_epoch}")

    @property
    def enabled(self) -> bool:
        """Whether any batch is ever mixed."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.prob > 0


class BatchMixer:
    """Mixes a batch's images and turns its labels into the matching soft targets.

    timm's `Mixup` in its "batch" mode: one blend weight (or one box) per batch, each image
    mixed with the batch's reversed order, on the batch's device; the targets are
    `lam * smooth(y) + (1 - lam) * smooth(y reversed)`, with label smoothing folded in
    (`timm.data.mixup_target`), so cross-entropy against them is the label-smoothed loss of
    the mixed images. A cut box clipped by the border corrects `lam` to the area it kept.

    Args:
        options: the alphas, probabilities and switch-off epoch.
        num_classes: classifier outputs.
        label_smoothing: epsilon folded into the soft targets.
    """

    def __init__(self, options: MixupOptions, num_classes: int, label_smoothing: float) -> None:
        self.options = options
        self.mixup = Mixup(
            mixup_alpha=options.mixup_alpha,
            cutmix_alpha=options.cutmix_alpha,
            prob=options.prob,
            switch_prob=options.switch_prob,
            mode="batch",
            label_smoothing=label_smoothing,
            num_classes=num_classes,
        )

    def active(self, epoch: int) -> bool:
        """Whether batches of `epoch` are mixed."""
        off = self.options.off_epoch
        return self.options.enabled and (off is None or epoch < off)

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
