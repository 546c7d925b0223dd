"""Forward-only work in bf16 on the CPU: does it change the report's numbers and predictions?

Deletion/insertion curves and predictions need no gradient, so they could run under bf16
autocast (with channels_last) while Grad-CAM maps stay fp32. This script measures, for a
trained checkpoint on its data, what that changes and what it saves:

- top-1 agreement of bf16 and fp32 predictions over every image of both splits;
- deletion and insertion AUC per image of the val split, from the same fp32 Grad-CAM maps of
  the predicted class, computed with fp32 and with bf16 forwards: the change of the mean and
  the largest change of one image;
- the time of those forwards in each precision (best of `--repeats`, alternating).

Forward-only work may move to bf16 only where the mean AUC changes by at most 0.01 and top-1
agrees on at least 99% of images; the last line says whether it does.

    python benchmarks/bf16_forward.py --ckpt_path runs/quickstart/version_0/checkpoints/last.ckpt
    python benchmarks/bf16_forward.py --tiny    # an untrained tiny network: proves it runs
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from inception_lightning import create_model
from inception_lightning.data import SyntheticDataModule
from inception_lightning.explain import (
    GradCAMMap,
    deletion_auc,
    insertion_auc,
    load_batch,
    predict_probs,
)
from inception_lightning.training.checkpoints import load_network

QUICKSTART = Path(__file__).resolve().parents[1] / "conf" / "quickstart.yaml"
MAX_AUC_CHANGE = 0.01
MIN_TOP1_AGREEMENT = 0.99


def bf16() -> AbstractContextManager:
    """The forward-only precision under test: bf16 autocast on the CPU."""
    return torch.autocast("cpu", dtype=torch.bfloat16)


def best_time(fns: dict[str, Callable[[], Tensor]], repeats: int) -> dict[str, float]:
    """Fewest seconds of each function over `repeats` rounds, alternating which goes first."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for repeat in range(repeats):
        for name in list(fns) if repeat % 2 == 0 else reversed(list(fns)):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def curves(
    model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor, steps: int, batch: int
) -> Tensor:
    """Deletion and insertion AUC per image, `[2, N]`, batched."""
    out = []
    for start in range(0, len(images), batch):
        part = slice(start, start + batch)
        args = (model, images[part], maps[part], targets[part], steps)
        out.append(torch.stack([deletion_auc(*args), insertion_auc(*args)]))
    return torch.cat(out, dim=1)


def main() -> None:
    """Parse arguments, measure both precisions and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", help="a checkpoint trained on the quickstart's data")
    parser.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds per precision")
    parser.add_argument("--tiny", action="store_true", help="untrained tiny network (CI)")
    args = parser.parse_args()
    data_args = yaml.safe_load(QUICKSTART.read_text())["data"]["init_args"]
    if args.tiny:
        network = create_model("inception_resnet_v1", 8, width=0.125, stem=79).eval()
        data_args |= {"num_samples": 40}
        args.steps, args.repeats = 4, 1
    elif args.ckpt_path:
        network = load_network(args.ckpt_path).network
    else:
        parser.error("give --ckpt_path (a quickstart checkpoint) or --tiny")
    data = SyntheticDataModule(**data_args)
    data.setup()
    fast = copy.deepcopy(network).to(memory_format=torch.channels_last)  # as bf16 would run
    print(
        f"threads={torch.get_num_threads()} torch={torch.__version__} model={network.name} "
        f"data={data_args} checkpoint={args.ckpt_path or '(untrained, --tiny)'}"
    )

    cam = GradCAMMap(network, batch_size=args.batch_size)
    fast_cam = GradCAMMap(fast, batch_size=args.batch_size)
    agree, total = 0, 0
    for dataset in (data.train_dataset, data.val_dataset):
        for start in range(0, len(dataset), 512):
            images = load_batch(dataset, range(start, min(start + 512, len(dataset)))).images
            fp32_top1 = predict_probs(cam, images).argmax(dim=1)
            with bf16():
                bf16_top1 = predict_probs(
                    fast_cam, images.contiguous(memory_format=torch.channels_last)
                )
            agree += int((fp32_top1 == bf16_top1.argmax(dim=1)).sum())
            total += len(images)

    val = load_batch(data.val_dataset, range(len(data.val_dataset)))
    preds = predict_probs(cam, val.images).argmax(dim=1)
    maps = cam.attribute(val.images, preds)  # fp32 maps: only the curves' forwards change
    images_cl = val.images.contiguous(memory_format=torch.channels_last)
    steps, batch = args.steps, args.batch_size
    results: dict[str, Tensor] = {}

    def run(name: str) -> Callable[[], Tensor]:
        def measure() -> Tensor:
            if name == "fp32":
                results[name] = curves(network, val.images, maps, preds, steps, batch)
            else:
                with bf16():
                    results[name] = curves(fast, images_cl, maps, preds, steps, batch)
            return results[name]

        return measure

    seconds = best_time({"fp32": run("fp32"), "bf16": run("bf16")}, args.repeats)
    change = results["bf16"] - results["fp32"]
    mean_change = change.mean(dim=1).abs()
    top1 = agree / total
    for i, metric in enumerate(("deletion", "insertion")):
        print(
            f"{metric} AUC over {len(preds)} val images: fp32 {results['fp32'][i].mean():.4f}, "
            f"bf16 {results['bf16'][i].mean():.4f}; change of the mean {mean_change[i]:.4f}, "
            f"mean |change| per image {change[i].abs().mean():.4f}, "
            f"largest {change[i].abs().max():.4f}"
        )
    print(f"top-1 agreement over {total} images: {top1:.4f} ({total - agree} differ)")
    print(
        f"curve forwards ({len(preds)} images, {steps} steps, both metrics): fp32 "
        f"{seconds['fp32']:.2f} s, bf16 + channels_last {seconds['bf16']:.2f} s: "
        f"{seconds['fp32'] / seconds['bf16']:.2f}x"
    )
    small = bool(mean_change.max() <= MAX_AUC_CHANGE) and top1 >= MIN_TOP1_AGREEMENT
    verdict = "small enough: bf16 may run them" if small else "too large: they stay fp32"
    print(
        f"change {verdict} (mean AUC change <= {MAX_AUC_CHANGE}, "
        f"top-1 agreement >= {MIN_TOP1_AGREEMENT:.0%})"
    )


if __name__ == "__main__":
    main()
