"""`ImageDataModule`: what the datamodules share, normalisation on the device first of all."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from inception_lightning.data.errors import DatasetError
from inception_lightning.data.loading import default_num_workers, make_loader
from inception_lightning.data.transforms import Normalize, Preprocessing


class ImageDataModule(LightningDataModule):
    """Class names and preprocessing known before `setup`; uint8 batches normalised on the device.

    Every dataset of the package yields uint8 images (`data.protocol.LabelledImages`), so that
    loader workers pass a quarter of the bytes; `on_after_batch_transfer` normalises each batch
    where it lands, as timm's `PrefetchLoader` does. Batches reach the model normalised only
    through a Trainer given the datamodule (`trainer.fit(model, datamodule=dm)`, as LightningCLI
    does); the loaders on their own yield uint8 images, which `self.normalize` turns into model
    input. Subclasses fill `train_dataset`, `val_dataset` and optionally `test_dataset` in
    `setup`.

    Args:
        classes: class names, by label.
        preprocessing: the input size, crop and normalisation the model is trained with.
        batch_size: images per batch.
        num_workers: loader processes; None: `default_num_workers` for the trainer's devices.
        pin_memory: None pins when CUDA is available.
    """

    def __init__(
        self,
        classes: list[str],
        preprocessing: Preprocessing,
        batch_size: int,
        num_workers: int | None,
        pin_memory: bool | None,
    ) -> None:
        super().__init__()
        self.classes = classes
        self.preprocessing = preprocessing
        self.normalize = Normalize(preprocessing.mean, preprocessing.std)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

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
        return self._loader(self.test_dataset, "test")

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise the batch's uint8 images where they now are: on the device."""
        images, labels = batch
        return [self.normalize(images), labels]

    def missing_split(self, split: str) -> str:
        """Why `split` has no dataset; subclasses name the folder or setting that would add it."""
        return f"{type(self).__name__} has no {split} split"

    def _loader(self, dataset: Dataset | None, split: str) -> DataLoader:
        if dataset is None:
            if self.train_dataset is None:
                raise RuntimeError("call setup() before asking for a dataloader")
            raise DatasetError(self.missing_split(split))
        if self.num_workers is None:
            workers = default_num_workers(self.trainer.num_devices if self.trainer else 1)
        else:
            workers = self.num_workers
        train = split == "train"
        drop_last = train and len(dataset) > self.batch_size
        return make_loader(dataset, self.batch_size, train, workers, self.pin_memory, drop_last)
