"""`ExclusiveTensorBoardLogger`: runs sharing a log folder never share a version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import TensorBoardLogger
from typing_extensions import override

from inception_lightning._compat import is_local_path


class ExclusiveTensorBoardLogger(TensorBoardLogger):
    """`TensorBoardLogger` that claims its `version_N` folder with `os.mkdir`.

    Lightning picks the next version by listing the folder, and the version folder is made
    later, so two runs started together on the same `save_dir` / `name` can both pick
    `version_0` and write into one folder. Here rank 0 creates the folder at once; `os.mkdir`
    fails if it exists, and then the next number is tried. Other ranks only list, as
    Lightning broadcasts rank 0's choice; remote folders keep Lightning's way.

    Unlike Lightning's, it writes no placeholder `hp_metric = -1` into the hparams tab by
    default: `TensorBoardDashboards` fills the tab with the run's settings and best scores.

    Args:
        save_dir: the folder of all runs.
        name: the experiment's folder in `save_dir`.
        version: a fixed version (a number, or a folder name); None claims the next one.
        log_graph: add the model graph (Lightning's argument).
        default_hp_metric: write Lightning's placeholder `hp_metric` (Lightning's argument).
        prefix: prepended to every metric key (Lightning's argument).
        sub_dir: a folder inside the version folder for the event files (Lightning's argument).
        **kwargs: passed to TensorBoard's `SummaryWriter`.
    """

    def __init__(
        self,
        save_dir: str | Path,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = False,
        prefix: str = "",
        sub_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            save_dir, name, version, log_graph, default_hp_metric, prefix, sub_dir, **kwargs
        )

    @override
    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if rank_zero_only.rank != 0 or not is_local_path(self.root_dir):
            return version
        os.makedirs(self.root_dir, exist_ok=True)
        while True:
            try:
                os.mkdir(os.path.join(self.root_dir, f"version_{version}"))
            except FileExistsError:
                version += 1
            else:
                return version
