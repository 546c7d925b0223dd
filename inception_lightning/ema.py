"""EMA of the weights, as the papers evaluated: Lightning's `EMAWeightAveraging`, extended."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from typing_extensions import override

SHARDED_STRATEGIES = (FSDPStrategy, ModelParallelStrategy, DeepSpeedStrategy)


class WarmupEMAModel(AveragedModel):
    """An `AveragedModel` whose update is a handful of `torch._foreach` calls.

    Update `n` (counting from 0) moves every floating-point tensor towards the model's by
    `avg = d_n * avg + (1 - d_n) * current` with the decay warm-up of TF's
    `ExponentialMovingAverage(decay, num_updates)`, which the papers' training code used:
    `d_n = min(decay, (1 + n) / (10 + n))`. Integer buffers (`num_batches_tracked`) are copied.

    The tensor lists are built once, at the first update after construction or a state load,
    so an update costs no Python step per tensor and no host-device sync.

    Args:
        model: the LightningModule to average (deep-copied).
        decay: the decay after the warm-up.
        device: where the average lives; by default the model's device.
        use_buffers: average BN statistics too (TF averaged its moving averages); if False
            they are copied from the model.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float,
        device: torch.device | int | None = None,
        use_buffers: bool = True,
    ) -> None:
        super().__init__(model, device=device, use_buffers=use_buffers)
        self.decay = decay
        self._num_updates = 0  # `n_averaged` starts at 0; reading the buffer would be a sync
        self._lists: tuple[list[list[Tensor]], ...] | None = None

    @property
    def num_updates(self) -> int:
        """Updates applied so far, counted on the host beside the `n_averaged` buffer."""
        return self._num_updates

    def current_decay(self) -> float:
        """The decay the next update will use."""
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @override
    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        if self._lists is None:
            self._lists = self._group(model)
        weight = 1.0 - self.current_decay()
        averages, currents, copies, sources = self._lists
        for avg, cur in zip(averages, currents, strict=True):
            torch._foreach_lerp_(avg, cur, weight)
        for dst, src in zip(copies, sources, strict=True):
            torch._foreach_copy_(dst, src)
        self.n_averaged += 1
        self._num_updates += 1

    @override
    def load_state_dict(
        self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load, read the update count (outside any training step) and rebuild the lists."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._num_updates, self._lists = int(self.n_averaged), None
        return result

    def _group(self, model: nn.Module) -> tuple[list[list[Tensor]], ...]:
        """Pairs (average, current) grouped by device and dtype, for lerp and for copy."""
        lerp: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]]
        lerp = defaultdict(lambda: ([], []))
        copy: dict[torch.device, tuple[list[Tensor], list[Tensor]]] = defaultdict(lambda: ([], []))
        params = zip(self.module.parameters(), model.parameters(), strict=True)
        buffers = zip(self.module.buffers(), model.buffers(), strict=True)
        pairs = [(a, c, True) for a, c in params] + [(a, c, self.use_buffers) for a, c in buffers]
        for avg, cur, average in pairs:
            avg, cur = avg.detach(), cur.detach()
            if average and avg.is_floating_point():
                group = lerp[avg.device, avg.dtype]
            else:
                group = copy[avg.device]
            group[0].append(avg)
            group[1].append(cur)
        return (
            [a for a, _ in lerp.values()],
            [c for _, c in lerp.values()],
            [a for a, _ in copy.values()],
            [c for _, c in copy.values()],
        )


class InceptionEMA(EMAWeightAveraging):
    """EMA weights kept beside the raw ones, for evaluating both in one validation epoch.

    Departures from Lightning's `EMAWeightAveraging`:

    - the update is `WarmupEMAModel`'s: TF's decay warm-up and `torch._foreach` kernels;
    - validation does not swap the average into the module. `InceptionClassifier` evaluates the
      raw model and `average_network()` in the same `validation_step`, logging `val/...` and
      `val_ema/...`; `average_network()` is None until the first update, so an average that was
      never updated is never evaluated (Lightning swaps it in regardless);
    - at the end of training the average is copied into the module (as Lightning does) only if
      it was ever updated;
    - sharded strategies (FSDP, DeepSpeed, ModelParallel) are refused: the average is a deep copy
      of the unsharded module, which does not exist on any one rank.

    Checkpoints keep Lightning's layout: `state_dict` holds the EMA weights (what
    `load_from_checkpoint` and `read_state_dict` see), `current_model_state` the raw weights and
    `averaging_state` the update count; resuming restores both and continues the warm-up.

    Args:
        decay: the decay after the warm-up (TF-slim's Inception training: 0.9999).
        update_every_n_steps: update after every n-th optimiser step.
        update_starting_at_step: first optimiser step (0-based) that updates.
        use_buffers: average the BN running statistics too.
    """

    def __init__(
        self,
        decay: float = 0.9999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        use_buffers: bool = True,
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        super().__init__(
            use_buffers=use_buffers,
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
        )
        self.decay = decay
        self._average_model: WarmupEMAModel | None = None

    def average_network(self) -> nn.Module | None:
        """The averaged `pl_module.model` (in eval mode), or None before the first update."""
        if self._average_model is None or self._average_model.num_updates == 0:
            return None
        return self._average_model.module.model

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if isinstance(trainer.strategy, SHARDED_STRATEGIES):
            raise ValueError(
                f"EMA weights cannot be kept under {type(trainer.strategy).__name__}: the average "
                "is a deep copy of the whole module, and a sharded module has no rank holding "
                "all its parameters. Remove the EMA callback, or train with strategy=ddp."
            )
        self._average_model = WarmupEMAModel(
            pl_module, self.decay, self._device or pl_module.device, self._use_buffers
        )
        self._average_model.eval()

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Leave the raw weights in place; the module evaluates the average beside them."""

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Nothing was swapped, so nothing is swapped back."""

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Lightning's layout once the average exists; before that, the raw weights alone."""
        if self.average_network() is not None:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.average_network() is not None:
            super().on_train_end(trainer, pl_module)
