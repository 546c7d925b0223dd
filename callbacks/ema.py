"""EMA of the weights, as the papers evaluated: Lightning's `EMAWeightAveraging`, extended."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from typing_extensions import override

from inception_lightning.models.weights import NETWORK_PREFIX
from inception_lightning.training.checkpoints import network_state, store_average, stored_average
from inception_lightning.training.contract import NetworkModule, step_skipped

SHARDED_STRATEGIES = (FSDPStrategy, ModelParallelStrategy, DeepSpeedStrategy)


class WarmupEMAModel(AveragedModel):
    """An `AveragedModel` whose update is a handful of `torch._foreach` calls.

    Update `n` (counting from 0) moves every floating-point tensor towards the model's by
    `avg = d_n * avg + (1 - d_n) * current` with the decay warm-up of TF's
    `ExponentialMovingAverage(decay, num_updates)`, which the papers' training code used:
    `d_n = min(decay, (1 + n) / (10 + n))`. Integer buffers (`num_batches_tracked`) are copied.

    The average is kept in fp32 or wider, whatever the network's precision: under `bf16-true`
    a bf16 average would lose every update smaller than its 8-bit mantissa's step, which with
    decay 0.9999 is nearly all of them; each update upcasts the network's weights.

    The tensor lists are built once, at the first update after construction or a state load,
    so an update costs no Python step per tensor and no host-device sync.

    Args:
        model: the network to average (deep-copied).
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
        with torch.no_grad():
            for tensor in (*self.module.parameters(), *self.module.buffers()):
                if tensor.is_floating_point() and tensor.dtype.itemsize < 4:
                    tensor.data = tensor.data.float()
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
            if cur[0].dtype != avg[0].dtype:  # a bf16 / fp16 network, an fp32 average
                cur = [tensor.to(avg[0].dtype) for tensor in cur]
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
        """Pairs (average, current) grouped by device and dtypes, for lerp and for copy."""
        lerp: dict[tuple[torch.device, torch.dtype, torch.dtype], tuple[list[Tensor], list[Tensor]]]
        lerp = defaultdict(lambda: ([], []))
        copy: dict[torch.device, tuple[list[Tensor], list[Tensor]]] = defaultdict(lambda: ([], []))
        params = zip(self.module.parameters(), model.parameters(), strict=True)
        buffers = zip(self.module.buffers(), model.buffers(), strict=True)
        pairs = [(a, c, True) for a, c in params] + [(a, c, self.use_buffers) for a, c in buffers]
        for avg, cur, average in pairs:
            avg, cur = avg.detach(), cur.detach()
            if average and avg.is_floating_point():
                group = lerp[avg.device, avg.dtype, cur.dtype]
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
    """EMA of the weights, with TF's decay warm-up, evaluated in every validation epoch.

    Departures from Lightning's `EMAWeightAveraging`, whose update schedule (`should_update`)
    and state (`state_dict`) it keeps:

    - the update is `WarmupEMAModel`'s: TF's decay warm-up and `torch._foreach` kernels;
    - with a module that fulfils `contract.NetworkModule` (`InceptionClassifier`), it averages
      the network alone (`pl_module.model`), not the whole LightningModule, whose deep copy
      would take its optimiser factories along (which cannot always be copied, e.g. those
      jsonargparse builds from a YAML `optimizer:` under DDP) and its metrics; validation does
      not swap the average in: the module evaluates it beside the raw network, through
      `add_eval_network("ema", ...)`, and logs `val_ema/...`;
    - with any other LightningModule (one that lacks `add_eval_network`, e.g. a plain module
      around timm's Inception-v3) it averages the whole module and evaluates the average as
      Lightning does: swapped in for each validation epoch (so `val/...` is the average's),
      swapped back after it, and held by the checkpoints' `state_dict`;
    - an average that was never updated is never evaluated (Lightning swaps it in regardless),
      and is copied into the network at the end of training only if it was ever updated;
    - an optimiser step that a callback skipped (`NonFiniteGuard(policy="skip")`, through
      `contract.skip_step`) neither updates the average nor advances its warm-up;
    - sharded strategies (FSDP, DeepSpeed, ModelParallel) are refused: the average is a deep copy
      of the unsharded network, which does not exist on any one rank.

    Checkpoints keep Lightning's layout (see `training.checkpoints`): `state_dict` holds the EMA
    weights, `current_model_state` the raw ones and `averaging_state` the update count;
    resuming restores both and continues the warm-up.

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
        self._network: nn.Module | None = None
        self._prefix = NETWORK_PREFIX  # where the averaged weights lie in the module's state
        self._swapped = False

    def average_network(self) -> nn.Module | None:
        """The averaged network (in eval mode), or None before the first update."""
        if self._average_model is None or self._average_model.num_updates == 0:
            return None
        return self._average_model.module

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if isinstance(trainer.strategy, SHARDED_STRATEGIES):
            raise ValueError(
                f"EMA weights cannot be kept under {type(trainer.strategy).__name__}: the average "
                "is a deep copy of the whole network, and a sharded network has no rank holding "
                "all its parameters. Remove the EMA callback, or train with strategy=ddp."
            )
        hosted = isinstance(pl_module, NetworkModule)
        self._network = pl_module.model if hosted else pl_module
        self._prefix = NETWORK_PREFIX if hosted else ""
        self._average_model = WarmupEMAModel(
            self._network, self.decay, self._device, self._use_buffers
        )
        self._average_model.eval()
        if hosted:
            pl_module.add_eval_network("ema", self.average_network, saved=True)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Follow the network to the device the strategy moved it to after `setup`."""
        if self._device is None and self._average_model is not None:
            self._average_model.to(next(self._network.parameters()).device)

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Lightning's update rule, applied to the network; a skipped step is no update."""
        if step_skipped(pl_module):  # no weight changed: counting it would move the average
            return
        step = trainer.global_step
        if step > self._latest_update_step and self.should_update(step_idx=step - 1):
            self._average_model.update_parameters(self._network)
            self._latest_update_step = step

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """No epoch-wise updates: the average follows optimiser steps."""

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A module that evaluates the average itself keeps its raw weights; any other module
        gets the average swapped in, once there is one."""
        if self._prefix == "" and self.average_network() is not None:
            self._swap_models(pl_module)
            self._swapped = True

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Swap the raw weights back where they were swapped out."""
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        average = self.average_network()
        if average is not None:
            self._network.load_state_dict(average.state_dict())

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Lightning's layout once the average exists; before that, the raw weights alone."""
        average = self.average_network()
        if average is not None:
            counts = {"n_averaged": self._average_model.n_averaged}
            store_average(checkpoint, average.state_dict(), counts, self._prefix)

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Restore the average and the raw weights; a checkpoint without an average seeds both."""
        if self._average_model is None:  # validate / test / predict: nothing to restore
            return
        stored = stored_average(checkpoint, self._prefix)
        if stored is None:
            rank_zero_warn(
                "the checkpoint holds no EMA weights: the average starts from its weights"
            )
            raw = network_state(checkpoint, "raw", self._prefix)
            self._average_model.module.load_state_dict(raw)
            return
        average, counts, raw = stored
        self._average_model.load_state_dict(
            {**{f"module.{k}": v for k, v in average.items()}, **counts}
        )
        pl_module.load_state_dict(raw)
