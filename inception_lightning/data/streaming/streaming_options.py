"""Option groups of `StreamingImageDataModule`: the loader, the crop, augmentation, the stream.

`LoaderOptions`, `CropOptions` and `AugmentOptions` are meant to be the same groups as the
folder datamodule's (same names, same fields); until that datamodule takes groups, they live
here. `StreamOptions` is the streaming datamodule's own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentOptions:
    """Training augmentation: a random-resized crop and a horizontal flip.

    Args:
        enabled: False trains on evaluation crops.
        min_scale: smallest share of the image area a training crop covers.
        hflip: probability of a horizontal flip.
    """

    enabled: bool = True
    min_scale: float = 0.08
    hflip: float = 0.5


@dataclass(frozen=True)
class LoaderOptions:
    """How the dataloaders batch and load.

    Args:
        batch_size: images per batch (per device).
        num_workers: loader processes; None: `default_num_workers` for the trainer's devices on
            this node.
        pin_memory: None pins when CUDA is available.
    """

    batch_size: int = 32
    num_workers: int | None = None
    pin_memory: bool | None = None


@dataclass(frozen=True)
class CropOptions:
    """Overrides of the preprocessing's crop (see `data.transforms.preprocessing`).

    Args:
        image_size: the crop size, the network's input; None: the preprocessing's.
        crop_pct: the share of the resized image kept by the evaluation crop; None: the
            preprocessing's.
    """

    image_size: int | None = None
    crop_pct: float | None = None


@dataclass(frozen=True)
class StreamOptions:
    """Where remote chunks are cached and how the training stream is shuffled.

    Args:
        cache_dir: where chunks of a remote `input_dir` are downloaded; None: LitData's
            default (`~/.lightning/chunks`, or `$DATA_OPTIMIZER_CACHE_FOLDER`).
        max_cache_size: the most disk the downloaded chunks take, e.g. "50GB"; None:
            LitData's default (75% of the free disk).
        seed: seeds the order of the chunks and of the items in them, with the epoch; every
            rank must use the same one (the default does).
        storage_options: passed to the object store's client (credentials, endpoint).
    """

    cache_dir: str | None = None
    max_cache_size: str | None = None
    seed: int = 0
    storage_options: dict[str, str] | None = None
