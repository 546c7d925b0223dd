"""bf16 where the CPU computes it natively: the quickstart's precision, the report's forwards."""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path

import pytest
import torch
import yaml

from inception_lightning import create_model
from inception_lightning.cli import main
from inception_lightning.explain import Batch, Bf16Forward, GradCAMMap, explain_batch
from inception_lightning.training import InceptionClassifier
from inception_lightning.training.cpu_recipe import native_bf16

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "conf" / "quickstart.yaml"
CPU_RECIPE = ROOT / "conf" / "trainer" / "cpu.yaml"


def _cpuinfo_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="/proc/cpuinfo's x86 flags are the independent witness",
)
def test_native_bf16_agrees_with_the_kernels_cpu_flags() -> None:
    flags = _cpuinfo_flags()
    expected = (
        "AMX-BF16" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else None
    )
    assert native_bf16() == expected


def _quickstart_choice(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, *extra: str
) -> tuple[dict, str]:
    """The quickstart's configuration as `--print_config` shows it, and the run's own line."""
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(QUICKSTART), *extra, "--print_config"])
    out, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), err
    lines = [line for line in caplog.messages if line.startswith("precision ")]
    assert len(lines) == 1, caplog.messages  # one line, every time
    return yaml.safe_load(out), lines[0]


def _no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU like this one, less AMX-BF16 and AVX512-BF16 (an AVX2-era or Zen 3 server)."""
    capabilities = {**torch.cpu.get_capabilities(), "amx_bf16": False, "avx512_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)


def test_quickstart_takes_the_cpu_recipe_where_bf16_is_native(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, line = _quickstart_choice(capsys, caplog)
    feature = native_bf16()
    recipe = yaml.safe_load(CPU_RECIPE.read_text())
    if feature is not None:
        assert config["trainer"]["precision"] == recipe["trainer"]["precision"] == "bf16-mixed"
        assert (
            config["model"]["compute"]["channels_last"]
            is recipe["model"]["compute"]["channels_last"]
            is True
        )
        assert line.startswith("precision bf16-mixed, channels_last") and feature in line
    else:
        assert (
            config["trainer"]["precision"] is None
            and not config["model"]["compute"]["channels_last"]
        )
        assert line.startswith("precision 32-true, contiguous format") and "no native bf16" in line


def test_without_native_bf16_the_quickstart_stays_fp32(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_native_bf16(monkeypatch)
    config, line = _quickstart_choice(capsys, caplog)
    assert config["trainer"]["precision"] is None  # Lightning's default: 32-true, as before
    assert config["model"]["compute"]["channels_last"] is False
    assert line == (
        "precision 32-true, contiguous format: no native bf16 on this CPU "
        "(AMX or AVX512-BF16): fp32 is faster"
    )


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "no-bf16"])
def test_an_explicit_precision_always_wins(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
    native: bool,
) -> None:
    if not native:
        _no_native_bf16(monkeypatch)
    config, line = _quickstart_choice(capsys, caplog, "--trainer.precision", precision)
    assert config["trainer"]["precision"] == precision
    assert config["model"]["compute"]["channels_last"] is False  # the recipe was not composed
    assert line.startswith(f"precision {precision}, contiguous format: as configured")


def test_other_values_win_over_the_recipe(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    if native_bf16() is None:
        pytest.skip("the recipe is composed on a CPU with native bf16 only")
    config, _ = _quickstart_choice(capsys, caplog, "--model.compute.channels_last", "false")
    assert config["trainer"]["precision"] == "bf16-mixed"
    assert config["model"]["compute"]["channels_last"] is False  # composed first: the flag wins


def test_the_recipe_is_for_cpu_runs(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config, line = _quickstart_choice(capsys, caplog, "--trainer.accelerator", "cuda")
    assert config["trainer"]["precision"] is None
    assert "for accelerator cpu, not cuda" in line


@pytest.mark.parametrize("flags", [[], ["--trainer.precision", "32-true"]], ids=["auto", "32"])
@pytest.mark.e2e
def test_console_script_trains_the_quickstart_in_the_chosen_precision(
    tmp_path: Path,
    flags: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The shipped quickstart, shrunk, through the console script (in this process): its line
    comes first, and the run trains, checkpoints and records what it chose; an explicit
    precision wins."""
    monkeypatch.chdir(tmp_path)  # where the recipe's runs/ goes
    with caplog.at_level(logging.INFO):
        main(["fit", "-c", str(QUICKSTART), *flags,
              "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
              "--trainer.enable_progress_bar", "false",
              "--model.model_kwargs", '{"width": 0.0625, "stem": 79}',
              "--data.init_args.num_samples", "40",
              "--data.init_args.loader.batch_size", "8"])  # fmt: skip
    native = native_bf16() is not None and not flags
    expected = "precision bf16-mixed, channels_last" if native else "precision 32-true"
    said = caplog.messages  # what the run logs (on stderr from a shell), warnings aside
    assert said[0].startswith(expected), said[:3]  # the first thing the run says
    run = tmp_path / "runs" / "quickstart" / "version_0"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    chosen = "bf16-mixed" if native else (flags[-1] if flags else None)  # None: 32-true
    assert saved["trainer"]["precision"] == chosen
    assert saved["model"]["compute"]["channels_last"] is native
    assert saved["cpu_recipe"] is None  # decided: the saved config reruns as this run ran
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "report" / "index.html").is_file()  # beside the run


