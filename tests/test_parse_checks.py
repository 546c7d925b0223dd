"""Bad values end the console script while it parses: one line naming the key and what it
takes, exit code 2, no traceback, nothing run.

Numbers are typed with jsonargparse's restricted number types (`models.options`), paths with
the types of `path_checks`, and LightningCLI's `--ckpt_path` is checked right after parsing.
Each case runs `main([...])` in-process, as the console script does, but one that runs the
installed `inception-lightning` in a subprocess, as a user does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inception_lightning.cli import main
from inception_lightning.path_checks import checkpoint_problem

CONF = Path(__file__).resolve().parents[1] / "conf"
CLI = str(Path(sys.executable).parent / "inception-lightning")
# A short run, so that a value the parser let through ends the test in seconds, not minutes
FIT = ["fit", "-c", str(CONF / "quickstart.yaml"), "--trainer.fast_dev_run", "true",
       "--data.init_args.num_samples", "16", "--trainer.enable_progress_bar", "false"]  # fmt: skip
# (arguments, the error after "inception-lightning COMMAND: error: ", in a subprocess);
# FILE is a file in the test's folder, DIR the folder.
CASES = {
    "label_smoothing": (
        [*FIT, "--model.loss.label_smoothing", "1.0"],
        "model.loss.label_smoothing: must be >= 0 and < 1, got 1.0",
        False,
    ),
    "aux_weight": (
        [*FIT, "--model.loss.aux_weight", "-0.5"],
        "model.loss.aux_weight: must be >= 0, got -0.5",
        False,
    ),
    "num_workers": (
        [*FIT, "--data.init_args.loader.num_workers", "-1"],
        "data.init_args.loader.num_workers: must be >= 0, got -1",
        False,
    ),
    "batch_size": (
        [*FIT, "--data.init_args.loader.batch_size", "0"],
        "data.init_args.loader.batch_size: must be > 0, got 0",
        False,
    ),
    "fit_ckpt_path": (
        [*FIT, "--ckpt_path", "DIR/nope.ckpt"],
        "ckpt_path: no such file: DIR/nope.ckpt",
        False,
    ),
    "predict_ckpt_path": (
        ["predict", "-c", str(CONF / "predict.yaml"), "--ckpt_path", "nope.ckpt"],
        "ckpt_path: no such file: nope.ckpt",
        True,
    ),
    "export_ckpt_path": (
        ["export", "--ckpt_path", "DIR/nope.ckpt", "--out", "DIR/m.onnx"],
        "ckpt_path: no such file: DIR/nope.ckpt",
        False,
    ),
    "export_folder_not_made": (
        ["export", "--ckpt_path", "FILE", "--out", "FILE/sub/m.onnx"],
        "out: FILE/sub cannot be made: FILE is a file",
        False,
    ),
    "report_out_is_a_file": (
        ["report", "--ckpt_path", "FILE", "--data", "DIR", "--out", "FILE"],
        "out: FILE is a file, not a folder",
        False,
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES)
def test_a_bad_value_is_one_line_naming_the_key_and_exit_code_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args, expected, in_subprocess = CASES[case]
    monkeypatch.chdir(tmp_path)  # whatever a check let through writes here
    (tmp_path / "file").write_text("not a checkpoint")
    where = {"FILE": str(tmp_path / "file"), "DIR": str(tmp_path)}
    args = [_fill(arg, where) for arg in args]
    if in_subprocess:
        proc = subprocess.run(
            [CLI, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        code, err = proc.returncode, proc.stderr
    else:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        code, err = exit_info.value.code, capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert line == f"inception-lightning {args[0]}: error: {_fill(expected, where)}"
    assert err.strip().endswith(line)


def _fill(text: str, where: dict[str, str]) -> str:
    for name, value in where.items():
        text = text.replace(name, value)
    return text


def test_lightnings_own_checkpoint_names_and_remote_paths_are_left_to_it(tmp_path: Path) -> None:
    for path in ("last", "best", "hpc", "registry", "registry:model:v1", "s3://bucket/a.ckpt"):
        assert checkpoint_problem(path) is None, path
    assert checkpoint_problem(str(tmp_path / "nope.ckpt")) == f"no such file: {tmp_path}/nope.ckpt"
