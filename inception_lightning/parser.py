"""The console script's argument parser: LightningCLI's, with errors on one line and the CPU
recipe composed where it applies.

jsonargparse prints the whole usage before an error (hundreds of lines for `fit`), reports a
bad value over several lines, and names an unknown key without the valid ones. Here an error
becomes one line naming the key, the reason and, for an unknown key, the keys its group takes.
What jsonargparse gives as structure is read as structure: the exception's type (`KeyError`
for an unknown key), the parser it names (`subcommand_parser`), the parser's own actions (the
options a group takes) and a class's signature. The key itself is only in the text: each level
of a nested value raises from the level below, and the first line of each exception in the
`__cause__` chain names one level (`Parser key "data":`, `Problem with given class_path
'...':`). Those wordings are the patterns in `WORDING`, each pinned against jsonargparse by
`tests/test_parser_wording.py`, so an upgrade that rewords one fails there instead of printing
a worse line here.
"""

from __future__ import annotations

import difflib
import glob
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse import ArgumentParser, Namespace
from jsonargparse.typing import Path_fr, import_object
from lightning.pytorch.cli import LightningArgumentParser
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from inception_lightning.training.cpu_recipe import choose_cpu_recipe, precision_line

CPU_RECIPE = "cpu_recipe"
_NOT_OPTIONS = {"help", "config", "print_config", "print_shtab"}

# jsonargparse's (and argparse's) wording, where the exceptions hold text only.
WORDING = {
    "unrecognized": re.compile(r"unrecognized arguments: (.*)"),
    "key": re.compile(r'Parser key "([^"]+)":'),
    "class_path": re.compile(r"Problem with given class_path '([^']+)':"),
    "not_in_subcommand": re.compile(r"Subcommand '[^']+' does not accept option '([^']+)'"),
    "not_in_group": re.compile(r"Group '([^']+)' does not accept option '([^']+)'"),
    "not_accepted": re.compile(r"Option '([^']+)' is not accepted"),
}
# jsonargparse's wording of a type error -> ours (cosmetic: unmatched, the reason reads as is)
PRETTY = (
    (re.compile(r"Expected a typing\.Literal\[(.*?)\]\.?"), r"expected one of \1"),
    (re.compile(r"Expected a <class '(\w+)'>\.?"), r"expected \1"),
    (re.compile(r"\s*Got value: "), "; got "),
)


class InceptionArgumentParser(LightningArgumentParser):
    """`LightningArgumentParser` whose errors are one line and which composes `cpu_recipe` (see
    the module docstring and `add_cpu_recipe_argument`)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print `prog: error: <one line>` and exit 2; nested parsers still raise."""
        if not self.exit_on_error:
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {one_line(message, ex, parser)}\n")
        self.exit(2)

    def add_cpu_recipe_argument(self) -> None:
        """`--cpu_recipe FILE`: a config composed first where the run is on the CPU, sets no
        precision and the CPU computes bf16 natively (`training.cpu_recipe` decides)."""
        self.add_argument(
            f"--{CPU_RECIPE}",
            type=Path_fr | None,
            default=None,
            help="a config file composed first (so any other value wins) when the run is on the "
            "CPU, sets no precision and the CPU has native bf16 (AMX or AVX512-BF16); in a "
            "config file, relative to it. The quickstart names conf/trainer/cpu.yaml",
        )

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Namespace | None = None, **kwargs: Any
    ) -> Namespace:
        """jsonargparse's parse; where it gives a `cpu_recipe` that applies, the same arguments
        again with the recipe as a default config file, the layer jsonargparse puts under every
        config and flag, so any other value wins. Says which precision the run got, and why.

        A subcommand's parser composes its own recipe while the root parser's parse is under
        way, so the root's `--print_config` prints the configuration the run gets.
        """
        config = super().parse_args(args, namespace, **kwargs)
        recipe = config.get(CPU_RECIPE)
        if recipe is None:
            return config
        choice = choose_cpu_recipe(config.trainer.precision, config.trainer.accelerator)
        if choice.apply:
            config = self._parse_over(Path(recipe.absolute), args, namespace, **kwargs)
        rank_zero_info(precision_line(config, choice, recipe))
        config[CPU_RECIPE] = None  # decided: the saved config.yaml reruns as this run ran
        return config

    def _parse_over(
        self, recipe: Path, args: Sequence[str] | None, namespace: Namespace | None, **kwargs: Any
    ) -> Namespace:
        """`parse_args` with `recipe` as one more default config file (for this parse only)."""
        before = self.default_config_files
        self.default_config_files = [*before, glob.escape(str(recipe))]  # patterns, globbed
        try:
            return super().parse_args(args, namespace, **kwargs)
        finally:
            self.default_config_files = before


