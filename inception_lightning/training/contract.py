"""What callbacks rely on in the LightningModule they watch: the Inception network inside it.

Any LightningModule will do: `find_network` finds the one Inception network it holds (ours,
timm's or torchvision's; see `models.anatomy`), or the one a `network="net.backbone"` argument
names, and hands callbacks its anatomy. A module that also fulfils `NetworkModule`, as
`InceptionClassifier` does, evaluates further networks beside it: a callback that keeps
another set of weights (`InceptionEMA`) hands it over through `add_eval_network`, and neither
side searches for, or reaches into, the other. The same holds for the weights a checkpoint will
hold (`saved_network_of`) and for an optimiser step that a callback discarded (`skip_step` /
`step_skipped`); other modules simply lack them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn

from inception_lightning.models.anatomy import KNOWN, Anatomy, anatomy_of, is_inception

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


class NetworkNotFoundError(ValueError):
    """A module holds no Inception network, several, or `network=` names none; the message
    names what was found and what to pass."""


@dataclass(frozen=True)
class FoundNetwork:
    """The Inception network a callback watches.

    Attributes:
        path: its dotted name in the LightningModule ("" for the module itself).
        network: the network.
        anatomy: its view.
    """

    path: str
    network: nn.Module
    anatomy: Anatomy


def find_network(pl_module: nn.Module, path: str | None = None, who: str = "") -> FoundNetwork:
    """The one Inception network inside `pl_module`, or the one at `path`.

    Args:
        pl_module: any LightningModule (any `nn.Module`).
        path: the dotted name of the network in `pl_module`, e.g. "net.backbone"; None
            searches every submodule.
        who: the asking callback, named in the error.

    Raises:
        NetworkNotFoundError: one line for no network, several, or a `path` that names no
            module or one of an unknown architecture.
    """
    owner = type(pl_module).__name__
    prefix = f"{who}: " if who else ""
    found = _inception_networks(pl_module)
    listed = ", ".join(f"{_quoted(p)} ({_kind(m)})" for p, m in found)
    if path is not None:
        try:
            network = pl_module.get_submodule(path)
        except AttributeError:
            raise NetworkNotFoundError(
                f"{prefix}{owner} has no submodule network={path!r}; "
                + (f"its Inception networks: {listed}" if found else _none_hint(pl_module))
            ) from None
        anatomy = anatomy_of(network)
        if anatomy is None:
            raise NetworkNotFoundError(
                f"{prefix}network={path!r} in {owner} is a {type(network).__name__}, no "
                f"Inception architecture the callbacks know ({', '.join(KNOWN)}); "
                + (f"pass one of {owner}'s: {listed}" if found else _none_hint(pl_module))
            )
        return FoundNetwork(path, network, anatomy)
    if not found:
        hint = _none_hint(pl_module)
        raise NetworkNotFoundError(f"{prefix}{owner} holds no Inception network: {hint}")
    if len(found) > 1:
        raise NetworkNotFoundError(
            f"{prefix}{owner} holds {len(found)} Inception networks, {listed}; pass "
            f"network={found[0][0]!r} (or another of them) to say which one to watch"
        )
    path, network = found[0]
    return FoundNetwork(path, network, anatomy_of(network))


def _inception_networks(pl_module: nn.Module) -> list[tuple[str, nn.Module]]:
    """`(path, network)` of every Inception network in `pl_module` that no other one holds."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in pl_module.named_modules():
        inside = any(not outer or name.startswith(f"{outer}.") for outer, _ in found)
        if not inside and is_inception(module):
            found.append((name, module))
    return found


def _none_hint(pl_module: nn.Module) -> str:
    children = ", ".join(f"{n} ({type(m).__name__})" for n, m in pl_module.named_children())
    return (
        f"its modules are {children or 'none'}, and the callbacks know {', '.join(KNOWN)}; "
        "put one of those in the module, or pass network='<dotted name>' naming one inside it"
    )


def _quoted(path: str) -> str:
    return repr(path) if path else "the module itself"


def _kind(network: nn.Module) -> str:
    anatomy = anatomy_of(network)
    return anatomy.architecture if anatomy is not None else type(network).__name__


def saved_network_of(pl_module: object, found: FoundNetwork) -> tuple[str, nn.Module]:
    """`(name, network)` of the weights a checkpoint of `pl_module` written now would hold for
    `found`: a `NetworkModule`'s saved network ("ema" or "raw") when `found` is its `model`,
    else `("raw", found.network)`."""
    if isinstance(pl_module, NetworkModule) and found.network is pl_module.model:
        return pl_module.saved_network()
    return "raw", found.network


def skip_step(pl_module: object) -> None:
    """Tell `pl_module` that the current optimiser step was skipped (no-op for other modules)."""
    if isinstance(pl_module, NetworkModule):
        pl_module.skip_step()


def step_skipped(pl_module: object) -> bool:
    """Whether a callback skipped `pl_module`'s current optimiser step."""
    return isinstance(pl_module, NetworkModule) and pl_module.step_skipped
