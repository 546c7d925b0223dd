"""DataLoader settings shared by the data modules: fast by default."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset

from inception_lightning.data.resumable import ResumableDataLoader


def default_num_workers() -> int:
    """Worker processes from the CPUs this process may use, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, cpus or 1)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    pin_memory: bool | None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader with pinned memory on CUDA and persistent workers.

    Shuffled (training) loaders are `ResumableDataLoader`s: a run resumed mid-epoch continues
    with the batches it had not yet seen.

    Args:
        dataset: map-style dataset of `(image, label)`.
        batch_size: images per batch.
        shuffle: reshuffle every epoch.
        num_workers: worker processes; 0 loads in the main process.
        pin_memory: None pins when CUDA is available.
        drop_last: drop the last incomplete batch.
    """
    loader_class = ResumableDataLoader if shuffle else DataLoader
    return loader_class(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
    )
