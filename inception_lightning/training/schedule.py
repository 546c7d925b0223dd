"""The papers' learning-rate schedule, as a class LightningCLI can configure:
`InceptionClassifier`'s default (`scheduler=None`); any `LRScheduler` class
(CosineAnnealingLR, ...) can replace it through LightningCLI's `LRSchedulerCallable`.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LinearLR, SequentialLR, StepLR


class InceptionStepDecay(SequentialLR):
    """Optional linear warm-up, then the lr multiplied by `gamma` every `step_epochs` epochs.

    Step it once per epoch (`InceptionClassifier(scheduler_interval="epoch")`, the default):
    without warm-up, the lr in epoch `e` is `lr * gamma ** (e // step_epochs)`; with it, the
    first `warmup_epochs` epochs ramp linearly from `lr * warmup_start_factor` up to `lr`, and
    the decay counts from the end of the warm-up.

    Args:
        optimizer: the wrapped optimiser.
        gamma: decay factor (v3 paper sect. 8: 0.94).
        step_epochs: epochs between decays (v3 paper sect. 8: 2).
        warmup_epochs: epochs of linear warm-up (0: none, as the paper).
        warmup_start_factor: fraction of the lr at the first warm-up epoch.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        gamma: float = 0.94,
        step_epochs: int = 2,
        warmup_epochs: int = 0,
        warmup_start_factor: float = 0.1,
    ) -> None:
        if step_epochs < 1 or warmup_epochs < 0:
            raise ValueError(
                f"need step_epochs >= 1 and warmup_epochs >= 0, got {step_epochs}, {warmup_epochs}"
            )
        decay = StepLR(optimizer, step_size=step_epochs, gamma=gamma)
        if warmup_epochs == 0:
            super().__init__(optimizer, [decay], milestones=[])
            return
        warmup = LinearLR(optimizer, warmup_start_factor, 1.0, total_iters=warmup_epochs)
        super().__init__(optimizer, [warmup, decay], milestones=[warmup_epochs])
