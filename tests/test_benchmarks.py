"""Every benchmark runs in its tiny mode; its figures are not asserted, only that it works.

Each runs in this process, as `python benchmarks/NAME.py --tiny` would run it (its folder first
on `sys.path`, `__name__ == "__main__"`, that argv): an interpreter and Lightning's import per
benchmark would cost more than most tiny runs themselves.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.e2e  # console-script runs, subprocesses or whole scripts

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("[!_]*.py"))


def _run(script: Path, monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    """`python SCRIPT --tiny FLAGS`, in this process and the current folder."""
    monkeypatch.syspath_prepend(str(script.parent))  # `from _common import ...`
    monkeypatch.setattr(sys, "argv", [str(script), "--tiny", *flags])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(script), run_name="__main__")  # an exception fails the test
    except SystemExit as stop:  # a script's own verdict: `sys.exit(0)` passes, any other fails
        assert not stop.code, f"{script.name} exited with {stop.code}"
    finally:
        torch.set_num_threads(threads)  # some set their own thread counts


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_runs_in_tiny_mode(
    script: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _run(script, monkeypatch)
    assert capsys.readouterr().out.strip()  # it printed its figures


def test_callback_overhead_times_timms_network_beside_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _run(
        next(path for path in BENCHMARKS if path.stem == "callback_overhead"), monkeypatch, "--timm"
    )
    out = capsys.readouterr().out
    for owner in ("our", "timm's"):
        assert f"{owner} inception_v3 in a plain LightningModule" in out
    assert out.count("ema + diagnostics") == 2
