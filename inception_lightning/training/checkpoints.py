"""Checkpoints: the one place that knows where each weight set lies in them, and writes them safely.

A checkpoint of `InceptionClassifier` is Lightning's dictionary. Its `state_dict` holds the
module's weights, the network's under the `model.` prefix. When `InceptionEMA` has averaged the
weights, `state_dict` holds the average, `current_model_state` the optimiser's raw weights and
`averaging_state` the average's update count (the layout of Lightning's `EMAWeightAveraging`,
which `load_from_checkpoint` and resuming both understand).

Every checkpoint written during fit also describes itself under `DESCRIPTION_KEY`, in plain
values that `torch.load(..., weights_only=True)` reads: the class names, the preprocessing, the
model name and arguments, the weight set `state_dict` holds and the package version (see
`Description`). `read_description` reads it, and fills in what an older checkpoint lacks.

A checkpoint written by an older version, whose hyperparameters have other names, goes through
one upgrade step (`upgrade_checkpoint`) wherever it is read.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Any, Literal

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor, nn
from typing_extensions import override

from inception_lightning._compat import is_local_path
from inception_lightning.files import atomic_write
from inception_lightning.models import InceptionNet, create_model
from inception_lightning.models.options import as_stem
from inception_lightning.models.weights import (
    NETWORK_PREFIX,
    STATE_DICT_KEY,
    CheckpointError,
    load_file,
)

Weights = Literal["ema", "raw"]
WEIGHT_SETS = ("ema", "raw")
RAW_KEY = "current_model_state"
AVERAGING_KEY = "averaging_state"
HPARAMS_KEY = "hyper_parameters"
DATA_HPARAMS_KEY = "datamodule_hyper_parameters"
DESCRIPTION_KEY = "inception_lightning"
# Lightning's `_parse_ckpt_path` reads --ckpt_path with weights_only=True whatever the flags say,
# so the CLI has no opt-in for arbitrary unpickling: the fix is a plain re-save.
CLI_TRUST_HINT = (
    "if you made it yourself, re-save it with plain values only: load it in Python with "
    "torch.load(path, weights_only=False) and torch.save the dictionary without the objects"
)


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the network: another class count or architecture."""


@dataclass(frozen=True)
class Description:
    """What a checkpoint says about itself; None marks what an older checkpoint does not say.

    Args:
        model: the registered model name.
        model_args: the `create_model` keyword arguments, `num_classes` included.
        weights: the weight set `state_dict` holds: "ema" or "raw".
        classes: class names by label.
        preprocessing: `image_size`, `crop_pct`, `interpolation`, `mean`, `std` (the fields of
            `data.Preprocessing`) of the data the model was trained on.
        version: the inception-lightning version that wrote the checkpoint.
    """

    model: str
    model_args: dict[str, Any]
    weights: Weights
    classes: list[str] | None = None
    preprocessing: dict[str, Any] | None = None
    version: str | None = None

    @property
    def num_classes(self) -> int:
        """The classifier's outputs."""
        return int(self.model_args.get("num_classes", 1000))

    @property
    def missing(self) -> list[str]:
        """What the checkpoint does not say, in words."""
        fields = {"class names": self.classes, "preprocessing": self.preprocessing}
        return [name for name, value in fields.items() if value is None]

    def build(self) -> InceptionNet:
        """A freshly initialised network of the described architecture."""
        return create_model(self.model, **self.model_args)


def package_version() -> str:
    """The installed inception-lightning version ("unknown" when run from a bare source tree)."""
    try:
        return importlib.metadata.version("inception-lightning")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_description(
    checkpoint: dict[str, Any],
    model: str,
    model_args: Mapping[str, Any],
    classes: list[str] | None,
    preprocessing: Mapping[str, Any] | None,
) -> None:
    """Describe the checkpoint in itself, after every callback has filled it.

    The weight set is read from the checkpoint: `InceptionEMA` (a callback, whose hook Lightning
    calls before the module's) has already moved the average into `state_dict` when it exists.
    """
    checkpoint[DESCRIPTION_KEY] = {
        "model": model,
        "model_args": dict(model_args),
        "weights": "ema" if has_average(checkpoint) else "raw",
        "classes": None if classes is None else [str(c) for c in classes],
        "preprocessing": None if preprocessing is None else _plain(preprocessing),
        "version": package_version(),
    }


def read_description(
    checkpoint: Mapping[str, Any], source: str | Path = "the checkpoint"
) -> Description:
    """The checkpoint's description; an older checkpoint's is rebuilt from its hyperparameters.

    Warns, naming the checkpoint, when the class names or the preprocessing are unknown.

    Raises:
        CheckpointError: the checkpoint says neither its model nor its hyperparameters.
    """
    description = _describe(checkpoint, source)
    if description.missing:
        warnings.warn(
            f"{source} does not say its {' or '.join(description.missing)} (written before "
            "inception-lightning 0.2, or during a fit without a datamodule of the package): "
            "the data's classes and preprocessing are used",
            stacklevel=2,
        )
    return description


