"""Option groups of `StreamingImageDataModule`: augmentation, the loader, the stream.

`AugmentOptions` and `LoaderOptions` are meant to be the same groups as the folder
datamodule's; until that datamodule takes groups, they live here.
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
    """Loader processes and pinned memory.

    Args:
        num_workers: loader processes; None: `default_num_workers` for the trainer's devices on
            this node.
        pin_memory: None pins when CUDA is available.
    """

    num_workers: int | None = None
    pin_memory: bool | None = None


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
