"""`ClassBalancedSampler`: draws every class about equally often, split across DDP ranks."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


class ClassBalancedSampler(DistributedSampler):
    """Draws samples with replacement, each with probability proportional to `n_c ** -power`,
    where `n_c` is the size of its class: with `power` 1 every class is drawn equally often
    (class-balanced sampling), 0.5 is square-root sampling, 0 the data's own frequencies.

    torch's `WeightedRandomSampler` draws the same way but knows neither epochs nor ranks. Here,
    as in `DistributedSampler`, each epoch's draws come from a generator seeded by
    `seed + epoch`: every rank draws the same list and keeps every `num_replicas`-th item from
    its `rank` on, so the ranks share the epoch's draws without overlap, and an epoch can be
    drawn again exactly. Lightning calls `set_epoch` at the start of every training epoch (and
    again on resuming), and leaves a `DistributedSampler` in place under DDP rather than
    wrapping it; within an epoch, `ResumableDataLoader` skips the batches already consumed.

    An epoch draws `len(labels)` samples in all (rounded up to a multiple of `num_replicas`),
    so an epoch is as long as with shuffling.

    Args:
        labels: the class index of every sample of the dataset.
        power: how far to balance, 0 (not at all) to 1 (every class alike).
        seed: the seed of every epoch's draws; the same on every rank. None:
            `torch.initial_seed()`, the seed `seed_everything` set.
        num_replicas: ranks sharing the epoch; None: the process group's size, else 1.
        rank: this process's rank; None: the process group's, else 0.
    """

    def __init__(
        self,
        labels: Sequence[int],
        power: float = 1.0,
        seed: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if not 0.0 <= power <= 1.0:
            raise ValueError(f"the sampler's power must lie in [0, 1], got {power}")
        if not labels:
            raise ValueError("a class-balanced sampler needs at least one sample")
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        seed = torch.initial_seed() % 2**63 if seed is None else seed
        super().__init__(labels, num_replicas, rank, shuffle=True, seed=seed)
        counts = Counter(labels)
        self.class_counts = [counts.get(c, 0) for c in range(max(counts) + 1)]
        """Samples of each class, by class index."""
        weights = [counts[label] ** -power for label in labels]
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.num_samples = math.ceil(len(labels) / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        """This rank's share of the epoch's draws."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total_size, True, generator=generator)
        return iter(drawn[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
