"""Argument checks shared by the callbacks: each error names the argument, rule and value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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
