"""`ImageFolderDataModule`: fine-tuning on class-per-folder images.

Two layouts are accepted under `root`:

- `root/train/<class>/*`, `root/val/<class>/*` and optionally `root/test/<class>/*`;
  without `val/`, `split.val_fraction` of `train/` is held out;
- `root/<class>/*`: one tree, of which a seeded, per-class `split.val_fraction` is held out.

Classes are the folder names under the training tree, sorted, as in torchvision's
`ImageFolder`; given `classes` (a trained model's), the folders must be among them and are
labelled by their index there. Every file is checked at `setup`, before training starts (see
`data.scan`); with `files.bad_files="skip"` the bad ones are left out, and their list is written
to `bad_files.txt` in the trainer's log directory, or in the current directory when no trainer
is attached. The checks' results are cached (`data.scan_cache`), so a later start checks only the
files that changed; under DDP, local rank 0 of each node scans while the node's other ranks
wait, then read its cache (`data.per_node`).

Loader workers decode and crop to uint8; batches are normalised on the device (see
`data.datamodule.ImageDataModule`).
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchvision.transforms import v2
from typing_extensions import override

from inception_lightning._hparams import save_init_arguments
from inception_lightning.data.boxes import Annotation, read_boxes_of
from inception_lightning.data.data_options import (
    AugmentOptions,
    CropOptions,
    FileOptions,
    LoaderOptions,
    SplitOptions,
)
from inception_lightning.data.datamodule import ImageDataModule
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
from inception_lightning.data.transforms.preprocessing import (
    Preprocessing,
    eval_geometry,
    resolve_preprocessing,
)

Splits = dict[str, list[ImageRecord]]
Listing = dict[str, dict[str, list[FileStat]]]  # split -> class -> files


class ImageFolderDataModule(ImageDataModule):
    """Class-per-folder images with Inception (or timm pretrained) preprocessing.

    Args:
        root: the dataset folder, in one of the layouts of the module docstring.
        pretrained_cfg: a timm model name, or one of `list_models()`, whose pretrained config
            sets size, crop_pct, interpolation, mean and std; None: Inception's (299 px,
            crop_pct 0.875, bicubic, mean and std 0.5).
        crop: image_size and crop_pct, overriding the preprocessing's (`CropOptions`).
        test_crops: views per test image: 1 (the evaluation crop), 12 or 144 (`data.multicrop`).
        split: val_fraction and seed of the hold-out when there is no `val/` (`SplitOptions`).
        augment: the training crops' enabled, min_scale and hflip, then an augmentation policy
            (RandAugment, TrivialAugment, AutoAugment) and random erasing (`AugmentOptions`).
        files: bad_files, scan_cache_dir, boxes_file (`FileOptions`): what to do with bad
            files, where their checks are cached, and the object boxes (datasets then have
            `mask(index)`).
        loader: batch_size, num_workers, pin_memory of the loaders (`LoaderOptions`).
        classes: the class names to label by (a trained model's; the CLI passes a
            checkpoint's); the folders must be among them. None: the folders' names.
        preprocessing: the preprocessing to start from (a trained model's; the CLI passes a
            checkpoint's), which `crop` may still override; not with `pretrained_cfg`. None:
            `pretrained_cfg`'s or Inception's.
    """

    def __init__(
        self,
        root: str,
        pretrained_cfg: str | None = None,
        # frozen dataclasses, so a shared default is never shared state
        crop: CropOptions = CropOptions(),  # noqa: B008
        test_crops: int = 1,
        split: SplitOptions = SplitOptions(),  # noqa: B008
        augment: AugmentOptions = AugmentOptions(),  # noqa: B008
        files: FileOptions = FileOptions(),  # noqa: B008
        loader: LoaderOptions = LoaderOptions(),  # noqa: B008
        classes: list[str] | None = None,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        crop, augment = CropOptions.of(crop), AugmentOptions.of(augment)
        loader = LoaderOptions.of(loader)
        self.split_options, self.file_options = SplitOptions.of(split), FileOptions.of(files)
        self.root = Path(root).expanduser()
        self.split_dirs = {
            name: self.root / name
            for name in ("train", "val", "test")
            if (self.root / name).is_dir()
        }
        if self.split_dirs and "train" not in self.split_dirs:
            found = ", ".join(f"{name}/" for name in self.split_dirs)
            raise DatasetError(f"{self.root} has {found} but no train/ folder")
        if not self.split_dirs:
            self.split_dirs = {"train": self.root}
        preprocessing = resolve_preprocessing(
            pretrained_cfg, crop.image_size, crop.crop_pct, preprocessing
        )
        train_dir = self.split_dirs["train"]
        labels = label_space(find_classes(train_dir), classes, train_dir)
        super().__init__(labels, preprocessing, loader, test_crops)
        self.use_file_transforms(augment)
        # plain values only: checkpoints keep them and load with weights_only=True (the
        # preprocessing is in the checkpoint's description)
        crop, augment, loader = crop.as_kwargs(), augment.as_kwargs(), loader.as_kwargs()
        split, files = self.split_options.as_kwargs(), self.file_options.as_kwargs()
        save_init_arguments(self, ["preprocessing"])

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
            policy = self.file_options
            self.handle_bad_files(bad, policy.bad_files, self.root, policy.key("bad_files"))
        self._check_not_emptied(files, splits)
        self._warn_small(splits)
        if "val" not in splits:
            held_out = self.split_options
            splits["train"], splits["val"] = hold_out(
                splits["train"], held_out.val_fraction, held_out.seed
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
        cache = ScanCache(self.root, self.file_options.scan_cache_dir)
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
        boxes_file = self.file_options.boxes_file
        if boxes_file is None:
            return None
        known = {
            file.key  # the path relative to root
            for split_files in files.values()
            for stats in split_files.values()
            for file in stats
        }
        return read_boxes_of(boxes_file, known, self.root)

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
