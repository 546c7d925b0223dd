"""`inception-lightning export`: a checkpoint's network as a state dict or an ONNX model."""

from __future__ import annotations

from pathlib import Path

from inception_lightning.path_checks import CheckpointFile, OutputFile
from inception_lightning.training.checkpoints import Weights
from inception_lightning.training.exporter import export as export_network


def export(ckpt_path: CheckpointFile, out: OutputFile, weights: Weights | None = None) -> Path:
    """Write a checkpoint's network as a plain state dict (.pt) or an ONNX model (.onnx).

    The .pt file loads with `create_model(name, ..., checkpoint_path=FILE)`. The ONNX model has
    a dynamic batch size, takes normalised `images` and returns `logits`; its metadata holds the
    class names and the preprocessing. ONNX needs the `onnx` extra
    (pip install 'inception-lightning[onnx]').

    Args:
        ckpt_path: a checkpoint written while training InceptionClassifier.
        out: the file to write, .pt or .onnx (its folder is made if missing).
        weights: "ema" (the averaged weights) or "raw"; null: those the checkpoint's
            state_dict holds (the average, when the run kept one).
    """
    return export_network(ckpt_path, out, weights, show_progress=None)  # a bar on terminals
