"""Decoding image files into 8-bit RGB, naming the file in every error.

`decode_rgb` is the fast path the datasets use: JPEG through torchvision's libjpeg-turbo decoder
straight into a uint8 tensor, every other format through PIL (`load_rgb`), which also handles
16-bit, palette, CMYK and transparent images. Both leave EXIF orientation unapplied, as PIL's
`Image.open` does, so a file gives the same pixels whichever path decodes it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.io import ImageReadMode, decode_jpeg

from inception_lightning.data.errors import DatasetError

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_JPEG_START = b"\xff\xd8\xff"


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert grayscale, 16-bit, palette, CMYK and transparent images to 8-bit RGB."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # PIL's convert("RGB") clips 16-bit values at 255 instead of scaling them.
        image = Image.fromarray((np.clip(np.asarray(image), 0, 65535) >> 8).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # torchvision drops alpha, exposing whatever colour the encoder left under transparent
        # pixels; compositing over white gives what image viewers show.
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Open, decode and convert `path` to RGB with PIL; raises `DatasetError` naming the file."""
    return _pil_rgb(path, path)


def decode_rgb(path: str | Path) -> Tensor:
    """Decode `path` to a uint8 RGB tensor `[3, H, W]`; raises `DatasetError` naming the file.

    JPEG goes through torchvision's decoder, which gives PIL's pixels (both use libjpeg-turbo
    with the same defaults) faster and without a PIL-to-tensor copy. CMYK JPEGs, JPEGs it
    refuses and every other format go through PIL, which decodes them as `load_rgb` does or
    raises its error. Unlike PIL, torchvision has no decompression-bomb limit: decode files that
    passed `check_image`, as the datasets do.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot decode image {path}: {error}") from error
    return decode_bytes(data, path)


def decode_bytes(data: bytes | bytearray | memoryview, name: str | Path) -> Tensor:
    """Decode an image file's bytes as `decode_rgb` decodes the file; errors name `name`."""
    if bytes(data[:3]) == _JPEG_START:
        image = _decode_jpeg(data)
        if image is not None:
            return image
    # PNG stays on PIL: torchvision 0.29's decode_png segfaults on a corrupt deflate stream
    # behind valid chunk checksums (which the header scan passes), killing the loader worker
    # instead of raising; see pytorch/vision#3613 for the history of such crashes.
    rgb = np.asarray(_pil_rgb(io.BytesIO(data), name))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


def _decode_jpeg(data: bytes | bytearray | memoryview) -> Tensor | None:
    """torchvision's decode of a 1- or 3-channel JPEG as RGB; None for CMYK or on any error."""
    try:
        # torchvision 0.29 deprecates its decoders for TorchCodec, which is not a dependency
        # yet; the DeprecationWarning is hidden by default outside __main__.
        image = decode_jpeg(
            torch.frombuffer(bytearray(data), dtype=torch.uint8),
            mode=ImageReadMode.UNCHANGED,
            apply_exif_orientation=False,
        )
    except RuntimeError:
        return None
    if image.shape[0] == 1:  # grayscale; PIL's convert("RGB") also repeats the channel
        return image.repeat(3, 1, 1)
    # 4 channels: CMYK, left to PIL's conversion (Adobe's inverted CMYK included)
    return image if image.shape[0] == 3 else None


def _pil_rgb(source: str | Path | BinaryIO, path: str | Path) -> Image.Image:
    try:
        with Image.open(source) as image:
            image.load()
            return to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot decode image {path}: {error}") from error
