"""One command tree: every subcommand in `--help`, each with `-c` and `--print_config`, every
option with a help text, and bad model arguments reported on one line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule

from inception_lightning.cli import TRAINER_DEFAULTS, InceptionCLI, main
from inception_lightning.models.options import option_names
from inception_lightning.parser import InceptionArgumentParser
from inception_lightning.training import InceptionClassifier

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SUBCOMMANDS = [
    *("fit", "validate", "test", "predict", "export", "report", "summary", "make-dataset"),
    "convert",
    "sweep",
]
MODEL = {
    "model": {"model": "inception_v4", "model_kwargs": {"width": 0.25, "stem": 79}},
    "data": {"class_path": "inception_lightning.data.SyntheticDataModule"},
}
# A config per subcommand and a value `--print_config` must show from it.
CONFIGS: dict[str, tuple[dict[str, Any], tuple[str, ...], object]] = {
    **{name: (MODEL, ("model", "model_kwargs", "width"), 0.25) for name in SUBCOMMANDS[:4]},
    "export": ({"ckpt_path": "a.ckpt", "out": "a.pt", "weights": "raw"}, ("weights",), "raw"),
    "report": ({"ckpt_path": "a.ckpt", "data": "d", "out": "r", "per_class": 3}, ("per_class",), 3),
    "summary": ({"model": "inception_v4", "width": 0.5}, ("width",), 0.5),
    "make-dataset": ({"out": "shapes", "num_classes": 3}, ("num_classes",), 3),
    "convert": ({"data": "d", "out": "c", "chunk_bytes": "16MB"}, ("chunk_bytes",), "16MB"),
    "sweep": (
        {"params": {"model.loss.label_smoothing": {"low": 0, "high": 0.2}}, "n_trials": 3},
        ("n_trials",),
        3,
    ),
}


class _Built(Exception):
    def __init__(self, parser: ArgumentParser) -> None:
        self.parser = parser


class _ParserOnly(InceptionCLI):
    """Stops once the parser is built: `parse_arguments` is LightningCLI's next step."""

    def parse_arguments(self, parser: ArgumentParser, args: Any) -> None:
        raise _Built(parser)


def _subcommand_parsers() -> dict[str, ArgumentParser]:
    with pytest.raises(_Built) as built:
        _ParserOnly(
            InceptionClassifier,
            LightningDataModule,
            subclass_mode_data=True,
            trainer_defaults=TRAINER_DEFAULTS,
            parser_class=InceptionArgumentParser,
            args=[],
        )
    return dict(built.value.parser._subcommands_action.choices)


