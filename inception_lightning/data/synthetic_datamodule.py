"""`SyntheticDataModule`: the built-in dataset, rendered in memory at setup."""

from __future__ import annotations

from inception_lightning.data.datamodule import ImageDataModule
from inception_lightning.data.synthetic import (
    SyntheticDataset,
    synthetic_classes,
    synthetic_preprocessing,
)


class SyntheticDataModule(ImageDataModule):
    """Train and val splits of the built-in shapes dataset (see `data.synthetic`).

    Args:
        num_classes: shape classes, 2 to 10.
        image_size: side of the square images; 79 suits the low-resolution stem.
        num_samples: train and val images together.
        val_fraction: share of `num_samples` in the val split.
        difficulty: 0 (large, high-contrast objects) to 1 (small objects in heavy clutter).
        seed: the same seed renders the same images and masks.
        batch_size: images per batch.
        num_workers: loader processes; 0 is fastest, as the images are already tensors.
        pin_memory: None pins when CUDA is available.
    """

    def __init__(
        self,
        num_classes: int = 8,
        image_size: int = 79,
        num_samples: int = 4000,
        val_fraction: float = 0.1,
        difficulty: float = 0.25,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(
            synthetic_classes(num_classes),
            synthetic_preprocessing(image_size),
            batch_size,
            num_workers,
            pin_memory,
        )
        self.save_hyperparameters()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")

    def setup(self, stage: str | None = None) -> None:
        """Render both splits once."""
        if self.train_dataset is not None:
            return
        hp = self.hparams
        num_val = max(1, round(hp.num_samples * hp.val_fraction))
        common = dict(
            num_classes=hp.num_classes,
            image_size=hp.image_size,
            difficulty=hp.difficulty,
            seed=hp.seed,
        )
        self.train_dataset = SyntheticDataset("train", hp.num_samples - num_val, **common)
        self.val_dataset = SyntheticDataset("val", num_val, **common)
