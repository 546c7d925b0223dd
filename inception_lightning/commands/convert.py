"""`inception-lightning convert`: an image folder as LitData chunks, for streaming."""

from __future__ import annotations

from pathlib import Path
from typing import Literal


def convert(
    data: str,
    out: str,
    boxes_file: str | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    bad_files: Literal["error", "skip"] = "error",
    chunk_bytes: str = "64MB",
    scan_cache_dir: str | None = None,
) -> Path:
    """Write a class-per-folder tree as LitData chunks, for StreamingImageDataModule.

    The tree is read as fit reads it (layouts, classes, image files, checks, hold-out), and
    each split goes to OUT/<split>/: LitData's index and chunks, and the class names and
    labels. An item holds the image file's bytes, its label and path, and, with a boxes file,
    the object's mask and boxes. Copy OUT to object storage to stream it from there. Needs the
    `litdata` extra (pip install 'inception-lightning[litdata]').

    Args:
        data: DIR/train/<class>/* (with val/, optionally test/), or DIR/<class>/*.
        out: a new or empty folder.
        boxes_file: object boxes or masks keyed by paths relative to DATA; null:
            DATA/boxes.json when there is one (make-dataset writes it).
        val_fraction: share of each class held out for val/ when DATA has no val/.
        split_seed: seed of that hold-out.
        bad_files: "error" lists every bad file and stops; "skip" leaves them out and lists
            them in OUT/bad_files.txt.
        chunk_bytes: the most bytes of a chunk, e.g. 64MB.
        scan_cache_dir: where the scan's results are cached; null: beside the data.
    """
    try:
        from inception_lightning.data.streaming.chunk_writer import write_chunks
    except ImportError as error:
        raise ValueError(str(error)) from None  # one line, with the install command
    return write_chunks(
        data, out, boxes_file, val_fraction, split_seed, bad_files, chunk_bytes, scan_cache_dir
    )
