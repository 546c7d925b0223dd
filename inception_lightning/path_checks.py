"""Paths the console script checks while it parses: a checkpoint to read, a file or a folder to
write. A bad one ends the command in one line, before anything runs.

`OutputFile`, `OutputFolder` and `CheckpointFile` are `str` types registered with jsonargparse,
so a command's signature declares them and jsonargparse refuses a bad value while parsing.
jsonargparse's own path types do not fit: its "file creatable with its folders" (`Path_fcc`)
walks up past an ancestor that is a file and accepts the path, and its values are `Path`
objects, not the plain strings the commands pass on. `checkpoint_problem` serves the
LightningCLI subcommands' `--ckpt_path`, whose type Lightning declares.
"""

from __future__ import annotations

import os
from pathlib import Path

from jsonargparse.typing import register_type

from inception_lightning._compat import is_local_path

# What Lightning's `--ckpt_path` resolves itself, besides URLs (checkpoint_connector.py)
LIGHTNING_CHECKPOINTS = ("best", "last", "hpc")


def checkpoint_problem(path: str) -> str | None:
    """Why `path` is not a checkpoint file to read, or None (Lightning's keywords, `registry`
    names and remote paths are Lightning's to resolve)."""
    if path in LIGHTNING_CHECKPOINTS or path.lower().partition(":")[0] == "registry":
        return None
    if not is_local_path(path):
        return None
    if Path(path).is_dir():
        return f"{path} is a folder, not a checkpoint file"
    if not Path(path).is_file():
        return f"no such file: {path}"
    return None


def folder_problem(folder: Path) -> str | None:
    """Why `folder` can be neither written in nor made, or None.

    The nearest part of it that exists must be a folder this process may write in.
    """
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        if existing == folder:
            return f"{folder} is a file, not a folder"
        return f"{folder} cannot be made: {existing} is a file"
    if not os.access(existing, os.W_OK):
        return f"{folder} cannot be made: {existing} is not writable"
    return None


class OutputFile(str):
    """A file to write: not a folder, in a folder that exists or can be made."""

    def __new__(cls, value: str | os.PathLike[str]) -> OutputFile:
        path = Path(value)
        if path.is_dir():
            raise ValueError(f"{value} is a folder; give a file name")
        problem = folder_problem(path.absolute().parent)
        if problem is not None:
            raise ValueError(problem)
        return super().__new__(cls, os.fspath(value))


class OutputFolder(str):
    """A folder to write in: one that exists, or that can be made."""

    def __new__(cls, value: str | os.PathLike[str]) -> OutputFolder:
        problem = folder_problem(Path(value).absolute())
        if problem is not None:
            raise ValueError(problem)
        return super().__new__(cls, os.fspath(value))


class CheckpointFile(str):
    """A checkpoint file to read: it must exist (unlike `--ckpt_path`, no Lightning keyword)."""

    def __new__(cls, value: str | os.PathLike[str]) -> CheckpointFile:
        path = Path(value)
        if not path.is_file():
            raise ValueError(
                f"{value} is a folder, not a checkpoint file"
                if path.is_dir()
                else f"no such file: {value}"
            )
        return super().__new__(cls, os.fspath(value))


for _path_type in (OutputFile, OutputFolder, CheckpointFile):
    register_type(_path_type)
