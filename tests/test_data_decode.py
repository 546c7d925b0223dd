"""The fast data path: torchvision decoding, uint8 batches and normalisation on the device."""

import re
import struct
import zlib
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image
from torchvision.transforms import v2

from inception_lightning.callbacks.grad_cam import GradCam
from inception_lightning.data import (
    BOXES_FILE,
    CropOptions,
    DatasetError,
    FileOptions,
    ImageFolderDataModule,
    LoaderOptions,
    Normalize,
    decode_rgb,
    load_rgb,
    write_dataset,
)
from inception_lightning.data.folders import decode as images_module
from inception_lightning.data.folders.report_dataset import evaluation_dataset
from inception_lightning.data.loading import default_num_workers
from inception_lightning.data.transforms.preprocessing import Preprocessing
from inception_lightning.explain import ReportOptions, SampleOptions, ScoreOptions, load_batch
from inception_lightning.training.module import InceptionClassifier


def _photo(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    """Smooth random colours, like a photo rather than noise, so JPEG keeps detail."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BICUBIC)


def _pil_tensor(path: Path) -> torch.Tensor:
    """What the old path decoded: PIL, converted by `to_rgb`, as uint8 [3, H, W]."""
    return torch.from_numpy(np.asarray(load_rgb(path)).copy()).permute(2, 0, 1)


def _no_pil(*args: object) -> None:
    raise AssertionError("PIL was used")


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("RGB", {"quality": 90}),
        ("RGB", {"quality": 95, "subsampling": 0}),
        ("RGB", {"quality": 75, "progressive": True}),
        ("L", {}),
    ],
    ids=["420", "444", "progressive", "gray"],
)
def test_jpeg_decodes_through_torchvision_as_pil_does(
    tmp_path, monkeypatch, mode: str, options: dict
) -> None:
    path = tmp_path / "photo.jpg"
    _photo().convert(mode).save(path, "JPEG", **options)
    expected = _pil_tensor(path)
    monkeypatch.setattr(images_module, "_pil_rgb", _no_pil)
    image = decode_rgb(path)
    assert image.dtype == torch.uint8 and image.shape == (3, 48, 64)
    # both are libjpeg-turbo with the same defaults: equal here, 1 allows another build's IDCT
    assert (image.int() - expected.int()).abs().max() <= 1


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_png_is_exactly_the_old_pixels(tmp_path, mode: str) -> None:
    path = tmp_path / "photo.png"
    _photo().convert(mode).save(path)
    assert torch.equal(decode_rgb(path), _pil_tensor(path))


def _palette_with_transparency(path: Path) -> None:
    image = _photo().convert("P")
    image.putpixel((0, 0), 7)
    image.save(path, transparency=7)


@pytest.mark.parametrize(
    ("name", "save", "corner"),
    [
        ("deep.png", lambda p: Image.fromarray(np.full((48, 64), 32768, np.uint16)).save(p), 128),
        ("clear.png", _palette_with_transparency, 255),
        ("rgba.png", lambda p: Image.new("RGBA", (64, 48), (10, 20, 30, 0)).save(p), 255),
        ("cmyk.jpg", lambda p: _photo().convert("CMYK").save(p, "JPEG"), None),
        ("photo.bmp", lambda p: _photo().save(p), None),
        ("photo.tif", lambda p: _photo().save(p), None),
        ("photo.gif", lambda p: _photo().save(p), None),
    ],
    ids=["16-bit", "palette-transparent", "rgba", "cmyk-jpeg", "bmp", "tiff", "gif"],
)
def test_fallback_formats_load_as_before(tmp_path, name: str, save, corner: int | None) -> None:
    path = tmp_path / name
    save(path)
    image = decode_rgb(path)
    assert image.dtype == torch.uint8 and image.shape == (3, 48, 64)
    assert torch.equal(image, _pil_tensor(path))
    if corner is not None:  # 16-bit scaled to 8; transparent pixels white
        assert image[:, 0, 0].tolist() == [corner] * 3


def test_exif_orientation_is_left_unapplied_as_before(tmp_path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    _photo((64, 48)).save(path, "JPEG", exif=exif, quality=95)
    image = decode_rgb(path)
    assert image.shape == (3, 48, 64)  # stored orientation, as PIL's Image.open gives it
    assert (image.int() - _pil_tensor(path).int()).abs().max() <= 1


def _corrupt_png(path: Path) -> None:
    """Flipped bits in the deflate stream, chunk checksums recomputed: the header scan passes.

    torchvision 0.29's decode_png segfaults on this file, which is why PNG stays on PIL.
    """
    _photo().save(path, "PNG")
    data = path.read_bytes()
    start = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[start : start + 4])
    payload = bytearray(data[start + 8 : start + 8 + length])
    payload[len(payload) // 2] ^= 0xFF
    chunk = b"IDAT" + bytes(payload)
    chunk = struct.pack(">I", length) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(data[:start] + chunk + data[start + 12 + length :])


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: p.write_bytes(p.read_bytes()[:300] + b"\xff\xd9"),
        lambda p: _corrupt_png(p),
        lambda p: p.write_bytes(b"\xff\xd8\xff not a jpeg after all"),
        lambda p: p.unlink(),
    ],
    ids=["truncated-jpeg", "cut-jpeg-with-end-marker", "corrupt-png", "jpeg-magic-only", "gone"],
)
def test_decode_errors_name_the_file(tmp_path, make) -> None:
    path = tmp_path / "broken.jpg"
    _photo().save(path, "JPEG")
    make(path)
    with pytest.raises(DatasetError, match=re.escape(f"cannot decode image {path}")):
        decode_rgb(path)


def test_normalize_is_the_old_normalisation_exactly() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = torch.tensor([[[0, 255], [51, 102]]] * 3, dtype=torch.uint8)  # [3, 2, 2]
    old = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    new = Normalize(mean, std)(x)
    assert new.dtype == torch.float32 and torch.equal(new, old(x).as_subclass(torch.Tensor))
    by_hand = torch.tensor([[0.0, 1.0], [0.2, 0.4]])
    for c in range(3):
        torch.testing.assert_close(new[c], (by_hand - mean[c]) / std[c])
    batch = torch.stack([x, 255 - x])
    assert torch.equal(Normalize(mean, std)(batch)[1], old(255 - x).as_subclass(torch.Tensor))
    with pytest.raises(TypeError, match="uint8"):
        Normalize(mean, std)(new)
    with pytest.raises(ValueError, match="non-zero std"):
        Normalize(mean, (0.5, 0.0, 0.5))


def _jpeg_tree(root: Path, n: int = 4) -> Path:
    for split in ("train", "val"):
        for label, name in enumerate(("a", "b")):
            for i in range(n):
                path = root / split / name / f"{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                _photo((60, 45), seed=10 * label + i).save(path, quality=90)
    return root


@pytest.mark.parametrize("num_workers", [0, 1])
def test_loaders_yield_uint8_and_the_hook_normalises(tmp_path, num_workers: int) -> None:
    root = _jpeg_tree(tmp_path)
    dm = ImageFolderDataModule(
        str(root),
        "resnet50",
        CropOptions(image_size=32),
        loader=LoaderOptions(batch_size=4, num_workers=num_workers),
    )
    dm.setup("fit")
    p = dm.preprocessing
    old = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(p.mean, p.std)])
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        images, labels = next(iter(loader))
        assert images.dtype == torch.uint8 and images.shape == (4, 3, 32, 32)
        normalised, same_labels = dm.on_after_batch_transfer([images, labels], 0)
        assert same_labels is labels
        assert torch.equal(normalised, torch.stack([old(x) for x in images]))


class _Batches(Callback):
    """Records what the module receives: the batch after Lightning's transfer hooks."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(batch[0])

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, *args) -> None:
        self.seen.append(batch[0])


