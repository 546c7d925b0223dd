"""Decoding any image file PIL reads into 8-bit RGB, naming the file in every error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from inception_lightning.data.errors import DatasetError

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


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
    """Open, decode and convert `path` to RGB; raises `DatasetError` naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot decode image {path}: {error}") from error
