"""An evaluation-only dataset over a whole image folder, for attribution reports."""

from __future__ import annotations

from pathlib import Path

from inception_lightning.data.boxes import read_boxes
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.folders.folder_dataset import (
    ImageFolderDataset,
    MaskedImageFolderDataset,
)
from inception_lightning.data.scanning.scan import find_classes, label_space, list_files, scan_files
from inception_lightning.data.transforms.preprocessing import (
    Normalize,
    Preprocessing,
    eval_geometry,
)


def evaluation_dataset(
    root: str | Path,
    preprocessing: Preprocessing,
    boxes_file: str | Path | None = None,
    classes: list[str] | None = None,
) -> ImageFolderDataset:
    """Every readable image of `root/val` (or of `root` without a val/ folder), eval-transformed.

    Items are uint8 crops; the dataset's `normalize` makes them model input.

    Args:
        root: a class-per-folder tree, or a dataset folder with train/ and val/.
        preprocessing: the model's (its input size, centre crop, mean and std).
        boxes_file: object boxes or masks keyed by paths relative to `root` (make-dataset's
            format); the dataset then has `mask(index)`.
        classes: the model's class names: the folder's classes must be among them, and are
            labelled by their index there. None: the folder's own, sorted.
    """
    root = Path(root).expanduser()
    split_dir = root / "val" if (root / "val").is_dir() else root
    classes = label_space(find_classes(split_dir), classes, split_dir)
    records, bad = scan_files(list_files(split_dir, classes), classes)
    if not records:
        raise DatasetError(f"no readable images under {split_dir}")
    if bad:
        listing = "\n".join(f"  {b.line()}" for b in bad)
        raise DatasetError(f"{len(bad)} bad image files under {split_dir}:\n{listing}")
    geometry = eval_geometry(preprocessing)
    normalize = Normalize(preprocessing.mean, preprocessing.std)
    if boxes_file is None:
        return ImageFolderDataset(records, classes, geometry, normalize)
    annotations = read_boxes(boxes_file)
    return MaskedImageFolderDataset(
        records, classes, geometry, normalize, root, annotations, geometry
    )
