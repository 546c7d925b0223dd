"""Typed option groups: `OptionGroup`, the checks of their values, and `ModelOptions`.

A wide constructor takes its options in small frozen dataclasses, one per concept. jsonargparse
reads a dataclass-typed argument as a nested group, so YAML stays readable
(`init_args: {loss: {label_smoothing: 0.2}}`, `--model.loss.label_smoothing 0.2`), and
`as_kwargs` turns a group back into the plain values that checkpoints store, so that they load
with `torch.load(..., weights_only=True)`; `of` reads them back (and Python callers may pass a
plain mapping too). Each group checks its values in `__post_init__`, naming the key.

A number with a valid range is typed with one of jsonargparse's restricted number types
(`jsonargparse.typing.PositiveInt`, `NonNegativeInt`, ..., or `Fraction` below): jsonargparse
refuses a value out of range while it parses (one line from the console script: the key, the
range, the value), and `OptionGroup.__post_init__` checks the same type for Python callers and
keeps the value as a plain int or float, so that checkpoints hold no jsonargparse class.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, get_args

from jsonargparse.typing import restricted_number_type

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


Fraction = restricted_number_type("Fraction", float, [(">=", 0.0), ("<", 1.0)])
"""A float in [0, 1)."""
# jsonargparse's wording of a value out of a restricted type's range (pinned by
# tests/test_parser_wording.py): "1.5 does not conform to restriction v>=0.0 and v<1.0"
OUT_OF_RANGE = re.compile(r"(.*) does not conform to restriction (.*)")


def out_of_range(message: str) -> str:
    """jsonargparse's "V does not conform to restriction v>=0 and v<1" as "must be >= 0 and < 1,
    got V" (other messages unchanged)."""
    found = OUT_OF_RANGE.fullmatch(message.strip())
    if found is None:
        return message
    value, expression = found.groups()
    bounds = re.sub(r"v(==|!=|<=|>=|<|>)(\S+)", lambda m: f"{m[1]} {m[2].removesuffix('.0')}",
                    expression)  # fmt: skip
    return f"must be {bounds}, got {value}"


@dataclass(frozen=True)
class OptionGroup:
    """Base of the option dataclasses: read from a mapping, written as plain values.

    `prefix` names the group in error messages (`loss.label_smoothing: must ...`). Fields typed
    with a restricted number type are checked here; a subclass with its own `__post_init__`
    calls `super().__post_init__()`.
    """

    prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        """Check each restricted number against its type; keep it as a plain int or float."""
        for name, kind in _restricted_fields(type(self)).items():
            value = getattr(self, name)
            if value is None:
                continue
            try:
                kind(value)
            except ValueError as error:
                raise ValueError(f"{self.key(name)}: {out_of_range(str(error))}") from None
            plain = int(value) if issubclass(kind, int) else float(value)
            object.__setattr__(self, name, plain)  # frozen: set once, while being made

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
        super().__post_init__()
        one_of(self.key("stem"), self.stem, STEMS)


@functools.cache
def _restricted_fields(group: type[OptionGroup]) -> dict[str, type]:
    """The fields of `group` typed with a restricted number type (or that type | None)."""
    found = {}
    for name, hint in typing.get_type_hints(group).items():
        kinds = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        for kind in kinds:
            plain = (int, float, bool)
            if isinstance(kind, type) and issubclass(kind, int | float) and kind not in plain:
                found[name] = kind
    return found


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
