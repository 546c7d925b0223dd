"""`SyntheticDataModule`: the built-in dataset, rendered in memory at setup."""

from __future__ import annotations

from dataclasses import replace

from typing_extensions import override

from inception_lightning._hparams import save_init_arguments
from inception_lightning.data.builtin.synthetic import (
    Split,
    SyntheticDataset,
    synthetic_classes,
    synthetic_preprocessing,
)
from inception_lightning.data.data_options import LoaderOptions
from inception_lightning.data.datamodule import ImageDataModule
from inception_lightning.data.scanning.scan import label_space
from inception_lightning.data.transforms.preprocessing import Preprocessing

DEFAULT_IMAGE_SIZE = 79


class SyntheticDataModule(ImageDataModule):
    """Train, val and test splits of the built-in shapes dataset (see `data.synthetic`).

    The three splits are drawn from disjoint seeds, and each is rendered only when a stage
    needs it.

    Args:
        num_classes: shape classes, 2 to 10.
        image_size: side of the square images; 79 suits the low-resolution stem. None: the
            `preprocessing`'s size, else 79.
        num_samples: train and val images together.
        val_fraction: share of `num_samples` in the val split.
        difficulty: 0 (large, high-contrast objects) to 1 (small objects in heavy clutter).
        seed: the same seed renders the same images and masks.
        test_samples: images in the test split; None: as many as in the val split.
        test_crops: views per test image: 1 (the image itself), 12 or 144 (`data.multicrop`).
        classes: the class names to label by (a trained model's; the CLI passes a
            checkpoint's), which must include the shapes drawn; None: the shapes' names.
        preprocessing: a trained model's preprocessing (the CLI passes a checkpoint's): its
            mean and std normalise the images, its size renders them unless `image_size` is
            given. None: Inception's mean and std.
        loader: batch_size, num_workers, pin_memory of the loaders (`LoaderOptions`);
            `num_workers` None is 0, the fastest, as the images are tensors already.
    """

    def __init__(
        self,
        num_classes: int = 8,
        image_size: int | None = None,
        num_samples: int = 4000,
        val_fraction: float = 0.1,
        difficulty: float = 0.25,
        seed: int = 0,
        test_samples: int | None = None,
        test_crops: int = 1,
        classes: list[str] | None = None,
        preprocessing: Preprocessing | None = None,
        loader: LoaderOptions = LoaderOptions(),  # noqa: B008 (frozen, so never shared state)
    ) -> None:
        if image_size is None:
            image_size = DEFAULT_IMAGE_SIZE if preprocessing is None else preprocessing.image_size
        rendered = synthetic_preprocessing(image_size)
        if preprocessing is not None:  # rendered at the input size: only mean and std apply
            rendered = replace(rendered, mean=preprocessing.mean, std=preprocessing.std)
        shapes = synthetic_classes(num_classes)
        loader = LoaderOptions.of(loader)
        labels = label_space(shapes, classes, "the built-in dataset")
        super().__init__(labels, rendered, loader, test_crops)
        loader = loader.as_kwargs()  # plain values, for weights_only
        save_init_arguments(self, ["preprocessing"])
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        if test_samples is not None and test_samples < 1:
            raise ValueError(f"test_samples must be at least 1, got {test_samples}")
        self.image_size = image_size

    @override
    def setup(self, stage: str | None = None) -> None:
        """Render, once each, the splits `stage` needs (all of them for None)."""
        hp = self.hparams
        num_val = max(1, round(hp.num_samples * hp.val_fraction))
        if stage in ("fit", None) and self.train_dataset is None:
            self.train_dataset = self._render("train", hp.num_samples - num_val)
        if stage in ("fit", "validate", None) and self.val_dataset is None:
            self.val_dataset = self._render("val", num_val)
        if stage in ("test", None) and self.test_dataset is None:
            self.test_dataset = self._render("test", hp.test_samples or num_val)

    @override
    def default_num_workers(self) -> int:
        return 0  # the images are tensors already: worker processes would only add start-up

    def _render(self, split: Split, num_samples: int) -> SyntheticDataset:
        hp = self.hparams
        return SyntheticDataset(
            split,
            num_samples,
            num_classes=hp.num_classes,
            image_size=self.image_size,
            difficulty=hp.difficulty,
            seed=hp.seed,
            classes=self.classes,
            normalize=self.normalize,
        )
