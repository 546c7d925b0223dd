"""The built wheel, installed where the checkout's editable install cannot reach: its package
list, its recipes and its console script, as a wheel user gets them.

The wheel is built from a copy of what setuptools reads (a stale `build/` in the checkout could
add files the package list misses) and installed, not `-e`, into a fresh venv. The venv takes
its dependencies from the checkout's venv through a `.pth` line, so no torch is downloaded; the
editable install's own `.pth` there, which installs a finder mapping the package to the
checkout, is not read (Python reads `.pth` files in site directories only), so a module the
wheel lacks fails to import here instead of being found in the checkout.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from inception_lightning.training.cpu_recipe import native_bf16

ROOT = Path(__file__).resolve().parents[1]
# The checkout's folders and where the wheel installs them (pyproject's package-dir).
INSTALLED_AS = {
    "inception_lightning": "inception_lightning",
    "callbacks": "inception_lightning/callbacks",
    "conf": "inception_lightning/conf",
}
BUILT_FROM = ("pyproject.toml", "README.md", *INSTALLED_AS)
FIX = "list its package in pyproject's [tool.setuptools] packages"

pytestmark = pytest.mark.e2e


def _run(args: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args[:3]}...:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


def source_files() -> set[str]:
    """Every file of the source tree, named as the wheel must hold it."""
    return {
        f"{INSTALLED_AS[top]}/{path.relative_to(ROOT / top).as_posix()}"
        for top in INSTALLED_AS
        for path in (ROOT / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, as `pip wheel --no-deps --no-build-isolation` builds it."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILT_FROM:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", dist, source])
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel installed and the checkout venv's site-packages on its path."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "checkout_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "--python", venv / "bin" / "python", "install", "--no-deps", wheel])
    return venv


def test_the_wheel_holds_every_module_and_recipe(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        held = {name for name in archive.namelist() if ".dist-info/" not in name}
    expected = source_files()
    missing, extra = sorted(expected - held), sorted(held - expected)
    assert not missing, f"the wheel lacks {missing}: {FIX} (package-data for other files)"
    assert not extra, f"the wheel holds files the source tree has not: {extra}"
    assert {"inception_lightning/callbacks/__init__.py", "inception_lightning/py.typed"} <= held


def test_the_installed_console_script_is_the_wheel(
    venv: Path, tmp_path: Path, commands: dict[str, Any]
) -> None:
    result = _run([venv / "bin" / "inception-lightning", "--version"], cwd=tmp_path)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert result.stdout.strip() == f"inception-lightning {version}"
    site = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    files = commands["modules"]  # where the venv's interpreter finds them: not the checkout
    assert len(files) == 3 and all(file.startswith(site) for file in files), files


# The quickstart, shrunk; every later command repeats the model's shrinking where it reads a recipe.
SHRUNK_MODEL = ["--model.model_kwargs", '{"width": 0.0625, "stem": 79}']
SHRUNK_RUN = [
    *SHRUNK_MODEL, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
    "--trainer.enable_progress_bar", "false",
    "--data.init_args.num_samples", "40", "--data.init_args.loader.batch_size", "8",
]  # fmt: skip


@pytest.fixture(scope="module")
def fitted(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with no conf/ where the wheel's `fit -c conf/quickstart.yaml` ran, shrunk."""
    cwd = tmp_path_factory.mktemp("user")
    _run([venv / "bin" / "inception-lightning", "fit", "-c", "conf/quickstart.yaml", *SHRUNK_RUN],
         cwd=cwd)  # fmt: skip
    return cwd


