"""The shipped recipes by name: `-c quickstart`, `-c model/inception_v3`, `-c conf/fit.yaml`.

The checkout's `conf/` is installed as `inception_lightning.conf` (pyproject's package-dir), so
a wheel holds the recipes as well. A `-c` value that is no file names one: its path under
`conf/`, with or without the `conf/` and the `.yaml`. A file of that name wins, so the
checkout's (or the user's own) `conf/fit.yaml` is read where it exists, and the README's
commands run as written from any folder.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile

import inception_lightning.conf

RECIPES = Path(inception_lightning.conf.__file__).parent


def recipe_names() -> list[str]:
    """The shipped recipes' names (`fit`, `model/inception_v3`, ...), sorted."""
    return sorted(path.relative_to(RECIPES).with_suffix("").as_posix() for path in _yaml_files())


def find_recipe(value: str) -> Path | None:
    """The shipped recipe `value` names (`fit`, `fit.yaml`, `conf/fit.yaml`), or None."""
    name = value.removeprefix("conf/").removesuffix(".yaml")
    path = RECIPES / f"{name}.yaml"
    return path if path in _yaml_files() else None


def _yaml_files() -> list[Path]:
    return list(RECIPES.rglob("*.yaml"))


class RecipeOrConfigFile(ActionConfigFile):
    """`-c FILE`: jsonargparse's config file (or YAML text), or a shipped recipe by name."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        cfg: Any,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """Read the file `values`, else the recipe it names, else what jsonargparse reads (YAML
        text); a name of neither a file nor a recipe is a `TypeError` naming the recipes."""
        if isinstance(values, str) and not Path(values).is_file():
            if recipe := find_recipe(values):
                values = str(recipe)
            elif _names_a_file(values):
                raise TypeError(_not_found(values))
        super().__call__(parser, cfg, values, option_string)


def _names_a_file(value: str) -> bool:
    """Whether jsonargparse reads `value` as a path (YAML text that is one string), not as
    settings."""
    try:
        return isinstance(yaml.safe_load(value), str)
    except yaml.YAMLError:
        return False


def _not_found(value: str) -> str:
    names = recipe_names()
    close = difflib.get_close_matches(value.removeprefix("conf/").removesuffix(".yaml"), names, 1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"-c {value}: no such file, nor a shipped recipe{hint}; the recipes: {', '.join(names)}"
