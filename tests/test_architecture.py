"""The layout's rules: who imports whom, and what importing the networks costs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "inception_lightning"
TABLES = {
    "inception_lightning.models.inception_v3",
    "inception_lightning.models.inception_v4",
    "inception_lightning.models.inception_resnet",
}
TABLE_NAMES = {"INCEPTION_V3", "INCEPTION_V4", "INCEPTION_RESNET_V1", "INCEPTION_RESNET_V2"}
# Each folder imports only from the ones below it:
# callbacks -> training / explain / data -> models; cli and commands sit on top.
ALLOWED = {
    "models": {"models"},
    "data": {"data", "models", "files", "_lazy", "console", "_hparams"},
    "explain": {"explain", "data", "models", "files", "console"},
    "training": {"training", "models", "files", "_compat", "console", "_hparams"},
}


def imported_modules(path: Path) -> set[str]:
    """Every `inception_lightning...` module a file imports, and the names it takes from them."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("inception_lightning")}


@pytest.mark.parametrize("package", ["inception_lightning.models", "inception_lightning.explain"])
@pytest.mark.e2e
def test_networks_and_explanations_import_without_lightning(package: str) -> None:
    code = (
        f"import sys, {package}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'pytorch_lightning', 'lightning_fabric'))\n"
        "assert not loaded, loaded[:5]\n"
        "import inception_lightning\n"
        "assert 'lightning' not in sys.modules, 'the package __init__ loads lightning'\n"
        "assert inception_lightning.InceptionClassifier.__name__ == 'InceptionClassifier'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"importing {package} loads Lightning:\n{result.stderr[-2000:]}"


@pytest.mark.e2e
def test_the_console_script_starts_without_importing_timm() -> None:
    """timm imports all its models on import (about 1 s of every start): only its optimiser,
    mixup, pretrained weights and configs need it, and they import it on first use."""
    code = (
        "import sys, inception_lightning.cli\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'timm')\n"
        "assert not loaded, loaded[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"the console script imports timm:\n{result.stderr[-2000:]}"


def test_callbacks_know_no_architecture_table() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in (ROOT / "callbacks").glob("*.py")
        for name in imported_modules(path)
        if name in TABLES
        or name.rsplit(".", 1)[-1] in TABLE_NAMES
        or name.rsplit(".", 1)[0] in TABLES
    }
    assert not offenders, f"callbacks must work on any InceptionNet, not import tables: {offenders}"


def test_callbacks_never_ask_whether_the_network_is_ours() -> None:
    """They see every network through `models.anatomy`, so timm's and torchvision's work too."""
    ours = {"InceptionNet", "InceptionBlock", "ResidualInceptionBlock", "iter_blocks"}
    ours |= {"iter_branches", "iter_residual_blocks"}
    offenders = {
        f"{path.name}: {name}"
        for path in (ROOT / "callbacks").glob("*.py")
        for name in imported_modules(path)
        if name.rsplit(".", 1)[-1] in ours
        or name.startswith(("inception_lightning.models.net", "inception_lightning.models.blocks"))
    }
    assert not offenders, f"callbacks must go through the anatomy: {offenders}"


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_folder_imports_only_from_below(folder: str) -> None:
    offenders = set()
    for path in (PACKAGE / folder).rglob("*.py"):
        for name in imported_modules(path):
            top = name.split(".")[1] if name.count(".") else ""
            if top and top not in ALLOWED[folder]:
                offenders.add(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, f"{folder}/ may import only from {sorted(ALLOWED[folder])}: {offenders}"


def test_no_two_modules_share_a_name() -> None:
    """One name, one concept: `data/evaluation.py` beside `training/evaluation.py` read alike."""
    modules: dict[str, list[str]] = {}
    for root in (PACKAGE, ROOT / "callbacks"):
        for path in root.rglob("*.py"):
            if path.name not in {"__init__.py", "__main__.py"}:
                modules.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    shared = {name: paths for name, paths in modules.items() if len(paths) > 1}
    assert not shared, f"modules that share a name: {shared}"


def test_readme_tree_table_names_every_module_and_only_real_ones() -> None:
    """The README's "What is inside" table is the map of the package: no module missing, none
    that does not exist (module names are unique, so a file name identifies its module)."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## What is inside") : readme.index("## Models")]
    named = set(re.findall(r"`([a-z_0-9]+\.py)`", table))
    modules = {
        path.name
        for root in (PACKAGE, ROOT / "callbacks")
        for path in root.rglob("*.py")
        if path.name != "__init__.py"
    }
    real = modules | {
        path.name for folder in ("examples", "tests") for path in (ROOT / folder).glob("*.py")
    }
    assert modules - named == set(), "modules the README's table does not list"
    assert named - real == set(), "files the README's table lists that do not exist"


def test_old_callback_paths_import_with_a_deprecation_warning() -> None:
    import inception_lightning.callbacks as callbacks
    import inception_lightning.training as training

    with pytest.warns(FutureWarning, match="moved to inception_lightning.callbacks.InceptionEMA"):
        assert training.InceptionEMA is callbacks.InceptionEMA
    with pytest.raises(AttributeError):
        training.NoSuchThing  # noqa: B018
