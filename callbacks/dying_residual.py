"""Detection of the "dying" of Inception-ResNet networks (Inception-v4 paper, sect. 3.3)."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from typing_extensions import override

from inception_lightning._compat import callback_state_key
from inception_lightning.callbacks._loggers import has_logger
from inception_lightning.callbacks._media import media_of, warn_unshown
from inception_lightning.callbacks._probe import (
    ActivationSummary,
    ProbeCallback,
    Tap,
    norm_ratio,
)
from inception_lightning.callbacks._sections import DYING, block_tag
from inception_lightning.models.anatomy import Block, Site
from inception_lightning.models.options import in_range, one_of, positive_int
from inception_lightning.training.contract import FoundNetwork

log = logging.getLogger(__name__)

POLICIES = ("warn", "stop", "raise")
DEAD_FRACTION = f"{DYING}/pre_pool_dead_fraction"


class DyingResidualError(RuntimeError):
    """Raised by `DyingResidualDetector(policy="raise")` when the network is dying."""


class DyingResidualDetector(ProbeCallback):
    r"""Detect that an Inception-ResNet is "dying" and warn, stop or raise.

    The Inception-v4 paper (sect. 3.3) reports that residual variants with more than about 1000
    filters "died" early in training: the last layer before the average pooling produced only
    zeros. Scaling the residuals by 0.1-0.3 before the addition prevented it.

    Definition. Every ``every_n_steps`` training steps (on the last of each ``every_n_steps``,
    the steps on which Lightning writes its logs) the detector *checks* the
    first forward pass of the step. A *unit* of the pre-pool features (a channel of the last
    stage's output, the map that the head's global average pool turns into the classifier's
    input) is *dead* when it is exactly zero at every position of every sample of the batch
    (the global batch under DDP). The network is *dying* at a check when the fraction of dead
    units exceeded ``threshold`` at each of the last ``patience`` checks, the window. The
    detector acts on the check that completes such a window, once per episode: a check at or
    below the threshold ends the episode.

    Logged at every check:

    - ``watch.dying/pre_pool_dead_fraction`` and ``watch.dying/pre_pool_zero_fraction``, the
      decision figure and the fraction of zero elements;
    - early signs, per residual block: ``watch.residual.norm_ratio/<block>``,
      ``||scale * residual|| / ||shortcut||`` (the shortcut is the block's input), and
      ``watch.residual.output_zero_fraction/<block>``, the fraction of zeros after the block's
      activation.

    It watches the one Inception network in the LightningModule (ours, timm's or
    torchvision's: see ``models.anatomy``), or the one ``network`` names.

    Acting: every policy first writes a warning to the log and a text entry
    ``watch.dying/report`` (to the loggers that show text: see ``_media``) naming the step, the
    figures of the window, the residual blocks with the most zeros after them and the remedy
    (residual scales of 0.1-0.3). Then ``"warn"`` goes on,
    ``"stop"`` saves a checkpoint of the current state with ``trainer.save_checkpoint`` and stops
    training gracefully, and ``"raise"`` raises :class:`DyingResidualError`. Under DDP the
    figures are summed over ranks before the decision, so all ranks act together.

    Args:
        threshold: dead fraction of the pre-pool units above which a check counts as dying.
        patience: consecutive dying checks needed to act.
        every_n_steps: check one training step in this many (optimizer steps).
        policy: ``"warn"``, ``"stop"`` or ``"raise"``.
        dirpath: where ``"stop"`` writes its checkpoint; ``None`` for ``trainer.log_dir``.
        pre_pool: dotted name, in the network, of the module whose first input is the pre-pool
            feature map; ``None`` for the global pool its anatomy names (our ``head``).
        network: the Inception network's dotted name in the LightningModule, e.g.
            ``"net.backbone"``; None finds the one it holds.

    Raises:
        ValueError: for an argument out of range or an unknown policy.
        NetworkNotFoundError: at the start of fit, for a module with no Inception network or
            several, or a ``network`` that names none.

    Example::

        from inception_lightning.callbacks import DyingResidualDetector

        trainer = Trainer(callbacks=[DyingResidualDetector(policy="stop")])
    """

    def __init__(
        self,
        threshold: float = 0.9,
        patience: int = 3,
        every_n_steps: int = 50,
        policy: Literal["warn", "stop", "raise"] = "warn",
        dirpath: str | Path | None = None,
        pre_pool: str | None = None,
        network: str | None = None,
    ) -> None:
        in_range("threshold", threshold, 0.0, 1.0, high_open=True)
        positive_int("patience", patience)
        positive_int("every_n_steps", every_n_steps)
        one_of("policy", policy, POLICIES)
        super().__init__(every_n_steps, network)
        self.threshold = threshold
        self.patience = patience
        self.policy = policy
        self.dirpath = dirpath
        self.pre_pool = pre_pool
        self.window: deque[float] = deque(maxlen=patience)
        self.streak = 0
        self.fired_steps: list[int] = []
        self._blocks: dict[str, Block] = {}

    @property
    @override
    def state_key(self) -> str:
        return callback_state_key(self, threshold=self.threshold, patience=self.patience)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        has_logger(trainer, self, "its figures are not logged (it still detects and acts)")
        warn_unshown(trainer, self, "its report")

    @override
    def taps(self, found: FoundNetwork) -> list[Tap]:
        network, anatomy = found.network, found.anatomy
        pre_pool = anatomy.pre_pool if self.pre_pool is None else Site(self.pre_pool, "input")
        taps = [Tap.at("pre_pool", network, pre_pool)]
        self._blocks = {}
        for block in anatomy.residual_blocks:
            self._blocks[block.name] = block
            taps += [
                Tap.at(f"shortcut/{block.name}", network, Site(block.module, "input")),
                Tap.at(f"residual/{block.name}", network, block.residual),
                Tap.at(f"output/{block.name}", network, Site(block.module)),
            ]
        return taps

    @override
    def observed(self, trainer: pl.Trainer, summaries: dict[str, ActivationSummary]) -> None:
        if not summaries:
            return
        metrics = self._metrics(summaries)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=self._step)
        dead = metrics[DEAD_FRACTION]
        self.window.append(dead)
        self.streak = self.streak + 1 if dead > self.threshold else 0
        if self.streak == self.patience:
            self._act(trainer, metrics)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"window": list(self.window), "streak": self.streak, "fired_steps": self.fired_steps}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.window = deque(state_dict["window"], maxlen=self.patience)
        self.streak = state_dict["streak"]
        self.fired_steps = list(state_dict["fired_steps"])

    def _metrics(self, summaries: dict[str, ActivationSummary]) -> dict[str, float]:
        if "pre_pool" not in summaries:
            raise MisconfigurationException(
                "DyingResidualDetector: the pre-pool module "
                f"({self.pre_pool or 'the global pool'}) did not run in the training step."
            )
        pre_pool = summaries["pre_pool"]
        metrics = {
            DEAD_FRACTION: pre_pool.dead_fraction,
            f"{DYING}/pre_pool_zero_fraction": pre_pool.zero_fraction,
        }
        for name in self._blocks:
            ratio = norm_ratio(summaries[f"residual/{name}"], summaries[f"shortcut/{name}"])
            metrics[block_tag("residual", "norm_ratio", name)] = ratio
            zeros = summaries[f"output/{name}"].zero_fraction
            metrics[block_tag("residual", "output_zero_fraction", name)] = zeros
        return metrics

    def _act(self, trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        self.fired_steps.append(self._step)
        message = self._message(metrics)
        if self.policy == "stop":
            path = Path(self.dirpath or trainer.log_dir) / f"dying-residual-step={self._step}.ckpt"
            trainer.save_checkpoint(path)
            trainer.should_stop = True
            message += f" Training stopped; the current state is saved in {path}."
        if trainer.is_global_zero:
            log.warning(message)
        for media in media_of(trainer):
            media.text(f"{DYING}/report", message, self._step)
        if self.policy == "raise":
            raise DyingResidualError(message)

    def _message(self, metrics: dict[str, float]) -> str:
        window = ", ".join(f"{d:.3f}" for d in self.window)
        zeros = {n: metrics[block_tag("residual", "output_zero_fraction", n)] for n in self._blocks}
        ratios = {n: metrics[block_tag("residual", "norm_ratio", n)] for n in self._blocks}
        worst = sorted(self._blocks, key=zeros.__getitem__, reverse=True)[:3]
        blocks = "; ".join(
            f"{n} (zeros after the block {zeros[n]:.3f}, "
            f"||scale*residual||/||shortcut|| {ratios[n]:.3f}, "
            f"scale {self._blocks[n].scale:g})"
            for n in worst
        )
        return (
            f"The network is dying at step {self._step}: the dead fraction of the pre-pool "
            f"feature units exceeded {self.threshold} at each of the last {self.patience} checks"
            f" ({window}). Residual blocks with the most zeros: {blocks or 'none'}. Remedy "
            "(Inception-v4 paper, sect. 3.3): scale the residuals by 0.1-0.3 before the addition,"
            " e.g. create_model(..., residual_scale=0.2) or the paper's per-grid scales "
            "(residual_scale=None); a lower learning rate or extra BatchNorm did not help there."
        )