def _tiny_checkpoint(path: Path, num_classes: int) -> Path:
    """A Lightning checkpoint of an untrained tiny Inception-v3 with the 79 px stem."""
    module = InceptionClassifier(
        "inception_v3",
        num_classes=num_classes,
        model_kwargs={"width": 0.0625, "aux_head": False, "stem": 79},
    )
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": "2.6.6",
    }
    torch.save(checkpoint, path)
    return path


def test_forward_only_work_runs_in_bf16_and_maps_stay_fp32() -> None:
    network = create_model("inception_v3", 3, width=0.0625, aux_head=False, stem=79).eval()
    cam = GradCAMMap(network, batch_size=4)
    images = torch.randn(6, 3, 79, 79, generator=torch.Generator().manual_seed(0))
    batch = Batch(list(range(6)), images, images, torch.tensor([0, 1, 2, 0, 1, 2]), None)
    seen: list[torch.dtype] = []
    conv = network.get_submodule("features.mixed_7c")
    handle = conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))

    fp32_result = explain_batch(cam, batch, steps=4)
    fp32_seen, seen[:] = list(seen), []
    bf16_result = explain_batch(cam, batch, steps=4, forward=Bf16Forward(network))
    handle.remove()

    assert set(fp32_seen) == {torch.float32}
    # predictions and 2 x 5 curve forwards per batch in bf16; the maps' forwards in fp32
    assert torch.bfloat16 in seen and torch.float32 in seen
    torch.testing.assert_close(bf16_result.maps, fp32_result.maps, rtol=0, atol=0)
    assert bf16_result.probs.dtype == torch.float32
    torch.testing.assert_close(bf16_result.probs, fp32_result.probs, rtol=0, atol=0.02)
    for name, values in fp32_result.scores.items():
        torch.testing.assert_close(bf16_result.scores[name], values, rtol=0, atol=0.02)


@pytest.mark.e2e  # make-dataset, then report twice, through the console script
def test_report_chooses_bf16_forwards_where_the_cpu_has_native_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "shapes"
    main(["make-dataset", "--out", str(data), "--num_classes", "3", "--num_samples", "30",
          "--image_size", "79"])  # fmt: skip
    ckpt = _tiny_checkpoint(tmp_path / "model.ckpt", 3)

    def report(out: str) -> dict:
        boxes = data / "boxes.json"
        main(["report", "--ckpt_path", str(ckpt), "--data", str(data), "--boxes_file", str(boxes),
              "--out", str(tmp_path / out), "--per_class", "2",
              "--sanity.samples", "0"])  # fmt: skip
        return json.loads((tmp_path / out / "summary.json").read_text())

    native = report("native")
    expected = "bf16-mixed" if native_bf16() else "32-true"
    assert native["info"]["forward-only precision"] == expected
    _no_native_bf16(monkeypatch)
    fp32 = report("fp32")
    assert fp32["info"]["forward-only precision"] == "32-true"
    curves = ("deletion_auc", "insertion_auc")
    for bf16_row, fp32_row in zip(native["methods"], fp32["methods"], strict=True):
        assert bf16_row["accuracy"] == fp32_row["accuracy"]
        for name in (*curves, "pointing_game", "energy_pointing_game"):
            assert bf16_row[name] == pytest.approx(fp32_row[name], abs=0.01), name
        if expected == "bf16-mixed":  # the curves did run in bf16: close, not bit-identical
            assert any(bf16_row[name] != fp32_row[name] for name in curves)
