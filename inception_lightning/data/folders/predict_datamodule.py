"""`PredictDataModule`: a folder of images to classify, with or without class subfolders."""

from __future__ import annotations

from pathlib import Path

from typing_extensions import override

from inception_lightning.data.datamodule import BadFiles, ImageDataModule
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.folders.folder_dataset import ImageFolderDataset
from inception_lightning.data.scanning.scan import list_tree, scan_paths
from inception_lightning.data.transforms.preprocessing import (
    Preprocessing,
    eval_geometry,
    resolve_preprocessing,
)

UNLABELLED = -1


class PredictDataModule(ImageDataModule):
    """Every image file under `root`, at any depth, in path order, for `predict`.

    Image files are the candidates of `data.scanning.candidates` (an image extension, not
    hidden); the masks that `root/boxes.json` names are annotations, not images to predict.

    An image in a subfolder named after one of `classes` (`root/<class>/...`) is labelled with
    it; every other image is unlabelled (label -1). Files are checked before predicting, with the
    training folders' `bad_files` policy. Images get the evaluation geometry of `preprocessing`.

    Args:
        root: the folder of images.
        classes: the model's class names, by label (the CLI passes the checkpoint's).
        preprocessing: the model's preprocessing (the CLI passes the checkpoint's); None:
            Inception's. `image_size` and `crop_pct` override it.
        image_size: overrides the crop size.
        crop_pct: overrides the share of the resized image kept by the centre crop.
        batch_size: images per batch.
        bad_files: "error" lists every bad file and stops; "skip" leaves them out.
        num_workers: loader processes; None: `default_num_workers` for the trainer's devices.
        pin_memory: None pins when CUDA is available.
    """

    def __init__(
        self,
        root: str,
        classes: list[str] | None = None,
        preprocessing: Preprocessing | None = None,
        image_size: int | None = None,
        crop_pct: float | None = None,
        batch_size: int = 32,
        bad_files: BadFiles = "error",
        num_workers: int | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        if classes is None:
            raise DatasetError(
                "predict needs the model's class names: pass --ckpt_path with a checkpoint that "
                "knows them, or --data.classes [name, ...] in label order"
            )
        if bad_files not in ("error", "skip"):
            raise ValueError(f"bad_files must be 'error' or 'skip', got {bad_files!r}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder does not exist or is a file: {self.root}")
        preprocessing = resolve_preprocessing(None, image_size, crop_pct, preprocessing)
        super().__init__(list(classes), preprocessing, batch_size, num_workers, pin_memory)
        self.save_hyperparameters(ignore=["preprocessing"])  # plain values, for weights_only

    @override
    def setup(self, stage: str | None = None) -> None:
        """List and check the folder's files once."""
        if self.predict_dataset is not None:
            return
        paths = list_tree(self.root)
        if not paths:
            raise DatasetError(f"no image files under {self.root}: nothing to predict")
        records, bad = scan_paths(paths, [self._label(path) for path in paths])
        if bad:
            self.handle_bad_files(bad, self.hparams.bad_files, self.root)
        if not records:
            raise DatasetError(f"no readable images under {self.root}")
        geometry = eval_geometry(self.preprocessing)
        self.predict_dataset = ImageFolderDataset(records, self.classes, geometry, self.normalize)

    @override
    def missing_split(self, split: str) -> str:
        return f"PredictDataModule only predicts: it has no {split} split"

    def _label(self, path: Path) -> int:
        parts = path.relative_to(self.root).parts
        if len(parts) > 1 and parts[0] in self.classes:
            return self.classes.index(parts[0])
        return UNLABELLED