def test_help_lists_every_subcommand_with_a_one_line_description(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # as a shell's pipe: argparse wraps at this width
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    described: dict[str, str] = {}
    for line in out.split("Available subcommands:")[1].splitlines():
        entry = re.fullmatch(r" {4}(\S+) +(\S.*)", line)
        if entry:
            name, described[entry[1]] = entry[1], entry[2]
        elif described and line.startswith(" " * 20):  # a wrapped description goes on
            described[name] += " " + line.strip()
    assert sorted(described) == sorted(SUBCOMMANDS)
    assert "Inception" in out.split("options:")[0]  # the tool's own description
    # one sentence each: Lightning's own lines for test and predict stop mid-sentence
    for name, sentence in described.items():
        assert sentence.endswith(".") and sentence.count(". ") == 0, (name, sentence)


def test_version_is_the_projects(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code in (0, None)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out == f"inception-lightning {version}\n"


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_option_has_a_help_text(name: str) -> None:
    parser = _subcommand_parsers()[name]
    bare = [a.option_strings[-1] for a in parser._actions if a.option_strings and not a.help]
    assert not bare, f"{name}: options without help: {bare}"
    assert parser.description and "\n" not in parser.description.strip()


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_takes_a_config_file_and_prints_its_config(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, path, value = CONFIGS[name]
    monkeypatch.chdir(tmp_path)
    Path("a.ckpt").touch()  # export's and report's checkpoint must exist while they parse
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_info:
        main([name, "-c", str(file), "--print_config"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    printed = yaml.safe_load(capsys.readouterr().out)
    for key in path:
        printed = printed[key]
    assert printed == value


def test_summary_runs_from_a_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "summary.yaml"
    file.write_text("model: inception_v4\nwidth: 0.5\n")
    main(["summary", "-c", str(file)])
    assert "mixed_7d" in capsys.readouterr().out


def _one_line_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    (line,) = captured.err.strip().splitlines()
    return line


def test_a_typo_in_a_model_argument_is_one_line_naming_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "typo.yaml"
    file.write_text("model:\n  model_kwargs:\n    widht: 0.25\n")
    line = _one_line_error(["fit", "-c", str(CONF / "quickstart.yaml"), "-c", str(file)], capsys)
    assert "model.model_kwargs.widht is not an option" in line
    assert "did you mean model.model_kwargs.width?" in line
    assert all(name in line for name in option_names())


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--model.model_kwargs.width", "wide", "model_kwargs.width: expected float; got wide"),
        ("--model.model_kwargs.stem", "80", "model_kwargs.stem: expected one of 299, 151, 79"),
        ("--model.model_kwargs.aux_head", "maybe", "model.model_kwargs.aux_head"),
        ("--model.loss.label_smothing", "0.2", "did you mean model.loss.label_smoothing?"),
        ("--model.label_smoothing", "0.2", "model.label_smoothing is not an option"),
        ("--data.init_args.num_sample", "9", "did you mean data.init_args.num_samples?"),
        ("--trainer.max_epochs", "many", "trainer.max_epochs: expected int; got many"),
        ("--data.init_args.num_samples", "many", "data.init_args.num_samples: expected int; got"),
        ("--model.optimizer.init_args.lrr", "3", "model.optimizer.init_args.lrr is not an option"),
        ("--trainer.callbacks+", "foo.Bar", "trainer.callbacks: class_path foo.Bar: No module"),
        ("--nonexist.key", "2", "nonexist is not an option; fit takes seed_everything, trainer"),
    ],
)
def test_a_wrong_value_or_key_is_one_line_naming_it(
    flag: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line_error(["fit", "-c", str(CONF / "quickstart.yaml"), flag, value], capsys)
    assert expected in line


def test_a_typo_in_a_callbacks_arguments_names_the_callbacks_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "typo.yaml"
    file.write_text(
        "trainer:\n  callbacks:\n    - class_path: inception_lightning.callbacks.GradCam\n"
        "      init_args:\n        every_n_epoch: 2\n"
    )
    line = _one_line_error(["fit", "-c", str(CONF / "quickstart.yaml"), "-c", str(file)], capsys)
    assert "trainer.callbacks.init_args.every_n_epoch is not an option" in line
    assert "(did you mean trainer.callbacks.init_args.every_n_epochs?)" in line
    assert "takes layers, method, every_n_epochs, seed, sample, maps" in line


def test_a_typo_in_a_package_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(["summary", "--modle", "inception_v3"], capsys)
    assert "modle is not an option (did you mean model?)" in line


def test_model_options_are_typed_yet_checkpoints_hold_plain_values(tmp_path: Path) -> None:
    module = InceptionClassifier(
        "inception_v3", num_classes=3, model_kwargs={"width": 0.0625, "stem": 79}
    )
    assert module.hparams.model_kwargs == {
        "width": 0.0625, "stem": 79, "aux_head": None, "residual_scale": None, "drop_rate": 0.2
    }  # fmt: skip
    path = tmp_path / "plain.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": "2.6.6",
        },
        path,
    )
    loaded = InceptionClassifier.load_from_checkpoint(path, weights_only=True)
    assert loaded.model.stem == 79 and loaded.model.num_classes == 3
    with pytest.raises(ValueError, match=r"no option 'widht'; the options are width, stem"):
        InceptionClassifier("inception_v3", model_kwargs={"widht": 0.25})
