"""`ResumableDataLoader`: a training loader that a run killed mid-epoch resumes exactly."""

from __future__ import annotations

import random
import warnings
import weakref
from collections.abc import Iterator, Sized
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class ResumableDataLoader(DataLoader):
    """A DataLoader with the `state_dict` / `load_state_dict` that Lightning checkpoints.

    Lightning 2.6 saves a training loader's state in the checkpoint only if the loader has these
    methods. A plain DataLoader resumed mid-epoch starts the epoch again from its first batch, in
    a new shuffle order, and the dropout masks differ too: Lightning does not checkpoint the
    global RNGs. The state here is the shuffle generator as it stood when the epoch's iterator
    was made, the batches handed out since, and the torch (CPU and every CUDA device), Python and
    NumPy RNG states at the moment of saving. On resume the next iterator replays that generator
    (same order, same worker seeds), skips the consumed batches by index (no sample is loaded)
    and sets the RNGs back, so dropout on the GPU draws the same masks as well.

    Exact for `num_workers=0`; random augmentations drawn inside worker processes are not
    replayed. All arguments are DataLoader's; `generator` defaults to one seeded from
    `torch.initial_seed()`, so `seed_everything` fixes the order.
    """

    def __init__(
        self,
        dataset: Dataset,
        *args: Any,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> None:
        if generator is None:
            generator = torch.Generator().manual_seed(torch.initial_seed())
        super().__init__(dataset, *args, generator=generator, **kwargs)
        self._epoch_start: torch.Tensor = generator.get_state()
        self._handed_out = 0
        self._skip = 0
        self._pending: dict[str, Any] | None = None

    @property
    def _index_sampler(self) -> _SkipFirst:  # type: ignore[override]
        return _SkipFirst(self, super()._index_sampler)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        """Batches of this epoch; after `load_state_dict`, only those not yet consumed."""
        if self._pending is not None:
            state, self._pending = self._pending, None
            self.generator.set_state(state["generator"])
            self._skip = state["batches"]
            set_rng_states(state["rng"])
        self._epoch_start = self.generator.get_state()
        self._handed_out = self._skip
        for batch in super().__iter__():
            self._handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """The epoch's starting generator state, batches handed out, and the RNGs now.

        Once the epoch's last batch is out, the state is the next epoch's start instead: a run
        resumed from a checkpoint of an epoch's end goes on to the next epoch, whose iterator
        would otherwise replay the finished one's order and skip all of it.
        """
        if self._handed_out >= len(self):
            return {"generator": self.generator.get_state(), "batches": 0, "rng": rng_states()}
        return {"generator": self._epoch_start, "batches": self._handed_out, "rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume from `state_dict` at the next iteration."""
        self._pending = state_dict


class _SkipFirst:
    """The loader's index sampler, skipping the loader's pending `_skip` batches once."""

    def __init__(self, loader: ResumableDataLoader, sampler: Sized) -> None:
        # Weak: the loader holds its persistent workers' iterator, which holds this sampler. A
        # strong reference made a cycle, freed by the garbage collector in an order that closed
        # the workers' queues before their shutdown message: each worker then took 5 s to exit.
        self.loader, self.sampler = weakref.proxy(loader), sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        skip, self.loader._skip = self.loader._skip, 0
        return islice(iter(self.sampler), skip, None)  # type: ignore[call-overload]


def rng_states() -> dict[str, Any]:
    """The global RNG states as tensors and plain values (loadable with `weights_only=True`).

    Lightning's own `_collect_rng_states` keeps NumPy's state as an array, which
    `weights_only=True` refuses to load; hence this copy of it.
    """
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
    }


def set_rng_states(state: dict[str, Any]) -> None:
    """Set the global RNGs back to `state`, from `rng_states`."""
    torch.set_rng_state(state["torch"])
    _set_cuda_rng(state.get("cuda", []))  # states saved before the CUDA ones were kept have none
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def _set_cuda_rng(states: list[torch.Tensor]) -> None:
    """Set each CUDA device's generator back; warn if this process sees fewer devices."""
    if not states:
        return
    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if devices < len(states):
        warnings.warn(
            f"the loader state holds the CUDA RNG states of {len(states)} devices but this "
            f"process sees {devices}: random ops on the missing devices will not replay exactly",
            stacklevel=3,
        )
    for device, device_state in enumerate(states[:devices]):
        torch.cuda.set_rng_state(device_state, device)
