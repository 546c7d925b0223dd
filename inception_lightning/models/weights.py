"""Reading state dicts from disk and mapping timm's layouts onto ours."""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

HEAD_PREFIXES = ("head.fc.", "aux.fc.")
TIMM_AUX_PREFIX = "AuxLogits."  # timm's only aux head (inception_v3)


class CheckpointError(ValueError):
    """An unusable checkpoint or state-dict file; the message names the file and the fix."""


class UnsafeCheckpointError(CheckpointError):
    """A file needs arbitrary unpickling, which is refused unless explicitly allowed."""


# A Lightning checkpoint keeps the LightningModule's weights under this key, and the network's
# own under the prefix of `InceptionClassifier.model`; `training.checkpoints` builds on both.
STATE_DICT_KEY = "state_dict"
NETWORK_PREFIX = "model."

_ZIP_START = b"PK\x03\x04"  # torch.save's format since torch 1.6
_PICKLE_START = b"\x80"  # the legacy format: a pickle stream
_UNSAFE = "Weights only load failed"  # torch's UnpicklingError for objects outside its allowlist
TRUST_HINT = "if you made it yourself, pass trust_pickle=True (CLI: --model.init.trust_pickle true)"


def load_file(path: str | Path, trust_pickle: bool = False, trust_hint: str = TRUST_HINT) -> Any:
    """`torch.load` a file onto the CPU, with `weights_only=True` unless `trust_pickle`.

    Every failure is one `CheckpointError` (or `FileNotFoundError`) that names the file and the
    fix: an empty or truncated file, a file `torch.save` did not write, or one that only
    arbitrary unpickling can rebuild.

    Args:
        path: the file.
        trust_pickle: allow arbitrary unpickling; only for files you made yourself.
        trust_hint: how the caller's user opts in to `trust_pickle`, for the unsafe-file error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist or is not a file")
    with path.open("rb") as file:
        start = file.read(4)
    if not start:
        raise CheckpointError(f"{path} is empty: the save was interrupted; use another checkpoint")
    if not start.startswith((_ZIP_START, _PICKLE_START)):
        raise CheckpointError(
            f"{path} is not a checkpoint: torch.save did not write it (it starts with "
            f"{start!r}); pass the .ckpt file training wrote, or a .pt/.safetensors state dict"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        if _UNSAFE not in str(err):
            raise _corrupt(path, start, err) from None
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise UnsafeCheckpointError(
            f"{path} holds objects{what} that only arbitrary unpickling can rebuild, which could "
            f"run code from the file; {trust_hint}"
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as err:
        raise _corrupt(path, start, err) from None


def _corrupt(path: Path, start: bytes, err: BaseException) -> CheckpointError:
    if start.startswith(_ZIP_START):
        reason = "its zip archive is incomplete"
    else:
        reason = f"{type(err).__name__}: {_first_line(err)}"
    return CheckpointError(
        f"{path} is truncated or corrupt ({reason}): it was cut short while being written or "
        "copied; copy it again, or use an earlier checkpoint"
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else "no message"


def read_state_dict(path: str | Path, trust_pickle: bool = False) -> dict[str, Tensor]:
    """Read a network's state dict from a `.pt`/`.pth`/`.ckpt` or `.safetensors` file.

    Lightning checkpoints are unwrapped: their `state_dict` without the `model.` prefix (the EMA
    weights when the run kept them; `training.checkpoints.network_state` picks either set).

    Args:
        path: the file.
        trust_pickle: allow arbitrary unpickling; only for files you made yourself.
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors.torch import load_file as load_safetensors

        return load_safetensors(path)
    obj = load_file(path, trust_pickle)
    if isinstance(obj, Mapping) and STATE_DICT_KEY in obj:
        obj = obj[STATE_DICT_KEY]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix(NETWORK_PREFIX): v for k, v in obj.items()}


def is_native(state: Mapping[str, Tensor]) -> bool:
    """Whether a state dict uses our key layout (timm's classifiers are never `head.fc`)."""
    return "head.fc.weight" in state


def map_timm_state_dict(
    source: Mapping[str, Tensor], target: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Rename a timm state dict to our keys.

    Our blocks register their layers in timm's order, so the mapping pairs tensors in order
    (feature layers, classifier, aux head), checking each pair's kind and shape. Classifier
    tensors whose shape differs (another `num_classes`) are left out.
    """
    src_main = [(k, v) for k, v in source.items() if not k.startswith(TIMM_AUX_PREFIX)]
    src_aux = [(k, v) for k, v in source.items() if k.startswith(TIMM_AUX_PREFIX)]
    tgt_main = [(k, v) for k, v in target.items() if not k.startswith("aux.")]
    tgt_aux = [(k, v) for k, v in target.items() if k.startswith("aux.")]
    mapped = _pair_in_order(src_main, tgt_main)
    if src_aux and tgt_aux:
        mapped.update(_pair_in_order(src_aux, tgt_aux))
    return mapped


def map_to_timm_state_dict(
    source: Mapping[str, Tensor], target: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Rename our state dict to the keys of a timm (or torchvision) Inception network's.

    The inverse of `map_timm_state_dict`: `timm_model.load_state_dict(mapped)` then computes
    what ours computes. Every tensor must pair up, classifier included (same `num_classes`).
    """
    src_main = [(k, v) for k, v in source.items() if not k.startswith("aux.")]
    src_aux = [(k, v) for k, v in source.items() if k.startswith("aux.")]
    tgt_main = [(k, v) for k, v in target.items() if not k.startswith(TIMM_AUX_PREFIX)]
    tgt_aux = [(k, v) for k, v in target.items() if k.startswith(TIMM_AUX_PREFIX)]
    mapped = _pair_in_order(src_main, tgt_main, heads=())
    if src_aux and tgt_aux:
        mapped.update(_pair_in_order(src_aux, tgt_aux, heads=()))
    return mapped


def _pair_in_order(
    source: list[tuple[str, Tensor]],
    target: list[tuple[str, Tensor]],
    heads: tuple[str, ...] = HEAD_PREFIXES,
) -> dict[str, Tensor]:
    if len(source) != len(target):
        raise ValueError(
            f"the state dict has {len(source)} tensors where the model has {len(target)}: "
            "it was saved from another architecture"
        )
    mapped = {}
    for (src_key, src), (tgt_key, tgt) in zip(source, target, strict=True):
        same_kind = src_key.rsplit(".", 1)[-1] == tgt_key.rsplit(".", 1)[-1]
        if same_kind and src.shape == tgt.shape:
            mapped[tgt_key] = src
        elif not (same_kind and heads and tgt_key.startswith(heads)):
            raise ValueError(
                f"cannot map {src_key} {tuple(src.shape)} onto {tgt_key} {tuple(tgt.shape)}: "
                "the state dict was saved from another architecture or width"
            )
    return mapped


def load_into(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load our-layout or timm-layout weights; heads of another size stay freshly initialised."""
    target = model.state_dict()
    if is_native(state):
        mapped = {
            k: v
            for k, v in state.items()
            if not (k.startswith(HEAD_PREFIXES) and k in target and v.shape != target[k].shape)
        }
    else:
        mapped = map_timm_state_dict(state, target)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected:
        raise ValueError(f"{source}: keys the model does not have: {unexpected[:5]}")
    if missing and not all(k.startswith(HEAD_PREFIXES) or k.startswith("aux.") for k in missing):
        raise ValueError(f"{source}: the model's keys {missing[:5]} are missing from the file")
    if missing:
        log.info("%s: %d head tensors left freshly initialised", source, len(missing))
