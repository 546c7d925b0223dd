"""predict: a folder with or without class subfolders, the bad-file policy, the CSV, DDP."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import TINY, run_two_ranks, write_image
from lightning.pytorch import Trainer

from inception_lightning.callbacks import PredictionWriter
from inception_lightning.data import CropOptions, DatasetError, LoaderOptions, PredictDataModule
from inception_lightning.training import InceptionClassifier

CLASSES = ["cat", "dog", "fox"]
AT_75 = CropOptions(image_size=75)
NO_WORKERS = LoaderOptions(num_workers=0)


def _folder(root: Path) -> Path:
    """Two loose images, one in a class subfolder, one in a folder that is no class."""
    write_image(root / "b.png", (90, 70), seed=1)
    write_image(root / "a.jpg", (70, 90), seed=2)
    write_image(root / "dog" / "c.png", (80, 80), seed=3)
    write_image(root / "misc" / "deeper" / "d.png", (75, 75), seed=4)
    (root / ".hidden.png").write_bytes(b"not looked at")
    return root


def _predict(data: PredictDataModule, output: Path, top_k: int = 2) -> list[dict[str, str]]:
    torch.manual_seed(0)
    module = InceptionClassifier(num_classes=len(CLASSES), model_kwargs=TINY)
    writer = PredictionWriter(output, top_k=top_k)
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[writer],
    )  # fmt: skip
    trainer.predict(module, datamodule=data, return_predictions=False)
    with output.open() as file:
        return list(csv.DictReader(file))


def test_a_folder_with_and_without_class_subfolders(tmp_path: Path) -> None:
    root = _folder(tmp_path / "images")
    data = PredictDataModule(
        str(root), CLASSES, crop=AT_75, loader=LoaderOptions(batch_size=3, num_workers=0)
    )
    rows = _predict(data, tmp_path / "out.csv")

    found = [(Path(r["path"]).relative_to(root).as_posix(), r["label"]) for r in rows]
    assert found == [("a.jpg", ""), ("b.png", ""), ("dog/c.png", "dog"), ("misc/deeper/d.png", "")]
    assert list(rows[0]) == ["path", "label", "class_1", "prob_1", "class_2", "prob_2"]
    for row in rows:
        assert {row["class_1"], row["class_2"]} <= set(CLASSES)
        assert 1.0 >= float(row["prob_1"]) >= float(row["prob_2"]) > 0.0


def test_bad_files_follow_the_training_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _folder(tmp_path / "images")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError, match=r"(?s)1 bad image files.*bad_files='skip'.*broken\.png"):
        PredictDataModule(str(root), CLASSES, crop=AT_75, loader=NO_WORKERS).setup("predict")

    monkeypatch.chdir(tmp_path)  # no trainer log directory: the list goes here
    data = PredictDataModule(str(root), CLASSES, crop=AT_75, bad_files="skip", loader=NO_WORKERS)
    with pytest.warns(UserWarning, match="skipped 1 bad image files"):
        rows = _predict(data, tmp_path / "out.csv")
    assert len(rows) == 4 and not any("broken" in r["path"] for r in rows)
    assert "broken.png" in (tmp_path / "bad_files.txt").read_text()


def test_predict_needs_the_class_names() -> None:
    with pytest.raises(DatasetError, match=r"class names: pass --ckpt_path"):
        PredictDataModule("anywhere")


def test_a_failed_run_keeps_the_previous_predictions(tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    output.write_text("previous\n")
    root = _folder(tmp_path / "images")
    data = PredictDataModule(str(root), CLASSES, crop=AT_75, loader=NO_WORKERS)
    torch.manual_seed(0)
    module = InceptionClassifier(num_classes=len(CLASSES), model_kwargs=TINY)
    calls = []

    def fail_on_second(batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        calls.append(batch_idx)
        if batch_idx == 1:
            raise RuntimeError("the second batch fails")
        return InceptionClassifier.predict_step(module, batch, batch_idx)

    module.predict_step = fail_on_second
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[PredictionWriter(output)],
    )  # fmt: skip
    data.batch_size = 2
    with pytest.raises(RuntimeError, match="second batch"):
        trainer.predict(module, datamodule=data, return_predictions=False)
    assert output.read_text() == "previous\n" and calls == [0, 1]


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from lightning.pytorch import Trainer
    from inception_lightning.callbacks import PredictionWriter
    from inception_lightning.data import CropOptions, LoaderOptions, PredictDataModule
    from inception_lightning.training.module import InceptionClassifier

    root = Path(sys.argv[1]).parent
    torch.manual_seed(0)
    module = InceptionClassifier(
        num_classes=3, model_kwargs={"width": 0.0625, "stem": 299, "aux_head": False}
    )
    data = PredictDataModule(
        str(root / "images"),
        ["cat", "dog", "fox"],
        crop=CropOptions(image_size=75),
        loader=LoaderOptions(batch_size=1, num_workers=0),
    )
    trainer = Trainer(
        accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[PredictionWriter(root / "ddp.csv", top_k=2)],
    )
    trainer.predict(module, datamodule=data, return_predictions=False)
    if trainer.global_rank == 0:
        Path(sys.argv[1]).write_text(json.dumps({"world_size": trainer.world_size}))
    """
)


@pytest.mark.e2e
def test_ddp_ranks_rows_gathered_to_rank_zero_merge_in_input_order(tmp_path: Path) -> None:
    root = _folder(tmp_path / "images")
    write_image(root / "e.png", (80, 76), seed=5)  # 5 images: the sampler repeats one
    assert run_two_ranks(DDP_SCRIPT, tmp_path) == {"world_size": 2}

    data = PredictDataModule(
        str(root), CLASSES, crop=AT_75, loader=LoaderOptions(batch_size=1, num_workers=0)
    )
    single = _predict(data, tmp_path / "single.csv")
    with (tmp_path / "ddp.csv").open() as file:
        merged = list(csv.DictReader(file))
    assert len(merged) == 5 and merged == single
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
