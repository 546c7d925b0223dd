"""Detection of non-finite (NaN or Inf) losses and gradients at the step they happen."""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.optim import Optimizer
from typing_extensions import override

from inception_lightning.callbacks._probe import is_due
from inception_lightning.models.options import one_of, positive_int
from inception_lightning.training.contract import (
    NetworkNotFoundError,
    find_network,
    skip_step,
)

POLICIES = ("stop", "skip")


class NonFiniteError(RuntimeError):
    """Raised by `NonFiniteGuard(policy="stop")` at the step whose loss or gradient is NaN/Inf."""


class NonFiniteGuard(Callback):
    """Catch a NaN or Inf loss or gradient at the step it happens; stop, or skip the batch.

    The check runs in ``on_before_optimizer_step``: after backward (and after the AMP unscaling),
    before gradient clipping and the optimiser step. It covers the loss of every backward pass
    of the step and the gradients of the optimiser's parameters, fused into one flag: one host
    sync per checked step (one small all-reduce more under DDP, so all ranks decide alike). With
    a GradScaler (``precision="16-mixed"``) only the loss is checked, since overflowing gradients
    are the scaler's own business: it skips those steps and lowers the scale.

    On a non-finite step, the BatchNorm statistics (all module buffers) that the step's forward
    pass changed are restored, then:

    - ``"stop"`` raises :class:`NonFiniteError` before the optimiser step, naming the global
      step, the logged ``train/loss*`` values and the first stage of the module's Inception
      network (ours, timm's or torchvision's; see ``contract.find_network``) whose output is
      non-finite when the batch is run forward again (or the input batch itself). The weights,
      buffers and optimiser state stay those of the last good step, and no checkpoint is
      written for the failed step, so ``ModelCheckpoint``'s last checkpoint stays the last good
      one.
    - ``"skip"`` drops every gradient (``grad = None``: torch optimisers then leave the
      parameters and their state, e.g. momentum, untouched), counts the batch in ``skipped``,
      logs the count as ``train/skipped_nonfinite`` and warns. The step still counts in
      ``trainer.global_step`` and step-wise lr schedulers still advance, but it is marked
      skipped on the module (``contract.skip_step``), so ``InceptionEMA`` does not average it.

    With gradient accumulation the whole accumulated step is stopped or skipped; the stage
    search re-runs its last batch.

    Args:
        policy: ``"stop"`` or ``"skip"``.
        check_every_n_steps: check the last optimiser step of every ``check_every_n_steps``
            (those on which Lightning writes its logs); a fault on an
            unchecked step is caught at the next checked step, one or more steps late.

    Raises:
        ValueError: for an unknown policy or a non-positive ``check_every_n_steps``.

    Example::

        from inception_lightning.callbacks import NonFiniteGuard

        trainer = Trainer(callbacks=[NonFiniteGuard(policy="skip")])
    """

    def __init__(
        self, policy: Literal["stop", "skip"] = "stop", check_every_n_steps: int = 1
    ) -> None:
        one_of("policy", policy, POLICIES)
        positive_int("check_every_n_steps", check_every_n_steps)
        self.policy = policy
        self.check_every_n_steps = check_every_n_steps
        self.skipped = 0
        self._batch: Any = None
        self._batch_idx = -1
        self._loss_finite: Tensor | None = None
        self._buffers: list[Tensor] = []
        self._saved_buffers: list[Tensor] = []
        self._saved_step = -1

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._buffers = list(pl_module.buffers())
        self._saved_buffers = [b.detach().clone() for b in self._buffers]
        self._saved_step = -1

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not self._checks(step):
            return
        self._batch, self._batch_idx = batch, batch_idx
        # the first micro-batch of a checked step saves the buffers its forward passes change
        if step != self._saved_step and self._buffers:
            torch._foreach_copy_(self._saved_buffers, self._buffers)
            self._saved_step = step

    @override
    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor
    ) -> None:
        if self._checks(trainer.global_step):
            finite = torch.isfinite(loss.detach()).all()
            self._loss_finite = finite if self._loss_finite is None else self._loss_finite & finite

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        if not self._checks(trainer.global_step):
            return
        loss_finite, self._loss_finite = self._loss_finite, None
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if not self._all_finite(trainer, loss_finite, params):
            self._on_non_finite(trainer, pl_module, params)
        self._batch = None  # kept for the stage search only: not past the step
        if self.policy == "skip":
            pl_module.log("train/skipped_nonfinite", float(self.skipped))

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._release()

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._release()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict["skipped"])

    def _release(self) -> None:
        # Lightning calls teardown only after a run that ends without an exception
        self._batch = None
        self._loss_finite = None
        self._buffers, self._saved_buffers = [], []

    def _checks(self, step: int) -> bool:
        return is_due(step, self.check_every_n_steps)

    def _all_finite(
        self, trainer: pl.Trainer, loss_finite: Tensor | None, params: list[nn.Parameter]
    ) -> bool:
        """One flag for the step's losses and gradients, reduced over ranks: one host sync."""
        flags = [] if loss_finite is None else [loss_finite]
        grads = [p.grad for p in params if p.grad is not None]
        if grads and getattr(trainer.precision_plugin, "scaler", None) is None:
            norms = torch._foreach_norm(grads, 2, dtype=torch.float32)
            flags.append(torch.isfinite(torch.stack(norms)).all())
        if not flags:
            return True
        bad = (~torch.stack([f.to(flags[0].device) for f in flags]).all()).float()
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad, reduce_op="sum")
        return bad.item() == 0

    def _on_non_finite(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, params: list[nn.Parameter]
    ) -> None:
        step = trainer.global_step
        losses = _loss_parts(trainer)
        if self.policy == "skip":
            for p in params:
                p.grad = None
            self._restore_buffers()
            skip_step(pl_module)
            self.skipped += 1
            rank_zero_warn(
                f"NonFiniteGuard: non-finite loss or gradient at global step {step} ({losses}); "
                f"batch skipped, {self.skipped} skipped so far"
            )
            return
        try:
            where = self._first_non_finite(trainer, pl_module)
        finally:
            self._restore_buffers()
        raise NonFiniteError(
            f"non-finite loss or gradient at global step {step} (epoch {trainer.current_epoch}, "
            f"batch {self._batch_idx}): {losses}; {where}. The weights, buffers and optimiser "
            "state are those from before this step and no checkpoint was written for it. Lower "
            "the learning rate, clip gradients (Trainer(gradient_clip_val=...)), check the data, "
            "or use NonFiniteGuard(policy='skip')."
        )

    def _restore_buffers(self) -> None:
        if self._buffers and self._saved_step >= 0:
            torch._foreach_copy_(self._buffers, self._saved_buffers)

    def _first_non_finite(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
        """Re-run the batch forward with a hook per stage; name the first non-finite output."""
        try:
            watched = find_network(pl_module)
        except NetworkNotFoundError:
            return "the non-finite block is not known"
        network, anatomy = watched.network, watched.anatomy
        if self._batch is None:
            return "the non-finite block is not known"
        images = self._batch[0] if isinstance(self._batch, list | tuple) else self._batch
        if not isinstance(images, Tensor):
            return "the non-finite block is not known"
        if not torch.isfinite(images).all():
            return "the input batch itself holds non-finite values"
        stages = [(path, network.get_submodule(path)) for path in anatomy.stages.values()]
        stages += [(head, network.get_submodule(head)) for head in anatomy.heads]
        # our network runs its aux head only when asked; the others run theirs in train mode
        forward = getattr(network, "forward_with_aux", network)
        found: list[str] = []

        def probe(name: str) -> Any:
            def hook(module: nn.Module, args: Any, output: Tensor) -> None:
                if not found and not torch.isfinite(output).all():
                    found.append(name)

            return hook

        handles = [m.register_forward_hook(probe(name)) for name, m in stages]
        try:
            with torch.no_grad(), trainer.precision_plugin.forward_context():
                forward(images)
        finally:
            for handle in handles:
                handle.remove()
        if not found:
            return "re-running the batch gave finite activations in every stage"
        return f"the first block whose activations went non-finite is {found[0]}"


def _loss_parts(trainer: pl.Trainer) -> str:
    """The step's logged `train/loss*` values, e.g. `train/loss=nan, train/loss_main=nan`."""
    parts = [
        f"{key}={float(value):.6g}"
        for key, value in sorted(trainer.callback_metrics.items())
        if key.startswith("train/loss")
    ]
    return ", ".join(parts) if parts else "no train/loss values were logged"