def test_trainer_and_grad_cam_get_normalised_images(tmp_path) -> None:
    data = write_dataset(
        tmp_path / "ds", num_samples=12, num_classes=2, image_size=79, val_fraction=0.5
    )
    dm = ImageFolderDataModule(
        str(data),
        crop=CropOptions(image_size=79, crop_pct=1.0),
        files=FileOptions(boxes_file=str(data / BOXES_FILE)),
        loader=LoaderOptions(batch_size=4, num_workers=0),
    )
    module = InceptionClassifier(
        "inception_v3",
        num_classes=2,
        model_kwargs={"width": 0.0625, "stem": 79, "aux_head": False},
        optimizer=partial(torch.optim.SGD, lr=0.01),
    )
    batches = _Batches()
    cam = GradCam(
        sample=SampleOptions(per_class=1, max_samples=2, max_misclassified=0),
        scores=ScoreOptions(steps=2),
        report=ReportOptions(enabled=False),
    )
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=1, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[batches, cam],
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    assert len(batches.seen) == 2
    for images in batches.seen:
        assert images.dtype == torch.float32 and -1.0 <= images.min() < images.max() <= 1.0
    expl = next(iter(cam.last.values()))
    index = int(expl.indices[0])
    assert torch.equal(expl.images[0], dm.normalize(dm.val_dataset[index][0]))
    assert expl.masks is not None and "pointing_game" in expl.scores


def test_evaluation_dataset_items_are_normalised_by_load(tmp_path) -> None:
    root = _jpeg_tree(tmp_path)
    dataset = evaluation_dataset(root, Preprocessing(image_size=32))
    raw, _ = dataset[0]
    batch = load_batch(dataset, [0, 1])
    assert raw.dtype == torch.uint8 and batch.images.dtype == torch.float32
    assert torch.equal(batch.images[0], dataset.normalize(raw)) and batch.masks is None
    assert torch.equal(batch.pixels[0], raw)
    assert batch.labels.tolist() == [dataset.records[0].label, dataset.records[1].label]


def test_default_workers_share_the_cpus_and_leave_one_per_process() -> None:
    assert default_num_workers(cpus=16) == 15
    assert default_num_workers(processes=8, cpus=96) == 11
    assert default_num_workers(cpus=2) == 1
    assert default_num_workers(processes=4, cpus=2) == 1
    assert default_num_workers() >= 1
