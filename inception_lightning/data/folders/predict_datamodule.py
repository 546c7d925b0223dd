"""`PredictDataModule`: a folder of images to classify, with or without class subfolders."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from typing_extensions import override

from inception_lightning._hparams import save_init_arguments
from inception_lightning.data.data_options import BadFiles, CropOptions, LoaderOptions
from inception_lightning.data.datamodule import ImageDataModule
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.folders.folder_dataset import ImageFolderDataset
from inception_lightning.data.scanning.scan import list_tree, scan_paths
from inception_lightning.data.transforms.preprocessing import (
    Preprocessing,
    eval_geometry,
    resolve_preprocessing,
)
from inception_lightning.models.options import one_of

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
            Inception's. `crop` overrides it.
        crop: image_size and crop_pct, overriding the preprocessing's (`CropOptions`).
        bad_files: "error" lists every bad file and stops; "skip" leaves them out.
        loader: batch_size, num_workers, pin_memory of the loader (`LoaderOptions`).
    """

    def __init__(
        self,
        root: str,
        classes: list[str] | None = None,
        preprocessing: Preprocessing | None = None,
        # frozen dataclasses, so a shared default is never shared state
        crop: CropOptions = CropOptions(),  # noqa: B008
        bad_files: BadFiles = "error",
        loader: LoaderOptions = LoaderOptions(),  # noqa: B008
    ) -> None:
        if classes is None:
            raise DatasetError(
                "predict needs the model's class names: pass --ckpt_path with a checkpoint that "
                "knows them, or --data.classes [name, ...] in label order"
            )
        one_of("bad_files", bad_files, get_args(BadFiles))
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder does not exist or is a file: {self.root}")
        crop, loader = CropOptions.of(crop), LoaderOptions.of(loader)
        preprocessing = resolve_preprocessing(None, crop.image_size, crop.crop_pct, preprocessing)
        super().__init__(list(classes), preprocessing, loader)
        crop, loader = crop.as_kwargs(), loader.as_kwargs()  # plain values, for weights_only
        save_init_arguments(self, ["preprocessing"])

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
