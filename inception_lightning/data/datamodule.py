"""`ImageDataModule`: what the datamodules share, normalisation on the device first of all."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from inception_lightning.data.balanced_sampler import ClassBalancedSampler
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.loading import default_num_workers, make_loader
from inception_lightning.data.scanning.scan import BadFile
from inception_lightning.data.transforms.multicrop import (
    MultiCrop,
    MultiCropDataset,
    MultiCropViews,
    check_crops,
)
from inception_lightning.data.transforms.preprocessing import Normalize, Preprocessing

BadFiles = Literal["error", "skip"]
# How training samples are drawn: shuffled, or with replacement by class (`ClassBalancedSampler`)
Sampling = Literal["shuffle", "class_balanced", "square_root"]
_SAMPLER_POWER = {"class_balanced": 1.0, "square_root": 0.5}


class ImageDataModule(LightningDataModule):
    """Class names and preprocessing known before `setup`; uint8 batches normalised on the device.

    Every dataset of the package yields uint8 images (`data.protocol.LabelledImages`), so that
    loader workers pass a quarter of the bytes; `on_after_batch_transfer` normalises each batch
    where it lands, as timm's `PrefetchLoader` does. Batches reach the model normalised only
    through a Trainer given the datamodule (`trainer.fit(model, datamodule=dm)`, as LightningCLI
    does); the loaders on their own yield uint8 images, which `self.normalize` turns into model
    input. Subclasses fill `train_dataset`, `val_dataset` and optionally `test_dataset` and
    `predict_dataset` in `setup`.

    With `test_crops` 12 or 144 the test loader yields each whole image's multi-crop squares
    (`data.multicrop`), and a test batch's images arrive as `MultiCropViews`: its views, made
    and normalised on the device one at a time.

    Args:
        classes: class names, by label.
        preprocessing: the input size, crop and normalisation the model is trained with.
        batch_size: images per batch.
        num_workers: loader processes; None: `default_num_workers` for the trainer's devices.
        pin_memory: None pins when CUDA is available.
        test_crops: views per test image: 1 (the evaluation crop), 12 or 144.
        sampling: "shuffle" each epoch, or draw with replacement so that every class comes
            equally often ("class_balanced") or in proportion to the square root of its size
            ("square_root"): `ClassBalancedSampler`, for imbalanced classes.
    """

    def __init__(
        self,
        classes: list[str],
        preprocessing: Preprocessing,
        batch_size: int,
        num_workers: int | None,
        pin_memory: bool | None,
        test_crops: int = 1,
        sampling: Sampling = "shuffle",
    ) -> None:
        super().__init__()
        if sampling not in ("shuffle", *_SAMPLER_POWER):
            raise ValueError(
                f"sampling must be shuffle, class_balanced or square_root, got {sampling!r}"
            )
        self.sampling = sampling
        self.train_class_counts: list[int] | None = None
        """Training images of each class, once `report_class_counts` has counted them."""
        self.classes = classes
        self.preprocessing = preprocessing
        self.normalize = Normalize(preprocessing.mean, preprocessing.std)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.test_crops = check_crops(test_crops)
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes, known before `setup`."""
        return len(self.classes)

    @override
    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train")

    @override
    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, "val")

    @override
    def test_dataloader(self) -> DataLoader:
        dataset = self.test_dataset
        if dataset is not None and self.test_crops > 1:
            dataset = MultiCropDataset(dataset, MultiCrop(self.preprocessing, self.test_crops))
        return self._loader(dataset, "test")

    @override
    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_dataset, "predict")

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise the batch's uint8 images where they now are: on the device."""
        images, labels = batch
        if isinstance(images, Tensor):
            return [self.normalize(images), labels]
        p = self.preprocessing
        return [MultiCropViews(images, p.image_size, p.interpolation, self.normalize), labels]

    def report_class_counts(self, labels: list[int]) -> None:
        """Log the training images of each class, and the imbalance, once."""
        counts = Counter(labels)
        self.train_class_counts = [counts[i] for i in range(len(self.classes))]
        listed = ", ".join(f"{name} {counts[i]:,}" for i, name in enumerate(self.classes))
        present = [n for n in counts.values() if n]
        ratio = max(present) / min(present) if present else 1.0
        rank_zero_info(
            f"training images per class: {listed} ({len(labels):,} in all; the largest class "
            f"is {ratio:.1f}x the smallest; sampling: {self.sampling})"
        )

    def missing_split(self, split: str) -> str:
        """Why `split` has no dataset; subclasses name the folder or setting that would add it."""
        return f"{type(self).__name__} has no {split} split"

    def handle_bad_files(self, bad: list[BadFile], policy: BadFiles, root: Path) -> None:
        """Apply a bad-file policy: "error" lists them all and stops; "skip" warns and writes
        the list to `bad_files.txt` in the trainer's log directory (else the current one)."""
        listing = "\n".join(f"  {b.line()}" for b in bad)
        if policy == "error":
            raise DatasetError(
                f"{len(bad)} bad image files under {root} "
                f"(pass bad_files='skip' to leave them out):\n{listing}"
            )
        trainer = self.trainer
        log_dir = Path(trainer.log_dir) if trainer is not None and trainer.log_dir else Path.cwd()
        path = log_dir / "bad_files.txt"
        if trainer is None or trainer.is_global_zero:
            log_dir.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(b.line(separator="\t") + "\n" for b in bad))
        rank_zero_warn(f"skipped {len(bad)} bad image files under {root}; list in {path}")

    def _loader(self, dataset: Dataset | None, split: str) -> DataLoader:
        if dataset is None:
            splits = (self.train_dataset, self.val_dataset, self.test_dataset, self.predict_dataset)
            if all(d is None for d in splits):
                raise RuntimeError("call setup() before asking for a dataloader")
            raise DatasetError(self.missing_split(split))
        if self.num_workers is None:
            workers = default_num_workers(self.trainer.num_devices if self.trainer else 1)
        else:
            workers = self.num_workers
        train = split == "train"
        drop_last = train and len(dataset) > self.batch_size
        sampler = None
        if train and self.sampling != "shuffle":
            sampler = ClassBalancedSampler(dataset.labels, _SAMPLER_POWER[self.sampling])
        return make_loader(
            dataset, self.batch_size, train, workers, self.pin_memory, drop_last, sampler
        )