def _describe(checkpoint: Mapping[str, Any], source: str | Path) -> Description:
    """`read_description` without the warning."""
    stored = checkpoint.get(DESCRIPTION_KEY)
    if isinstance(stored, Mapping):
        classes, preprocessing = stored.get("classes"), stored.get("preprocessing")
        return Description(
            model=stored["model"],
            model_args=dict(stored["model_args"]),
            weights=stored["weights"],
            classes=None if classes is None else list(classes),
            preprocessing=None if preprocessing is None else dict(preprocessing),
            version=stored.get("version"),
        )
    hparams = checkpoint.get(HPARAMS_KEY)
    if not isinstance(hparams, Mapping) or "model" not in hparams:
        raise CheckpointError(
            f"{source} is not a checkpoint of InceptionClassifier: it names no model in its "
            "hyperparameters; pass a .ckpt that `inception-lightning fit` wrote"
        )
    model_args = {"num_classes": hparams.get("num_classes", 1000)}
    model_args.update(hparams.get("model_kwargs") or {})
    weights: Weights = "ema" if has_average(checkpoint) else "raw"
    return Description(hparams["model"], model_args, weights)


# Where the flat arguments of older versions went: into the option groups (`training_options`,
# `data.data_options`), by old name -> (group, option).
MODULE_MOVES = {
    "label_smoothing": ("loss", "label_smoothing"),
    "aux_weight": ("loss", "aux_weight"),
    "backbone_lr_scale": ("optim", "backbone_lr_scale"),
    "lr_reference_batch_size": ("optim", "lr_reference_batch_size"),
    "scheduler_interval": ("optim", "scheduler_interval"),
    "channels_last": ("compute", "channels_last"),
    "compile_model": ("compute", "compile"),
}
_LOADER_MOVES = {name: ("loader", name) for name in ("batch_size", "num_workers", "pin_memory")}
_CROP_MOVES = {name: ("crop", name) for name in ("image_size", "crop_pct")}
DATA_MOVES = {
    "SyntheticDataModule": _LOADER_MOVES,
    "PredictDataModule": {**_LOADER_MOVES, **_CROP_MOVES},
    "ImageFolderDataModule": {
        **_LOADER_MOVES,
        **_CROP_MOVES,
        "val_fraction": ("split", "val_fraction"),
        "split_seed": ("split", "seed"),
        "augment": ("augment", "enabled"),
        "min_scale": ("augment", "min_scale"),
        "hflip": ("augment", "hflip"),
        "bad_files": ("files", "bad_files"),
        "scan_cache_dir": ("files", "scan_cache_dir"),
        "boxes_file": ("files", "boxes_file"),
    },
}


def upgrade_checkpoint(
    checkpoint: dict[str, Any], source: str | Path = "the checkpoint"
) -> dict[str, Any]:
    """Bring a checkpoint written by an older version to today's form, in place; returns it.

    The one upgrade step every reader goes through (`read_checkpoint`, the module's
    `load_from_checkpoint`, the console script's `--ckpt_path`):

    - the module's flat hyperparameters move into their option groups
      (`label_smoothing` -> `loss.label_smoothing`, ...; `MODULE_MOVES`), and so do the
      package's datamodules' (`DATA_MOVES`);
    - the module's dead `test_crops` and `test_crop_size` go: multi-crop views are the data's
      (a warning names the flag when the module was set to more than one view);
    - the stem is an int (older versions wrote the string "79").

    A checkpoint in today's form is left as it is.
    """
    hparams = checkpoint.get(HPARAMS_KEY)
    if isinstance(hparams, dict):
        _move(hparams, MODULE_MOVES)
        crops = hparams.pop("test_crops", 1)
        hparams.pop("test_crop_size", None)
        if crops not in (1, None):
            warnings.warn(
                f"{source} was saved with the module's test_crops {crops}; multi-crop views are "
                f"cut by the data now: pass --data.init_args.test_crops {crops} to test with them",
                stacklevel=2,
            )
        _upgrade_stem(hparams.get("model_kwargs"))
    data = checkpoint.get(DATA_HPARAMS_KEY)
    if isinstance(data, dict):
        _move(data, DATA_MOVES.get(_datamodule_name(data), {}))
    description = checkpoint.get(DESCRIPTION_KEY)
    if isinstance(description, dict):
        _upgrade_stem(description.get("model_args"))
    return checkpoint


