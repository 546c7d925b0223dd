"""Activation statistics reduced on the device, shared by the diagnostic callbacks."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

STATS = ("mean", "std", "zero_fraction", "dead_fraction")


class Tap(NamedTuple):
    """One activation to watch: a module's first input or its output, logged under `key`."""

    key: str
    module: nn.Module
    side: Literal["input", "output"] = "output"


@dataclass(frozen=True)
class ActivationSummary:
    """Statistics of one activation over a batch (the global batch under DDP).

    Attributes:
        mean: mean over every element.
        std: population standard deviation over every element.
        zero_fraction: fraction of elements that are exactly zero.
        dead_fraction: fraction of channels (dim 1) that are zero for every sample and position.
        energy: squared L2 norm.
    """

    mean: float
    std: float
    zero_fraction: float
    dead_fraction: float
    energy: float

    @classmethod
    def from_sums(cls, sums: list[float]) -> ActivationSummary:
        """Summary from the output of `activation_sums`, possibly summed over ranks."""
        numel, total, energy, *nonzero = sums
        mean = total / numel
        return cls(
            mean=mean,
            std=math.sqrt(max(energy / numel - mean * mean, 0.0)),
            zero_fraction=1.0 - sum(nonzero) / numel,
            dead_fraction=sum(count == 0 for count in nonzero) / len(nonzero),
            energy=energy,
        )

    def stats(self) -> dict[str, float]:
        """The logged statistics, by the names in `STATS`."""
        return {name: getattr(self, name) for name in STATS}


def activation_sums(x: Tensor) -> Tensor:
    """`[numel, sum, sum of squares, nonzero count of each channel...]` on `x`'s device.

    Sums rather than means, so that a sum over ranks gives the statistics of the global batch.
    No host synchronisation happens here.
    """
    x = x.detach()
    dims = (0, *range(2, x.ndim))
    return torch.cat(
        (
            x.new_full((1,), x.numel(), dtype=torch.float32),
            x.sum(dtype=torch.float32).reshape(1),
            torch.linalg.vector_norm(x, dtype=torch.float32).square().reshape(1),
            torch.count_nonzero(x, dim=dims).to(torch.float32),
        )
    )


def norm_ratio(part: ActivationSummary, whole: ActivationSummary) -> float:
    """`||part|| / ||whole||`, infinite when only `whole` is zero, zero when both are."""
    if whole.energy > 0:
        return math.sqrt(part.energy / whole.energy)
    return math.inf if part.energy > 0 else 0.0


def short_name(dotted: str) -> str:
    """The tag name of a module: the last component of its dotted name."""
    return dotted.rsplit(".", 1)[-1]


def tensorboard_writers(trainer: pl.Trainer) -> list[Any]:
    """The SummaryWriters of the trainer's TensorBoard loggers (no-op objects off rank 0)."""
    return [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]


class ActivationProbe:
    """Forward hooks that reduce activations to sums on the device, registered only when armed.

    `arm` registers one hook per tap; each forward adds its sums to a running total and keeps
    no reference to the activation. `collect` removes the hooks, reduces every total across
    ranks in one call, synchronises with the host once and returns a summary per key.
    """

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []
        self._keys: list[str] = []
        self._sums: dict[str, Tensor] = {}
        self.samples: dict[str, Tensor] = {}

    def arm(self, taps: Iterable[Tap], samples: int = 0) -> None:
        """Register the hooks; keep up to `samples` values per key for histograms."""
        self.disarm()
        for tap in taps:
            self._keys.append(tap.key)
            if tap.side == "input":
                hook = partial(self._on_input, tap.key, samples)
                self._handles.append(tap.module.register_forward_pre_hook(hook))
            else:
                hook = partial(self._on_output, tap.key, samples)
                self._handles.append(tap.module.register_forward_hook(hook))

    @property
    def armed(self) -> bool:
        """Whether hooks are registered."""
        return bool(self._handles)

    def collect(self, trainer: pl.Trainer) -> dict[str, ActivationSummary]:
        """Remove the hooks and return the summaries, summed over ranks.

        The histogram samples stay in `samples`, on the CPU, until the next `arm`.
        """
        self._remove_hooks()
        keys = [key for key in self._keys if key in self._sums]
        sums = [self._sums.pop(key) for key in keys]
        self.samples = {key: value.cpu() for key, value in self.samples.items()}
        if not keys:
            return {}
        values = trainer.strategy.reduce(torch.cat(sums), reduce_op="sum").tolist()
        summaries = {}
        offset = 0
        for key, part in zip(keys, sums, strict=True):
            summaries[key] = ActivationSummary.from_sums(values[offset : offset + part.numel()])
            offset += part.numel()
        return summaries

    def disarm(self) -> None:
        """Remove every hook and drop what was gathered."""
        self._remove_hooks()
        self._keys.clear()
        self._sums.clear()
        self.samples.clear()

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _on_input(self, key: str, samples: int, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._observe(key, samples, args[0])

    def _on_output(
        self, key: str, samples: int, module: nn.Module, args: tuple[Any, ...], output: Tensor
    ) -> None:
        self._observe(key, samples, output)

    def _observe(self, key: str, samples: int, x: Tensor) -> None:
        sums = activation_sums(x)
        previous = self._sums.get(key)
        self._sums[key] = sums if previous is None else previous + sums
        if samples and key not in self.samples:
            flat = x.detach().reshape(-1)
            stride = max(1, flat.numel() // samples)
            self.samples[key] = flat[::stride][:samples].to(torch.float32, copy=True)
