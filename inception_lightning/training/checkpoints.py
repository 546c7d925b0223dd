"""Checkpoints: the one place that knows where each weight set lies in them, and writes them safely.

A checkpoint of `InceptionClassifier` is Lightning's dictionary. Its `state_dict` holds the
module's weights, the network's under the `model.` prefix. When `InceptionEMA` has averaged the
weights, `state_dict` holds the average, `current_model_state` the optimiser's raw weights and
`averaging_state` the average's update count (the layout of Lightning's `EMAWeightAveraging`,
which `load_from_checkpoint` and resuming both understand).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor
from typing_extensions import override

from inception_lightning._compat import is_local_path
from inception_lightning.files import atomic_write
from inception_lightning.models import InceptionNet, create_model
from inception_lightning.models.weights import NETWORK_PREFIX, STATE_DICT_KEY, load_file

Weights = Literal["ema", "raw"]
RAW_KEY = "current_model_state"
AVERAGING_KEY = "averaging_state"


def has_average(checkpoint: dict[str, Any]) -> bool:
    """Whether `state_dict` holds EMA weights (and the raw ones lie beside them)."""
    return RAW_KEY in checkpoint


def network_state(checkpoint: dict[str, Any], weights: Weights = "ema") -> dict[str, Tensor]:
    """The network's state dict, without the module prefix, from a loaded checkpoint.

    Args:
        checkpoint: the loaded dictionary.
        weights: "ema" (the average; an error for a checkpoint without one) or "raw".
    """
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    if weights == "ema" and not has_average(checkpoint):
        raise ValueError(
            "the checkpoint holds no EMA weights (trained without InceptionEMA, or saved before "
            "its first update); use weights='raw'"
        )
    state = checkpoint[RAW_KEY if weights == "raw" and has_average(checkpoint) else STATE_DICT_KEY]
    return {
        k.removeprefix(NETWORK_PREFIX): v for k, v in state.items() if k.startswith(NETWORK_PREFIX)
    }


def store_average(
    checkpoint: dict[str, Any], average: dict[str, Tensor], averaging: dict[str, Tensor]
) -> None:
    """Put the network's average in `state_dict`, moving the raw weights to their own key."""
    checkpoint[RAW_KEY] = checkpoint[STATE_DICT_KEY]
    checkpoint[STATE_DICT_KEY] = {NETWORK_PREFIX + k: v for k, v in average.items()}
    checkpoint[AVERAGING_KEY] = averaging


def stored_average(
    checkpoint: dict[str, Any],
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]] | None:
    """`(average, averaging state, raw module state)` of a checkpoint that has them, else None."""
    if not (has_average(checkpoint) and AVERAGING_KEY in checkpoint):
        return None
    return network_state(checkpoint, "ema"), checkpoint[AVERAGING_KEY], checkpoint[RAW_KEY]


@dataclass(frozen=True)
class LoadedNetwork:
    """A network rebuilt from a checkpoint, with the weight set it carries and the checkpoint."""

    network: InceptionNet
    weights: Weights
    checkpoint: dict[str, Any]


def load_network(path: str | Path, weights: Weights | None = None) -> LoadedNetwork:
    """Rebuild the checkpoint's network from its hyperparameters, in eval mode, on the CPU.

    Args:
        path: a checkpoint of `InceptionClassifier`.
        weights: "ema", "raw", or None for the set `state_dict` holds (EMA when kept).
    """
    checkpoint = load_file(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or "model" not in hparams:
        raise ValueError(
            f"{path} is not a checkpoint of InceptionClassifier (it has no model hyperparameters)"
        )
    chosen: Weights = weights or ("ema" if has_average(checkpoint) else "raw")
    try:
        state = network_state(checkpoint, chosen)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    network = create_model(
        hparams["model"], hparams["num_classes"], **(hparams.get("model_kwargs") or {})
    )
    network.load_state_dict(state)
    return LoadedNetwork(network.eval(), chosen, checkpoint)


def export(ckpt: str | Path, out: str | Path, weights: Weights = "ema") -> Path:
    """Write the network's weights from a checkpoint as a plain state dict.

    `create_model(name, ..., checkpoint_path=out)` loads the file without a Trainer.

    Args:
        ckpt: a checkpoint written while training `InceptionClassifier`.
        out: the `.pt` file to write.
        weights: "ema" (the averaged weights) or "raw" (the optimiser's weights).
    """
    try:
        state = network_state(load_file(ckpt), weights)
    except ValueError as err:
        raise ValueError(f"{ckpt}: {err}") from None
    return atomic_write(out, lambda file: torch.save(state, file))


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
