"""Exporting a checkpoint's network: a plain state dict (.pt) or an ONNX model (.onnx)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from inception_lightning.console import progress
from inception_lightning.files import atomic_write
from inception_lightning.training.checkpoints import LoadedNetwork, Weights, load_network

FORMATS = (".pt", ".onnx")
ONNX_INPUT = "images"
ONNX_OUTPUT = "logits"
ONNX_EXTRA = "pip install 'inception-lightning[onnx]'"


class ExportError(RuntimeError):
    """The network cannot be written in the requested format; the message says what to do."""


def export(
    ckpt: str | Path,
    out: str | Path,
    weights: Weights | None = None,
    show_progress: bool | None = False,
) -> Path:
    """Write a checkpoint's network as a plain state dict (.pt) or an ONNX model (.onnx).

    `create_model(name, ..., checkpoint_path=out)` loads the .pt file without a Trainer. The
    ONNX model takes `images` (float `[N, 3, S, S]`, normalised as the checkpoint's
    preprocessing says, any N) and returns `logits`; its metadata holds the class names, the
    preprocessing, the model and the weight set as JSON strings.

    Args:
        ckpt: a checkpoint written while training `InceptionClassifier`.
        out: the file to write; its suffix picks the format.
        weights: "ema" (the averaged weights), "raw" (the optimiser's), or None: the set the
            checkpoint's `state_dict` holds.
        show_progress: a bar over the two steps, reading and writing (None: on a terminal;
            see `console.progress`); an ONNX conversion takes a minute for a full-size model.
    """
    out = Path(out)
    if out.suffix not in FORMATS:
        raise ValueError(f"cannot export to {out}: name a {' or '.join(FORMATS)} file")
    writing = "writing the state dict" if out.suffix == ".pt" else "converting to ONNX"
    with progress("reading the checkpoint", 2, "steps", show_progress) as advance:
        loaded = load_network(ckpt, weights)
        advance(1, description=writing)
        if out.suffix == ".pt":
            state = loaded.network.state_dict()
            written = atomic_write(out, lambda file: torch.save(state, file))
        else:
            preprocessing = loaded.description.preprocessing or {}
            size = preprocessing.get("image_size") or int(loaded.network.stem)
            written = export_onnx(loaded.network, out, onnx_metadata(loaded, size), size)
        advance(1)
    return written


def onnx_metadata(loaded: LoadedNetwork, image_size: int) -> dict[str, str]:
    """What an ONNX model needs to be used without its checkpoint, as JSON strings."""
    description = loaded.description
    preprocessing = description.preprocessing or {"image_size": image_size}
    values = {
        "classes": description.classes,
        "preprocessing": preprocessing,
        "model": description.model,
        "model_args": description.model_args,
        "weights": loaded.weights,
        "inception_lightning_version": description.version,
    }
    return {key: json.dumps(value) for key, value in values.items()}


def export_onnx(network: nn.Module, out: Path, metadata: dict[str, str], image_size: int) -> Path:
    """Write `network` as an ONNX model with a dynamic batch size and `metadata`, atomically.

    Uses torch's own exporter (`torch.onnx.export(..., dynamo=True)`, which needs onnx and
    onnxscript); an operator it cannot translate is named in an `ExportError`.
    """
    try:
        import onnx  # noqa: F401  (torch.onnx needs both; a clear error beats its ImportError)
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(
            f"ONNX export needs onnx and onnxscript ({err.name} is missing): {ONNX_EXTRA}"
        ) from None
    # batch 2: torch.export specialises a dimension of size 1 to a constant
    sample = torch.zeros(2, 3, image_size, image_size)
    try:
        program = torch.onnx.export(
            network.eval(),
            (sample,),
            dynamo=True,
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    except Exception as err:  # torch.onnx raises many types; each is reported as one line
        raise ExportError(_unsupported(err, out)) from err
    program.model.metadata_props.update(metadata)
    proto = program.model_proto
    return atomic_write(out, lambda file: file.write(proto.SerializeToString()))


def _unsupported(err: Exception, out: Path) -> str:
    """The one-line error for a failed export: the operator, when torch.onnx names it."""
    text = str(err)
    found = re.search(r"OpOverload\(op='([\w.]+)', overload='(\w+)'\)", text) or re.search(
        r"target=torch\.ops\.([\w.]+)", text
    )
    if found is None:
        summary = text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__
        return f"torch.onnx {torch.__version__} could not export to {out}: {summary}"
    op = ".".join(group for group in found.groups() if group)
    return (
        f"torch.onnx {torch.__version__} cannot export the operator {op} (no ONNX function is "
        f"registered for it), so {out} was not written. Workarounds: export a .pt state dict "
        "and run it with PyTorch; register an ONNX function for the operator "
        "(torch.onnx.export(..., custom_translation_table={...})); or upgrade torch and "
        "onnxscript"
    )
