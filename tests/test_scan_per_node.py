"""The scan through the console script: once per node under DDP, and on a read-only folder.

The DDP runs start `python count_scans.py fit ...`: the console script's `main`, with
`check_image` wrapped to append one line per file checked, and the rank that checked it, to a
log. Lightning starts rank 1 by running the same script again, so both ranks are counted.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import age, write_tree

from inception_lightning.data import CropOptions, ImageFolderDataModule, LoaderOptions
from inception_lightning.data.scanning import scan
from inception_lightning.data.scanning.scan_cache import BESIDE_NAME

CONF = Path(__file__).resolve().parents[1] / "conf"
CLI = str(Path(sys.executable).parent / "inception-lightning")
COUNT_SCANS = textwrap.dedent(
    """
    import os

    import inception_lightning.data.scanning.scan as scan
    from inception_lightning.cli import main
    from inception_lightning.data import DatasetError

    real = scan.check_image
    rank = os.environ.get("LOCAL_RANK", "0")


    def counting(path):
        with open(os.environ["SCAN_LOG"], "a") as log:
            log.write(f"{rank} {path}\\n")
        if os.environ.get("FAIL_ON_RANK_0") and rank == "0":
            raise DatasetError("the scan failed on purpose on local rank 0")
        return real(path)


    scan.check_image = counting
    main()
    """
)
# A tiny Inception-v3 for a step or two on the folder recipe.
TINY_FIT = [
    "-c", str(CONF / "data/folder.yaml"),
    "--model.model_kwargs", '{"width": 0.0625, "aux_head": false}',
    "--data.init_args.crop.image_size", "75", "--data.init_args.loader.batch_size", "2",
    "--data.init_args.loader.num_workers", "0",
    "--trainer.accelerator", "cpu", "--trainer.max_steps", "1",
    "--trainer.limit_val_batches", "1", "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]  # fmt: skip


def _ddp_fit(tmp_path: Path, data: Path, **env: str) -> tuple[subprocess.CompletedProcess, list]:
    """A 2-process gloo fit on `data`; returns the run and the (rank, file) of every check."""
    script, log = tmp_path / "count_scans.py", tmp_path / "scans.log"
    script.write_text(COUNT_SCANS)
    proc = subprocess.run(
        [sys.executable, str(script), "fit", *TINY_FIT, "--data.init_args.root", str(data),
         "--trainer.strategy", "ddp", "--trainer.devices", "2"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1", "SCAN_LOG": str(log),
             **env},
        capture_output=True,
        text=True,
        timeout=300,  # a rank left waiting would hang here: the timeout turns it into a failure
    )  # fmt: skip
    lines = log.read_text().splitlines() if log.exists() else []
    return proc, [tuple(line.split(" ", 1)) for line in lines]


@pytest.mark.e2e
def test_two_ddp_ranks_scan_once_local_rank_zero_checks_every_file(tmp_path: Path) -> None:
    data = age(write_tree(tmp_path / "data", n=3, size=(80, 80)))
    proc, checks = _ddp_fit(tmp_path, data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(str(p) for p in data.rglob("*.png"))
    assert sorted(path for _, path in checks) == files  # each file once...
    assert {rank for rank, _ in checks} == {"0"}  # ...by local rank 0; rank 1 read its cache


@pytest.mark.e2e
def test_a_scan_failing_on_local_rank_zero_ends_every_rank_with_its_error(
    tmp_path: Path,
) -> None:
    data = age(write_tree(tmp_path / "data", n=2, size=(80, 80)))
    proc, checks = _ddp_fit(tmp_path, data, FAIL_ON_RANK_0="1")
    assert proc.returncode != 0
    message = "inception-lightning: error: the scan failed on purpose on local rank 0"
    assert proc.stderr.count(message) == 2, proc.stderr[-3000:]  # rank 0's, and rank 1's copy
    assert {rank for rank, _ in checks} == {"0"}  # rank 1 learnt it from rank 0, not by scanning


def _read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.mark.e2e
def test_a_read_only_data_folder_keeps_its_cache_in_the_user_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = age(write_tree(tmp_path / "data", n=2, size=(80, 80)))
    _read_only(data)
    command = [CLI, "fit", *TINY_FIT, "--data.init_args.root", str(data)]
    if os.geteuid() == 0:  # root writes through permission bits unless it drops the capability
        if shutil.which("setpriv") is None:
            pytest.skip("as root, a read-only folder needs setpriv (util-linux) to drop")
        command = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override", *command]
    xdg = tmp_path / "xdg"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(xdg)}
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (data / BESIDE_NAME).exists()
    (cache,) = (xdg / "inception-lightning" / "scan").iterdir()
    assert f"checked 8 of 8 images under {data} (scan cache: {cache})" in proc.stderr
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    datamodule = ImageFolderDataModule(
        str(data), crop=CropOptions(image_size=75), loader=LoaderOptions(num_workers=0)
    )
    checked = []
    real = scan.check_image
    monkeypatch.setattr(scan, "check_image", lambda path: checked.append(path) or real(path))
    datamodule.setup("fit")
    assert checked == []  # every result from that cache
    assert len(datamodule.train_dataset) + len(datamodule.val_dataset) == 8
