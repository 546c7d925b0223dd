"""The console script: config parsing, an end-to-end fit, report, make-dataset and bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ProgressBar
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from inception_lightning.callbacks import LoggingStepProgressBar
from inception_lightning.cli import InceptionCLI, main
from inception_lightning.explain import METHODS
from inception_lightning.models import list_models
from inception_lightning.training import InceptionClassifier

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SCRIPT = Path(sys.executable).parent / "inception-lightning"
# cheap settings of the two pixel methods, for tests that run every method
OPTIONS = '{"integrated_gradients": {"steps": 4}, "occlusion": {"window": 20, "stride": 20}}'
SANITY = (
    '{"samples": 2, "max_depth": 1, "verdict_depth": 1, "noise_samples": 2, '
    '"pixel_noise_samples": 1}'
)

# The combinations the README shows.
COMBINATIONS = [
    ["quickstart.yaml"],
    ["fit.yaml", "model/inception_v3.yaml", "data/folder.yaml"],
    ["fit.yaml", "model/inception_v4.yaml", "data/folder.yaml", "callbacks/diagnostics.yaml"],
    ["fit.yaml", "model/inception_resnet_v2.yaml", "data/folder.yaml", "trainer/gpu.yaml"],
    ["fit.yaml", "model/inception_v3.yaml", "data/folder.yaml", "trainer/cpu.yaml"],
    ["fit.yaml", "model/inception_resnet_v1.yaml", "data/folder.yaml", "trainer/ddp.yaml"],
    ["model/inception_v3.yaml", "data/folder.yaml", "trainer/fsdp.yaml"],
    ["fit.yaml", "model/inception_v3.yaml", "finetune.yaml"],
]


# Configs for another subcommand than fit.
SUBCOMMANDS = {"predict.yaml": "predict", "sweep.yaml": "sweep"}


def _print_config(files: list[Path], capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    subcommand = SUBCOMMANDS.get(files[0].name, "fit")
    return _printed([subcommand, *(a for f in files for a in ("-c", str(f))), *extra], capsys)


def _printed(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    """The configuration `args --print_config` prints."""
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("file", sorted(CONF.rglob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_file_parses_alone(file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _print_config([file], capsys)


@pytest.mark.parametrize("files", COMBINATIONS, ids="+".join)
def test_readme_combinations_parse(files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    config = _print_config([CONF / f for f in files], capsys)
    assert config["model"]["model"].startswith("inception_")


def test_recipes_by_name_in_a_folder_without_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a wheel user has: no conf/. `-c` takes the shipped recipes by name, and the README's
    `conf/...` paths name them too; a file of that name wins; a name of neither is one line."""
    monkeypatch.chdir(tmp_path)
    names = ["-c", "fit", "-c", "model/inception_v4", "-c", "data/folder"]
    readme = ["fit", "-c", "conf/fit.yaml", "-c", "conf/model/inception_v4.yaml"]
    readme += ["-c", "conf/data/folder.yaml"]
    by_name = _printed(["fit", *names], capsys)
    assert _printed(readme, capsys) == by_name
    assert by_name["model"]["model"] == "inception_v4" and by_name["trainer"]["max_epochs"] == 100
    own = tmp_path / "conf" / "fit.yaml"
    own.parent.mkdir()
    own.write_text("trainer:\n  max_epochs: 7\n")
    assert _printed(readme, capsys)["trainer"]["max_epochs"] == 7
    with pytest.raises(SystemExit):
        main(["fit", "-c", "quickstrat"])
    (line,) = capsys.readouterr().err.splitlines()
    assert "-c quickstrat: no such file, nor a shipped recipe (did you mean quickstart?)" in line


def test_configs_compose_callbacks(capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        "fit.yaml",
        "model/inception_v3.yaml",
        "data/folder.yaml",
        "callbacks/diagnostics.yaml",
    ]
    config = _print_config([CONF / f for f in files], capsys)
    names = [c["class_path"].rsplit(".", 1)[-1] for c in config["trainer"]["callbacks"]]
    assert names == [
        "InceptionEMA", "ModelCheckpoint", "BranchActivationStats", "DyingResidualDetector",
        "GradCam",
    ]  # fmt: skip
    assert config["trainer"]["gradient_clip_val"] == 2.0
    assert config["model"]["optimizer"] is None  # the module's default: the paper's RMSProp


