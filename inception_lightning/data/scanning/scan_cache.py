"""The scan's results kept on disk, so that a start checks only the files that changed.

Each entry is keyed by the file's path relative to the dataset folder, its size and its
modification time in ns, and holds what `check_image` found: `(width, height)` or the reason the
file is bad. An entry is used only while the file's size and mtime still match, so a changed,
added or removed file is checked again, and nothing else is.

The cache is one file, beside the data (`ROOT/.inception-lightning-scan.json`, hidden, so the
scan skips it) or, when the data folder is read-only, in the user cache folder
(`$XDG_CACHE_HOME/inception-lightning/scan`, by default `~/.cache/...`, where torch and the
Hugging Face libraries keep theirs); `cache_dir` puts it anywhere. It is written atomically.

Its first line is a header: the format and version, the checker's settings (PIL's version and
decompression-bomb limit) and the SHA-256 of the second line, the entries as JSON. A file that
is not such a cache, or whose settings or checksum differ, is ignored with a warning and
rebuilt: every file is then checked again, so a corrupt cache costs time, never a bad file let
through. Entries whose mtime falls within `RACY_NS` of the scan's start are not stored: a file
rewritten that soon after its check, at the same size, could keep the same mtime on filesystems
with coarse timestamps (git's "racy clean" problem), so such files are checked on the next scan.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import PIL
from PIL import Image

from inception_lightning.files import atomic_write

BESIDE_NAME = ".inception-lightning-scan.json"
FORMAT = "inception-lightning scan cache"
VERSION = 1
RACY_NS = 2_000_000_000  # FAT's 2 s mtime granularity, the coarsest in common use

Result = tuple[int, int] | str  # `(width, height)`, or why the file is bad


class FileStat(NamedTuple):
    """A file found by the scan: its path, cache key (path relative to the dataset), size, mtime."""

    path: Path
    key: str
    size: int
    mtime_ns: int


def user_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/inception-lightning/scan`, by default under `~/.cache`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "inception-lightning" / "scan"


def checker_settings() -> dict[str, Any]:
    """What `check_image`'s verdicts depend on besides the file; other settings void a cache."""
    return {"pil": PIL.__version__, "max_image_pixels": Image.MAX_IMAGE_PIXELS}


class ScanCache:
    """The cache file of one dataset folder (see the module docstring).

    Args:
        root: the dataset folder; keys are relative to it.
        cache_dir: keep the cache there, named after the folder; None: beside the data, or in
            `user_cache_dir()` when the data folder cannot be written.
    """

    def __init__(self, root: Path, cache_dir: str | Path | None = None) -> None:
        root = Path(root).absolute()
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
        name = f"{root.name}-{digest}.json"
        if cache_dir is not None:
            self.candidates = [Path(cache_dir).expanduser() / name]
        else:
            self.candidates = [root / BESIDE_NAME, user_cache_dir() / name]
        self.root = root
        self.path: Path | None = None  # the file last read or written

    def load(self) -> dict[str, list[Any]]:
        """The entries of the first usable cache file; {} when there is none.

        A file that exists but cannot be used is named in a warning and passed over.
        """
        for path in self.candidates:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as error:
                warnings.warn(
                    f"scan cache {path} cannot be read ({error}); ignoring it", stacklevel=2
                )
                continue
            entries = self._parse(data)
            if isinstance(entries, str):
                warnings.warn(
                    f"scan cache {path} is {entries}; ignoring it, every image is checked again "
                    "and the cache rebuilt",
                    stacklevel=2,
                )
                continue
            self.path = path
            return entries
        return {}

    def save(self, files: Sequence[FileStat], results: Sequence[Result], started_ns: int) -> None:
        """Write the entries of `files` to the first candidate that can be written.

        Args:
            files: every file of the dataset, as listed.
            results: their scan results, in the same order.
            started_ns: `time.time_ns()` when the scan started; later mtimes are racy.
        """
        trusted = started_ns - RACY_NS
        entries = {
            f.key: [f.size, f.mtime_ns, *(r if isinstance(r, tuple) else (r,))]
            for f, r in zip(files, results, strict=True)
            if f.mtime_ns < trusted
        }
        payload = json.dumps(entries, separators=(",", ":")).encode()
        header = {
            "format": FORMAT,
            "version": VERSION,
            "checker": checker_settings(),
            "root": str(self.root),  # for people reading the file; keys are relative
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        data = json.dumps(header).encode() + b"\n" + payload + b"\n"
        failures = []
        for path in self.candidates:
            try:
                self.path = atomic_write(path, data)
                return
            except OSError as error:  # a read-only data folder, a full disk, ...
                failures.append(f"{path}: {error}")
        self.path = None
        warnings.warn(
            "the scan cache could not be written, so the next start checks every image again ("
            + "; ".join(failures)
            + "); pass a writable files.scan_cache_dir",
            stacklevel=2,
        )

    @staticmethod
    def _parse(data: bytes) -> dict[str, list[Any]] | str:
        """The entries, or what is wrong with the file."""
        head, _, rest = data.partition(b"\n")
        try:
            header = json.loads(head)
        except ValueError:
            return "not a scan cache (no header)"
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            return "not a scan cache (unknown format)"
        if header.get("version") != VERSION or header.get("checker") != checker_settings():
            return "from another version of the scan or of PIL"
        payload = rest.removesuffix(b"\n")
        if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
            return "corrupt (checksum mismatch)"
        try:
            entries = json.loads(payload)
        except ValueError:
            return "corrupt (unreadable entries)"
        return entries if isinstance(entries, dict) else "corrupt (entries are not a mapping)"


def cached_result(entries: dict[str, list[Any]], file: FileStat) -> Result | None:
    """The stored result of `file` if its size and mtime are unchanged; None if it needs a check."""
    entry = entries.get(file.key)
    if type(entry) is not list or len(entry) < 3:
        return None
    if entry[0] != file.size or entry[1] != file.mtime_ns:
        return None
    if len(entry) == 3 and type(entry[2]) is str:
        return entry[2]
    if len(entry) == 4 and type(entry[2]) is int and type(entry[3]) is int:
        return entry[2], entry[3]
    return None  # malformed: check the file again
