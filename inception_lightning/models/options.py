"""Typed option groups: `OptionGroup`, the checks of their values, and `ModelOptions`.

A wide constructor takes its options in small frozen dataclasses, one per concept. jsonargparse
reads a dataclass-typed argument as a nested group, so YAML stays readable
(`init_args: {loss: {label_smoothing: 0.2}}`, `--model.loss.label_smoothing 0.2`), and
`as_kwargs` turns a group back into the plain values that checkpoints store, so that they load
with `torch.load(..., weights_only=True)`; `of` reads them back (and Python callers may pass a
plain mapping too). Each group checks its values in `__post_init__`, naming the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, get_args

# Integers, so that YAML's `stem: 79` and `stem: "79"` both parse (jsonargparse converts the
# string). Checkpoints of older versions hold strings: their upgrade converts them (`as_stem`).
Stem = Literal[299, 151, 79]
STEMS: tuple[Stem, ...] = get_args(Stem)


def as_stem(value: int | str) -> Stem:
    """A stem from an int or from the string older checkpoints and configs hold ("79").

    Raises:
        ValueError: naming the value and the stems.
    """
    try:
        stem = int(value)
    except (TypeError, ValueError):
        stem = None
    if isinstance(value, bool) or stem not in STEMS:
        raise ValueError(f"no stem {value!r}; choose one of {', '.join(map(str, STEMS))}")
    return stem  # type: ignore[return-value]  # checked against STEMS just above


@dataclass(frozen=True)
class OptionGroup:
    """Base of the option dataclasses: read from a mapping, written as plain values.

    `prefix` names the group in error messages (`loss.label_smoothing must ...`).
    """

    prefix: ClassVar[str] = ""

    @classmethod
    def of(cls, value: Self | Mapping[str, Any] | None) -> Self:
        """The options from a dataclass, a mapping (a checkpoint's hyperparameters) or None.

        Raises:
            ValueError: naming a key that is not an option, and the valid ones.
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"{cls.prefix} takes {cls.__name__} or a mapping, got {value!r}")
        names = cls.option_names()
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(
                f"{cls.prefix} has no option {', '.join(map(repr, unknown))}; "
                f"the options are {', '.join(names)}"
            )
        return cls(**value)

    @classmethod
    def option_names(cls) -> list[str]:
        """The options' names, in declaration order."""
        return [field.name for field in dataclasses.fields(cls)]

    def as_kwargs(self) -> dict[str, Any]:
        """Plain values by name: keyword arguments, and checkpoint hyperparameters that load
        with `weights_only=True`."""
        return dataclasses.asdict(self)

    def key(self, name: str) -> str:
        """`name` as a user spells it: `<group>.<name>`."""
        return f"{self.prefix}.{name}" if self.prefix else name


@dataclass(frozen=True)
class ModelOptions(OptionGroup):
    """How the registered network is built (the arguments of `create_model` besides its name).

    Args:
        width: channel multiplier (1.0: the paper's widths; 0.125 for a CPU-sized network).
        stem: 299 (the paper's), or a low-resolution stem, 151 or 79 (v3 paper sect. 9,
            Table 2), which keeps the final 8x8 grid for inputs of that size.
        aux_head: attach the auxiliary classifier; null takes the paper's choice (v3: yes).
        residual_scale: scale of every residual (Inception-ResNet); null takes the paper's
            per-grid scales, 1.0 is the unscaled ablation.
        drop_rate: dropout before the classifier (TF-slim: keep 0.8).
    """

    prefix: ClassVar[str] = "model_kwargs"

    width: float = 1.0
    stem: Stem = 299
    aux_head: bool | None = None
    residual_scale: float | None = None
    drop_rate: float = 0.2

    def __post_init__(self) -> None:
        one_of(self.key("stem"), self.stem, STEMS)


def option_names() -> list[str]:
    """`ModelOptions`' names, in declaration order."""
    return ModelOptions.option_names()


def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    """Refuse anything but an integer >= 1 (None too, when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def non_negative_int(name: str, value: Any, allow_none: bool = False) -> None:
    """Refuse anything but an integer >= 0 (None too, when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def one_of(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Refuse a value that is not among `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def in_range(name: str, value: float, low: float, high: float, high_open: bool = False) -> None:
    """Refuse a value outside `[low, high]` (or `[low, high)`)."""
    above = value >= high if high_open else value > high
    if value < low or above:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in [{low}, {high}{bracket}, got {value!r}")
