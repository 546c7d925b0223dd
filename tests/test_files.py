"""Report files and checkpoints are synced to disk before they replace the old file, and get the
permissions a plain `open(path, "w")` would give them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inception_lightning import files
from inception_lightning.explain import html_report
from inception_lightning.training.checkpoints import AtomicCheckpointIO


def _write_report_file(folder: Path) -> Path:
    html_report.write_atomic(folder, "summary.json", b'{"accuracy": 0.5}')
    return folder / "summary.json"


def _write_checkpoint(folder: Path) -> Path:
    AtomicCheckpointIO().save_checkpoint({"w": torch.arange(100)}, folder / "last.ckpt")
    return folder / "last.ckpt"


WRITERS = {"report file": _write_report_file, "checkpoint": _write_checkpoint}


@pytest.mark.parametrize("write", WRITERS.values(), ids=WRITERS.keys())
def test_the_whole_file_is_synced_before_it_replaces_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write
) -> None:
    events: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(source: str, target: str) -> None:
        events.append(("replace", os.path.getsize(source)))
        real_replace(source, target)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    path = write(tmp_path)
    size = path.stat().st_size
    assert events == [("fsync", size), ("replace", size)]  # all bytes on disk, then the rename


MODES = """
import json, os, sys, tempfile
from pathlib import Path
import torch
from inception_lightning.explain import html_report
from inception_lightning.training.checkpoints import AtomicCheckpointIO
folder = Path(sys.argv[1])
html_report.write_atomic(folder, "summary.json", b"{}")
AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1)}, folder / "last.ckpt")
open(folder / "plain.txt", "w").close()
print(json.dumps({p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}))
"""


@pytest.mark.parametrize("umask", [0o022, 0o027])
@pytest.mark.e2e
def test_files_get_the_permissions_of_a_plain_open(tmp_path: Path, umask: int) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", MODES, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(umask),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    modes = json.loads(proc.stdout)
    expected = 0o666 & ~umask
    assert modes == {"summary.json": expected, "last.ckpt": expected, "plain.txt": expected}
