"""The package's progress convention: counts, rate and time left, on terminals only."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from inception_lightning import console


def test_items_pass_through_unchanged_with_or_without_a_bar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown = io.StringIO()
    monkeypatch.setattr(console, "Progress", _progress_writing_to(shown))
    assert list(console.track(iter(range(5)), "x", total=5, enabled=False)) == list(range(5))
    assert shown.getvalue() == ""
    assert list(console.track(range(4), "checking images", unit="files", enabled=True)) == [
        0,
        1,
        2,
        3,
    ]
    text = shown.getvalue()
    assert "checking images" in text and "4/4" in text and "files/s" in text


def test_off_unless_stdout_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert not console.progress_enabled()
    assert console.progress_enabled(True) and not console.progress_enabled(False)


def _progress_writing_to(buffer: io.StringIO) -> type:
    class Captured(console.Progress):
        def __init__(self, *columns: object, **kwargs: object) -> None:
            target = Console(file=buffer, force_terminal=True, width=120)
            super().__init__(*columns, console=target, **kwargs)

    return Captured
