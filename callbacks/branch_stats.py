"""Per-branch activation statistics of Inception blocks."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
from matplotlib.figure import Figure
from typing_extensions import override

from inception_lightning.callbacks._checks import positive_int
from inception_lightning.callbacks._loggers import has_logger
from inception_lightning.callbacks._probe import (
    ActivationSummary,
    ProbeCallback,
    Tap,
    is_due,
    norm_ratio,
    short_name,
    tensorboard_writers,
)
from inception_lightning.models import InceptionNet, iter_blocks, iter_residual_blocks

HEATMAP_STATS = {"energy_share": "energy share", "dead_fraction": "dead channels"}


class BranchActivationStats(ProbeCallback):
    r"""Log activation statistics of every branch of every Inception block, and of each residual.

    Every ``every_n_steps`` training steps, the first forward pass of the step is observed:

    - each branch output gives ``branch/<block>/<branch>/<stat>`` with ``mean``, ``std``,
      ``zero_fraction`` (elements exactly zero), ``dead_fraction`` (channels that are zero for
      every sample and position of the batch) and ``energy_share`` (the branch's squared norm
      over the sum across the block's branches);
    - each residual block's scaled residual (just before the add) gives the same statistics,
      the energy share excepted, as ``residual/<block>/<stat>``, plus ``norm_ratio``,
      ``||scale * residual|| / ||shortcut||`` (the shortcut is the block's input).

    Every ``histogram_every_n_steps``, histograms of the same activations and of the shortcuts go
    to TensorBoard as ``branch/<block>/<branch>/activation``, ``residual/<block>/activation`` and
    ``shortcut/<block>/activation``; at each epoch end a heat map of blocks x branches (energy
    share, dead channels) of the last observed step is logged as the figure ``branch/heatmap``.

    The forward hooks exist only during observed steps: registered when such a step starts,
    removed when it ends (cheaper than hooks that stay and check a flag: see
    ``benchmarks/callback_overhead.py``). They reduce each activation on its device to a few
    sums and keep no reference to it; under DDP the sums are added across ranks before logging,
    so the figures are those of the global batch (histograms show rank 0's sample).

    Args:
        every_n_steps: observe the last step of every ``every_n_steps`` optimiser steps
            (steps n-1, 2n-1, ...: those on which Lightning writes its logs).
        histogram_every_n_steps: log histograms one step in this many; ``None`` for none.
        histogram_samples: values per histogram, a strided sample of the activation.

    Raises:
        ValueError: for a non-positive cadence or sample count.

    Example::

        from inception_lightning.callbacks import BranchActivationStats

        trainer = Trainer(callbacks=[BranchActivationStats(every_n_steps=100)])
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        histogram_every_n_steps: int | None = None,
        histogram_samples: int = 4096,
    ) -> None:
        positive_int("every_n_steps", every_n_steps)
        positive_int("histogram_every_n_steps", histogram_every_n_steps, allow_none=True)
        positive_int("histogram_samples", histogram_samples)
        super().__init__(every_n_steps)
        self.histogram_every_n_steps = histogram_every_n_steps
        self.histogram_samples = histogram_samples
        self._branches: dict[str, list[str]] = {}
        self._residuals: list[str] = []
        self._heatmap: dict[str, dict[str, dict[str, float]]] = {}
        self._heatmap_step = 0

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        if not has_logger(trainer, self, "its statistics are neither computed nor logged"):
            self._taps = []  # observing only to log: no hook at all

    @override
    def taps(self, network: InceptionNet) -> list[Tap]:
        taps, self._branches, self._residuals = [], {}, []
        for dotted, block in iter_blocks(network):
            name = short_name(dotted)
            self._branches[name] = list(block.branches)
            taps += [Tap(f"branch/{name}/{b}", m) for b, m in block.branches.items()]
        for dotted, block in iter_residual_blocks(network):
            name = short_name(dotted)
            self._residuals.append(name)
            taps += [
                Tap(f"residual/{name}", block.residual),
                Tap(f"shortcut/{name}", block, "input"),
            ]
        return taps

    @override
    def samples_for(self, step: int) -> int | None:
        every = self.histogram_every_n_steps
        if every is not None and is_due(step, every):
            return self.histogram_samples
        return super().samples_for(step)

    @override
    def observed(self, trainer: pl.Trainer, summaries: dict[str, ActivationSummary]) -> None:
        if summaries and is_due(self._step, self.every_n_steps):
            metrics = self._metrics(summaries)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=self._step)
        for writer in tensorboard_writers(trainer):
            for key, values in self._probe.samples.items():
                writer.add_histogram(f"{key}/activation", values, self._step)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        heatmap, self._heatmap = self._heatmap, {}  # an epoch with no observed step logs none
        writers = tensorboard_writers(trainer)
        if not (heatmap and writers and trainer.is_global_zero):
            return
        figure = heatmap_figure(heatmap, self._heatmap_step)
        for writer in writers:
            writer.add_figure("branch/heatmap", figure, self._heatmap_step)

    def _metrics(self, summaries: dict[str, ActivationSummary]) -> dict[str, float]:
        metrics: dict[str, float] = {}
        self._heatmap = {}
        for block, branches in self._branches.items():
            parts = {b: summaries[f"branch/{block}/{b}"] for b in branches}
            total = sum(part.energy for part in parts.values())
            self._heatmap[block] = {}
            for branch, part in parts.items():
                stats = part.stats() | {"energy_share": part.energy / total if total else 0.0}
                metrics |= {f"branch/{block}/{branch}/{k}": v for k, v in stats.items()}
                self._heatmap[block][branch] = {k: stats[k] for k in HEATMAP_STATS}
        for block in self._residuals:
            residual = summaries[f"residual/{block}"]
            stats = residual.stats() | {
                "norm_ratio": norm_ratio(residual, summaries[f"shortcut/{block}"])
            }
            metrics |= {f"residual/{block}/{k}": v for k, v in stats.items()}
        self._heatmap_step = self._step
        return metrics


def heatmap_figure(stats: dict[str, dict[str, dict[str, float]]], step: int) -> Figure:
    """Blocks x branches heat maps of `HEATMAP_STATS`; blank where a block lacks a branch.

    Args:
        stats: block -> branch -> stat name -> value.
        step: the training step shown in the title.
    """
    blocks = list(stats)
    branches = list(dict.fromkeys(b for per_block in stats.values() for b in per_block))
    figure = Figure(
        figsize=(3 + 1.6 * len(branches), 1.5 + 0.25 * len(blocks)), layout="constrained"
    )
    for ax, (stat, title) in zip(
        figure.subplots(1, 2, sharey=True), HEATMAP_STATS.items(), strict=True
    ):
        grid = np.full((len(blocks), len(branches)), np.nan)
        for i, block in enumerate(blocks):
            for j, branch in enumerate(branches):
                if branch in stats[block]:
                    grid[i, j] = stats[block][branch][stat]
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(branches)), branches, rotation=45, ha="right")
        ax.set_yticks(range(len(blocks)), blocks)
        ax.set_title(title)
        figure.colorbar(image, ax=ax)
    figure.suptitle(f"step {step}")
    return figure
