"""`ChunkInfo`: what a converted split says about its items beyond LitData's own index.

LitData's `index.json` knows the chunks and the items' layout, but has no place for class
names. `inception-lightning convert` writes `inception-lightning.json` beside it, last, once
every chunk is written: the format and its version, the class names, every item's label in
the index's order (so that class-balanced samples and class counts need no image read) and
whether the items carry object masks.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inception_lightning.data.errors import DatasetError
from inception_lightning.files import atomic_write

INFO_FILE = "inception-lightning.json"
FORMAT = "inception-lightning chunks"
VERSION = 1
REMOTE_PREFIXES = ("s3://", "gs://", "r2://", "azure://", "hf://", "local:")  # LitData's


class MissingSplitError(DatasetError):
    """A split that was not converted: its folder has no `inception-lightning.json`."""


@dataclass(frozen=True)
class ChunkInfo:
    """The class names and labels of a converted split.

    Args:
        classes: class names, by label.
        labels: every item's label, in the index's order.
        has_masks: whether items carry object masks (the source had a boxes file).
    """

    classes: list[str]
    labels: list[int]
    has_masks: bool

    def write(self, folder: Path) -> Path:
        """Write `folder/inception-lightning.json` atomically."""
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "classes": self.classes,
            "has_masks": self.has_masks,
            "labels": self.labels,
        }
        return atomic_write(folder / INFO_FILE, json.dumps(payload).encode())

    @classmethod
    def read(cls, split_dir: str, storage_options: dict[str, Any] | None = None) -> ChunkInfo:
        """The info of a converted split: a local folder or a remote one (a LitData URL)."""
        if not is_remote(split_dir):
            return cls._parse(Path(split_dir).expanduser() / INFO_FILE)
        with tempfile.TemporaryDirectory(prefix="inception-lightning-") as tmp:
            local = Path(tmp) / INFO_FILE
            _download(f"{split_dir.rstrip('/')}/{INFO_FILE}", local, storage_options)
            return cls._parse(local, shown=f"{split_dir.rstrip('/')}/{INFO_FILE}")

    @classmethod
    def _parse(cls, path: Path, shown: str | None = None) -> ChunkInfo:
        name = shown or str(path)
        try:
            payload = json.loads(path.read_text())
        except FileNotFoundError:
            raise MissingSplitError(
                f"{name} does not exist: not a folder written by `inception-lightning convert`"
            ) from None
        except (OSError, ValueError) as error:
            raise DatasetError(f"cannot read {name}: {error}") from error
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise DatasetError(f"{name} is not an inception-lightning chunk description")
        if payload.get("version") != VERSION:
            raise DatasetError(
                f"{name} has version {payload.get('version')}, this package reads {VERSION}: "
                "convert the folder again"
            )
        return cls(list(payload["classes"]), list(payload["labels"]), bool(payload["has_masks"]))


def is_remote(path: str) -> bool:
    """Whether LitData reads `path` through a downloader (object storage, or `local:`)."""
    return path.startswith(REMOTE_PREFIXES)


def _download(url: str, local: Path, storage_options: dict[str, Any] | None) -> None:
    """Fetch one file with LitData's downloader for the URL's scheme (what fetches the chunks)."""
    from litdata.streaming.downloader import get_downloader

    folder, _, _ = url.rpartition("/")
    try:
        get_downloader(folder, str(local.parent), [], storage_options).download_file(
            url, str(local)
        )
    except FileNotFoundError:
        pass  # _parse names the missing file
    except Exception as error:  # each store's client raises its own errors
        raise DatasetError(f"cannot fetch {url}: {error}") from error
