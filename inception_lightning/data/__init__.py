"""Data: the built-in shapes dataset and custom class-per-folder images."""

from inception_lightning.data.boxes import Annotation, read_boxes, write_boxes
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.export import BOXES_FILE, write_dataset
from inception_lightning.data.folder import ImageFolderDataset, MaskedImageFolderDataset
from inception_lightning.data.folder_datamodule import ImageFolderDataModule
from inception_lightning.data.images import decode_rgb, load_rgb
from inception_lightning.data.scan import BadFile, ImageRecord, check_image
from inception_lightning.data.shapes import SHAPES
from inception_lightning.data.synthetic import SyntheticDataset, synthetic_classes
from inception_lightning.data.synthetic_datamodule import SyntheticDataModule
from inception_lightning.data.transforms import (
    INCEPTION_MEAN,
    INCEPTION_STD,
    Normalize,
    Preprocessing,
    eval_geometry,
    resolve_preprocessing,
    train_geometry,
)

__all__ = [
    "BOXES_FILE",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "SHAPES",
    "Annotation",
    "BadFile",
    "DatasetError",
    "ImageFolderDataModule",
    "ImageFolderDataset",
    "ImageRecord",
    "MaskedImageFolderDataset",
    "Normalize",
    "Preprocessing",
    "SyntheticDataModule",
    "SyntheticDataset",
    "check_image",
    "decode_rgb",
    "eval_geometry",
    "load_rgb",
    "read_boxes",
    "resolve_preprocessing",
    "synthetic_classes",
    "train_geometry",
    "write_boxes",
    "write_dataset",
]
