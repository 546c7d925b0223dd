"""Every benchmark runs in its tiny mode; its figures are not asserted, only that it works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("[!_]*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_runs_in_tiny_mode(script: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(script), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()  # it printed its figures


def test_callback_overhead_times_timms_network_beside_ours(tmp_path: Path) -> None:
    script = next(path for path in BENCHMARKS if path.stem == "callback_overhead")
    result = subprocess.run(
        [sys.executable, str(script), "--tiny", "--timm"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for owner in ("our", "timm's"):
        assert f"{owner} inception_v3 in a plain LightningModule" in result.stdout
    assert result.stdout.count("ema + diagnostics") == 2
