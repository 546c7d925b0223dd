"""`StreamingImageDataModule`: training from LitData chunks, local or in object storage.

`inception-lightning convert --data DIR --out CHUNKS` writes a class-per-folder tree as
`CHUNKS/train`, `CHUNKS/val` (and `CHUNKS/test`); this datamodule reads them from `CHUNKS`, or
from a copy at a URL LitData reads (`s3://bucket/chunks`, `gs://...`, `local:/path`), whose
chunks are downloaded ahead of use into a bounded cache.

Training streams (`streaming_images.StreamingImages` through `ResumableStreamingDataLoader`):
chunks and items are shuffled anew each epoch, each rank streams its own share, and a run
killed mid-epoch resumes with the items it had not yet seen. The remainder rule: every rank
takes `(N // batch_size) // world_size` whole batches of the split's N items, and the rest of
the epoch (fewer than `(world_size + 1) * batch_size` items) is left out, the items of the
chunk that comes last in that epoch's order. Validation and testing read their split by index
(`streaming_images.ChunkImages`, a `LabelledImages` for the explainers), sharded by Lightning's
`DistributedSampler` as the folder path's are. Everything else is the other datamodules':
uint8 crops from the workers, normalised on the device, and the class names and preprocessing
recorded in the checkpoint.
"""

from __future__ import annotations

import warnings

import torch
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import default_collate
from torchvision.transforms import v2
from typing_extensions import override

from inception_lightning._hparams import save_init_arguments
from inception_lightning.data.data_options import AugmentOptions, CropOptions, LoaderOptions
from inception_lightning.data.datamodule import ImageDataModule
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.scanning.per_node import first_on_each_node
from inception_lightning.data.scanning.scan import label_space
from inception_lightning.data.streaming.chunk_info import ChunkInfo, MissingSplitError
from inception_lightning.data.streaming.streaming_images import ChunkImages, StreamingImages
from inception_lightning.data.streaming.streaming_loader import ResumableStreamingDataLoader
from inception_lightning.data.streaming.streaming_options import StreamOptions
from inception_lightning.data.transforms.preprocessing import (
    Preprocessing,
    eval_geometry,
    resolve_preprocessing,
)

# Lightning warns that an IterableDataset's length may be wrong with several workers unless
# each one takes its own share: LitData's workers do, and its length is theirs summed.
warnings.filterwarnings(
    "ignore", message="Your `IterableDataset` has `__len__` defined", module="lightning"
)


