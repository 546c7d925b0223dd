"""Progress on long work outside the training loop, by one convention for the whole package.

A rich bar with the description, the count done of the total, the rate and the time left; shown
only when stdout is a terminal (so logs and CI output stay clean) and not switched off (the
callbacks pass `trainer.progress_bar_callback is not None`, so
`--trainer.enable_progress_bar false` silences them too). Lightning's own bar covers the
training loop; rich's `track` lacks the count and the rate, hence the columns here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")


class RateColumn(ProgressColumn):
    """Items per second, e.g. `412.0 files/s`."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            "?" if speed is None else f"{speed:,.1f} {self.unit}/s", style="progress.data.speed"
        )


def progress_enabled(enabled: bool | None = None) -> bool:
    """An explicit setting wins; None shows progress when stdout is a terminal."""
    return sys.stdout.isatty() if enabled is None else enabled


def track(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    unit: str = "items",
    enabled: bool | None = None,
    size: Callable[[T], int] | None = None,
) -> Iterator[T]:
    """Yield `items`, showing progress while they are consumed (see the module docstring).

    Args:
        items: the work, one item at a time.
        description: what is being done, e.g. "checking images".
        total: how many items; None takes `len(items)`.
        unit: what an item is, for the rate.
        enabled: force the bar on or off; None: on for a terminal.
        size: how many units an item holds (a batch's images); None: one each.
    """
    if not progress_enabled(enabled):
        yield from items
        return
    total = len(items) if total is None else total  # type: ignore[arg-type]
    with progress(description, total, unit, enabled) as advance:
        for item in items:
            yield item
            advance(1 if size is None else size(item))


@contextmanager
def progress(
    description: str, total: int, unit: str = "items", enabled: bool | None = None
) -> Iterator[Callable[..., None]]:
    """A bar over `total` units of work done in steps of one's own (see the module docstring).

    Yields `advance(n=1, description=None)`: `n` more units are done, and the bar's text
    becomes `description` when one is given (the next stage's name).
    """
    if not progress_enabled(enabled):
        yield lambda n=1, description=None: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1, description=None: bar.update(task, advance=n, description=description)
