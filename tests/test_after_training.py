"""After training, through the console script: fit, then validate, predict, export, report, test.

Every step reads the checkpoint fit wrote, and nothing else: its class names, preprocessing,
model and weight set. The console script runs in this process (`cli.main`): no step here is
about the process boundary.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from helpers import TINY, write_image, write_tree
from lightning.pytorch import LightningDataModule, Trainer
from PIL import Image

from inception_lightning.cli import InceptionCLI, main
from inception_lightning.data import LoaderOptions, SyntheticDataModule
from inception_lightning.data.folders.decode import decode_rgb
from inception_lightning.data.transforms.preprocessing import (
    Normalize,
    Preprocessing,
    eval_geometry,
)
from inception_lightning.models import registry
from inception_lightning.models.net import Architecture
from inception_lightning.models.registry import get_entry
from inception_lightning.models.specs import Stage
from inception_lightning.training import InceptionClassifier, load_network
from inception_lightning.training.exporter import ExportError, export_onnx

pytestmark = pytest.mark.e2e  # console-script runs, subprocesses or whole scripts

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
CLASSES = ["cat", "dog", "fox"]
# Inception-v3 with the paper's recipe, on a folder, shrunk to a CPU test
FIT_CONFIGS = ["-c", str(CONF / "fit.yaml"), "-c", str(CONF / "model/inception_v3.yaml"),
               "-c", str(CONF / "data/folder.yaml")]  # fmt: skip
TINY_V3 = json.dumps({"width": 0.0625, "aux_head": False})


def _onnx_logits(path: Path, images: torch.Tensor) -> tuple[np.ndarray, dict[str, str]]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images.numpy()})
    return logits, session.get_modelmeta().custom_metadata_map


def test_fit_then_validate_predict_export_and_report_from_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the runs, predictions, export and report go
    data = write_tree(tmp_path / "data", CLASSES, ("train", "val", "test"), n=4, size=(96, 80))
    main(["fit", *FIT_CONFIGS, "--data.root", str(data), "--data.crop.image_size", "75",
          "--data.loader.batch_size", "4", "--data.loader.num_workers", "0",
          "--model.model_kwargs", TINY_V3,
          "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu",
          "--trainer.enable_progress_bar", "false"])  # fmt: skip
    folder = tmp_path / "runs/inception/version_0/checkpoints"
    (best,) = [p for p in folder.iterdir() if p.name != "last.ckpt"]
    network = load_network(best).network  # the EMA weights: what state_dict holds
    trained = Preprocessing(image_size=75, crop_pct=0.875)

    # validate: the best checkpoint gives the val_ema/acc1 fit logged for it, on the
    # checkpoint's preprocessing (no --data.crop.image_size given)
    saved = torch.load(best, map_location="cpu", weights_only=True)
    (state,) = [s for key, s in saved["callbacks"].items() if key.startswith("ModelCheckpoint")]
    cli = InceptionCLI(
        InceptionClassifier, LightningDataModule, subclass_mode_data=True,
        args=["validate", *FIT_CONFIGS[:2], *FIT_CONFIGS[4:], "--data.root", str(data),
              "--data.loader.num_workers", "0", "--ckpt_path", str(best),
              "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"],
    )  # fmt: skip
    assert cli.datamodule.preprocessing == trained and cli.datamodule.classes == CLASSES
    assert cli.trainer.callback_metrics["val_ema/acc1"].item() == state["best_model_score"].item()
    assert "val/acc1" not in cli.trainer.callback_metrics

    # predict: rows equal softmax(model(x)) with the checkpoint's preprocessing
    images = tmp_path / "to_predict"
    files = [("a.png", (90, 70)), ("b.jpg", (64, 100)), ("dog/c.png", (80, 80))]
    for seed, (name, size) in enumerate(files):
        write_image(images / name, size, seed)
    main(["predict", "-c", str(CONF / "predict.yaml"), "--ckpt_path", str(best),
          "--data.root", str(images), "--data.loader.num_workers", "0"])  # fmt: skip
    with (tmp_path / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [(Path(r["path"]).relative_to(images).as_posix(), r["label"]) for r in rows] == [
        ("a.png", ""), ("b.jpg", ""), ("dog/c.png", "dog")
    ]  # fmt: skip
    normalize = Normalize(trained.mean, trained.std)
    with torch.no_grad():
        for row in rows:
            x = normalize(eval_geometry(trained)(decode_rgb(row["path"])))[None]
            expected = network(x).softmax(-1)[0]
            got = {row[f"class_{k}"]: float(row[f"prob_{k}"]) for k in (1, 2, 3)}
            assert set(got) == set(CLASSES) and "class_4" not in row
            for c, name in enumerate(CLASSES):
                assert got[name] == pytest.approx(expected[c].item(), abs=1e-6)

    # export: onnxruntime gives torch's logits at any batch size, and the metadata describes it
    main(["export", "--ckpt_path", str(best), "--out", "model.onnx"])
    batch = torch.randn(3, 3, 75, 75)
    logits, metadata = _onnx_logits(tmp_path / "model.onnx", batch)
    with torch.no_grad():
        np.testing.assert_allclose(logits, network(batch).numpy(), atol=1e-4, rtol=0)
    assert json.loads(metadata["classes"]) == CLASSES and json.loads(metadata["weights"]) == "ema"
    assert json.loads(metadata["preprocessing"])["image_size"] == 75

    # report: the checkpoint's preprocessing (75 px, crop 0.875), not the stem's 299 px; one
    # method and no sanity checks (tests/test_cli.py's report runs every method and check)
    main(["report", "--ckpt_path", str(best), "--data", str(data), "--out", "report",
          "--per_class", "1", "--method", "gradcam", "--sanity.samples", "0"])  # fmt: skip
    summary = json.loads((tmp_path / "report/summary.json").read_text())
    assert "'image_size': 75, 'crop_pct': 0.875" in summary["info"]["preprocessing"]
    original = tmp_path / "report" / summary["images"][0]["files"]["original"]
    assert Image.open(original).size == (75, 75)


def test_test_runs_on_the_quickstart_configuration(
    quickstart_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)  # where the recipe's runs/ goes
    with caplog.at_level(logging.INFO):
        main(["test", "-c", str(CONF / "quickstart.yaml"),
              "--ckpt_path", str(quickstart_run / "checkpoints" / "last.ckpt"),
              "--data.init_args.test_samples", "16",
              "--trainer.enable_progress_bar", "false"])  # fmt: skip
    assert "test_ema/acc1" in capsys.readouterr().out
    assert any("holds the EMA weights" in message for message in caplog.messages)


def _one_block_of_each_kind(arch: Architecture) -> Architecture:
    """`arch` with every run of identical blocks cut to its first (repeats too): each block
    kind once, in order, and the stem and head as they are.

    torch.export's trace and the ONNX translation grow with the blocks (IR-v2's 40 residual
    blocks: 20 s of CPU), and a repeated block exports as its first does.
    """
    body: list[Stage] = []
    aux_after = arch.aux_after
    for row in arch.body:
        last = body[-1] if body else None
        same = last is not None and (last.layer, last.residual_scale, last.activate) == (
            row.layer, row.residual_scale, row.activate
        )  # fmt: skip
        if not same:
            body.append(replace(row, repeats=1))
        if arch.aux_after in row.names():
            aux_after = body[-1].name
    return replace(arch, body=tuple(body), aux_after=aux_after)


def _blocks(arch: Architecture) -> int:
    """The body's modules, repeats counted."""
    return sum(len(row.names()) for row in arch.body)