class StreamingImageDataModule(ImageDataModule):
    """Images from a folder written by `inception-lightning convert`, local or remote.

    Args:
        input_dir: the converted folder (holding `train/`, `val/`, maybe `test/`), or its URL.
        loader: batch size, loader processes and pinned memory.
        pretrained_cfg: a timm model name, or one of `list_models()`, whose pretrained config
            sets size, crop_pct, interpolation, mean and std; None: Inception's (299 px,
            crop_pct 0.875, bicubic, mean and std 0.5).
        crop: overrides of the crop size and of the evaluation crop's share.
        augment: the training crop and flip.
        stream: where remote chunks are cached, and the shuffle's seed.
        test_crops: views per test image: 1 (the evaluation crop), 12 or 144 (`data.multicrop`).
        classes: the class names to label by (a trained model's; the CLI passes a
            checkpoint's); the converted classes must be among them. None: the converted ones.
        preprocessing: the preprocessing to start from (a trained model's; the CLI passes a
            checkpoint's), which `crop` may still override; not with `pretrained_cfg`.
    """

    def __init__(
        self,
        input_dir: str,
        loader: LoaderOptions | None = None,
        pretrained_cfg: str | None = None,
        crop: CropOptions | None = None,
        augment: AugmentOptions | None = None,
        stream: StreamOptions | None = None,
        test_crops: int = 1,
        classes: list[str] | None = None,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        loader, crop = LoaderOptions.of(loader), CropOptions.of(crop)
        augment, stream = AugmentOptions.of(augment), StreamOptions.of(stream)
        if loader.sampling != "shuffle":
            raise ValueError(
                f"{loader.key('sampling')}: a stream is read shard by shard, so it cannot be "
                f"drawn by class ({loader.sampling}); weigh the loss instead "
                "(model.loss.class_weights), or train from the folder (ImageFolderDataModule)"
            )
        self.input_dir = input_dir.rstrip("/")
        self.stream = stream
        info = ChunkInfo.read(self._split_dir("train"), stream.storage_options)
        preprocessing = resolve_preprocessing(
            pretrained_cfg, crop.image_size, crop.crop_pct, preprocessing
        )
        super().__init__(
            label_space(info.classes, classes, self.input_dir),
            preprocessing,
            loader,
            test_crops,
        )
        self.converted_classes = info.classes
        # plain values only: checkpoints keep them and load with weights_only=True (the
        # preprocessing is in the checkpoint's description)
        groups = {"loader": loader, "crop": crop, "augment": augment, "stream": stream}
        save_init_arguments(self, ["preprocessing", *groups])
        self.hparams.update({name: group.as_kwargs() for name, group in groups.items()})
        self.use_file_transforms(augment)

    @override
    def setup(self, stage: str | None = None) -> None:
        """Open the splits `stage` needs, in this process (LitData shards by its rank).

        Local rank 0 of each node opens them first: LitData makes its cache folder in two steps
        and deletes one it finds half made, so two ranks opening at once could delete the
        other's (`_clear_cache_dir_if_updated`, litdata 0.2.76); after it, the others find it whole.
        """
        first_on_each_node(self.trainer, lambda: self._open_splits(stage))

    def _open_splits(self, stage: str | None) -> None:
        if stage in ("fit", None) and self.train_dataset is None:
            self.train_dataset = self._stream("train", self.train_transform, shuffle=True)
        if stage in ("fit", "validate", None) and self.val_dataset is None:
            self.val_dataset = self._indexed("val", self.eval_transform)
        if stage in ("test", None) and self.test_dataset is None:
            self.test_dataset = self._indexed("test", self.test_transform, optional=stage is None)

    @override
    def train_dataloader(self) -> DataLoader:
        dataset = self.train_dataset
        if dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        workers, pin_memory = self.loader_options.num_workers, self.loader_options.pin_memory
        return ResumableStreamingDataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.default_num_workers() if workers is None else workers,
            pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
            collate_fn=default_collate,  # [images, labels], as the folder path's batches
        )

    @override
    def missing_split(self, split: str) -> str:
        return f"no {split} split: {self._split_dir(split)} was not converted"

    def _split_dir(self, split: str) -> str:
        return f"{self.input_dir}/{split}"

    def _relabel(self, info: ChunkInfo, split: str) -> list[int]:
        if info.classes != self.converted_classes:
            raise DatasetError(
                f"{self._split_dir(split)} has classes {info.classes} but train/ has "
                f"{self.converted_classes}: convert the folder again"
            )
        return [self.classes.index(name) for name in info.classes]

    def _stream(self, split: str, transform: v2.Transform, shuffle: bool) -> StreamingImages:
        info = ChunkInfo.read(self._split_dir(split), self.stream.storage_options)
        return StreamingImages(
            self._split_dir(split),
            self.classes,
            self._relabel(info, split),
            transform,
            self.normalize,
            shuffle=shuffle,
            drop_last=True,
            stream=self.stream,
        )

    def _indexed(
        self, split: str, transform: v2.Transform, optional: bool = False
    ) -> ChunkImages | None:
        try:
            info = ChunkInfo.read(self._split_dir(split), self.stream.storage_options)
        except MissingSplitError:
            if optional:
                return None  # `missing_split` says so if its loader is asked for
            raise DatasetError(self.missing_split(split)) from None
        images = StreamingImages(
            self._split_dir(split),
            self.classes,
            self._relabel(info, split),
            transform,
            self.normalize,
            shuffle=False,
            drop_last=True,
            stream=self.stream,
        )
        return ChunkImages(images, info.labels, info.has_masks, eval_geometry(self.preprocessing))
