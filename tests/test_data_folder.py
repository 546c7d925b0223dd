"""`ImageFolderDataModule`: layouts, preprocessing, masks and the `write_dataset` round trip."""

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser
from PIL import Image

from inception_lightning.data import (
    BOXES_FILE,
    AugmentOptions,
    CropOptions,
    FileOptions,
    ImageFolderDataModule,
    LoaderOptions,
    SplitOptions,
    SyntheticDataModule,
    SyntheticDataset,
    resolve_preprocessing,
    write_dataset,
)

SMALL = dict(num_classes=4, image_size=32, difficulty=0.5)
NO_WORKERS = LoaderOptions(num_workers=0)


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (len(path.name) * 20, 90, 160)).save(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return write_dataset(
        tmp_path_factory.mktemp("export") / "ds", num_samples=40, val_fraction=0.25, **SMALL
    )


def test_round_trip_classes_counts_images_and_masks(exported: Path) -> None:
    dm = ImageFolderDataModule(
        str(exported), crop=CropOptions(image_size=32, crop_pct=1.0),
        augment=AugmentOptions(enabled=False),
        files=FileOptions(boxes_file=str(exported / BOXES_FILE)), loader=NO_WORKERS,
    )  # fmt: skip
    synthetic = SyntheticDataModule(num_samples=40, val_fraction=0.25, **SMALL)
    assert dm.classes == synthetic.classes and dm.num_classes == 4
    dm.setup("fit")
    synthetic.setup("fit")
    for folder, rendered in ((dm.train_dataset, synthetic.train_dataset),
                             (dm.val_dataset, synthetic.val_dataset)):  # fmt: skip
        assert len(folder) == len(rendered)
        assert Counter(r.label for r in folder.records) == Counter(rendered.labels)
        for i, record in enumerate(folder.records):
            j = int(record.path.stem)
            image, label = folder[i]
            expected, expected_label = rendered[j]
            assert label == expected_label
            assert image.dtype == torch.uint8 and torch.equal(image, rendered.images[j])
            hand = expected.float() / 127.5 - 1.0  # Inception's mean and std of 0.5
            torch.testing.assert_close(folder.normalize(image), hand, atol=1e-6, rtol=0)
            assert torch.equal(folder.mask(i), rendered.mask(j))


@pytest.mark.parametrize("crop_pct", [0.875, 0.6])
def test_masks_follow_the_eval_geometry(tmp_path, exported: Path, crop_pct: float) -> None:
    dm = ImageFolderDataModule(
        str(exported), crop=CropOptions(image_size=24, crop_pct=crop_pct),
        files=FileOptions(boxes_file=str(exported / BOXES_FILE)), loader=NO_WORKERS,
    )  # fmt: skip
    dm.setup("validate")
    rendered = SyntheticDataset("val", 10, **SMALL)
    for i, record in enumerate(dm.val_dataset.records):
        mask = dm.val_dataset.mask(i)
        assert mask.shape == (24, 24) and mask.dtype == torch.bool
        full = rendered.mask(int(record.path.stem)).float()[None, None]
        side = math.floor(24 / crop_pct)  # timm's scale_size
        resized = torch.nn.functional.interpolate(full, size=(side, side), mode="nearest")
        top = round((side - 24) / 2)
        assert torch.equal(mask, resized[0, 0, top : top + 24, top : top + 24].bool())


def test_box_mask_lands_on_the_object(tmp_path) -> None:
    """A white box on a black, non-square image: after resize and crop, mask == bright pixels."""
    root = tmp_path / "data"
    for name in ("a", "b"):
        _image(root / "val" / name / "0.png", (60, 60))
        _image(root / "train" / name / "0.png", (60, 60))
    canvas = np.zeros((60, 100, 3), dtype=np.uint8)
    canvas[10:35, 55:80] = 255
    Image.fromarray(canvas).save(root / "val/a/0.png")
    Image.fromarray(canvas[..., 0] > 0).save(tmp_path / "data/mask.png")
    for annotation in (
        {"boxes": [[55, 10, 80, 35]]},
        {"boxes": [[0, 0, 1, 1]], "mask": "mask.png"},
    ):
        boxes = tmp_path / "boxes.json"
        boxes.write_text(json.dumps({"images": {"val/a/0.png": annotation}}))
        dm = ImageFolderDataModule(
            str(root), crop=CropOptions(image_size=40), files=FileOptions(boxes_file=str(boxes)),
            loader=NO_WORKERS,
        )  # fmt: skip
        dm.setup("fit")
        image, _ = dm.val_dataset[0]
        mask = dm.val_dataset.mask(0)
        assert mask.shape == image.shape[1:] == (40, 40)
        bright = dm.val_dataset.normalize(image).mean(dim=0) > 0
        assert mask.sum() > 100
        # interpolation blurs the box's edge: disagreement only where a neighbour differs
        near = mask.float()[None, None]
        grown = torch.nn.functional.max_pool2d(near, 3, 1, 1)[0, 0]
        shrunk = -torch.nn.functional.max_pool2d(-near, 3, 1, 1)[0, 0]
        edge = grown != shrunk
        assert not ((bright != mask) & ~edge).any()


def test_single_tree_hold_out_is_seeded_and_stratified(tmp_path) -> None:
    for name in ("a", "b", "c"):
        for i in range(8):
            _image(tmp_path / name / f"{i}.png")

    def split(seed: int) -> tuple[set[Path], set[Path]]:
        dm = ImageFolderDataModule(
            str(tmp_path), crop=CropOptions(image_size=24),
            split=SplitOptions(val_fraction=0.25, seed=seed), loader=NO_WORKERS,
        )  # fmt: skip
        dm.setup("fit")
        return (
            {r.path for r in dm.train_dataset.records},
            {r.path for r in dm.val_dataset.records},
        )

    train, val = split(0)
    assert len(train) == 18 and len(val) == 6 and not train & val
    assert Counter(p.parent.name for p in val) == {"a": 2, "b": 2, "c": 2}
    assert split(0) == (train, val)
    assert split(1)[1] != val


def test_train_without_val_folder_is_split(tmp_path) -> None:
    for name in ("a", "b"):
        for i in range(5):
            _image(tmp_path / "train" / name / f"{i}.png")
    dm = ImageFolderDataModule(
        str(tmp_path), crop=CropOptions(image_size=24), split=SplitOptions(val_fraction=0.2),
        loader=NO_WORKERS,
    )  # fmt: skip
    dm.setup("fit")
    assert len(dm.train_dataset) == 8 and len(dm.val_dataset) == 2


def test_test_split_and_loaders(tmp_path) -> None:
    for split in ("train", "val", "test"):
        for name in ("a", "b"):
            for i in range(3):
                _image(tmp_path / split / name / f"{i}.png", (50, 70))
    dm = ImageFolderDataModule(
        str(tmp_path), crop=CropOptions(image_size=32), loader=LoaderOptions(4, num_workers=0)
    )
    assert dm.num_classes == 2
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8  # normalised on device
    assert labels.dtype == torch.int64
    assert sum(len(y) for _, y in dm.test_dataloader()) == 6
    assert sum(len(y) for _, y in dm.val_dataloader()) == 6


def test_no_test_split(tmp_path) -> None:
    for name in ("a", "b"):
        _image(tmp_path / "train" / name / "0.png")
        _image(tmp_path / "val" / name / "0.png")
    dm = ImageFolderDataModule(str(tmp_path), crop=CropOptions(image_size=24), loader=NO_WORKERS)
    dm.setup("fit")
    with pytest.raises(ValueError, match=r"no test split: .*test does not exist"):
        dm.test_dataloader()


def test_preprocessing_defaults_and_timm_configs() -> None:
    inception = resolve_preprocessing()
    assert (inception.image_size, inception.crop_pct, inception.resize_size) == (299, 0.875, 341)
    assert inception.mean == inception.std == (0.5, 0.5, 0.5)
    assert resolve_preprocessing("inception_v3") == inception
    assert resolve_preprocessing("inception_resnet_v1") == inception
    resnet = resolve_preprocessing("resnet50.a1_in1k")
    assert (resnet.image_size, resnet.crop_pct) == (224, 0.95)
    assert resnet.mean == pytest.approx((0.485, 0.456, 0.406))
    assert resolve_preprocessing("resnet50.a1_in1k", image_size=160).image_size == 160
    with pytest.raises(ValueError, match="no timm pretrained config named 'no_such_net'"):
        resolve_preprocessing("no_such_net")


def test_augmentation_options(tmp_path) -> None:
    for name in ("a", "b"):
        for i in range(2):
            _image(tmp_path / name / f"{i}.png", (64, 48))
    dm = ImageFolderDataModule(
        str(tmp_path), crop=CropOptions(image_size=32),
        augment=AugmentOptions(min_scale=0.5, hflip=0.0), split=SplitOptions(val_fraction=0.5),
        loader=NO_WORKERS,
    )  # fmt: skip
    dm.setup("fit")
    assert dm.train_dataset[0][0].shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"min_scale must lie in \(0, 1\], got 0.0"):
        ImageFolderDataModule(str(tmp_path), augment={"min_scale": 0.0})
    with pytest.raises(ValueError, match=r"split\.val_fraction must lie in \(0, 1\), got 1.0"):
        ImageFolderDataModule(str(tmp_path), split={"val_fraction": 1.0})
    with pytest.raises(ValueError, match="augment has no option 'min_size'; the options are"):
        ImageFolderDataModule(str(tmp_path), augment={"min_size": 0.5})


@pytest.mark.parametrize("cls", [ImageFolderDataModule, SyntheticDataModule])
def test_lightning_cli_can_build_it_from_yaml_values(tmp_path, cls) -> None:
    for name in ("a", "b"):
        _image(tmp_path / name / "0.png")
    parser = ArgumentParser()
    parser.add_class_arguments(cls, "data")
    args = ["--data.loader.batch_size=4"] + (
        [f"--data.root={tmp_path}", "--data.augment.hflip=0.25"]
        if cls is ImageFolderDataModule
        else []
    )
    data = parser.instantiate_classes(parser.parse_args(args)).data
    assert data.num_classes == 2 if cls is ImageFolderDataModule else 8
    assert data.batch_size == 4 and data.hparams.loader == {
        "batch_size": 4,
        "num_workers": None,
        "pin_memory": None,
        "sampling": "shuffle",
    }  # plain values: checkpoints load them with weights_only=True
    if cls is ImageFolderDataModule:
        assert data.hparams.augment == {
            "enabled": True,
            "min_scale": 0.08,
            "hflip": 0.25,
            "policy": "none",
            "num_ops": 2,
            "magnitude": 9,
            "erasing": 0.0,
        }