def _move(hparams: dict[str, Any], moves: Mapping[str, tuple[str, str]]) -> None:
    """Move flat keys into their groups (`aux_weight` -> `{"loss": {"aux_weight": ...}}`),
    merged into a group that is already there."""
    for old, (group, name) in moves.items():
        if old == group and isinstance(hparams.get(old), Mapping):
            continue  # `augment` was a flag and is now its group's name: today's group stays
        if old in hparams:
            value = hparams.pop(old)
            current = hparams.get(group)
            hparams[group] = {**(current if isinstance(current, Mapping) else {}), name: value}


def _upgrade_stem(model_args: Any) -> None:
    if isinstance(model_args, dict) and "stem" in model_args:
        model_args["stem"] = as_stem(model_args["stem"])


def _datamodule_name(hparams: Mapping[str, Any]) -> str | None:
    """The package datamodule whose hyperparameters these are (LightningCLI records its class
    path; a datamodule made in Python is known by its arguments), or None."""
    class_path = hparams.get("_class_path")
    if isinstance(class_path, str):
        return class_path.rsplit(".", 1)[-1]
    if "num_samples" in hparams:
        return "SyntheticDataModule"
    if "root" in hparams:
        return "ImageFolderDataModule" if "val_fraction" in hparams else "PredictDataModule"
    return None


def stored_hyperparameters(
    source: str | Path | IO[bytes], weights_only: bool | None = None
) -> dict[str, Any]:
    """The module's hyperparameters a checkpoint file holds, upgraded (`upgrade_checkpoint`).

    A local file is memory-mapped, so its tensors are not read; a file object is read and
    rewound; other paths (s3://, ...) are read through fsspec, as Lightning reads them.
    """
    weights_only = True if weights_only is None else weights_only
    if isinstance(source, str | Path) and is_local_path(source):
        checkpoint = torch.load(source, map_location="cpu", weights_only=weights_only, mmap=True)
    elif isinstance(source, str | Path):
        with get_filesystem(source).open(source, "rb") as file:
            checkpoint = torch.load(file, map_location="cpu", weights_only=weights_only)
    else:
        start = source.tell()
        checkpoint = torch.load(source, map_location="cpu", weights_only=weights_only)
        source.seek(start)
    hparams = upgrade_checkpoint(checkpoint, getattr(source, "name", source)).get(HPARAMS_KEY)
    return dict(hparams) if isinstance(hparams, Mapping) else {}


def read_checkpoint(
    path: str | Path, trust_pickle: bool = False, trust_hint: str = CLI_TRUST_HINT
) -> dict[str, Any]:
    """Load a checkpoint of `InceptionClassifier`, refusing anything else in one line.

    Args:
        path: the file.
        trust_pickle: allow arbitrary unpickling; only for files you made yourself.
        trust_hint: how the user opts in to `trust_pickle`, for the unsafe-file error.

    Raises:
        FileNotFoundError, CheckpointError: the message names the file and the fix.
    """
    checkpoint = load_file(path, trust_pickle, trust_hint)
    state = checkpoint.get(STATE_DICT_KEY) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        if isinstance(checkpoint, Mapping) and all(
            isinstance(v, Tensor) for v in checkpoint.values()
        ):
            what = "a plain state dict (what `inception-lightning export` writes)"
        else:
            what = f"a {type(checkpoint).__name__}, not a Lightning checkpoint"
        raise CheckpointError(
            f"{path} is not a training checkpoint: it holds {what}; pass a .ckpt that "
            "`inception-lightning fit` wrote (runs/.../checkpoints/*.ckpt)"
        )
    upgrade_checkpoint(checkpoint, path)
    _describe(checkpoint, path)  # refuses a checkpoint of another LightningModule
    return checkpoint


class MismatchKind(Enum):
    """How a state dict fails to fit a network."""

    CLASSES = "classes"
    """Only the classifiers' output counts differ: the same architecture, another task."""
    ARCHITECTURE = "architecture"
    """Anything else: missing, unexpected or reshaped tensors."""


@dataclass(frozen=True)
class Mismatch:
    """A state dict that does not fit a network: the kind, and the detail in words."""

    kind: MismatchKind
    detail: str


