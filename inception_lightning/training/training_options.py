"""The option groups of `InceptionClassifier`: loss, optimiser scaling, initial weights, compute.

New options of the module join one of these groups (or a new one), so that its constructor
stays narrow; see `models.options.OptionGroup` for how the groups parse and are saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from inception_lightning.models.options import OptionGroup


@dataclass(frozen=True)
class LossOptions(OptionGroup):
    """The training loss: `CE_ls(logits) + aux_weight * CE_ls(aux_logits)`.

    Args:
        label_smoothing: epsilon of the label-smoothed cross-entropy (v3 paper sect. 7: 0.1).
        aux_weight: weight of the aux head's loss (TF-slim: 0.4).
    """

    prefix: ClassVar[str] = "loss"

    label_smoothing: float = 0.1
    aux_weight: float = 0.4


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
