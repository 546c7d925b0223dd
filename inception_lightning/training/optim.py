"""The papers' optimiser and learning-rate schedule, as classes LightningCLI can configure.

Both are the defaults of `InceptionClassifier(optimizer=..., scheduler=...)`; any
`torch.optim.Optimizer` / `LRScheduler` class (SGD, AdamW, CosineAnnealingLR, ...) can replace
them through LightningCLI's `OptimizerCallable` / `LRSchedulerCallable`.
"""

from __future__ import annotations

from timm.optim import RMSpropTF
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LinearLR, SequentialLR, StepLR
from torch.optim.optimizer import ParamsT


class InceptionRMSprop(RMSpropTF):
    """timm's `RMSpropTF` (eps inside the square root, as TF) with the v3 paper's values.

    v3 paper sect. 8: "RMSProp with decay of 0.9 and eps = 1.0", learning rate 0.045.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        alpha: decay of the squared-gradient average.
        eps: added to the squared-gradient average inside the square root.
        momentum: momentum factor.
        weight_decay: L2 penalty added to the gradient.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 0.045,
        alpha: float = 0.9,
        eps: float = 1.0,
        momentum: float = 0.9,  # TF-slim's train_image_classifier rmsprop_momentum
        weight_decay: float = 4e-5,  # TF-slim's arg scope; it covers BN and biases here too
    ) -> None:
        super().__init__(
            params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay
        )


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
