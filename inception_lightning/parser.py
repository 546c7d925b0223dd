"""The console script's argument parser: LightningCLI's, with errors on one line.

jsonargparse prints the whole usage before an error (hundreds of lines for `fit`), reports a
bad value over several lines, and names an unknown key without the valid ones. Its exceptions
hold text only, no fields, but each level of a nested value raises from the level below: the
first line of each exception in the `__cause__` chain names one level of the key
(`Parser key "data":`, `Problem with given class_path '...':`) and the innermost one says what
was wrong. Here those become one line naming the key, the reason and, for an unknown key, the
keys its group takes.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
from typing import Any, NoReturn

from jsonargparse import ArgumentParser
from jsonargparse.typing import import_object
from lightning.pytorch.cli import LightningArgumentParser

_NOT_OPTIONS = {"help", "config", "print_config", "print_shtab"}
_KEY = re.compile(r'Parser key "([^"]+)":')
_CLASS_PATH = re.compile(r"Problem with given class_path '([^']+)':")
_QUOTED = re.compile(r"'([^']+)'")
# jsonargparse's wording of a type error -> ours
_PRETTY = (
    (re.compile(r"Expected a typing\.Literal\[(.*?)\]\.?"), r"expected one of \1"),
    (re.compile(r"Expected a <class '(\w+)'>\.?"), r"expected \1"),
    (re.compile(r"\s*Got value: "), "; got "),
)


class InceptionArgumentParser(LightningArgumentParser):
    """`LightningArgumentParser` whose errors are one line (see the module docstring)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print `prog: error: <one line>` and exit 2; nested parsers still raise."""
        if not self.exit_on_error:
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {one_line(message, ex, parser)}\n")
        self.exit(2)


def one_line(message: str, ex: BaseException | None, parser: ArgumentParser) -> str:
    """The error as `KEY: reason`; an unknown key gets the keys its group takes."""
    if message.startswith("unrecognized arguments:"):  # argparse's own, for flags
        flags = [word.lstrip("-") for word in message.split()[2:] if word.startswith("--")]
        return "; ".join(_unknown_key(flag, parser) for flag in flags)
    chain = []
    while ex is not None:
        chain.append(ex)
        ex = ex.__cause__
    path: list[str] = []
    class_path = None  # of the innermost class, when no key of it follows
    for head in (str(err).partition("\n")[0] for err in chain):
        if (found := _KEY.match(head)) and path[-1:] != [found[1]]:  # (re-raised as is)
            path += ["init_args", found[1]] if class_path else [found[1]]
            class_path = None
        elif found := _CLASS_PATH.match(head):
            class_path = found[1]
    if chain and isinstance(chain[-1], KeyError):  # jsonargparse's NSKeyError: an unknown key
        quoted = _QUOTED.findall(str(chain[-1]))
        name = ".".join(quoted) if str(chain[-1]).startswith("Group") else quoted[-1]
        if not path:
            return _unknown_key(name, parser)
        options = _parameters(class_path) if class_path else []
        return _not_an_option(".".join([*path, "init_args"]), name, options)
    reason = " ".join(str(chain[-1] if chain else message).split())
    for pattern, replacement in _PRETTY:
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
