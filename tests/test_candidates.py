"""Only image files are candidates: fit, predict, report and the scan follow one rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_image, write_tree

from inception_lightning.data import (
    CropOptions,
    DatasetError,
    FileOptions,
    ImageFolderDataModule,
    LoaderOptions,
    PredictDataModule,
    Preprocessing,
    write_dataset,
)
from inception_lightning.data.folders.report_dataset import evaluation_dataset
from inception_lightning.data.scanning.candidates import is_candidate
from inception_lightning.data.scanning.scan import list_files

CROP, SKIP = CropOptions(image_size=32), FileOptions(bad_files="skip")
NO_WORKERS = LoaderOptions(num_workers=0)


@pytest.mark.parametrize(
    ("name", "candidate"),
    [
        ("a.jpg", True),
        ("b.JPEG", True),
        ("c.Png", True),
        ("d.webp", True),
        ("e.tiff", True),
        ("notes.txt", False),
        ("boxes.json", False),
        ("README", False),
        ("photo.jpg.zip", False),
        (".DS_Store", False),
        (".hidden.png", False),
    ],
)
def test_a_file_is_a_candidate_by_its_name(name: str, candidate: bool) -> None:
    assert is_candidate(name) is candidate


def _messy(root: Path) -> Path:
    """A train/val tree whose class folders also hold notes, annotations and a fake JPEG."""
    write_tree(root, n=2)
    for folder in ("train/cat", "train/dog", "val/cat", "val/dog"):
        (root / folder / "notes.txt").write_text("taken on a Tuesday")
        (root / folder / "README").write_text("cats and dogs")
        (root / folder / "boxes.json").write_text("{}")
        (root / folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    write_image(root / "train/cat/UPPER.JPG", seed=7)
    (root / "train/dog/fake.jpg").write_text("an image by name only")
    return root


def _images(root: Path, split: str) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in (root / split).rglob("*")
        if p.suffix.lower() in (".png", ".jpg") and p.name != "fake.jpg"
    )


def test_fit_report_predict_and_scan_take_image_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no trainer: bad_files.txt goes to the working directory
    root = _messy(tmp_path / "data")
    fake = root / "train/dog/fake.jpg"

    listed = list_files(root / "train", ["cat", "dog"], root)  # the scan
    keys = sorted(file.key for files in listed.values() for file in files)
    assert keys == sorted([*_images(root, "train"), "train/dog/fake.jpg"])

    with pytest.raises(DatasetError, match="1 bad image files") as error:  # fit
        ImageFolderDataModule(str(root), crop=CROP, loader=NO_WORKERS).setup("fit")
    assert f"{fake}: not an image" in str(error.value) and "notes.txt" not in str(error.value)
    fit = ImageFolderDataModule(str(root), crop=CROP, files=SKIP, loader=NO_WORKERS)
    with pytest.warns(UserWarning, match="skipped 1 bad image files"):
        fit.setup("fit")
    trained = sorted(p.relative_to(root).as_posix() for p in map(fit.train_dataset.path, range(5)))
    assert trained == _images(root, "train") and len(fit.train_dataset) == 5

    report = evaluation_dataset(root, Preprocessing(32))  # its val/ split
    assert sorted(r.path.relative_to(root).as_posix() for r in report.records) == _images(
        root, "val"
    )

    predict = PredictDataModule(str(root), ["cat", "dog"], crop=CROP, bad_files="skip")
    with pytest.warns(UserWarning, match="skipped 1 bad image files"):
        predict.setup("predict")
    paths = map(predict.predict_dataset.path, range(9))
    predicted = [p.relative_to(root).as_posix() for p in paths]
    assert predicted == sorted(_images(root, "train") + _images(root, "val"))
    assert len(predict.predict_dataset) == 9


def test_predict_from_make_datasets_root_takes_its_images_not_its_masks(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "shapes", num_classes=2, image_size=32, num_samples=8)
    assert (root / "boxes.json").is_file() and any((root / "masks").rglob("*.png"))
    data = PredictDataModule(str(root), ["circle", "square"], crop=CROP)  # bad_files: error
    data.setup("predict")
    predicted = [data.predict_dataset.path(i) for i in range(len(data.predict_dataset))]
    assert [p.relative_to(root).parts[0] for p in predicted] == ["train"] * 7 + ["val"]
    assert len(predicted) == 8