def one_line(message: str, ex: BaseException | None, parser: ArgumentParser) -> str:
    """The error as `KEY: reason`; an unknown key gets the keys its group takes."""
    if unrecognized := WORDING["unrecognized"].match(message):  # flags argparse did not take
        flags = [word.lstrip("-") for word in unrecognized[1].split() if word.startswith("--")]
        return "; ".join(_unknown_key(flag, parser) for flag in flags)
    chain = []
    while ex is not None:
        chain.append(ex)
        ex = ex.__cause__
    path: list[str] = []
    class_path = None  # of the innermost class, when no key of it follows
    for head in (str(err).partition("\n")[0] for err in chain):
        if (found := WORDING["key"].match(head)) and path[-1:] != [found[1]]:  # (re-raised)
            path += ["init_args", found[1]] if class_path else [found[1]]
            class_path = None
        elif found := WORDING["class_path"].match(head):
            class_path = found[1]
    line = _unknown_option(chain[-1], path, class_path, parser) if chain else None
    return line or _bad_value(str(chain[-1] if chain else message), path, class_path)


def _unknown_option(
    innermost: BaseException, path: list[str], class_path: str | None, parser: ArgumentParser
) -> str | None:
    """The line for an unknown key (jsonargparse raises a `KeyError` for one), else None."""
    if not isinstance(innermost, KeyError):
        return None
    text = str(innermost)
    if found := WORDING["not_in_subcommand"].match(text):
        name = found[1]
    elif found := WORDING["not_in_group"].match(text):
        name = f"{found[1]}.{found[2]}"
    elif found := WORDING["not_accepted"].match(text):
        name = found[1]
    else:
        return None
    if not path:
        return _unknown_key(name, parser)
    options = _parameters(class_path) if class_path else []
    return _not_an_option(".".join([*path, "init_args"]), name, options)


def _bad_value(reason: str, path: list[str], class_path: str | None) -> str:
    """`KEY: reason` for a value of the wrong type (or anything else jsonargparse refused)."""
    reason = " ".join(reason.split())
    for pattern, replacement in PRETTY:
        reason = pattern.sub(replacement, reason)
    if class_path:
        reason = f"class_path {class_path}: {reason}"
    return f"{'.'.join(path)}: {reason}" if path else reason


def _unknown_key(key: str, parser: ArgumentParser) -> str:
    group, _, name = key.rpartition(".")
    while group and not _options(parser, group):  # an unknown group: name the group instead
        group, _, name = group.rpartition(".")
    return _not_an_option(group, name, _options(parser, group), parser.prog.split()[-1])


def _not_an_option(group: str, name: str, options: list[str], top: str = "") -> str:
    """`GROUP.NAME is not an option (did you mean GROUP.X?); GROUP takes a, b, c`."""
    key = f"{group}.{name}" if group else name
    if not options:
        return f"{key} is not an option"
    close = difflib.get_close_matches(name, options, n=1)
    hint = f" (did you mean {key.removesuffix(name) + close[0]}?)" if close else ""
    return f"{key} is not an option{hint}; {group or top} takes {', '.join(options)}"


def _parameters(class_path: str) -> list[str]:
    """The named parameters of a class's `__init__` ([] if it cannot be imported)."""
    try:
        signature = inspect.signature(import_object(class_path))
    except (ImportError, ValueError, TypeError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in signature.parameters.values() if p.kind in kinds]


def _options(parser: ArgumentParser, group: str) -> list[str]:
    """The option names directly under `group` ("" for the top level), in the parser's order."""
    prefix = f"{group}." if group else ""
    names: dict[str, Any] = {}
    for action in parser._actions:
        dest = action.dest
        if not dest.startswith(prefix) or dest in _NOT_OPTIONS:
            continue
        name = dest[len(prefix) :].split(".", 1)[0]
        if name and name != "init_args":
            names[name] = None
    return list(names)
