"""The `inception-lightning` console script."""

from __future__ import annotations

import argparse
import sys

from inception_lightning.registry import create_model, list_models
from inception_lightning.summary import format_summary, summarize


def summary_main(argv: list[str]) -> None:
    """`inception-lightning summary MODEL [--input-size N]`: the per-stage table."""
    parser = argparse.ArgumentParser(
        prog="inception-lightning summary",
        description="Per-stage output size, channels, parameters and multiply-adds.",
    )
    parser.add_argument("model", choices=list_models())
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--stem", default="299", help="299, or a low-resolution stem: 151, 79")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--aux-head", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    try:
        model = create_model(
            args.model,
            num_classes=args.num_classes,
            aux_head=args.aux_head,
            width=args.width,
            stem=args.stem,
        )
        rows = summarize(model, args.input_size)
    except ValueError as err:
        parser.error(str(err))
    title = f"{args.model} at {args.input_size}x{args.input_size} (stem {args.stem})"
    print(format_summary(rows, title))


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["summary"]:
        summary_main(argv[1:])
        return
    raise SystemExit("usage: inception-lightning summary MODEL [--input-size N]")
