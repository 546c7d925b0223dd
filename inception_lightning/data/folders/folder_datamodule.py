"""`ImageFolderDataModule`: fine-tuning on class-per-folder images.

Two layouts are accepted under `root`:

- `root/train/<class>/*`, `root/val/<class>/*` and optionally `root/test/<class>/*`;
  without `val/`, `val_fraction` of `train/` is held out;
- `root/<class>/*`: one tree, of which a seeded, per-class `val_fraction` is held out.

Classes are the folder names under the training tree, sorted, as in torchvision's
`ImageFolder`; given `classes` (a trained model's), the folders must be among them and are
labelled by their index there. Every file is checked at `setup`, before training starts (see
`data.scan`); with `bad_files="skip"` the bad ones are left out, and their list is written to
`bad_files.txt` in the trainer's log directory, or in the current directory when no trainer is
attached. The checks' results are cached (`data.scan_cache`), so a later start checks only the
files that changed; under DDP, local rank 0 of each node scans while the node's other ranks
wait, then read its cache (`data.per_node`).

Loader workers decode and crop to uint8; batches are normalised on the device (see
`data.datamodule.ImageDataModule`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchvision.transforms import v2
from typing_extensions import override

from inception_lightning.data.boxes import Annotation, read_boxes
from inception_lightning.data.datamodule import BadFiles, ImageDataModule, Sampling
from inception_lightning.data.errors import DatasetError, printable
from inception_lightning.data.folders.folder_dataset import (
    ImageFolderDataset,
    MaskedImageFolderDataset,
)
from inception_lightning.data.scanning.per_node import first_on_each_node
from inception_lightning.data.scanning.scan import (
    BadFile,
    ImageRecord,
    check_files,
    find_classes,
    gc_paused,
    label_space,
    list_files,
    sort_results,
)
from inception_lightning.data.scanning.scan_cache import FileStat, Result, ScanCache
from inception_lightning.data.scanning.split import hold_out
from inception_lightning.data.transforms.policies import PolicyOptions, policy_transforms
from inception_lightning.data.transforms.preprocessing import (
    Preprocessing,
    eval_geometry,
    resolve_preprocessing,
    train_geometry,
)

Splits = dict[str, list[ImageRecord]]
Listing = dict[str, dict[str, list[FileStat]]]  # split -> class -> files


class ImageFolderDataModule(ImageDataModule):
    """Class-per-folder images with Inception (or timm pretrained) preprocessing.

    Args:
        root: the dataset folder, in one of the layouts of the module docstring.
        batch_size: images per batch.
        val_fraction: share of each class held out for validation when there is no `val/`.
        split_seed: seed of that hold-out.
        boxes_file: a boxes file (format in `data.boxes`); datasets then have `mask(index)`.
        pretrained_cfg: a timm model name, or one of `list_models()`, whose pretrained config
            sets size, crop_pct, interpolation, mean and std; None: Inception's (299 px,
            crop_pct 0.875, bicubic, mean and std 0.5).
        image_size: overrides the crop size.
        crop_pct: overrides the share of the resized image kept by the evaluation crop.
        augment: random-resized crop and flip for training; False trains on evaluation crops.
        min_scale: smallest share of the image area a training crop covers.
        hflip: probability of a horizontal flip in training.
        bad_files: "error" lists every bad file and stops; "skip" leaves them out.
        scan_cache_dir: where the scan's results are cached; None: beside the data
            (`root/.inception-lightning-scan.json`), or in the user cache folder
            (`$XDG_CACHE_HOME/inception-lightning/scan`) when `root` is read-only.
        test_crops: views per test image: 1 (the evaluation crop), 12 or 144 (`data.multicrop`).
        classes: the class names to label by (a trained model's; the CLI passes a
            checkpoint's); the folders must be among them. None: the folders' names.
        preprocessing: the preprocessing to start from (a trained model's; the CLI passes a
            checkpoint's), which `image_size` and `crop_pct` may still override; not with
            `pretrained_cfg`. None: `pretrained_cfg`'s or Inception's.
        num_workers: loader processes; None: `default_num_workers` for the trainer's devices
            on this node.
        pin_memory: None pins when CUDA is available.
        policy: RandAugment, TrivialAugment or AutoAugment after the crop and flip, and random
            erasing (`data.transforms.policies`); only with `augment`.
        sampling: "shuffle", or draw training images by class: "class_balanced" (every class
            equally often) or "square_root" (`ClassBalancedSampler`).
    """

    def __init__(
        self,
        root: str,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        boxes_file: str | None = None,
        pretrained_cfg: str | None = None,
        image_size: int | None = None,
        crop_pct: float | None = None,
        augment: bool = True,
        min_scale: float = 0.08,
        hflip: float = 0.5,
        bad_files: BadFiles = "error",
        scan_cache_dir: str | None = None,
        test_crops: int = 1,
        classes: list[str] | None = None,
        preprocessing: Preprocessing | None = None,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        policy: PolicyOptions = PolicyOptions(),  # noqa: B008 (frozen, so never shared state)
        sampling: Sampling = "shuffle",
    ) -> None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        if bad_files not in ("error", "skip"):
            raise ValueError(f"bad_files must be 'error' or 'skip', got {bad_files!r}")
        self.root = Path(root).expanduser()
        self.split_dirs = {
            split: self.root / split
            for split in ("train", "val", "test")
            if (self.root / split).is_dir()
        }
        if self.split_dirs and "train" not in self.split_dirs:
            found = ", ".join(f"{name}/" for name in self.split_dirs)
            raise DatasetError(f"{self.root} has {found} but no train/ folder")
        if not self.split_dirs:
            self.split_dirs = {"train": self.root}
        preprocessing = resolve_preprocessing(pretrained_cfg, image_size, crop_pct, preprocessing)
        train_dir = self.split_dirs["train"]
        super().__init__(
            label_space(find_classes(train_dir), classes, train_dir),
            preprocessing,
            batch_size,
            num_workers,
            pin_memory,
            test_crops,
            sampling,
        )
        # plain values only: checkpoints keep them and load with weights_only=True (the
        # preprocessing is in the checkpoint's description)
        self.save_hyperparameters(ignore=["preprocessing", "policy"])
        self.hparams["policy"] = dataclasses.asdict(policy)
        self.train_transform = (
            v2.Compose(
                [
                    train_geometry(preprocessing, min_scale, hflip),
                    *policy_transforms(policy, preprocessing.mean),
                ]
            )
            if augment
            else eval_geometry(preprocessing)
        )
        self.eval_transform = eval_geometry(preprocessing)
        # multi-crop cuts its views from the whole image (`ImageDataModule.test_dataloader`)
        self.test_transform = v2.Identity() if test_crops > 1 else self.eval_transform

    def setup(self, stage: str | None = None) -> None:
        """Scan every split once, apply the bad-file policy and build the datasets."""
        if self.train_dataset is not None:
            return
        with gc_paused():
            files, results = first_on_each_node(self.trainer, self._scan)
            splits: Splits = {}
            bad: list[BadFile] = []
            for split, split_files in files.items():
                splits[split], split_bad = sort_results(split_files, self.classes, results)
                bad += split_bad
        if bad:
            self.handle_bad_files(bad, self.hparams.bad_files, self.root)
        self._check_not_emptied(files, splits)
        self._warn_small(splits)
        if "val" not in splits:
            splits["train"], splits["val"] = hold_out(
                splits["train"], self.hparams.val_fraction, self.hparams.split_seed
            )
        self.report_class_counts([r.label for r in splits["train"]])
        annotations = self._read_boxes(files)
        self.train_dataset = self._dataset(splits["train"], train=True, annotations=annotations)
        self.val_dataset = self._dataset(splits["val"], train=False, annotations=annotations)
        if "test" in splits:
            self.test_dataset = self._dataset(
                splits["test"], train=False, annotations=annotations, transform=self.test_transform
            )

    def _scan(self) -> tuple[Listing, dict[str, Result]]:
        """List every split and check its files through the scan cache."""
        files = {
            split: list_files(folder, self.classes, self.root)
            for split, folder in self.split_dirs.items()
        }
        listed = [file for split in files.values() for stats in split.values() for file in stats]
        cache = ScanCache(self.root, self.hparams.scan_cache_dir)
        trainer = self.trainer
        quiet = trainer is not None and (
            trainer.progress_bar_callback is None or not trainer.is_global_zero
        )
        results, checked = check_files(listed, cache, progress=False if quiet else None)
        where = f"scan cache: {cache.path}" if cache.path else "no scan cache"
        rank_zero_info(f"checked {checked:,} of {len(listed):,} images under {self.root} ({where})")
        return files, results

    @override
    def missing_split(self, split: str) -> str:
        return f"no {split} split: {self.root / split} does not exist"

    def _check_not_emptied(self, files: Listing, splits: Splits) -> None:
        for split, split_files in files.items():
            kept = {self.classes[r.label] for r in splits[split]}
            for name in split_files.keys() - kept:
                folder = self.split_dirs[split] / name
                raise DatasetError(f"class folder {folder} has no readable images")

    def _warn_small(self, splits: Splits) -> None:
        size = self.preprocessing.image_size
        small = [r.path for rs in splits.values() for r in rs if min(r.size) < size]
        if small:
            shown = ", ".join(printable(p) for p in small[:5]) + (", ..." if len(small) > 5 else "")
            rank_zero_warn(
                f"{len(small)} images are smaller than the {size} px crop and are upscaled: {shown}"
            )

    def _read_boxes(self, files: Listing) -> dict[str, Annotation] | None:
        if self.hparams.boxes_file is None:
            return None
        annotations = read_boxes(self.hparams.boxes_file)
        known = {
            file.key  # the path relative to root
            for split_files in files.values()
            for stats in split_files.values()
            for file in stats
        }
        unknown = sorted(annotations.keys() - known)
        if unknown:
            shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise DatasetError(
                f"{len(unknown)} entries of boxes file {self.hparams.boxes_file} name no image "
                f"under {self.root} (paths must be relative to it): {shown}"
            )
        return annotations

    def _dataset(
        self,
        records: list[ImageRecord],
        train: bool,
        annotations: dict[str, Annotation] | None,
        transform: v2.Transform | None = None,
    ) -> ImageFolderDataset:
        if transform is None:
            transform = self.train_transform if train else self.eval_transform
        if annotations is None:
            return ImageFolderDataset(records, self.classes, transform, self.normalize)
        geometry = eval_geometry(self.preprocessing)
        return MaskedImageFolderDataset(
            records, self.classes, transform, self.normalize, self.root, annotations, geometry
        )
