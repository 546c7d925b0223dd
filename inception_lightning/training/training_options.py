"""The option groups of `InceptionClassifier`: loss, optimiser scaling, initial weights, compute.

New options of the module join one of these groups (or a new one), so that its constructor
stays narrow; see `models.options.OptionGroup` for how the groups parse and are saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from inception_lightning.models.options import OptionGroup, in_range, one_of

# Per-class weights of the training loss: none, `N / (C * n_c)`, or its square root.
ClassWeights = Literal["none", "balanced", "square_root"]


@dataclass(frozen=True)
class LossOptions(OptionGroup):
    """The training loss: `CE_ls(logits) + aux_weight * CE_ls(aux_logits)`, on clean or mixed
    batches, with classes weighed alike or by their size.

    Mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019) mix training batches as timm's
    `train.py` does (`--mixup`, `--cutmix`, `--mixup-prob`, `--mixup-switch-prob`,
    `--mixup-off-epoch`; see `training.mixup`); both alphas 0 (the default) leave them alone.

    Args:
        label_smoothing: epsilon of the label-smoothed cross-entropy (v3 paper sect. 7: 0.1);
            with mixing, folded into the soft targets.
        aux_weight: weight of the aux head's loss (TF-slim: 0.4).
        class_weights: weigh each class's training loss by `N / (C * n_c)` ("balanced",
            scikit-learn's class_weight="balanced") or its square root ("square_root"), from
            the training images the datamodule counted (`train_class_counts`); "none" weighs
            all alike. The validation loss stays unweighted.
        mixup_alpha: alpha of the Beta distribution of mixup's blend weight; 0: no mixup
            (timm's recipes: 0.8).
        cutmix_alpha: alpha of the Beta distribution of cutmix's kept area; 0: no cutmix
            (timm's recipes: 1.0).
        mixup_prob: probability that a training batch is mixed at all.
        switch_prob: with both alphas on, the probability that a mixed batch is cut rather
            than blended.
        mixup_off_epoch: from this epoch on (counted from 0) batches are no longer mixed, so
            that the last epochs train on clean images; None: mixed to the end.
    """

    prefix: ClassVar[str] = "loss"

    label_smoothing: float = 0.1
    aux_weight: float = 0.4
    class_weights: ClassWeights = "none"
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mixup_prob: float = 1.0
    switch_prob: float = 0.5
    mixup_off_epoch: int | None = None

    def __post_init__(self) -> None:
        one_of(self.key("class_weights"), self.class_weights, get_args(ClassWeights))
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{self.key(name)} must be >= 0, got {getattr(self, name)}")
        for name in ("mixup_prob", "switch_prob"):
            in_range(self.key(name), getattr(self, name), 0.0, 1.0)
        off = self.mixup_off_epoch
        if off is not None and off < 0:
            raise ValueError(f"{self.key('mixup_off_epoch')} must be >= 0, got {off}")

    @property
    def mixes(self) -> bool:
        """Whether any training batch is ever mixed."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mixup_prob > 0


@dataclass(frozen=True)
class OptimOptions(OptionGroup):
    """How the optimiser's learning rates are scaled, and when the scheduler steps.

    Args:
        backbone_lr_scale: the backbone group's lr relative to the heads' (fine-tuning: 0.1).
        lr_reference_batch_size: if set, every lr is multiplied by
            `global batch size / lr_reference_batch_size` (linear scaling); the per-device batch
            size is read from the datamodule's `batch_size`.
        scheduler_interval: step the scheduler every "epoch" or every optimiser "step".
    """

    prefix: ClassVar[str] = "optim"

    backbone_lr_scale: float = 1.0
    lr_reference_batch_size: int | None = None
    scheduler_interval: Literal["epoch", "step"] = "epoch"


@dataclass(frozen=True)
class InitOptions(OptionGroup):
    """The weights the network starts from. Never saved in a checkpoint's hyperparameters: the
    checkpoint holds the weights themselves.

    Args:
        pretrained: start from timm's released weights (the heads are re-initialised when
            `num_classes` differs).
        checkpoint_path: start from a local state dict (ours, a Lightning checkpoint, or timm's).
        trust_pickle: let `checkpoint_path` unpickle arbitrary objects (refused by default:
            only for files you made yourself).
    """

    prefix: ClassVar[str] = "init"

    pretrained: bool = False
    checkpoint_path: str | None = None
    trust_pickle: bool = False


@dataclass(frozen=True)
class ComputeOptions(OptionGroup):
    """How the network runs: memory format and compilation.

    Args:
        channels_last: use the channels-last memory format for the network and the images.
        compile: `torch.compile` the network; a dict gives `torch.compile` arguments.
    """

    prefix: ClassVar[str] = "compute"

    channels_last: bool = False
    compile: bool | dict[str, Any] = False
