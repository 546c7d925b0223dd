"""The console script's argument parser: LightningCLI's, with errors on one line.

jsonargparse reports a bad value over several lines and prints the whole usage first (hundreds
of lines for `fit`), which buries the error; an unknown key is named without the valid ones.
Here the error is one line naming the key, what was wrong, and what the key's group accepts.
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
_CLASS_OPTION = re.compile(
    r'Parser key "([^"]+)":.*class_path \'([^\']+)\':\s*Option \'([^\']+)\' is not accepted', re.S
)
_UNKNOWN = (
    re.compile(r"does not accept option '([^']+)'"),
    re.compile(r"unrecognized arguments: (.+)"),
    re.compile(r"""Key "([^"]+)" is not expected"""),
)
_PRETTY = (
    (re.compile(r"Expected a typing\.Literal\[(.*?)\]\."), r"expected one of \1;"),
    (re.compile(r"Expected a <class '(\w+)'>\."), r"expected \1;"),
    (re.compile(r"Got value: "), "got "),
)
_KEY = re.compile(r'Parser key "([^"]+)":')
_CLASS = re.compile(r"Problem with given class_path '[^']+':")


class InceptionArgumentParser(LightningArgumentParser):
    """`LightningArgumentParser` whose errors are one line (see the module docstring)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print `prog: error: <one line>` and exit 2; nested parsers still raise."""
        if not self.exit_on_error:
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {one_line(message, parser)}\n")
        self.exit(2)


def one_line(message: str, parser: ArgumentParser) -> str:
    """jsonargparse's error message on one line; an unknown key gets its group's options."""
    found = _CLASS_OPTION.search(message)
    if found:
        key, class_path, name = found.groups()
        return _not_an_option(f"{key}.init_args", name, _parameters(class_path))
    for pattern in _UNKNOWN:
        found = pattern.search(message)
        if found:
            keys = [word.lstrip("-") for word in found.group(1).split() if word.startswith("-")]
            return "; ".join(_unknown_key(key, parser) for key in keys or [found.group(1)])
    keys, words = [], []
    for line in (line.strip() for line in _without_union(message)):
        key, nested = _KEY.fullmatch(line), _CLASS.fullmatch(line)
        if key or nested:  # the path to the value, one line per level
            keys.append(key.group(1) if key else "init_args")
        elif line:
            words.append(line)
    text = " ".join(words)
    for pattern, replacement in _PRETTY:
        text = pattern.sub(replacement, text)
    text = text.strip(" ;")
    return f"{'.'.join(keys)}: {text}" if keys else text


def _without_union(message: str) -> list[str]:
    """The lines of `message`; of a failed `X | None`, only the reason X failed."""
    lines = message.splitlines()
    if "Union subtypes" not in message or not any(ln.strip() == "Errors:" for ln in lines):
        return lines
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "Errors:") + 1
    bullets: list[list[str]] = []
    indent = len(lines[start]) - len(lines[start].lstrip())
    for line in lines[start:]:
        depth = len(line) - len(line.lstrip())
        if depth < indent:
            break
        if depth == indent or not bullets:
            bullets.append([line.strip().removeprefix("- ")])
        else:
            bullets[-1].append(line.strip())
    reasons = [b for b in bullets if b[0] != "Expected a <class 'NoneType'>"]
    if not reasons:
        return lines
    reason = reasons[0]
    given = [ln.strip().replace("Given value:", "Got value:") for ln in lines[start:]]
    if len(reason) == 1 and reason[0].startswith("Expected"):  # a bare type: name the value
        reason = [f"{reason[0]}.", *(ln for ln in given if ln.startswith("Got value:"))]
    return [line for line in lines[:1] if line.startswith("Parser key")] + reason


def _unknown_key(key: str, parser: ArgumentParser) -> str:
    group, _, name = key.rpartition(".")
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
