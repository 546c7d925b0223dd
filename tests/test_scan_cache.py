"""The scan cache: a later start checks only changed files, and a bad cache is never trusted."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from helpers import age, write_image, write_tree
from lightning.pytorch import Trainer
from rich.console import Console

from inception_lightning import console
from inception_lightning.data import (
    CropOptions,
    DatasetError,
    FileOptions,
    ImageFolderDataModule,
    LoaderOptions,
)
from inception_lightning.data.scanning import scan as scan_module
from inception_lightning.data.scanning.scan_cache import BESIDE_NAME, RACY_NS, ScanCache


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files `check_image` reads, by name relative to the test's data folder, in call order."""
    calls: list[str] = []
    real = scan_module.check_image

    def counting(path: Path) -> tuple[int, int] | str:
        calls.append(f"{path.parent.parent.name}/{path.parent.name}/{path.name}")
        return real(path)

    monkeypatch.setattr(scan_module, "check_image", counting)
    return calls


def setup(root: Path, **files: object) -> ImageFolderDataModule:
    """The folder at 24 px, set up for fit; `files` are `FileOptions`."""
    datamodule = ImageFolderDataModule(
        str(root),
        crop=CropOptions(image_size=24),
        files=FileOptions(**files),
        loader=LoaderOptions(num_workers=0),
    )
    datamodule.setup("fit")
    return datamodule


def records(datamodule: ImageFolderDataModule) -> list[tuple[str, int, tuple[int, int]]]:
    return [
        (r.path.name, r.label, r.size)
        for dataset in (datamodule.train_dataset, datamodule.val_dataset)
        for r in dataset.records
    ]


def test_a_second_start_checks_nothing_and_finds_the_same_images(
    tmp_path: Path, checked: list[str]
) -> None:
    root = age(write_tree(tmp_path / "data", n=3))
    first = setup(root)
    assert len(checked) == 12  # 2 splits x 2 classes x 3 files
    assert (root / BESIDE_NAME).is_file()
    checked.clear()
    second = setup(root)
    assert checked == []
    assert records(second) == records(first)


def test_a_changed_an_added_and_a_removed_file_are_the_only_ones_checked_again(
    tmp_path: Path, checked: list[str]
) -> None:
    root = age(write_tree(tmp_path / "data", n=3))
    setup(root)
    changed = write_image(root / "train" / "cat" / "0.png", size=(50, 30), seed=7)
    touched = root / "train" / "dog" / "1.png"  # the same bytes, another mtime
    added = write_image(root / "val" / "dog" / "9.png", seed=9)
    (root / "val" / "cat" / "2.png").unlink()
    for path in (changed, touched, added):
        age(path, seconds=1800)
    checked.clear()
    datamodule = setup(root)
    assert sorted(checked) == ["train/cat/0.png", "train/dog/1.png", "val/dog/9.png"]
    assert ("0.png", 0, (50, 30)) in records(datamodule)  # the new size, not the cached one
    assert len(records(datamodule)) == 12
    entries = ScanCache(root).load()
    assert "val/cat/2.png" not in entries and "val/dog/9.png" in entries


def test_a_removed_file_leaves_the_cache_with_nothing_checked(
    tmp_path: Path, checked: list[str]
) -> None:
    root = age(write_tree(tmp_path / "data", n=3))
    setup(root)
    (root / "train" / "cat" / "1.png").unlink()
    checked.clear()
    assert len(records(setup(root))) == 11 and checked == []
    assert "train/cat/1.png" not in ScanCache(root).load()


def test_a_file_that_went_bad_is_caught_although_its_old_result_is_cached(
    tmp_path: Path, checked: list[str]
) -> None:
    root = age(write_tree(tmp_path / "data", n=3, suffix=".jpg"))
    setup(root)
    broken = root / "train" / "dog" / "2.jpg"
    broken.write_bytes(broken.read_bytes()[:-200])  # truncated: a bad JPEG
    age(broken, seconds=1800)
    with pytest.raises(DatasetError, match="truncated JPEG") as error:
        setup(root)
    assert str(broken) in str(error.value)


