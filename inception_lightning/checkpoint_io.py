"""`AtomicCheckpointIO`: checkpoints written to a temp file beside the target, then renamed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose local saves cannot leave a truncated file at the target.

    Lightning 2.6 saves through an fsspec transaction that writes to a temp file in the system
    temp folder and then `shutil.move`s it. Where that folder is on another filesystem than the
    checkpoints (a tmpfs `/tmp`, checkpoints on a network disk), the move is a copy into the
    target, and a crash mid-copy leaves a truncated checkpoint where a good one was. Here the
    temp file lies in the target's own folder, is synced to disk, and replaces the target with
    `os.replace`, which is atomic on one filesystem. Remote paths (s3://, ...) keep Lightning's
    way.
    """

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
