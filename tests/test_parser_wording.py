"""jsonargparse's wording that `parser.py` reads, pinned against jsonargparse itself.

jsonargparse's exceptions name the failing key in their text only. `parser.WORDING` and
`parser.PRETTY` are the patterns `one_line` reads; each test here makes plain jsonargparse (no
Lightning, no package parser) raise the error and checks the pattern still matches where
`one_line` looks: an upgrade that rewords a message fails here, by name, instead of the console
script printing a worse line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from fractions import Fraction
from typing import Literal

import pytest
from jsonargparse import ActionConfigFile, ArgumentParser

from inception_lightning.parser import PRETTY, WORDING

UPGRADE = "jsonargparse reworded %s (parser.py's %s no longer matches): %r"


@dataclasses.dataclass
class Options:
    width: float = 1.0


class Net:
    def __init__(self, depth: int = 1, options: Options = Options()) -> None:  # noqa: B008
        pass


def _parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("-c", "--config", action=ActionConfigFile)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--stem", type=Literal[299, 79], default=299)
    parser.add_argument("--number", type=Fraction | None, default=None)
    parser.add_class_arguments(Net, "net")
    return parser


def _with_subcommand() -> ArgumentParser:
    root = ArgumentParser(exit_on_error=False)
    root.add_subcommands().add_subcommand("fit", _parser())
    return root


def _chain(parser: ArgumentParser, args: list[str]) -> list[BaseException]:
    """The exception `parse_args(args)` raises, then its `__cause__`s, outermost first."""
    with pytest.raises(argparse.ArgumentError) as raised:
        parser.parse_args(args)
    chain: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__
    return chain


def _heads(chain: list[BaseException]) -> list[str]:
    return [str(error).partition("\n")[0] for error in chain]


def test_unrecognized_flags() -> None:
    (message, *_) = _heads(_chain(_parser(), ["--widht", "2"]))
    found = WORDING["unrecognized"].match(message)
    assert found and found[1].split()[0] == "--widht", UPGRADE % ("flags", "unrecognized", message)


def test_the_key_of_a_bad_value_and_its_reason() -> None:
    chain = _chain(_parser(), ["--width", "wide"])
    keys = [found[1] for head in _heads(chain) if (found := WORDING["key"].match(head))]
    assert "width" in keys, UPGRADE % ("a bad value's key", "key", _heads(chain))
    reason = str(chain[-1])
    for (pattern, _), wording in zip(PRETTY[1:], ("type", "value"), strict=True):
        assert pattern.search(reason), UPGRADE % (f"the expected {wording}", "PRETTY", reason)
    reason = str(_chain(_parser(), ["--stem", "80"])[-1])
    assert PRETTY[0][0].search(reason), UPGRADE % ("a Literal's choices", "PRETTY", reason)


def test_the_class_path_and_key_inside_a_class() -> None:
    value = {"class_path": "fractions.Fraction", "init_args": {"numerator": "many"}}
    heads = _heads(_chain(_parser(), ["--number", json.dumps(value)]))
    classes = [found[1] for head in heads if (found := WORDING["class_path"].match(head))]
    keys = [found[1] for head in heads if (found := WORDING["key"].match(head))]
    assert classes == ["fractions.Fraction"], UPGRADE % ("the class path", "class_path", heads)
    assert keys[0] == "number" and keys[-1] == "numerator", UPGRADE % ("keys", "key", heads)


def test_an_unknown_argument_of_a_class() -> None:
    value = {"class_path": "fractions.Fraction", "init_args": {"numerater": 1}}
    chain = _chain(_parser(), ["--number", json.dumps(value)])
    assert isinstance(chain[-1], KeyError), chain  # how one_line tells an unknown key
    found = WORDING["not_accepted"].match(str(chain[-1]))
    assert found and found[1] == "numerater", UPGRADE % ("an unknown key", "not_accepted", chain)


def test_an_unknown_key_in_a_group() -> None:
    chain = _chain(_parser(), ["-c", json.dumps({"net": {"options": {"widht": 2}}})])
    assert isinstance(chain[-1], KeyError), chain
    found = WORDING["not_in_group"].match(str(chain[-1]))
    assert found and f"{found[1]}.{found[2]}" == "net.options.widht", UPGRADE % (
        "an unknown key in a group",
        "not_in_group",
        str(chain[-1]),
    )


def test_an_unknown_key_of_a_subcommand_names_its_parser() -> None:
    root = _with_subcommand()
    chain = _chain(root, ["fit", "-c", json.dumps({"net": {"options": {"widht": 2}}})])
    assert isinstance(chain[-1], KeyError), chain
    found = WORDING["not_in_subcommand"].match(str(chain[-1]))
    assert found and found[1] == "net.options.widht", UPGRADE % (
        "an unknown key of a subcommand",
        "not_in_subcommand",
        str(chain[-1]),
    )
    fit = root._subcommands_action.choices["fit"]
    assert getattr(chain[-1], "subcommand_parser", None) is fit  # one_line names its options
