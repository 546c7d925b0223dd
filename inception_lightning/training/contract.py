"""What callbacks may rely on in the LightningModule they watch: one network, and a way to add more.

`InceptionClassifier` fulfils it. Callbacks find the network through `network_of` only, and a
callback that keeps another set of weights (`InceptionEMA`) hands it to the module through
`add_eval_network`; neither side searches for, or reaches into, the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from torch import nn

from inception_lightning.models.net import InceptionNet

NetworkProvider = Callable[[], nn.Module | None]


@runtime_checkable
class NetworkModule(Protocol):
    """A LightningModule that trains the network `model` and evaluates extra networks beside it."""

    model: nn.Module

    def add_eval_network(self, name: str, provider: NetworkProvider) -> None:
        """Evaluate `provider()` beside `model` in every validation epoch, as `val_<name>/...`.

        The provider is called at the start of each validation epoch; None skips that epoch.
        """


def network_of(pl_module: object) -> InceptionNet:
    """The `InceptionNet` that `pl_module` trains, or a `TypeError` saying what is missing."""
    network = pl_module.model if isinstance(pl_module, NetworkModule) else None
    if not isinstance(network, InceptionNet):
        raise TypeError(
            f"{type(pl_module).__name__} does not train an InceptionNet as `.model` with "
            "`add_eval_network`, as InceptionClassifier does; the inception_lightning callbacks "
            "need both"
        )
    return network
