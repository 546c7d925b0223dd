"""Writing files so that a crash never leaves a truncated one where a good one was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write `data` (bytes, or a function that writes to a binary file) to `path` atomically.

    The bytes go to a temp file in the target's own folder, are synced to disk, and replace the
    target with `os.replace`, which is atomic on one filesystem: readers see the old file or the
    new one, never a part. The new file gets the permissions a plain `open(path, "w")` would
    give it (0666 less the umask); `mkstemp`'s own 0600 would hide it from other users.

    Args:
        path: the file to write; its folder is created if missing.
        data: the content, or `write(file)` for streams such as `torch.save`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as file:
            if isinstance(data, bytes | bytearray):
                file.write(data)
            else:
                data(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target


def _read_umask() -> int:
    """The process's umask; reading it means setting it, so this runs once, at import."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
