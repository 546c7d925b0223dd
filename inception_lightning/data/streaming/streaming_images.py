"""Datasets over a converted split: LitData's stream for training, indexed images for the rest.

`StreamingImages` is LitData's `StreamingDataset` (sharded per rank and loader worker, chunks
downloaded ahead and evicted, resumable through `StreamingDataLoader`) whose items are decoded
and cropped as the folder path's are: `(uint8 image [3, H, W], label)`. `ChunkImages` reads
the same split by index (LitData's random access), as a map-style `data.protocol.LabelledImages`
with labels, object masks and the class names: what validation, testing and the explainers
use, sharded by Lightning's sampler as the folder path's splits are.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from litdata import StreamingDataset
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors

from inception_lightning.data.folders.decode import decode_bytes
from inception_lightning.data.streaming.streaming_options import StreamOptions
from inception_lightning.data.transforms.preprocessing import Normalize


class StreamingImages(StreamingDataset):
    """A converted split as LitData streams it; items are `(uint8 image [3, H, W], label)`.

    Under DDP each rank streams its own share (LitData's sharding, by the process group of the
    rank that builds it); with `drop_last` every rank takes the same number of whole batches
    and the rest of the epoch's items are left out (see the README's remainder rule).

    Args:
        input_dir: the split's folder, local, or a URL LitData reads (`s3://`, `local:`, ...).
        classes: the class names to label by.
        relabel: the split's stored label -> its index in `classes`.
        transform: uint8 image -> uint8 crop (the geometry).
        normalize: uint8 images -> normalised float model input.
        shuffle: shuffle chunks and items, anew each epoch.
        drop_last: every rank the same number of whole batches.
        stream: the cache and the shuffle's seed.
    """

    def __init__(
        self,
        input_dir: str,
        classes: list[str],
        relabel: Sequence[int],
        transform: Callable[[Tensor], Tensor],
        normalize: Normalize,
        shuffle: bool,
        drop_last: bool,
        stream: StreamOptions,
    ) -> None:
        super().__init__(
            input_dir,
            cache_dir=stream.cache_dir,
            shuffle=shuffle,
            drop_last=drop_last,
            seed=stream.seed,
            max_cache_size=stream.max_cache_size,
            storage_options=stream.storage_options,
        )
        self.classes = classes
        self.relabel = list(relabel)
        self.image_transform = transform  # LitData's own `transform` would see the raw item
        self.normalize = normalize
        self._pid = os.getpid()

    def __iter__(self) -> StreamingImages:
        self._pid = os.getpid()  # LitData makes this process's reader as the epoch starts
        return super().__iter__()

    def record(self, index: Any) -> dict[str, Any]:
        """The stored item: the image file's bytes, label, key, mask (PNG bytes) and boxes."""
        if self._pid != os.getpid():
            # a loader worker forked after this process read by index: its own reader, not the
            # copied one, whose download thread did not come along
            self.cache, self.shuffler, self._pid = None, None, os.getpid()
        return super().__getitem__(index)

    def __getitem__(self, index: Any) -> tuple[Tensor, int]:
        item = self.record(index)
        image = self.image_transform(decode_bytes(item["image"], item["key"]))
        return image, self.relabel[item["label"]]


class ChunkImages(Dataset[tuple[Tensor, int]]):
    """A converted split read by index: a map-style `data.protocol.LabelledImages`.

    Args:
        images: the split, not shuffled, with the evaluation transform.
        labels: every item's stored label, in index order (from `chunk_info`).
        has_masks: whether items carry object masks.
        geometry: the evaluation resize and crop, applied to masks.
    """

    def __init__(
        self,
        images: StreamingImages,
        labels: Sequence[int],
        has_masks: bool,
        geometry: Callable[[Any], Any],
    ) -> None:
        self.images = images
        self.classes = images.classes
        self.normalize = images.normalize
        self._labels = [images.relabel[label] for label in labels]
        self._has_masks = has_masks
        self.geometry = geometry

    @property
    def labels(self) -> list[int]:
        """Every item's class index, from the split's info (no chunk is read)."""
        return self._labels

    @property
    def has_masks(self) -> bool:
        """Whether the split was converted with a boxes file."""
        return self._has_masks

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[self._checked(index)]

    def key(self, index: int) -> str:
        """The item's path in the converted tree."""
        return self.images.record(self._checked(index))["key"]

    def mask(self, index: int) -> Tensor:
        """The object's mask, bool [H, W], in the coordinates of the evaluation-cropped image.

        Raises `KeyError` naming the image when the boxes file had no entry for it.
        """
        item = self.images.record(self._checked(index))
        if not self._has_masks or len(item["mask"]) == 0:
            raise KeyError(f"the boxes file had no entry for {item['key']!r}")
        with Image.open(io.BytesIO(item["mask"])) as image:
            mask = torch.from_numpy(np.asarray(image.convert("L")) > 0)
        return self.geometry(tv_tensors.Mask(mask)).as_subclass(Tensor)

    def _checked(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return index % len(self)
