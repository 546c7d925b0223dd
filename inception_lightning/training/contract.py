"""What callbacks may rely on in the LightningModule they watch: one network, and a way to add more.

`InceptionClassifier` fulfils it. Callbacks find the network through `network_of` only, and a
callback that keeps another set of weights (`InceptionEMA`) hands it to the module through
`add_eval_network`; neither side searches for, or reaches into, the other. The same holds for
the weights a checkpoint will hold (`saved_network_of`) and for an optimiser step that a
callback discarded (`skip_step` / `step_skipped`).
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

    def add_eval_network(self, name: str, provider: NetworkProvider, saved: bool = False) -> None:
        """Evaluate `provider()` beside `model` in every validation epoch, as `val_<name>/...`.

        The provider is called at the start of each validation epoch; None skips that epoch.
        `saved=True` says that a checkpoint holds the provided weights in its `state_dict`
        whenever the provider returns a network (as `InceptionEMA` arranges).
        """

    def saved_network(self) -> tuple[str, nn.Module]:
        """`(name, network)` of the weights a checkpoint written now would hold ("raw": `model`)."""

    def skip_step(self) -> None:
        """Mark the current optimiser step as skipped: it changes no weight, so nothing that
        follows the weights (an average) may count it. Cleared when the next batch starts."""

    @property
    def step_skipped(self) -> bool:
        """Whether the current optimiser step was skipped."""


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


def saved_network_of(pl_module: object) -> tuple[str, InceptionNet]:
    """`(name, network)` of the weights a checkpoint of `pl_module` written now would hold."""
    network_of(pl_module)  # the same check and message
    name, network = pl_module.saved_network()
    return name, network


def skip_step(pl_module: object) -> None:
    """Tell `pl_module` that the current optimiser step was skipped (no-op for other modules)."""
    if isinstance(pl_module, NetworkModule):
        pl_module.skip_step()


def step_skipped(pl_module: object) -> bool:
    """Whether a callback skipped `pl_module`'s current optimiser step."""
    return isinstance(pl_module, NetworkModule) and pl_module.step_skipped
