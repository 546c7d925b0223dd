"""DataLoader settings shared by the data modules: fast by default."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from inception_lightning.data.resumable import ResumableDataLoader


def default_num_workers(processes: int = 1, cpus: int | None = None) -> int:
    """Loader workers per training process: its share of the CPUs, less one for itself.

    No fixed cap (it was 8): one core decodes and crops 600 to 700 JPEGs/s (500x375 -> 299 px,
    `benchmarks/dataloader.py`; the old PIL path about 230), of which a loader delivers about
    85%, while Inception-v3 trains at about 3,300 images/s on one H100: 6 to 7 workers for such
    images, more for larger photos, whose decoding grows with their pixels. The workers of the
    `processes` training processes on a node (DDP ranks) share its CPUs, and each training
    process keeps one core for its step loop, pin-memory thread and batch unpickling. Workers
    beyond what the GPU needs only wait, costing memory rather than speed.

    Args:
        processes: training processes on this node sharing its CPUs (`trainer.num_devices`).
        cpus: CPUs to share; None: those this process may run on.
    """
    if cpus is None:
        affinity = getattr(os, "sched_getaffinity", None)
        cpus = len(affinity(0)) if affinity else os.cpu_count() or 1
    return max(1, cpus // max(1, processes) - 1)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    pin_memory: bool | None,
    drop_last: bool = False,
    sampler: Sampler | None = None,
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
        sampler: draws the training samples instead of shuffling (`shuffle` must be True):
            a `ClassBalancedSampler`, say.
    """
    if sampler is not None and not shuffle:
        raise ValueError("a sampler draws training samples: only a shuffled loader takes one")
    loader_class = ResumableDataLoader if shuffle else DataLoader
    return loader_class(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
    )
