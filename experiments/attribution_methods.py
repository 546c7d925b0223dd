"""Which attribution method and layers locate the objects, and pass the sanity checks?

Loads a checkpoint of `conf/quickstart.yaml` (or any run on `SyntheticDataModule`), rebuilds its
validation split from the checkpoint's datamodule hyperparameters (the images the GradCam
callback explains during that run), and scores every method (the layer methods on the last
block of each grid size and on fusions of them, or on `--layer_sets`) on a class-balanced
sample: pointing game, energy pointing game, deletion/insertion AUC, ROAD, empty maps, the cost,
and each sanity check's verdict (`explain.checks`) on the sample's first images. Writes a
Markdown table and JSON into --out, and the comparison report of the best configurations into
--out/report.

    python experiments/attribution_methods.py \
        --ckpt_path runs/quickstart/version_0/checkpoints/last.ckpt --out docs/attribution_methods
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from inception_lightning.data import SyntheticDataModule
from inception_lightning.explain import (
    METHODS,
    Explainer,
    MethodRun,
    SanityOptions,
    make_attribution,
    road_check,
    write_report,
)
from inception_lightning.explain.cam import LayerMethod
from inception_lightning.explain.checks import RANDOMIZATION_CHECKS
from inception_lightning.explain.comparison import comparison_rows
from inception_lightning.models import iter_blocks
from inception_lightning.training.checkpoints import load_network

GOALS = {"pointing_game": 0.95, "energy_pointing_game": 0.6}
COLUMNS = {
    "mprt/top_down": "MPRT top-down",
    "mprt/bottom_up": "MPRT bottom-up",
    "mprt/independent": "MPRT independent",
    "smprt/bottom_up": "sMPRT",
    "emprt": "eMPRT",
    "random_logit": "random logit",
    "road": "ROAD",
}


def layer_sets(network: torch.nn.Module, size: int) -> list[list[str]]:
    """The last block of each grid size, finest last-first; then fusions of the two coarsest
    and of all of them."""
    stages = network.spatial_sizes(size)
    last_per_grid: dict[tuple[int, int], str] = {}
    for name, _ in iter_blocks(network):
        last_per_grid[stages[name.rsplit(".", 1)[-1]]] = name
    ends = list(last_per_grid.values())[::-1]  # coarsest first
    sets = [[name] for name in ends]
    if len(ends) >= 2:
        sets += [ends[1::-1], ends[::-1]]  # fine to coarse, as LayerCAM lists them
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", default="runs/quickstart/version_0/checkpoints/last.ckpt")
    parser.add_argument("--out", default="docs/attribution_methods")
    parser.add_argument("--per_class", type=int, default=35, help="35: the quickstart's val set")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sample and the checks")
    parser.add_argument(
        "--sanity",
        default="{}",
        help='SanityOptions as JSON, e.g. \'{"samples": 16, "similarity": "ssim"}\'; '
        "samples 0: no check",
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        "--layer_sets",
        nargs="+",
        help="layer sets of the layer methods, stage names joined by '+' (e.g. "
        "block17_10+block8_5); default: the last block of each grid and fusions of them",
    )
    parser.add_argument(
        "--method_options", default="{}", help='per method, e.g. \'{"occlusion": {"window": 6}}\''
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's own")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    options = SanityOptions(**json.loads(args.sanity))
    method_options = json.loads(args.method_options)
    loaded = load_network(args.ckpt_path)
    network = loaded.network
    hparams = loaded.checkpoint["datamodule_hyper_parameters"]
    data = SyntheticDataModule(**{k: v for k, v in hparams.items() if not k.startswith("_")})
    data.setup("validate")
    dataset = data.val_dataset
    size = dataset.images.shape[-1]
    sets = layer_sets(network, size)
    if args.layer_sets:
        sets = [[f"features.{name}" for name in chosen.split("+")] for chosen in args.layer_sets]
    candidates: list[tuple[str, list[str] | None]] = []
    for method in args.methods:
        if issubclass(METHODS[method], LayerMethod):
            candidates += [(method, layers) for layers in sets]
        else:
            candidates.append((method, None))

    runs: list[MethodRun] = []
    indices: list[int] = []
    for method, layers in candidates:
        attribution = make_attribution(method, network, layers, options=method_options.get(method))
        explainer = Explainer(attribution, dataset, seed=args.seed, road=options.samples > 0)
        indices = indices or explainer.sample(args.per_class)
        expl = explainer.explain(indices)
        checks = []
        if options.samples:
            checks = explainer.sanity_check(
                indices[: options.samples], options, RANDOMIZATION_CHECKS
            )
            checks.append(road_check(expl.road, options, args.seed))
        label = method if layers is None else f"{method} @ {'+'.join(short(n) for n in layers)}"
        runs.append(MethodRun(label, explainer.attribution.describe(), expl, checks))
        print(json.dumps(comparison_rows(runs[-1:], dataset.classes)[0]), flush=True)

    rows = comparison_rows(runs, dataset.classes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    (out / "table.md").write_text(markdown(rows, args, options, len(indices)))
    best = {}
    for run, row in zip(runs, rows, strict=True):
        method = run.method.split(" @ ")[0]
        if method not in best or score(row) > score(best[method][1]):
            best[method] = (run, row)
    info = {"checkpoint": args.ckpt_path, "model": network.name, "weights": loaded.weights}
    write_report(out / "report", [run for run, _ in best.values()], dataset.classes, info, 4)
    print((out / "table.md").read_text())


def short(layer: str) -> str:
    return layer.removeprefix("features.")


def score(row: dict) -> float:
    """Ranks configurations: pointing game, then energy pointing game, NaN last."""
    values = [row.get(k, math.nan) for k in GOALS]
    return sum(0.0 if math.isnan(v) else v for v in values)


def verdict(check: dict | None) -> str:
    """A table cell: the outcome and the mean, e.g. `pass -0.04`."""
    if check is None:
        return "-"
    outcome = "FAIL" if check["outcome"] == "fail" else check["outcome"]
    return f"{outcome} {check['mean']:.2f}"


def markdown(
    rows: list[dict], args: argparse.Namespace, options: SanityOptions, images: int
) -> str:
    head = (
        "| method @ layers | pointing game | energy pointing game | deletion AUC | "
        "insertion AUC | ROAD combined | empty maps | "
        + " | ".join(COLUMNS.values())
        + " | ms / image (map) | s / image (checks) |\n"
        + "| --- " * (9 + len(COLUMNS))
        + "|\n"
    )
    lines = []
    for row in rows:
        checks = row.get("checks", {})
        cost = sum(c["seconds_per_image"] for c in checks.values())
        lines.append(
            f"| {row['method']} | {row['pointing_game']:.3f} | {row['energy_pointing_game']:.3f} "
            f"| {row['deletion_auc']:.3f} | {row['insertion_auc']:.3f} "
            f"| {row.get('road_combined', math.nan):.3f} | {int(row['empty'])} | "
            + " | ".join(verdict(checks.get(name)) for name in COLUMNS)
            + f" | {1000 * row['seconds_per_image']:.1f} | {cost:.2f} |"
        )
    note = (
        f"\n{images} validation images of `{args.ckpt_path}`, seed {args.seed}; sanity checks on "
        f"{options.samples} of them ({options.similarity}; sMPRT with {options.noise_samples} "
        f"noisy copies, {options.pixel_noise_samples} for integrated gradients and occlusion); "
        + ("ROAD on all of them.\n" if options.samples else "no ROAD.\n")
    )
    return head + "\n".join(lines) + "\n" + note


if __name__ == "__main__":
    main()
