"""`StreamOptions`: the streaming datamodule's own option group (its loader, crop and
augmentation groups are the folder datamodule's, `data.data_options`)."""

from __future__ import annotations

from dataclasses import dataclass

from inception_lightning.models.options import OptionGroup


@dataclass(frozen=True)
class StreamOptions(OptionGroup):
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