@pytest.mark.parametrize("model", ["inception_v4", "inception_resnet_v1", "inception_resnet_v2"])
def test_onnx_export_matches_torch_for_the_other_variants(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every block kind of each variant (`_one_block_of_each_kind`), registered under its own
    name for this test, through fit, a checkpoint and the console script's `export`."""
    full = get_entry(model).arch
    arch = _one_block_of_each_kind(full)
    assert all(row.layer in [kept.layer for kept in arch.body] for row in full.body)
    assert _blocks(arch) < _blocks(full)
    model = f"{model}_one_block_of_each_kind"
    # `register_model` has no unregister: the registry's dict, restored after the test
    monkeypatch.setitem(registry._REGISTRY, model, registry.ModelEntry(arch, timm_name=None))
    module = InceptionClassifier(model, num_classes=3, model_kwargs=TINY)
    trainer = Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(
        module,
        SyntheticDataModule(
            num_classes=3, image_size=75, num_samples=8, loader=LoaderOptions(batch_size=4)
        ),
    )
    trainer.save_checkpoint(tmp_path / "model.ckpt")

    main(["export", "--ckpt_path", str(tmp_path / "model.ckpt"), "--out", str(tmp_path / "m.onnx")])

    batch = torch.randn(5, 3, 75, 75)
    logits, metadata = _onnx_logits(tmp_path / "m.onnx", batch)
    with torch.no_grad():
        expected = load_network(tmp_path / "model.ckpt").network(batch).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    assert json.loads(metadata["model"]) == model and json.loads(metadata["weights"]) == "raw"


@torch.library.custom_op("inception_lightning_test::doubled", mutates_args=())
def _doubled(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_doubled.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class _Unexportable(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _doubled(x).mean(dim=(2, 3))


def test_an_operator_onnx_cannot_export_is_named_with_the_workaround(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as error:
        export_onnx(_Unexportable(), out, {}, image_size=8)
    message = str(error.value)
    assert "cannot export the operator inception_lightning_test.doubled.default" in message
    assert "export a .pt state dict" in message and "\n" not in message
    assert not out.exists()
