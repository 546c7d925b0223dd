"""Data: the built-in shapes dataset and custom class-per-folder images.

The datasets, transforms and files import without Lightning; the datamodules load on first use.
"""

from inception_lightning._lazy import lazy_getattr
from inception_lightning.data.boxes import BOXES_FILE, Annotation, read_boxes, write_boxes
from inception_lightning.data.builtin.make_dataset import write_dataset
from inception_lightning.data.builtin.shapes import SHAPES
from inception_lightning.data.builtin.synthetic import (
    SyntheticDataset,
    synthetic_classes,
    synthetic_preprocessing,
)
from inception_lightning.data.data_options import (
    AugmentOptions,
    CropOptions,
    FileOptions,
    LoaderOptions,
    SplitOptions,
)
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.folders.decode import decode_rgb, load_rgb
from inception_lightning.data.folders.folder_dataset import (
    ImageFolderDataset,
    MaskedImageFolderDataset,
)
from inception_lightning.data.protocol import LabelledImages
from inception_lightning.data.scanning.scan import BadFile, ImageRecord, check_image
from inception_lightning.data.transforms.multicrop import (
    MultiCrop,
    MultiCropDataset,
    MultiCropViews,
)
from inception_lightning.data.transforms.preprocessing import (
    INCEPTION_MEAN,
    INCEPTION_STD,
    Normalize,
    Preprocessing,
    eval_geometry,
    resolve_preprocessing,
    train_geometry,
)

_LAZY = {
    "ImageDataModule": "inception_lightning.data.datamodule",
    "ImageFolderDataModule": "inception_lightning.data.folders.folder_datamodule",
    "PredictDataModule": "inception_lightning.data.folders.predict_datamodule",
    # the `litdata` extra: imported only when named
    "StreamingImageDataModule": "inception_lightning.data.streaming.streaming_datamodule",
    "SyntheticDataModule": "inception_lightning.data.builtin.synthetic_datamodule",
}

__all__ = [
    *_LAZY,
    "BOXES_FILE",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "SHAPES",
    "Annotation",
    "AugmentOptions",
    "BadFile",
    "CropOptions",
    "DatasetError",
    "FileOptions",
    "ImageFolderDataset",
    "ImageRecord",
    "LabelledImages",
    "LoaderOptions",
    "MaskedImageFolderDataset",
    "MultiCrop",
    "MultiCropDataset",
    "MultiCropViews",
    "Normalize",
    "Preprocessing",
    "SplitOptions",
    "SyntheticDataset",
    "check_image",
    "decode_rgb",
    "eval_geometry",
    "load_rgb",
    "read_boxes",
    "resolve_preprocessing",
    "synthetic_classes",
    "synthetic_preprocessing",
    "train_geometry",
    "write_boxes",
    "write_dataset",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
