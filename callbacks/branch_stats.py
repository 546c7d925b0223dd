"""Per-branch activation statistics of Inception blocks."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
from matplotlib.figure import Figure
from typing_extensions import override

from inception_lightning.callbacks._loggers import has_logger
from inception_lightning.callbacks._media import media_of, warn_unshown
from inception_lightning.callbacks._probe import (
    ActivationSummary,
    ProbeCallback,
    Tap,
    is_due,
    norm_ratio,
)
from inception_lightning.callbacks._sections import HEATMAP, block_tag, branch_tag, grids
from inception_lightning.models.options import positive_int
from inception_lightning.training.contract import FoundNetwork

HEATMAP_STATS = {"energy_share": "energy share", "dead_fraction": "dead channels"}


class BranchActivationStats(ProbeCallback):
    r"""Log activation statistics of every branch of every Inception block, and of each residual.

    It watches the one Inception network in the LightningModule (ours, timm's or
    torchvision's: see ``models.anatomy``), or the one ``network`` names; blocks and branches
    are named as in the paper, whatever the network calls them. Every ``every_n_steps``
    training steps, the first forward pass of the step is observed:

    - each branch output gives ``watch.branch.<stat>.<grid>/<block>/<branch>`` with ``mean``,
      ``std``, ``zero_fraction`` (elements exactly zero), ``dead_fraction`` (channels that are
      zero for every sample and position of the batch) and ``energy_share`` (the branch's
      squared norm over the sum across the block's branches); ``<grid>`` is the block's output
      grid, e.g. ``17x17``;
    - each residual block's scaled residual (just before the add) gives the same statistics,
      the energy share excepted, as ``watch.residual.<stat>/<block>``, plus ``norm_ratio``,
      ``||scale * residual|| / ||shortcut||`` (the shortcut is the block's input).

    Every ``histogram_every_n_steps``, histograms of the same activations and of the shortcuts go
    to the loggers that show them (TensorBoard, MLflow, W&B, CSV: see ``_media``) as
    ``watch.branch.activation.<grid>/<block>/<branch>``, ``watch.residual.activation/<block>``
    and ``watch.shortcut.activation/<block>``; at each
    epoch end a heat map of blocks x branches (energy share, dead channels) of the last observed
    step, the overview, is logged as the figure ``watch.branch/heatmap``. These sections come
    after the loss and accuracy and hold at most 43 cards each (see ``_sections``).

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
        network: the Inception network's dotted name in the LightningModule, e.g.
            ``"net.backbone"``; None finds the one it holds.

    Raises:
        ValueError: for a non-positive cadence or sample count.
        NetworkNotFoundError: at the start of fit, for a module with no Inception network or
            several, or a ``network`` that names none.

    Example::

        from inception_lightning.callbacks import BranchActivationStats

        trainer = Trainer(callbacks=[BranchActivationStats(every_n_steps=100)])
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        histogram_every_n_steps: int | None = None,
        histogram_samples: int = 4096,
        network: str | None = None,
    ) -> None:
        positive_int("every_n_steps", every_n_steps)
        positive_int("histogram_every_n_steps", histogram_every_n_steps, allow_none=True)
        positive_int("histogram_samples", histogram_samples)
        super().__init__(every_n_steps, network)
        self.histogram_every_n_steps = histogram_every_n_steps
        self.histogram_samples = histogram_samples
        self._branches: dict[str, list[str]] = {}
        self._residuals: list[str] = []
        self._grids: dict[str, str] = {}
        self._histogram_tags: dict[str, str] = {}
        self._heatmap: dict[str, dict[str, dict[str, float]]] = {}
        self._heatmap_step = 0

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        if not has_logger(trainer, self, "its statistics are neither computed nor logged"):
            self._taps = []  # observing only to log: no hook at all
        warn_unshown(trainer, self, "its heat map and histograms")

    @override
    def taps(self, found: FoundNetwork) -> list[Tap]:
        taps, self._branches, self._residuals = [], {}, []
        network, anatomy = found.network, found.anatomy
        self._grids = grids(anatomy, network)
        for block in anatomy.blocks:
            self._branches[block.name] = list(block.branches)
            taps += [
                Tap.at(f"branch/{block.name}/{b}", network, site)
                for b, site in block.branches.items()
            ]
        for block in anatomy.residual_blocks:
            self._residuals.append(block.name)
            taps += [
                Tap.at(f"residual/{block.name}", network, block.residual),
                Tap(f"shortcut/{block.name}", network.get_submodule(block.module), "input"),
            ]
        self._histogram_tags = {tap.key: self._histogram_tag(tap.key) for tap in taps}
        return taps

    def _histogram_tag(self, key: str) -> str:
        kind, block, *branch = key.split("/")
        if kind == "branch":
            return branch_tag("activation", self._grids[block], block, branch[0])
        return block_tag(kind, "activation", block)

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
        for media in media_of(trainer) if self._probe.samples else ():
            for key, values in self._probe.samples.items():
                media.histogram(self._histogram_tags[key], values, self._step)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        heatmap, self._heatmap = self._heatmap, {}  # an epoch with no observed step logs none
        targets = media_of(trainer)
        if not (heatmap and targets):
            return
        figure = heatmap_figure(heatmap, self._heatmap_step, self._grids)
        for media in targets:
            media.figure(HEATMAP, figure, self._heatmap_step)

    def _metrics(self, summaries: dict[str, ActivationSummary]) -> dict[str, float]:
        metrics: dict[str, float] = {}
        self._heatmap = {}
        for block, branches in self._branches.items():
            parts = {b: summaries[f"branch/{block}/{b}"] for b in branches}
            total = sum(part.energy for part in parts.values())
            self._heatmap[block] = {}
            for branch, part in parts.items():
                stats = part.stats() | {"energy_share": part.energy / total if total else 0.0}
                grid = self._grids[block]
                metrics |= {branch_tag(k, grid, block, branch): v for k, v in stats.items()}
                self._heatmap[block][branch] = {k: stats[k] for k in HEATMAP_STATS}
        for block in self._residuals:
            residual = summaries[f"residual/{block}"]
            stats = residual.stats() | {
                "norm_ratio": norm_ratio(residual, summaries[f"shortcut/{block}"])
            }
            metrics |= {block_tag("residual", k, block): v for k, v in stats.items()}
        self._heatmap_step = self._step
        return metrics


def heatmap_figure(
    stats: dict[str, dict[str, dict[str, float]]], step: int, grids: dict[str, str]
) -> Figure:
    """Branches x blocks heat maps of `HEATMAP_STATS`, one above the other; blank where a block
    lacks a branch.

    Sized for a TensorBoard card (about 340 px wide): the branch names and the grids (white
    lines between them, named on top) stay legible there even for IR-v2's 43 blocks; the
    block names, small, need the card enlarged.

    Args:
        stats: block -> branch -> stat name -> value.
        step: the training step shown in the title.
        grids: block -> its grid, e.g. "17x17" ("" when unknown).
    """
    blocks = list(stats)
    branches = list(dict.fromkeys(b for per_block in stats.values() for b in per_block))
    starts = [i for i, block in enumerate(blocks) if i == 0 or grids[block] != grids[blocks[i - 1]]]
    ends = [*starts[1:], len(blocks)]
    figure = Figure(figsize=(5.0, 4.0), dpi=100, layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    for ax, (stat, title) in zip(axes, HEATMAP_STATS.items(), strict=True):
        grid = np.full((len(branches), len(blocks)), np.nan)
        for i, block in enumerate(blocks):
            for j, branch in enumerate(branches):
                if branch in stats[block]:
                    grid[j, i] = stats[block][branch][stat]
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_yticks(range(len(branches)), branches, fontsize=8)
        ax.set_ylabel(title, fontsize=10)
        for start in starts[1:]:
            ax.axvline(start - 0.5, color="white", linewidth=1.5)
        figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    axes[-1].set_xticks(range(len(blocks)), blocks, rotation=90, fontsize=5)
    top = axes[0].secondary_xaxis("top")
    centres = [(a + b - 1) / 2 for a, b in zip(starts, ends, strict=True)]
    top.set_xticks(centres, [grids[blocks[a]] for a in starts], fontsize=9)
    top.tick_params(length=0)
    figure.suptitle(f"branches by block, step {step}", fontsize=10)
    return figure
