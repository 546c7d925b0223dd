"""The option groups of the datamodules: loaders, crops, the hold-out split, augmentation, files.

Each datamodule takes the groups whose every option it honours: `LoaderOptions` all of them,
`CropOptions` the two that read image files, the rest `ImageFolderDataModule`. New options
join a group (or a new one), so that the constructors stay narrow; see
`models.options.OptionGroup` for how the groups parse and are saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from inception_lightning.models.options import OptionGroup, one_of

BadFiles = Literal["error", "skip"]
# How training images are drawn: shuffled, or with replacement by class (`ClassBalancedSampler`)
Sampling = Literal["shuffle", "class_balanced", "square_root"]
# An automatic augmentation policy of torchvision v2 (`data.transforms.policies`)
Policy = Literal["none", "randaugment", "trivialaugment", "autoaugment"]


@dataclass(frozen=True)
class LoaderOptions(OptionGroup):
    """How the dataloaders batch and load.

    Args:
        batch_size: images per batch (per device).
        num_workers: loader processes; None: the datamodule's default (`default_num_workers`
            for the trainer's devices on this node; 0 for the built-in dataset, whose images
            are tensors already).
        pin_memory: None pins when CUDA is available.
        sampling: how training images are drawn: "shuffle"d each epoch, or with replacement so
            that every class comes equally often ("class_balanced") or in proportion to the
            square root of its size ("square_root"), for imbalanced classes
            (`ClassBalancedSampler`: resumable mid-epoch, split across DDP ranks).
    """

    prefix: ClassVar[str] = "loader"

    batch_size: int = 32
    num_workers: int | None = None
    pin_memory: bool | None = None
    sampling: Sampling = "shuffle"

    def __post_init__(self) -> None:
        one_of(self.key("sampling"), self.sampling, get_args(Sampling))


@dataclass(frozen=True)
class CropOptions(OptionGroup):
    """Overrides of the preprocessing's crop (see `data.transforms.preprocessing`).

    Args:
        image_size: the crop size, the network's input; None: the preprocessing's.
        crop_pct: the share of the resized image kept by the evaluation crop; None: the
            preprocessing's.
    """

    prefix: ClassVar[str] = "crop"

    image_size: int | None = None
    crop_pct: float | None = None


@dataclass(frozen=True)
class SplitOptions(OptionGroup):
    """The validation hold-out of a folder that has no `val/`.

    Args:
        val_fraction: share of each class held out for validation.
        seed: seed of the hold-out.
    """

    prefix: ClassVar[str] = "split"

    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                f"{self.key('val_fraction')} must lie in (0, 1), got {self.val_fraction}"
            )


@dataclass(frozen=True)
class AugmentOptions(OptionGroup):
    """Training augmentation: a random-resized crop and a horizontal flip, then optionally an
    automatic policy and random erasing: torchvision v2's transforms on the uint8 crops, in
    timm's order (`create_transform`: crop and flip, policy, normalisation, erasing).

    Args:
        enabled: augment; False trains on the evaluation crops.
        min_scale: smallest share of the image area a training crop covers.
        hflip: probability of a horizontal flip.
        policy: "randaugment" (Cubuk et al. 2020: `num_ops` operations of strength
            `magnitude`), "trivialaugment" (Müller & Hutter 2021: one operation of random
            strength), "autoaugment" (ImageNet's learnt policy), or "none".
        num_ops: RandAugment's operations per image (timm's rand-m9-n2: 2).
        magnitude: RandAugment's strength, of 31 steps (timm's rand-m9: 9).
        erasing: probability of erasing a random rectangle (Zhong et al. 2020; timm's
            `--reprob`, 0.25 in its recipes); 0: never.
    """

    prefix: ClassVar[str] = "augment"

    enabled: bool = True
    min_scale: float = 0.08
    hflip: float = 0.5
    policy: Policy = "none"
    num_ops: int = 2
    magnitude: int = 9
    erasing: float = 0.0

    def __post_init__(self) -> None:
        one_of(self.key("policy"), self.policy, get_args(Policy))
        if self.num_ops < 1:
            raise ValueError(f"{self.key('num_ops')} must be at least 1, got {self.num_ops}")
        if not 0 <= self.magnitude <= 30:
            raise ValueError(f"{self.key('magnitude')} must lie in [0, 30], got {self.magnitude}")
        if not 0.0 <= self.erasing <= 1.0:
            raise ValueError(f"{self.key('erasing')} must lie in [0, 1], got {self.erasing}")


@dataclass(frozen=True)
class FileOptions(OptionGroup):
    """The files of a folder: what to do with unreadable ones, where their checks are cached,
    and the object boxes that come with them.

    Args:
        bad_files: "error" lists every bad file and stops; "skip" leaves them out.
        scan_cache_dir: where the scan's results are cached; None: beside the data
            (`root/.inception-lightning-scan.json`), or in the user cache folder
            (`$XDG_CACHE_HOME/inception-lightning/scan`) when `root` is read-only.
        boxes_file: a boxes file (format in `data.boxes`) whose entries name images under
            `root`; datasets then have `mask(index)`.
    """

    prefix: ClassVar[str] = "files"

    bad_files: BadFiles = "error"
    scan_cache_dir: str | None = None
    boxes_file: str | None = None

    def __post_init__(self) -> None:
        one_of(self.key("bad_files"), self.bad_files, get_args(BadFiles))
