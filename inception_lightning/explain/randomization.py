"""Randomised copies of a model, unit by unit, in the three orders of the randomisation tests.

A unit is a part of the network re-initialised at once: by default the classifier head and each
stage of `features` (`cascade_units`); any list of named modules works (Quantus randomises
every module that has `reset_parameters`). The orders (Adebayo et al. 2018, sect. 3.1;
Hedström et al. 2023, sect. 3):

- "top_down": cumulative, from the head to the input (the 2018 cascade). It leaves the lower
  layers trained until the end, which Binder et al. 2022 showed confounds the verdict;
- "bottom_up": cumulative, from the input to the head (Hedström et al.'s recommendation);
- "independent": one unit at a time, every other unit trained.

Every unit draws its new weights from its own seed (`seed` plus its position from the input),
so a unit gets the same random weights in every order and both cascades end at the same fully
randomised model. Quantus seeds every module with the same `seed + 1`, which gives modules of
equal shape equal weights; ours differ.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import nn

from inception_lightning.models.anatomy import anatomy_of

Order = Literal["top_down", "bottom_up", "independent"]
ORDERS: tuple[str, ...] = ("top_down", "bottom_up", "independent")


def cascade_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The units to re-initialise, from the output down; only those with parameters.

    An Inception network (ours, timm's or torchvision's: see `models.anatomy`) gives its
    classifier head, then its stages from the last to the first; any other model gives its
    direct children in reverse registration order, which must then be the forward order.
    """
    anatomy = anatomy_of(model)
    if anatomy is not None:
        names = [*anatomy.heads[:1], *reversed(anatomy.stages.values())]
        units = [(name, model.get_submodule(name)) for name in names]
    else:
        units = list(reversed(list(model.named_children())))
    return [(name, unit) for name, unit in units if any(True for _ in unit.parameters())]


def reinitialize_(module: nn.Module, seed: int) -> None:
    """Re-initialise every submodule that has `reset_parameters` (BatchNorm statistics too),
    drawing from `seed`; the global random state is restored afterwards."""
    devices = [p.device for p in module.parameters() if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices), torch.inference_mode(False), torch.no_grad():
        torch.manual_seed(seed)
        for sub in module.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()


def randomized_models(
    model: nn.Module,
    order: Order = "top_down",
    units: Sequence[str] | None = None,
    seed: int = 0,
    max_depth: int | None = None,
) -> Iterator[tuple[str, nn.Module]]:
    """Yield `(unit name, randomised copy)` for each step of `order`; `model` is not changed.

    One copy is made and changed in place between steps (as Quantus does), so use each copy
    before asking for the next.

    Args:
        model: the trained model.
        order: "top_down", "bottom_up" or "independent".
        units: dotted names of the units, from the output down; None: `cascade_units`.
        seed: unit `i` (counted from the input) draws from `seed + i`.
        max_depth: stop after this many steps (None: every unit).
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    with torch.inference_mode(False):  # the copy's parameters must not be inference tensors
        copied = copy.deepcopy(model)
    names = [n for n, _ in cascade_units(copied)] if units is None else list(units)
    if not names:
        raise ValueError(f"{type(model).__name__} has no parameters to randomise")
    seeds = {name: seed + i for i, name in enumerate(reversed(names))}
    steps = names if order != "bottom_up" else names[::-1]
    for name in steps[:max_depth]:
        unit = copied.get_submodule(name)
        if order != "independent":
            reinitialize_(unit, seeds[name])
            yield name, copied
            continue
        trained = {k: v.clone() for k, v in unit.state_dict().items()}
        reinitialize_(unit, seeds[name])
        yield name, copied
        with torch.inference_mode(False), torch.no_grad():
            unit.load_state_dict(trained)


def fully_randomized(
    model: nn.Module, units: Sequence[str] | None = None, seed: int = 0
) -> nn.Module:
    """A copy of `model` with every unit randomised: the end of either cascade."""
    *_, (_, randomized) = randomized_models(model, "bottom_up", units, seed)
    return randomized
