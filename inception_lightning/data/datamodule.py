"""`ImageDataModule`: what the datamodules share, normalisation on the device first of all."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from typing_extensions import override

from inception_lightning.data.balanced_sampler import ClassBalancedSampler
from inception_lightning.data.data_options import AugmentOptions, BadFiles, LoaderOptions
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.loading import default_num_workers, make_loader
from inception_lightning.data.scanning.scan import BadFile
from inception_lightning.data.transforms.multicrop import (
    MultiCrop,
    MultiCropDataset,
    MultiCropViews,
    check_crops,
)
from inception_lightning.data.transforms.policies import policy_transforms
from inception_lightning.data.transforms.preprocessing import (
    Normalize,
    Preprocessing,
    eval_geometry,
    train_geometry,
)

# `LoaderOptions.sampling` -> the sampler's power (`ClassBalancedSampler`)
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
        loader: batch_size, num_workers and pin_memory of the loaders (`LoaderOptions`).
        test_crops: views per test image: 1 (the evaluation crop), 12 or 144.
    """

    def __init__(
        self,
        classes: list[str],
        preprocessing: Preprocessing,
        loader: LoaderOptions,
        test_crops: int = 1,
    ) -> None:
        super().__init__()
        self.train_class_counts: list[int] | None = None
        """Training images of each class, once `report_class_counts` has counted them."""
        self.classes = classes
        self.preprocessing = preprocessing
        self.normalize = Normalize(preprocessing.mean, preprocessing.std)
        self.loader_options = loader
        # an attribute of its own: Lightning's batch-size finder and the module's lr scaling
        # read and set `batch_size`
        self.batch_size = loader.batch_size
        self.test_crops = check_crops(test_crops)
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    def use_file_transforms(self, augment: AugmentOptions) -> None:
        """Set the transforms of decoded files: training crops as `augment` says (its policy and
        erasing after them), evaluation's centre crop, and whole images for multi-crop tests."""
        preprocessing = self.preprocessing
        self.train_transform = (
            v2.Compose(
                [
                    train_geometry(preprocessing, augment.min_scale, augment.hflip),
                    *policy_transforms(augment, preprocessing.mean),
                ]
            )
            if augment.enabled
            else eval_geometry(preprocessing)
        )
        self.eval_transform = eval_geometry(preprocessing)
        # multi-crop cuts its views from the whole image (`test_dataloader`)
        self.test_transform = v2.Identity() if self.test_crops > 1 else self.eval_transform

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
            f"is {ratio:.1f}x the smallest; sampling: {self.loader_options.sampling})"
        )

    def default_num_workers(self) -> int:
        """Loader processes when `loader.num_workers` is None: `loading.default_num_workers`
        for the trainer's devices on this node."""
        return default_num_workers(self.trainer.num_devices if self.trainer else 1)

    def missing_split(self, split: str) -> str:
        """Why `split` has no dataset; subclasses name the folder or setting that would add it."""
        return f"{type(self).__name__} has no {split} split"

    def handle_bad_files(
        self, bad: list[BadFile], policy: BadFiles, root: Path, key: str = "bad_files"
    ) -> None:
        """Apply a bad-file policy: "error" lists them all and stops; "skip" warns and writes
        the list to `bad_files.txt` in the trainer's log directory (else the current one).
        `key` names the policy's argument in the error."""
        listing = "\n".join(f"  {b.line()}" for b in bad)
        if policy == "error":
            raise DatasetError(
                f"{len(bad)} bad image files under {root} "
                f"(pass {key}='skip' to leave them out):\n{listing}"
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
        workers = self.loader_options.num_workers
        if workers is None:
            workers = self.default_num_workers()
        train = split == "train"
        drop_last = train and len(dataset) > self.batch_size
        pin_memory = self.loader_options.pin_memory
        sampler = None
        if train and self.loader_options.sampling != "shuffle":
            power = _SAMPLER_POWER[self.loader_options.sampling]
            sampler = ClassBalancedSampler(dataset.labels, power)
        return make_loader(dataset, self.batch_size, train, workers, pin_memory, drop_last, sampler)
