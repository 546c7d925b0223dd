"""Declarative building blocks: a block is data, an ordered mapping of branch name -> ops."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Size2 = int | tuple[int, int]


@dataclass(frozen=True)
class Conv:
    """Conv -> BatchNorm -> ReLU unit (TF-slim's `conv2d` with batch norm)."""

    out_chs: int
    kernel: Size2 = 1
    stride: int = 1
    padding: Size2 = 0


@dataclass(frozen=True)
class Pool:
    """A pooling layer; `count_include_pad` only matters for padded average pools."""

    kind: Literal["max", "avg"]
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    count_include_pad: bool = True


@dataclass(frozen=True)
class Fork:
    """Splits a branch into parallel ops whose outputs are concatenated (v3 sect. 6, Fig. 7)."""

    ops: tuple[Conv, ...]


Op = Conv | Pool | Fork
BlockSpec = Mapping[str, tuple[Op, ...]]


@dataclass(frozen=True)
class Stage:
    """One row of a model's stage table.

    Args:
        name: TF-slim end-point name, lower-cased (`mixed_5b`); repeats get `_1`, `_2`, ...
        layer: a single op (stem layers) or a block spec.
        repeats: how many identical copies follow each other.
        residual_scale: None for a plain Inception block, else the residual scale.
        activate: False drops the ReLU after the residual add (IR-v2's last block).
    """

    name: str
    layer: Conv | Pool | BlockSpec
    repeats: int = 1
    residual_scale: float | None = None
    activate: bool = True

    def names(self) -> list[str]:
        """The module names this row expands to."""
        if self.repeats == 1:
            return [self.name]
        return [f"{self.name}_{i}" for i in range(1, self.repeats + 1)]


def scale_chs(chs: int, width: float) -> int:
    """Channel count after the width multiplier, never below 1."""
    return max(1, round(chs * width))


def out_size(size: tuple[int, int], op: Conv | Pool) -> tuple[int, int]:
    """Spatial size after one conv or pool (floor division, as torch computes it)."""
    kernel = _pair(op.kernel)
    padding = _pair(op.padding)
    return (
        (size[0] + 2 * padding[0] - kernel[0]) // op.stride + 1,
        (size[1] + 2 * padding[1] - kernel[1]) // op.stride + 1,
    )


def _pair(value: Size2) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value