# The commands after the fit, as the README writes them but for the shrinking, run by one
# interpreter of the wheel's venv (`cli.main`), so that they pay one start-up (the console script
# itself runs `--version` and the fit). ONNX export (the `onnx` extra, 10-20 s in torch.export) is
# left to tests/test_after_training.py.
PREDICT = ["predict", "-c", "conf/predict.yaml", "--ckpt_path", "CKPT", "--data.root", "images"]
AFTER_TRAINING = [
    ["validate", "-c", "conf/quickstart.yaml", "--ckpt_path", "CKPT", *SHRUNK_MODEL,
     "--data.init_args.num_samples", "40"],
    ["test", "-c", "conf/quickstart.yaml", "--ckpt_path", "CKPT", *SHRUNK_MODEL,
     "--data.init_args.num_samples", "40", "--data.init_args.test_crops", "12"],
    ["make-dataset", "--out", "shapes", "--num_samples", "40"],
    ["export", "--ckpt_path", "CKPT", "--out", "model.pt", "--weights", "raw"],
    ["report", "--ckpt_path", "CKPT", "--data", "shapes", "--boxes_file", "shapes/boxes.json",
     "--out", "report/", "--per_class", "1"],
    ["summary", "--model", "inception_v3"],
]  # fmt: skip
# Each command's outcome is recorded and the next one runs, so that one failing hides none.
DRIVER = """
import contextlib, importlib.util, io, json, sys, traceback
names = "inception_lightning", "inception_lightning.callbacks", "inception_lightning.conf"
outcomes = {"modules": [importlib.util.find_spec(name).origin for name in names]}
from inception_lightning.cli import main
for argv in json.loads(sys.argv[1]):
    printed, complaints, error = io.StringIO(), io.StringIO(), None
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(complaints):
            main(argv)
    except SystemExit as stop:
        if stop.code:
            error = f"exited with {stop.code}: {complaints.getvalue()[-2000:]}"
    except Exception:
        error = traceback.format_exc()[-3000:]
    outcomes[argv[0]] = {"error": error, "stdout": printed.getvalue()}
with open(sys.argv[2], "w") as f:
    json.dump(outcomes, f)
"""


@pytest.fixture(scope="module")
def commands(venv: Path, fitted: Path) -> dict[str, Any]:
    """`PREDICT` on 3 images and the `AFTER_TRAINING` commands, with the fit's checkpoint, run in
    `fitted` by the driver: each one's `error` (None) and `stdout` by command, and the files
    the venv's interpreter imports the package, its callbacks and its recipes from."""
    images = fitted / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        pixels = rng.integers(0, 256, (79, 79, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{index}.png")
    ckpt = str(fitted / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt")
    argvs = [[ckpt if word == "CKPT" else word for word in argv]
             for argv in (PREDICT, *AFTER_TRAINING)]  # fmt: skip
    out = fitted / "commands.json"
    _run([venv / "bin" / "python", "-c", DRIVER, json.dumps(argvs), out], cwd=fitted)
    return json.loads(out.read_text())


def test_fit_the_packaged_quickstart_then_predict_with_its_checkpoint(
    fitted: Path, commands: dict[str, Any]
) -> None:
    """The README's quickstart command as written: the packaged recipe (and its cpu_recipe
    beside it), shrunk; then `predict` with the run's checkpoint."""
    run = fitted / "runs" / "quickstart" / "version_0"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["model"] == "inception_resnet_v1" and saved["cpu_recipe"] is None
    # the packaged trainer/cpu.yaml, found beside the packaged quickstart, where it applies
    assert saved["trainer"]["precision"] == ("bf16-mixed" if native_bf16() else None)
    assert (run / "report" / "index.html").is_file()  # the packaged template, rendered
    assert commands["predict"]["error"] is None, commands["predict"]["error"]
    with (fitted / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert sorted(Path(row["path"]).name for row in rows) == ["0.png", "1.png", "2.png"]
    assert all(float(row["prob_1"]) >= float(row["prob_2"]) > 0 for row in rows)


def test_the_after_training_commands_run_from_the_wheel(
    fitted: Path, commands: dict[str, Any]
) -> None:
    errors = {argv[0]: commands[argv[0]]["error"] for argv in AFTER_TRAINING}
    assert errors == dict.fromkeys(errors), errors
    assert (fitted / "shapes" / "boxes.json").is_file()
    assert (fitted / "model.pt").stat().st_size > 0
    assert (fitted / "report" / "index.html").is_file()
    assert "mixed_5b" in commands["summary"]["stdout"]  # the summary's stage table