def test_switching_optimiser_keeps_none_of_rmsprops_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = ["fit.yaml", "model/inception_v3.yaml", "finetune.yaml"]
    optimizer = _print_config([CONF / f for f in files], capsys)["model"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.AdamW"
    assert optimizer["init_args"]["eps"] == 1e-8  # AdamW's own, not RMSProp's eps=1.0
    quickstart = _print_config([CONF / "quickstart.yaml"], capsys)["model"]["optimizer"]
    assert quickstart["init_args"]["eps"] == 1e-8


def _tiny_config(tmp_path: Path, **model: object) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 1,
            "limit_val_batches": 1,
            "log_every_n_steps": 1,
            "default_root_dir": str(tmp_path),
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(tmp_path / "runs"), "name": "tiny"},
            },
            "callbacks": [
                {"class_path": "inception_lightning.callbacks.InceptionEMA"},
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True},
                },
            ],
        },
        "model": {
            "model": "inception_v3",
            "model_kwargs": {"width": 0.0625, "aux_head": False},
            **model,
        },
        "data": {
            "class_path": "inception_lightning.data.SyntheticDataModule",
            "init_args": {
                "num_classes": 4,
                "image_size": 75,
                "num_samples": 40,
                "loader": {"batch_size": 8},
            },
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.e2e
def test_fit_end_to_end_through_the_console_script(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path)
    main(["fit", "-c", str(config)])
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    assert ckpt.is_file()
    run_dir = tmp_path / "runs" / "tiny" / "version_0"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["model"] == "inception_v3"
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_main", "val/loss", "val/acc1", "val/acc5", "val/ece"} <= tags
    assert "val_ema/acc1" in tags
    assert {"train/lr/backbone", "train/lr/head"} <= tags  # the default lr monitor
    # num_classes was linked from the data and saved: the checkpoint rebuilds with no config.
    module = InceptionClassifier.load_from_checkpoint(ckpt, weights_only=True)
    assert module.model.num_classes == 4


@pytest.mark.e2e
def test_quickstart_callback_runs_every_attribution_method(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped quickstart with its GradCam callback (the recipe's last callback, which
    `--trainer.callbacks.*` sets) given every method: scores, sanity verdicts, the curves and
    the report comparing them, on the EMA weights the checkpoint holds."""
    monkeypatch.chdir(tmp_path)  # where the recipe's runs/ goes
    # 2 classes, one image of each explained (the sanity checks' 2), 2-step curves: ROAD, the
    # curves and the overlays cost by the image, and nothing here counts images or steps
    main(["fit", "-c", str(CONF / "quickstart.yaml"),
         "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
         "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
         "--model.model_kwargs", '{"width": 0.0625, "stem": 79}',
         "--data.init_args.num_classes", "2",
         "--data.init_args.num_samples", "40", "--data.init_args.loader.batch_size", "8",
         "--trainer.callbacks.method", f"[{', '.join(METHODS)}]",
         "--trainer.callbacks.maps.method_options", OPTIONS,
         "--trainer.callbacks.sanity", SANITY,
         "--trainer.callbacks.sample.per_class", "1", "--trainer.callbacks.scores.steps", "2",
         "--trainer.callbacks.report.per_class", "1"])  # fmt: skip
    events = EventAccumulator(str(tmp_path / "runs" / "quickstart" / "version_0"))
    events.Reload()
    scalars, images = set(events.Tags()["scalars"]), set(events.Tags()["images"])
    for method in METHODS:
        for name in ("pointing_game", "deletion_auc", "empty", "sanity/emprt_verdict"):
            assert f"gradcam/val/{method}/{name}" in scalars, (method, name)
        assert any(tag.startswith(f"gradcam/val/{method}/overlays/") for tag in images)
    assert "gradcam/val/randomization" in images
    report = tmp_path / "runs/quickstart/version_0/report"  # beside the run
    summary = json.loads((report / "summary.json").read_text())
    assert summary["info"]["weights"] == "ema"
    assert [m["method"] for m in summary["methods"]] == list(METHODS)
    for m in summary["methods"]:  # the report at the end of fit runs every check
        assert [c["name"] for c in m["sanity"]][3:] == ["smprt/bottom_up", "emprt",
                                                       "random_logit", "road"]  # fmt: skip
        # bottom-up reads step 1; a layer method's top-down waits for its layer's stage
        assert len(m["sanity"][1]["curve"]["x"]) == 1 and len(m["sanity"][0]["scores"]) == 2
        layered = m["method"] not in ("integrated_gradients", "occlusion")
        assert m["sanity"][0]["curve"]["x"] == (["head", "block8_5"] if layered else ["head"])


@pytest.mark.parametrize("enabled", [True, False])
def test_progress_bar_shows_the_loss_or_can_be_disabled(tmp_path: Path, enabled: bool) -> None:
    config = _tiny_config(tmp_path)
    args = ["-c", str(config), "--trainer.enable_progress_bar", str(enabled).lower()]
    cli = InceptionCLI(
        InceptionClassifier, LightningDataModule, subclass_mode_data=True, args=args, run=False
    )
    bars = [cb for cb in cli.trainer.callbacks if isinstance(cb, ProgressBar)]
    assert [type(bar) for bar in bars] == ([LoggingStepProgressBar] if enabled else [])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if enabled:
        loss = cli.trainer.callback_metrics["train/loss"]
        assert bars[0].get_metrics(cli.trainer, cli.model)["train/loss"] == pytest.approx(loss)


def _save_checkpoint(module: InceptionClassifier, path: Path) -> Path:
    """A minimal Lightning checkpoint of an untrained module."""
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": "2.6.6",
            "epoch": 0,
            "global_step": 0,
        },
        path,
    )
    return path


def test_unknown_model_name_lists_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _tiny_config(tmp_path, model="inception_v9")
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(config)])
    (line,) = capsys.readouterr().err.splitlines()
    assert "model.model" in line and "inception_v9" in line
    assert all(name in line for name in list_models())


def test_wrong_yaml_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _tiny_config(tmp_path, loss={"label_smothing": 0.2})
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(config)])
    assert "label_smothing" in capsys.readouterr().err


def test_wrong_yaml_type_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _tiny_config(tmp_path, loss={"aux_weight": "heavy"})
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(config)])
    err = capsys.readouterr().err
    assert "aux_weight" in err and "heavy" in err


def test_missing_data_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(CONF / "data/folder.yaml"), "--data.root", str(missing)])
    assert str(missing) in capsys.readouterr().err


def test_checkpoint_for_other_classes_proposes_fine_tuning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = InceptionClassifier(
        model="inception_v3", num_classes=7, model_kwargs={"width": 0.0625, "aux_head": False}
    )
    ckpt = _save_checkpoint(module, tmp_path / "seven.ckpt")
    config = _tiny_config(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "-c", str(config), "--ckpt_path", str(ckpt)])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "7 classes but this run has 4" in message and "conf/finetune.yaml" in message
    assert "--model.init.checkpoint_path CKPT --model.init.pretrained false" in message


def test_summary_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["summary", "--model", "inception_v3", "--aux_head", "true"])
    out = capsys.readouterr().out
    assert "mixed_7c" in out and "27,161,264" in out


@pytest.mark.e2e
def test_make_dataset_then_report_compares_methods(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal_progress: io.StringIO
) -> None:
    data = tmp_path / "shapes"
    # 2 classes, one val image each: the sanity checks' 2 images, and the least per-image work
    main(["make-dataset", "--out", str(data), "--num_classes", "2", "--num_samples", "20",
          "--image_size", "79"])  # fmt: skip
    assert {p.name for p in (data / "val").iterdir()} == {"circle", "square"}
    shown = terminal_progress.getvalue()
    assert "writing train images" in shown and "18/18" in shown and "images/s" in shown
    module = InceptionClassifier(
        model="inception_v3",
        num_classes=2,
        model_kwargs={"width": 0.0625, "aux_head": False, "stem": 79},
    )
    ckpt = _save_checkpoint(module, tmp_path / "model.ckpt")
    out = tmp_path / "report"
    args = ["report", "--ckpt_path", str(ckpt), "--data", str(data), "--boxes_file",
            str(data / "boxes.json"), "--out", str(out), "--per_class", "2",
            "--method", f"[{', '.join(METHODS)}]",
            "--layers", "[features.mixed_6e, features.mixed_7c]",
            "--method_options", OPTIONS,
            "--sanity", SANITY]  # fmt: skip
    capsys.readouterr()
    shown_before = len(terminal_progress.getvalue())
    main(args)
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out
    # stdout a terminal: bars over deletion/insertion, the sanity checks, prediction
    shown = terminal_progress.getvalue()[shown_before:]
    assert "deletion/insertion" in shown and "predicting" in shown
    # the sanity checks' bar counts methods, with its rate (2 images predict in one step: no rate)
    assert "sanity checks" in shown and f"{len(METHODS)}/{len(METHODS)}" in shown
    assert "methods/s" in shown
    summary = json.loads((out / "summary.json").read_text())
    methods = {m["method"]: m for m in summary["methods"]}
    assert list(methods) == list(METHODS)
    assert "mixed_6e + features.mixed_7c" in methods["layercam"]["description"]
    assert "4 steps" in methods["integrated_gradients"]["description"]
    assert "window 20 px" in methods["occlusion"]["description"]
    checks = ["mprt/top_down", "mprt/bottom_up", "mprt/independent", "smprt/bottom_up", "emprt",
              "random_logit", "road"]  # fmt: skip
    for m in methods.values():
        assert [c["name"] for c in m["sanity"]] == checks and list(m["checks"]) == checks
        assert all(len(c["scores"]) == 2 for c in m["sanity"][:-1])  # ROAD: every image
        assert all(c["verdict"]["outcome"] == "undecided" for c in m["sanity"])  # 2 images
        assert "pointing_game" in m and "road_combined" in m and m["seconds_per_image"] > 0
    noisy = {m: c["details"]["noise_samples"] for m in methods for c in methods[m]["sanity"]
             if c["name"] == "smprt/bottom_up"}  # fmt: skip
    assert noisy == {**{m: 2 for m in METHODS}, "integrated_gradients": 1, "occlusion": 1}
    html = (out / "index.html").read_text()
    assert html.count("<img") >= 6 * 4 and (out / "sanity.png").is_file()
    assert summary["evaluation"]["images"] == 2  # every val image predicted
    assert {p.name for p in (out / "plots").iterdir()} == {
        "curves.png", "reliability.png", "confusion.png"
    }  # fmt: skip

    with pytest.raises(SystemExit):
        main([*args[:-6], "--method", "smoothgrad"])
    error = capsys.readouterr().err
    assert "smoothgrad" in error and "Traceback" not in error


def test_export_shows_its_steps_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal_progress: io.StringIO
) -> None:
    module = InceptionClassifier(
        model="inception_v3", num_classes=3, model_kwargs={"width": 0.0625, "stem": 79}
    )
    ckpt = _save_checkpoint(module, tmp_path / "model.ckpt")
    main(["export", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "model.pt")])
    assert f"wrote {tmp_path / 'model.pt'}" in capsys.readouterr().out
    shown = terminal_progress.getvalue()
    assert "writing the state dict" in shown and "2/2" in shown and "steps/s" in shown
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state.keys() == module.model.state_dict().keys()


def test_report_on_a_missing_checkpoint_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--ckpt_path", str(tmp_path / "gone.ckpt"), "--data", str(tmp_path),
              "--out", str(tmp_path / "r")])  # fmt: skip
    assert exit_info.value.code == 2
    assert "gone.ckpt" in capsys.readouterr().err


@pytest.mark.e2e
def test_python_dash_m_is_the_same_command() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inception_lightning",
            "summary",
            "--model",
            "inception_v4",
            "--width",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mixed_7d" in result.stdout and "G multiply-adds" in result.stdout
