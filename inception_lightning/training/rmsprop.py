"""The v3 paper's optimiser, as a class LightningCLI can configure: `InceptionClassifier`'s
default (`optimizer=None`); any `torch.optim.Optimizer` class (SGD, AdamW, ...) can replace it
through LightningCLI's `OptimizerCallable`.

Imported only where it is used (`training.__init__`'s lazy attributes, `InceptionClassifier`):
importing timm imports all of its models, about 1 s of every console-script start.
"""

from __future__ import annotations

from timm.optim import RMSpropTF
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
