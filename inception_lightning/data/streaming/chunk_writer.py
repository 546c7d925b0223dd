"""`write_chunks`: a class-per-folder tree as LitData chunks, one folder per split.

The tree is read as `ImageFolderDataModule` reads it (the same layouts, classes, candidate
files, header checks through the scan cache, bad-file policy and seeded hold-out), and each
split is written to `out/<split>/`: LitData's `index.json` and `chunk-*.bin`, then
`inception-lightning.json` (`chunk_info`). An item holds the image file's own bytes (so the
stream decodes the very pixels the folder path decodes), its label, its path under the tree,
and, when a boxes file annotates the tree, the object's mask (a 1-bit PNG at the image's size,
the union of the boxes or the mask file) and its boxes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image

from inception_lightning.console import track
from inception_lightning.data.boxes import BOXES_FILE, Annotation, read_boxes_of
from inception_lightning.data.datamodule import BadFiles
from inception_lightning.data.errors import DatasetError
from inception_lightning.data.scanning.scan import (
    BadFile,
    ImageRecord,
    check_files,
    find_classes,
    list_files,
    sort_results,
)
from inception_lightning.data.scanning.scan_cache import FileStat, ScanCache
from inception_lightning.data.scanning.split import hold_out
from inception_lightning.data.streaming.chunk_info import ChunkInfo

SPLITS = ("train", "val", "test")


def write_chunks(
    data: str | Path,
    out: str | Path,
    boxes_file: str | Path | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    bad_files: BadFiles = "error",
    chunk_bytes: str = "64MB",
    scan_cache_dir: str | None = None,
    progress: bool | None = None,
) -> Path:
    """Write the tree `data` as LitData chunks under `out` (see the module docstring).

    Args:
        data: `data/train/<class>/*` (with `val/`, optionally `test/`), or `data/<class>/*`.
        out: a new or empty folder; `out/train`, `out/val` (and `out/test`) are written.
        boxes_file: object boxes or masks keyed by paths relative to `data` (`data.boxes`);
            None: `data/boxes.json` when there is one (make-dataset writes it).
        val_fraction: share of each class held out for `val` when `data` has no `val/`.
        split_seed: seed of that hold-out.
        bad_files: "error" lists every bad file and stops; "skip" leaves them out and lists
            them in `out/bad_files.txt`.
        chunk_bytes: the most bytes of a chunk (LitData's `chunk_bytes`, e.g. "64MB").
        scan_cache_dir: where the scan's results are cached (as `ImageFolderDataModule`'s).
        progress: show the checks' and the writing's progress; None: on a terminal.
    """
    from litdata.streaming.writer import BinaryWriter

    root, out = Path(data).expanduser(), Path(out).expanduser()
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if bad_files not in ("error", "skip"):
        raise ValueError(f"bad_files must be 'error' or 'skip', got {bad_files!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} is not an empty folder: convert writes into a new one")
    split_dirs = _split_dirs(root)
    classes = find_classes(split_dirs["train"])
    files = {split: list_files(folder, classes, root) for split, folder in split_dirs.items()}
    listed = [file for split in files.values() for stats in split.values() for file in stats]
    results, _ = check_files(listed, ScanCache(root, scan_cache_dir), progress)
    splits: dict[str, list[ImageRecord]] = {}
    bad: list[BadFile] = []
    for split, split_files in files.items():
        splits[split], split_bad = sort_results(split_files, classes, results)
        bad += split_bad
    if bad:
        _handle_bad_files(bad, bad_files, root, out)
    if "val" not in splits:
        splits["train"], splits["val"] = hold_out(splits["train"], val_fraction, split_seed)
    annotations = _annotations(root, boxes_file, listed)
    for split, records in splits.items():
        if not records:
            raise DatasetError(f"no readable images for the {split} split under {root}")
        folder = out / split
        folder.mkdir(parents=True)
        writer = BinaryWriter(str(folder), chunk_bytes=chunk_bytes)
        for index, record in enumerate(
            track(records, f"writing {split} chunks", unit="images", enabled=progress)
        ):
            writer.add_item(index, _item(record, root, annotations))
        writer.done()
        writer.merge()
        labels = [record.label for record in records]
        ChunkInfo(classes, labels, annotations is not None).write(folder)
    return out


def _split_dirs(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder does not exist or is a file: {root}")
    found = {split: root / split for split in SPLITS if (root / split).is_dir()}
    if found and "train" not in found:
        names = ", ".join(f"{name}/" for name in found)
        raise DatasetError(f"{root} has {names} but no train/ folder")
    return found or {"train": root}


def _handle_bad_files(bad: list[BadFile], policy: BadFiles, root: Path, out: Path) -> None:
    listing = "\n".join(f"  {b.line()}" for b in bad)
    if policy == "error":
        raise DatasetError(
            f"{len(bad)} bad image files under {root} "
            f"(pass --bad_files skip to leave them out):\n{listing}"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "bad_files.txt").write_text("".join(b.line(separator="\t") + "\n" for b in bad))
    rank_zero_warn(f"skipped {len(bad)} bad image files under {root}; list in {out}/bad_files.txt")


def _annotations(
    root: Path, boxes_file: str | Path | None, listed: list[FileStat]
) -> dict[str, Annotation] | None:
    """The boxes file's annotations, each naming a listed image; None without a boxes file."""
    if boxes_file is None:
        if not (root / BOXES_FILE).is_file():
            return None
        boxes_file = root / BOXES_FILE
    return read_boxes_of(boxes_file, {file.key for file in listed}, root)


def _item(
    record: ImageRecord, root: Path, annotations: dict[str, Annotation] | None
) -> dict[str, object]:
    """One chunk item: the file's bytes, label, key, and the object's mask and boxes."""
    key = record.path.relative_to(root).as_posix()
    annotation = None if annotations is None else annotations.get(key)
    mask, boxes = b"", np.zeros((0, 4), dtype=np.float32)
    if annotation is not None:
        buffer = io.BytesIO()
        Image.fromarray(annotation.rasterize(root, record.size)).save(buffer, format="PNG")
        mask = buffer.getvalue()
        boxes = np.asarray(annotation.boxes, dtype=np.float32).reshape(-1, 4)
    return {
        "image": record.path.read_bytes(),
        "label": record.label,
        "key": key,
        "mask": mask,
        "boxes": boxes,
    }
