"""The diagnostic callbacks' shared hook lifecycle: arm on due steps, collect, disarm.

`ActivationProbe` registers forward hooks that reduce activations to a few sums on the device;
`ProbeCallback` arms it on the steps a callback observes (those on which Lightning writes its
logs), collects after the step and disarms on an exception or at teardown.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from typing_extensions import override

from inception_lightning.models.anatomy import Site
from inception_lightning.training.contract import FoundNetwork, find_network

STATS = ("mean", "std", "zero_fraction", "dead_fraction")


class Tap(NamedTuple):
    """One activation to watch: a module's first input or its output (or a channel slice of
    it, times a scale: see `models.anatomy.Site`), logged under `key`."""

    key: str
    module: nn.Module
    side: Literal["input", "output"] = "output"
    site: Site | None = None

    @classmethod
    def at(cls, key: str, network: nn.Module, site: Site) -> Tap:
        """The tap of an anatomy's `site` in `network`."""
        plain = site.channels is None and site.scale == 1.0
        return cls(key, network.get_submodule(site.module), site.side, None if plain else site)


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
    They reduce in fp32 whatever `x`'s dtype (bf16 under bf16-mixed: a bf16 result would be off
    by ~1e-3). No host synchronisation happens here.
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
                hook = partial(self._on_input, tap.key, tap.site, samples)
                self._handles.append(tap.module.register_forward_pre_hook(hook))
            else:
                hook = partial(self._on_output, tap.key, tap.site, samples)
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

    def _on_input(
        self, key: str, site: Site | None, samples: int, module: nn.Module, args: tuple[Any, ...]
    ) -> None:
        self._observe(key, site, samples, args[0])

    def _on_output(
        self,
        key: str,
        site: Site | None,
        samples: int,
        module: nn.Module,
        args: tuple[Any, ...],
        output: Tensor,
    ) -> None:
        self._observe(key, site, samples, output)

    def _observe(self, key: str, site: Site | None, samples: int, x: Tensor) -> None:
        if site is not None:
            x = site.select(x.detach())
            # the scaled tensor itself, not scaled sums: its statistics are then bit for bit
            # those of a network that scales before its hook point (ours)
            x = x * site.scale if site.scale != 1.0 else x
        sums = activation_sums(x)
        previous = self._sums.get(key)
        self._sums[key] = sums if previous is None else previous + sums
        if samples and key not in self.samples:
            flat = x.detach().reshape(-1)
            stride = max(1, flat.numel() // samples)
            self.samples[key] = flat[::stride][:samples].to(torch.float32, copy=True)


def is_due(step: int, every_n_steps: int) -> bool:
    """Whether the 0-based optimiser step `step` is the last of a window of `every_n_steps`.

    Lightning's `log_every_n_steps` picks the same steps (n-1, 2n-1, ...). A callback that reads
    device tensors on them (a host-device sync) therefore syncs only on steps on which Lightning
    syncs anyway to write its logs, when both use the same cadence (50 by default).
    """
    return (step + 1) % every_n_steps == 0


class ProbeCallback(Callback, ABC):
    """A callback that observes activations on due training steps through an `ActivationProbe`.

    Subclasses name their taps (`taps`) in the Inception network that `contract.find_network`
    finds in the LightningModule, and handle the summaries of each observed step (`observed`);
    the hooks exist only from the start of an observed step to its end, and never outlive an
    exception or the run.

    Args:
        every_n_steps: observe the last step of every `every_n_steps` optimiser steps.
        network: the network's dotted name in the LightningModule; None finds the one there.
    """

    def __init__(self, every_n_steps: int, network: str | None = None) -> None:
        self.every_n_steps = every_n_steps
        self.network = network
        self._probe = ActivationProbe()
        self._taps: list[Tap] = []
        self._step = -1

    @abstractmethod
    def taps(self, found: FoundNetwork) -> list[Tap]:
        """The activations to watch in `found.network`, by its anatomy."""

    def samples_for(self, step: int) -> int | None:
        """Histogram samples to keep on `step`: None skips the step, 0 keeps none."""
        return 0 if is_due(step, self.every_n_steps) else None

    @abstractmethod
    def observed(self, trainer: pl.Trainer, summaries: dict[str, ActivationSummary]) -> None:
        """Use the summaries (summed over ranks) of the observed step `self._step`."""

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._taps = self.taps(find_network(pl_module, self.network, type(self).__name__))
        self._step = -1

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == self._step:  # a later micro-batch of an accumulated step
            return
        samples = self.samples_for(step)
        if samples is not None:
            self._step = step
            self._probe.arm(self._taps, samples)

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._probe.armed:
            self.observed(trainer, self._probe.collect(trainer))

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._probe.disarm()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._probe.disarm()
