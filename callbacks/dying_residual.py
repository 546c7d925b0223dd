"""Detection of the "dying" of Inception-ResNet networks (Inception-v4 paper, sect. 3.3)."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from typing_extensions import override

from inception_lightning.activation_stats import (
    ActivationProbe,
    ActivationSummary,
    Tap,
    norm_ratio,
    short_name,
    tensorboard_writers,
)
from inception_lightning.blocks import ResidualInceptionBlock, iter_residual_blocks
from inception_lightning.cadence import is_due
from inception_lightning.net import InceptionNet

log = logging.getLogger(__name__)

POLICIES = ("warn", "stop", "raise")


class DyingResidualError(RuntimeError):
    """Raised by `DyingResidualDetector(policy="raise")` when the network is dying."""


class DyingResidualDetector(Callback):
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

    - ``residual/pre_pool/dead_fraction`` and ``residual/pre_pool/zero_fraction``, the decision
      figure and the fraction of zero elements;
    - early signs, per residual block: ``residual/<block>/norm_ratio``,
      ``||scale * residual|| / ||shortcut||`` (the shortcut is the block's input), and
      ``residual/<block>/output_zero_fraction``, the fraction of zeros after the block's
      activation.

    Acting: every policy first writes a warning to the log and a TensorBoard text entry
    ``residual/dying`` naming the step, the figures of the window, the residual blocks with the
    most zeros after them and the remedy (residual scales of 0.1-0.3). Then ``"warn"`` goes on,
    ``"stop"`` saves a checkpoint of the current state with ``trainer.save_checkpoint`` and stops
    training gracefully, and ``"raise"`` raises :class:`DyingResidualError`. Under DDP the
    figures are summed over ranks before the decision, so all ranks act together.

    Args:
        threshold: dead fraction of the pre-pool units above which a check counts as dying.
        patience: consecutive dying checks needed to act.
        every_n_steps: check one training step in this many (optimizer steps).
        policy: ``"warn"``, ``"stop"`` or ``"raise"``.
        dirpath: where ``"stop"`` writes its checkpoint; ``None`` for ``trainer.log_dir``.
        pre_pool: dotted name, in the LightningModule, of the module whose first input is the
            pre-pool feature map; ``None`` for the ``head`` of the first
            :class:`~inception_lightning.InceptionNet` found.

    Raises:
        ValueError: for an argument out of range or an unknown policy.

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
    ) -> None:
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
        for name, value in (("patience", patience), ("every_n_steps", every_n_steps)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.threshold = threshold
        self.patience = patience
        self.every_n_steps = every_n_steps
        self.policy = policy
        self.dirpath = dirpath
        self.pre_pool = pre_pool
        self.window: deque[float] = deque(maxlen=patience)
        self.streak = 0
        self.fired_steps: list[int] = []
        self._probe = ActivationProbe()
        self._taps: list[Tap] = []
        self._blocks: dict[str, ResidualInceptionBlock] = {}
        self._step = -1

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(threshold=self.threshold, patience=self.patience)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._taps = [Tap("pre_pool", self._pre_pool_module(pl_module), "input")]
        self._blocks = {}
        for dotted, block in iter_residual_blocks(pl_module):
            name = short_name(dotted)
            self._blocks[name] = block
            self._taps += [
                Tap(f"shortcut/{name}", block, "input"),
                Tap(f"residual/{name}", block.residual),
                Tap(f"output/{name}", block),
            ]
        self._step = -1

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step != self._step and is_due(step, self.every_n_steps):
            self._step = step
            self._probe.arm(self._taps)

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._probe.armed:
            return
        summaries = self._probe.collect(trainer)
        if not summaries:
            return
        metrics = self._metrics(summaries)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=self._step)
        dead = metrics["residual/pre_pool/dead_fraction"]
        self.window.append(dead)
        self.streak = self.streak + 1 if dead > self.threshold else 0
        if self.streak == self.patience:
            self._act(trainer, metrics)

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._probe.disarm()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._probe.disarm()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"window": list(self.window), "streak": self.streak, "fired_steps": self.fired_steps}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.window = deque(state_dict["window"], maxlen=self.patience)
        self.streak = state_dict["streak"]
        self.fired_steps = list(state_dict["fired_steps"])

    def _pre_pool_module(self, pl_module: pl.LightningModule) -> nn.Module:
        if self.pre_pool is not None:
            return pl_module.get_submodule(self.pre_pool)
        for module in pl_module.modules():
            if isinstance(module, InceptionNet):
                return module.head
        raise MisconfigurationException(
            "DyingResidualDetector found no InceptionNet in the LightningModule; pass `pre_pool`,"
            " the dotted name of the module whose first input is the pre-pool feature map."
        )

    def _metrics(self, summaries: dict[str, ActivationSummary]) -> dict[str, float]:
        if "pre_pool" not in summaries:
            raise MisconfigurationException(
                f"DyingResidualDetector: the pre-pool module ({self.pre_pool or 'the head'}) did "
                "not run in the training step."
            )
        pre_pool = summaries["pre_pool"]
        metrics = {
            "residual/pre_pool/dead_fraction": pre_pool.dead_fraction,
            "residual/pre_pool/zero_fraction": pre_pool.zero_fraction,
        }
        for name in self._blocks:
            ratio = norm_ratio(summaries[f"residual/{name}"], summaries[f"shortcut/{name}"])
            metrics[f"residual/{name}/norm_ratio"] = ratio
            zeros = summaries[f"output/{name}"].zero_fraction
            metrics[f"residual/{name}/output_zero_fraction"] = zeros
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
        for writer in tensorboard_writers(trainer):
            writer.add_text("residual/dying", message, self._step)
        if self.policy == "raise":
            raise DyingResidualError(message)

    def _message(self, metrics: dict[str, float]) -> str:
        window = ", ".join(f"{d:.3f}" for d in self.window)
        worst = sorted(
            self._blocks, key=lambda n: metrics[f"residual/{n}/output_zero_fraction"], reverse=True
        )[:3]
        blocks = "; ".join(
            f"{n} (zeros after the block {metrics[f'residual/{n}/output_zero_fraction']:.3f}, "
            f"||scale*residual||/||shortcut|| {metrics[f'residual/{n}/norm_ratio']:.3f}, "
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