def mismatch(state: Mapping[str, Tensor], network: nn.Module) -> Mismatch | None:
    """How a network state dict fails to fit `network`, or None when it fits."""
    target = network.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    reshaped = [k for k in target if k in state and state[k].shape != target[k].shape]
    if not (missing or unexpected or reshaped):
        return None
    heads = ("head.fc.", "aux.fc.")
    if not missing and not unexpected and all(k.startswith(heads) for k in reshaped):
        key = reshaped[0]
        detail = f"its classifier has {state[key].shape[0]} classes, not {target[key].shape[0]}"
        return Mismatch(MismatchKind.CLASSES, detail)
    parts = []
    if reshaped:
        key = reshaped[0]
        parts.append(
            f"{len(reshaped)} tensors of other shapes (e.g. {key}: {tuple(state[key].shape)} "
            f"in the file, {tuple(target[key].shape)} in the network)"
        )
    if missing:
        parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} tensors the network lacks (e.g. {unexpected[0]})")
    return Mismatch(MismatchKind.ARCHITECTURE, "; ".join(parts))


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Tuples and lists as lists of plain values: loadable with weights_only, readable as JSON."""
    return {k: list(v) if isinstance(v, tuple | list) else v for k, v in values.items()}


def has_average(checkpoint: dict[str, Any]) -> bool:
    """Whether `state_dict` holds EMA weights (and the raw ones lie beside them)."""
    return RAW_KEY in checkpoint


def network_state(
    checkpoint: dict[str, Any], weights: Weights = "ema", prefix: str = NETWORK_PREFIX
) -> dict[str, Tensor]:
    """The network's state dict, without the module prefix, from a loaded checkpoint.

    Args:
        checkpoint: the loaded dictionary.
        weights: "ema" (the average; an error for a checkpoint without one) or "raw".
        prefix: where the network lies in the module's state ("": the whole module's state).
    """
    if weights not in WEIGHT_SETS:
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    if weights == "ema" and not has_average(checkpoint):
        raise ValueError(
            "the checkpoint holds no EMA weights (trained without InceptionEMA, or saved before "
            "its first update); use weights='raw'"
        )
    state = checkpoint[RAW_KEY if weights == "raw" and has_average(checkpoint) else STATE_DICT_KEY]
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def store_average(
    checkpoint: dict[str, Any],
    average: dict[str, Tensor],
    averaging: dict[str, Tensor],
    prefix: str = NETWORK_PREFIX,
) -> None:
    """Put the average in `state_dict` under `prefix` ("": the whole module's average), moving
    the raw weights to their own key."""
    checkpoint[RAW_KEY] = checkpoint[STATE_DICT_KEY]
    checkpoint[STATE_DICT_KEY] = {prefix + k: v for k, v in average.items()}
    checkpoint[AVERAGING_KEY] = averaging


def stored_average(
    checkpoint: dict[str, Any], prefix: str = NETWORK_PREFIX
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]] | None:
    """`(average, averaging state, raw module state)` of a checkpoint that has them, else None;
    the average without `prefix`."""
    if not (has_average(checkpoint) and AVERAGING_KEY in checkpoint):
        return None
    average = network_state(checkpoint, "ema", prefix)
    return average, checkpoint[AVERAGING_KEY], checkpoint[RAW_KEY]


@dataclass(frozen=True)
class LoadedNetwork:
    """A network rebuilt from a checkpoint, the weight set it carries, and the checkpoint."""

    network: InceptionNet
    weights: Weights
    description: Description
    checkpoint: dict[str, Any]


def load_network(path: str | Path, weights: Weights | None = None) -> LoadedNetwork:
    """Rebuild the checkpoint's network from its description, in eval mode, on the CPU.

    Args:
        path: a checkpoint of `InceptionClassifier`.
        weights: "ema", "raw", or None for the set `state_dict` holds (EMA when kept).

    Raises:
        FileNotFoundError, CheckpointError: one line naming the file and the fix.
    """
    checkpoint = read_checkpoint(path)
    description = read_description(checkpoint, path)
    chosen: Weights = weights or description.weights
    try:
        state = network_state(checkpoint, chosen)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    network = description.build()
    found = mismatch(state, network)
    if found is not None:
        raise CheckpointMismatchError(
            f"{path}: its weights do not fit the {description.model} it describes: "
            f"{found.detail}; "
            "the file was edited or written by another program: pass a checkpoint that "
            "`inception-lightning fit` wrote"
        )
    network.load_state_dict(state)
    return LoadedNetwork(network.eval(), chosen, description, checkpoint)


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose local saves cannot leave a truncated file at the target.

    Lightning 2.6 saves through an fsspec transaction that writes to a temp file in the system
    temp folder and then `shutil.move`s it. Where that folder is on another filesystem than the
    checkpoints (a tmpfs `/tmp`, checkpoints on a network disk), the move is a copy into the
    target, and a crash mid-copy leaves a truncated checkpoint where a good one was. Here the
    file goes through `files.atomic_write` (temp file beside the target, fsync, `os.replace`).
    Remote paths (s3://, ...) keep Lightning's way.
    """

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not is_local_path(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_write(path, lambda file: torch.save(checkpoint, file))