def test_files_modified_just_before_the_scan_are_checked_again_next_time(
    tmp_path: Path, checked: list[str]
) -> None:
    root = write_tree(tmp_path / "data", n=2)  # written now: inside the racy window
    setup(root)
    checked.clear()
    setup(root)
    assert len(checked) == 8  # same size and mtime, but a same-tick rewrite could hide there
    assert RACY_NS >= 1_000_000_000
    age(root)
    setup(root)
    checked.clear()
    setup(root)
    assert checked == []


def _flip_in_entries(data: bytes) -> bytes:
    """Flip one byte of the entries line (a digit of some size or mtime)."""
    at = data.index(b"\n") + data[data.index(b"\n") :].index(b"[") + 2
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _mark_bad_file_good(data: bytes) -> bytes:
    """Rewrite the bad file's entry as a good image's, without updating the checksum."""
    head, entries = data.split(b"\n", 1)
    table = json.loads(entries)
    size, mtime = table["train/dog/bad.png"][:2]
    table["train/dog/bad.png"] = [size, mtime, 40, 30]
    return head + b"\n" + json.dumps(table, separators=(",", ":")).encode() + b"\n"


def _other_pil(data: bytes) -> bytes:
    head, rest = data.split(b"\n", 1)
    header = json.loads(head)
    header["checker"]["max_image_pixels"] = 1
    return json.dumps(header).encode() + b"\n" + rest


CORRUPTIONS = {
    "truncated": lambda data: data[: len(data) // 2],
    "one byte flipped": _flip_in_entries,
    "a bad file marked good": _mark_bad_file_good,
    "another program's JSON": lambda data: b'{"files": ["a.png"]}\n',
    "binary garbage": lambda data: bytes(range(256)) * 4,
    "other PIL settings": _other_pil,
    "empty": lambda data: b"",
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_or_foreign_cache_is_ignored_with_a_warning_and_rebuilt(
    tmp_path: Path, checked: list[str], monkeypatch: pytest.MonkeyPatch, corrupt
) -> None:
    monkeypatch.chdir(tmp_path)  # bad_files.txt goes to the working directory
    root = write_tree(tmp_path / "data", n=3)
    (root / "train" / "dog" / "bad.png").write_bytes(b"not an image")
    age(root)
    first = setup(root, bad_files="skip")
    cache = root / BESIDE_NAME
    cache.write_bytes(corrupt(cache.read_bytes()))
    checked.clear()
    with pytest.warns(UserWarning, match=re.escape(f"scan cache {cache} is ")):
        again = setup(root, bad_files="skip")
    assert len(checked) == 13  # every file, the bad one included
    assert "bad.png" not in {name for name, _, _ in records(again)}
    assert records(again) == records(first)
    checked.clear()
    setup(root, bad_files="skip")
    assert checked == []  # rebuilt


def test_scan_cache_dir_keeps_the_data_folder_untouched(tmp_path: Path, checked: list[str]) -> None:
    root = age(write_tree(tmp_path / "data", n=2))
    setup(root, scan_cache_dir=str(tmp_path / "cache"))
    assert not (root / BESIDE_NAME).exists()
    (cache,) = (tmp_path / "cache").iterdir()
    assert cache.name.startswith("data-") and cache.suffix == ".json"
    checked.clear()
    setup(root, scan_cache_dir=str(tmp_path / "cache"))
    assert checked == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("bar", [True, False])
def test_progress_counts_files_unless_the_trainer_bar_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bar: bool
) -> None:
    shown = io.StringIO()

    class Captured(console.Progress):
        def __init__(self, *columns: object, **kwargs: object) -> None:
            target = Console(file=shown, force_terminal=True, width=120)
            super().__init__(*columns, console=target, **kwargs)

    monkeypatch.setattr(console, "Progress", Captured)
    monkeypatch.setattr(console.sys, "stdout", _Terminal())
    root = age(write_tree(tmp_path / "data", n=2))
    datamodule = ImageFolderDataModule(
        str(root), crop=CropOptions(image_size=24), loader=LoaderOptions(num_workers=0)
    )
    datamodule.trainer = Trainer(enable_progress_bar=bar, logger=False, accelerator="cpu")
    datamodule.setup("fit")
    text = shown.getvalue()
    if bar:
        assert "checking images" in text and "8/8" in text and "files/s" in text
    else:
        assert text == ""
