"""Bad input to `ImageFolderDataModule`: every message names the file or folder."""

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from PIL import Image

from inception_lightning.data import (
    AugmentOptions,
    CropOptions,
    DatasetError,
    FileOptions,
    ImageFolderDataModule,
    LoaderOptions,
    check_image,
    load_rgb,
)


def _image(
    path: Path, size: tuple[int, int] = (40, 40), mode: str = "RGB", fmt: str = "PNG"
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(
        path, fmt
    )
    return path


def _tree(root: Path, classes=("cat", "dog"), splits=("train", "val"), n: int = 3) -> Path:
    for split in splits:
        for name in classes:
            for i in range(n):
                _image(root / split / name / f"{i}.png")
    return root


def _module(root: Path, **files: object) -> ImageFolderDataModule:
    """The folder at 32 px, no workers; `files` are `FileOptions`, `augment=False` turns it off."""
    augment = AugmentOptions(enabled=files.pop("augment", True))
    return ImageFolderDataModule(
        str(root), crop=CropOptions(image_size=32), augment=augment, files=FileOptions(**files),
        loader=LoaderOptions(num_workers=0),
    )  # fmt: skip


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _text(path: Path) -> Path:
    path.write_text("just some notes")
    return path


def _truncated_png(path: Path) -> Path:
    _image(path, (64, 64))
    path.write_bytes(path.read_bytes()[:-40])
    return path


def _truncated_jpeg(path: Path) -> Path:
    _image(path, (64, 64), fmt="JPEG")
    path.write_bytes(path.read_bytes()[:-300])
    return path


def _bomb_png(path: Path, side: int = 100_000) -> Path:
    """A valid PNG header declaring side x side pixels, with a tiny payload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    payload = zlib.compress(b"\x00" * 64)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", payload)
        + chunk(b"IEND", b"")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_empty, "empty file"),
        (_text, "not an image: PIL cannot identify"),
        (_truncated_jpeg, "truncated JPEG: no end-of-image marker"),
        (_truncated_png, "corrupt image"),
        (_bomb_png, "decompression bomb"),
    ],
    ids=["empty", "not-an-image", "truncated-jpeg", "truncated-png", "bomb"],
)
def test_bad_file_is_named(tmp_path, make, reason: str) -> None:
    root = _tree(tmp_path)
    bad = make(root / "train" / "cat" / "bad.jpg")
    assert check_image(bad).startswith(reason)
    dm = _module(root)
    with pytest.raises(DatasetError, match="1 bad image files") as error:
        dm.setup("fit")
    assert f"{bad}: {reason}" in str(error.value)


def test_error_lists_every_bad_file(tmp_path) -> None:
    root = _tree(tmp_path)
    bad = [root / "train/cat/a.jpg", root / "val/dog/b.png", root / "train/dog/c.TIFF"]
    for path in bad:
        path.write_bytes(b"")
    with pytest.raises(DatasetError, match="3 bad image files") as error:
        _module(root).setup("fit")
    assert all(f"{path}: empty file" in str(error.value) for path in bad)
    assert "files.bad_files='skip'" in str(error.value)


def test_skip_leaves_bad_files_out_and_writes_list_to_cwd(tmp_path, monkeypatch) -> None:
    root = _tree(tmp_path / "data")
    (root / "train/cat/bad.png").write_text("no image")
    _truncated_jpeg(root / "val/dog/cut.jpg")
    monkeypatch.chdir(tmp_path)
    dm = _module(root, bad_files="skip")
    with pytest.warns(UserWarning, match=re.escape(f"skipped 2 bad image files under {root}")):
        dm.setup("fit")
    assert len(dm.train_dataset) == 6 and len(dm.val_dataset) == 6
    listed = (tmp_path / "bad_files.txt").read_text().splitlines()
    assert listed == [
        f"{root / 'train/cat/bad.png'}\tnot an image: PIL cannot identify its format",
        f"{root / 'val/dog/cut.jpg'}\ttruncated JPEG: no end-of-image marker",
    ]


def test_skip_writes_list_to_trainer_log_dir(tmp_path) -> None:
    root = _tree(tmp_path / "data")
    (root / "train/cat/empty.png").write_bytes(b"")
    dm = _module(root, bad_files="skip")
    dm.trainer = Trainer(default_root_dir=tmp_path / "logs", logger=False, barebones=True)
    with pytest.warns(UserWarning, match="skipped 1 bad image files"):
        dm.setup("fit")
    log_dir = Path(dm.trainer.log_dir)
    assert log_dir.is_relative_to(tmp_path / "logs")
    assert (
        log_dir / "bad_files.txt"
    ).read_text() == f"{root / 'train/cat/empty.png'}\tempty file\n"


def test_crafted_file_names_cannot_forge_lines_in_logs(tmp_path, monkeypatch) -> None:
    root = _tree(tmp_path / "data")
    (root / "train/cat/x\nFORGED\tok.png").write_text("no image")
    monkeypatch.chdir(tmp_path)
    dm = _module(root, bad_files="skip")
    with pytest.warns(UserWarning, match="skipped 1 bad image files"):
        dm.setup("fit")
    listed = (tmp_path / "bad_files.txt").read_text().splitlines()
    assert listed == [
        f"{root / 'train/cat'}/x\\nFORGED\\tok.png\tnot an image: PIL cannot identify its format"
    ]
    with pytest.raises(DatasetError) as error:
        _module(root).setup("fit")
    assert "\nFORGED" not in str(error.value) and "x\\nFORGED" in str(error.value)


def test_skip_that_empties_a_class_is_an_error(tmp_path, monkeypatch) -> None:
    root = _tree(tmp_path / "data", n=1)
    (root / "train/dog/0.png").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    message = re.escape(f"class folder {root / 'train/dog'} has no readable")
    with pytest.raises(DatasetError, match=message), pytest.warns(UserWarning):
        _module(root, bad_files="skip").setup("fit")


def _save_mode(path: Path, mode: str) -> None:
    rgb = Image.new("RGB", (40, 40), (200, 30, 90))
    if mode == "P-transparent":
        rgb.convert("P").save(path, transparency=0)
    elif mode == "I;16":
        Image.fromarray(np.full((40, 40), 32768, dtype=np.uint16)).save(path)
    elif mode == "CMYK":
        rgb.convert("CMYK").save(path.with_suffix(".jpg"), "JPEG")
    else:
        rgb.convert(mode).save(path)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "P-transparent", "1", "I;16", "CMYK"])
def test_other_modes_load_as_rgb(tmp_path, mode: str) -> None:
    root = _tree(tmp_path, n=1)
    path = root / "train/cat/odd.png"
    _save_mode(path, mode)
    dm = _module(root, augment=False)
    dm.setup("fit")
    images = [image for image, label in dm.train_dataset if label == 0]
    assert len(images) == 2
    assert all(image.shape == (3, 32, 32) and torch.isfinite(image).all() for image in images)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    assert np.asarray(load_rgb(path)).tolist() == [[[128, 128, 128]] * 4] * 4


def test_transparent_pixels_become_white(tmp_path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(path)
    assert np.asarray(load_rgb(path)).min() == 255


def test_small_image_warns_and_is_upscaled(tmp_path) -> None:
    root = _tree(tmp_path)
    small = _image(root / "val/cat/tiny.png", (12, 20))
    dm = _module(root, augment=False)
    with pytest.warns(
        UserWarning, match=f"1 images are smaller than the 32 px crop.*{re.escape(str(small))}"
    ):
        dm.setup("fit")
    image, _ = dm.val_dataset[[r.path for r in dm.val_dataset.records].index(small)]
    assert image.shape == (3, 32, 32)


def test_decode_error_names_file(tmp_path) -> None:
    path = tmp_path / "late.gif"
    path.write_bytes(b"GIF89a" + b"\x00" * 20)
    with pytest.raises(DatasetError, match=re.escape(f"image {path}")):
        load_rgb(path)


def test_class_folder_without_image_files(tmp_path) -> None:
    root = _tree(tmp_path)
    (root / "train/bird").mkdir()
    (root / "train/bird/README.md").write_text("no image files here")
    with pytest.raises(
        DatasetError, match=re.escape(f"class folder {root / 'train/bird'} has no image files")
    ):
        _module(root).setup("fit")


def test_val_class_missing_from_train(tmp_path) -> None:
    root = _tree(tmp_path)
    _image(root / "val/bird/0.png")
    with pytest.raises(
        DatasetError, match=re.escape(f"{root / 'val/bird'} is not a training class")
    ):
        _module(root).setup("fit")


def test_one_class(tmp_path) -> None:
    root = _tree(tmp_path, classes=("cat",))
    with pytest.raises(
        DatasetError, match=re.escape(f"only one class folder, 'cat', in {root / 'train'}")
    ):
        _module(root)


def test_val_without_train(tmp_path) -> None:
    _tree(tmp_path, splits=("val",))
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path} has val/ but no train/ folder")):
        _module(tmp_path)


def test_no_class_folders(tmp_path) -> None:
    _image(tmp_path / "loose.png")
    with pytest.raises(DatasetError, match=re.escape(f"no class folders in {tmp_path}")):
        _module(tmp_path)


def test_missing_path(tmp_path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=re.escape(f"dataset folder does not exist or is a file: {tmp_path / 'nope'}"),
    ):
        _module(tmp_path / "nope")


def test_boxes_file_naming_unknown_images(tmp_path) -> None:
    root = _tree(tmp_path)
    boxes = tmp_path / "boxes.json"
    boxes.write_text('{"images": {"val/cat/9.png": {"boxes": [[0, 0, 4, 4]]}}}')
    with pytest.raises(
        DatasetError,
        match=rf"1 entries of boxes file {re.escape(str(boxes))} name no image.*9\.png",
    ):
        _module(root, boxes_file=str(boxes)).setup("fit")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "cannot read boxes file"),
        (
            '{"images": {"val/cat/0.png": {"boxes": [[5, 0, 4, 4]]}}}',
            "bad entry for 'val/cat/0.png'",
        ),
        (
            '{"images": {"val/cat/0.png": {}}}',
            "entry for 'val/cat/0.png' has neither boxes nor mask",
        ),
    ],
)
def test_bad_boxes_file(tmp_path, content: str, message: str) -> None:
    root = _tree(tmp_path)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(content)
    with pytest.raises(DatasetError, match=message) as error:
        _module(root, boxes_file=str(boxes)).setup("fit")
    assert str(boxes) in str(error.value)


def test_mask_of_unannotated_image(tmp_path) -> None:
    root = _tree(tmp_path)
    boxes = tmp_path / "boxes.json"
    boxes.write_text('{"images": {"val/cat/0.png": {"boxes": [[0, 0, 4, 4]]}}}')
    dm = _module(root, boxes_file=str(boxes))
    dm.setup("fit")
    assert dm.val_dataset.mask(0).any()
    with pytest.raises(KeyError, match=r"no entry for 'val/cat/1\.png'"):
        dm.val_dataset.mask(1)
