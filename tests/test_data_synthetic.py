"""The built-in dataset: determinism, masks, the data module and `write_dataset`."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from inception_lightning.data import (
    LoaderOptions,
    SyntheticDataModule,
    SyntheticDataset,
    write_dataset,
)

SMALL = dict(num_classes=4, image_size=32, difficulty=0.5)


def test_same_seed_same_images_and_masks() -> None:
    a = SyntheticDataset("train", 12, seed=3, **SMALL)
    b = SyntheticDataset("train", 12, seed=3, **SMALL)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.masks, b.masks)
    assert a.labels == b.labels


def test_different_seed_or_split_differs() -> None:
    a = SyntheticDataset("train", 8, seed=0, **SMALL)
    assert not torch.equal(a.images, SyntheticDataset("train", 8, seed=1, **SMALL).images)
    assert not torch.equal(a.masks, SyntheticDataset("train", 8, seed=1, **SMALL).masks)
    assert not torch.equal(a.images, SyntheticDataset("val", 8, seed=0, **SMALL).images)


def test_sample_does_not_depend_on_dataset_size() -> None:
    small = SyntheticDataset("val", 4, **SMALL)
    large = SyntheticDataset("val", 9, **SMALL)
    assert torch.equal(small.images, large.images[:4])


def test_items_and_masks() -> None:
    ds = SyntheticDataset("train", 8, **SMALL)
    image, label = ds[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert torch.equal(image, ds.images[5])
    normalised = ds.normalize(image)  # Inception's mean and std of 0.5: [-1, 1]
    torch.testing.assert_close(normalised, image.float() / 127.5 - 1.0)
    assert ds.has_masks and ds.labels[5] == label
    assert isinstance(label, int) and label == 5 % 4
    assert ds.classes == ["circle", "plus", "square", "triangle"]
    for i in range(len(ds)):
        mask = ds.mask(i)
        assert mask.shape == (32, 32) and mask.dtype == torch.bool
        assert 0 < mask.sum() < 32 * 32


def test_object_differs_from_background() -> None:
    ds = SyntheticDataset("train", 16, num_classes=8, image_size=48, difficulty=0.0)
    for i in range(len(ds)):
        image, mask = ds.images[i].float(), ds.mask(i)
        inside = image[:, mask].mean(dim=1)
        outside = image[:, ~mask].mean(dim=1)
        assert (inside - outside).abs().max() > 30


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_classes=1), r"num_classes must lie in \[2, 10\], got 1"),
        (dict(num_classes=11), r"num_classes must lie in \[2, 10\], got 11"),
        (dict(difficulty=1.5), r"difficulty must lie in \[0, 1\], got 1.5"),
        (dict(image_size=8), "image_size must be at least 16 pixels, got 8"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticDataset("train", 4, **kwargs)


def test_datamodule_classes_before_setup_and_loaders() -> None:
    dm = SyntheticDataModule(
        num_samples=40, val_fraction=0.25, loader=LoaderOptions(batch_size=8), **SMALL
    )
    assert dm.num_classes == 4 and dm.classes == ["circle", "plus", "square", "triangle"]
    assert dm.train_dataset is None
    dm.setup("fit")
    assert len(dm.train_dataset) == 30 and len(dm.val_dataset) == 10
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and labels.dtype == torch.int64
    assert sum(len(x) for x, _ in dm.val_dataloader()) == 10


def test_datamodule_test_split_is_seeded_disjoint_and_rendered_when_testing() -> None:
    dm = SyntheticDataModule(
        num_samples=40, val_fraction=0.25, loader=LoaderOptions(batch_size=8), seed=5, **SMALL
    )
    dm.setup("test")
    assert dm.train_dataset is None and dm.val_dataset is None  # only what testing needs
    assert len(dm.test_dataset) == 10  # as many as the val split by default
    dm.setup("fit")
    splits = {"train": dm.train_dataset.images, "val": dm.val_dataset.images}
    test = dm.test_dataset.images
    for name, images in splits.items():
        shared = (test.flatten(1)[:, None] == images.flatten(1)[None]).all(-1)
        assert not shared.any(), f"the test split shares an image with {name}"
    again = SyntheticDataModule(num_samples=40, val_fraction=0.25, seed=5, **SMALL)
    again.setup("test")
    assert torch.equal(again.test_dataset.images, test)
    images, labels = next(iter(dm.test_dataloader()))
    assert images.shape == (8, 3, 32, 32) and labels.tolist() == [0, 1, 2, 3] * 2


def test_datamodule_labels_by_a_models_classes() -> None:
    model_classes = ["zigzag", "triangle", "square", "plus", "circle"]  # a superset, reordered
    dm = SyntheticDataModule(num_samples=8, val_fraction=0.5, classes=model_classes, **SMALL)
    dm.setup("validate")
    names = [model_classes[label] for label in dm.val_dataset.labels]
    assert names == ["circle", "plus", "square", "triangle"] and dm.num_classes == 5
    with pytest.raises(ValueError, match=r"\['circle', 'plus'\] that the model does not know"):
        SyntheticDataModule(classes=["square", "triangle"], **SMALL)


def test_datamodule_rejects_bad_val_fraction() -> None:
    with pytest.raises(ValueError, match=r"val_fraction must lie in \(0, 1\), got 1.0"):
        SyntheticDataModule(val_fraction=1.0)


def test_write_dataset_layout(tmp_path) -> None:
    out = write_dataset(tmp_path / "ds", num_samples=20, val_fraction=0.25, **SMALL)
    train = SyntheticDataset("train", 15, **SMALL)
    assert sorted(p.name for p in (out / "train").iterdir()) == train.classes
    assert len(list(out.glob("train/*/*.png"))) == 15
    assert len(list(out.glob("val/*/*.png"))) == 5
    image = np.asarray(Image.open(out / "train/plus/000001.png"))
    assert np.array_equal(image, train.images[1].permute(1, 2, 0).numpy())
    entry = json.loads((out / "boxes.json").read_text())["images"]["train/plus/000001.png"]
    mask = np.asarray(Image.open(out / entry["mask"]))
    assert np.array_equal(mask, train.masks[1].numpy())
    rows, cols = np.nonzero(mask)
    assert entry["boxes"] == [[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]]
