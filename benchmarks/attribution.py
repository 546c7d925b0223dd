"""Each attribution method's cost per image: ours against Captum called directly on the same
inputs, with the same settings and batches.

    python benchmarks/attribution.py                  # the quickstart's network, 79 px
    python benchmarks/attribution.py --model inception_v3 --width 1 --size 299
    python benchmarks/attribution.py --tiny           # seconds, for CI

Ours includes what Captum alone does not: the inference-mode escape, eval mode and its
restoration, the channel sum, sign, resize and normalisation. The reference for `layercam`,
which Captum lacks, is Captum's `LayerGradientXActivation` (the same single pass). Figures are
medians over `--repeats`, interleaved; the ratio is Captum's time over ours (1.0: no overhead).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _common import median_times
from captum.attr import (
    GuidedGradCam,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    LayerGradientXActivation,
    Occlusion,
)
from torch import Tensor, nn

from inception_lightning import create_model
from inception_lightning.explain import METHODS, default_layer, make_attribution


def captum_direct(
    method: str, model: nn.Module, layer: str, args: argparse.Namespace
) -> Callable[[Tensor, list[int]], Tensor]:
    """Captum's own class for `method`, called as its documentation shows, on one batch."""
    module = model.get_submodule(layer)
    size = (args.size, args.size)
    if method == "gradcam":
        captum = LayerGradCam(model, module)
        return lambda x, t: LayerAttribution.interpolate(captum.attribute(x, target=t), size)
    if method in ("hirescam", "layercam"):
        captum = LayerGradientXActivation(model, module)
        return lambda x, t: LayerAttribution.interpolate(
            captum.attribute(x, target=t).sum(dim=1, keepdim=True), size
        )
    if method == "guided_gradcam":
        captum = GuidedGradCam(model, module)
        return lambda x, t: captum.attribute(
            x.requires_grad_(), target=t, interpolate_mode="bilinear"
        )
    if method == "integrated_gradients":
        captum = IntegratedGradients(model)
        return lambda x, t: captum.attribute(
            x, target=t, n_steps=args.ig_steps, internal_batch_size=args.batch_size
        )
    window = max(3, round(args.size / 8))
    stride = max(1, window // 2)
    captum = Occlusion(model)
    return lambda x, t: captum.attribute(
        x,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        target=t,
        perturbations_per_eval=max(1, args.batch_size // len(x)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model and inputs (CI)")
    parser.add_argument("--model", default="inception_resnet_v1")
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--size", type=int, default=79)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.tiny:
        args.model, args.width, args.size, args.images, args.batch_size = (
            "inception_v3",
            0.0625,
            47,
            2,
            16,
        )
        args.ig_steps, args.repeats = 2, 1
    torch.manual_seed(0)
    stem = 79 if args.size < 150 else 299
    model = create_model(args.model, num_classes=8, width=args.width, stem=stem, aux_head=False)
    model = model.to(args.device).eval()
    layer = default_layer(model)
    x = torch.randn(args.images, 3, args.size, args.size, device=args.device)
    targets = torch.randint(0, 8, (args.images,)).tolist()

    def batched(fn: Callable[[Tensor, list[int]], object]) -> Callable[[], None]:
        def run() -> None:
            for s in range(0, args.images, args.batch_size):
                fn(x[s : s + args.batch_size].clone(), targets[s : s + args.batch_size])
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        return run

    print(f"{args.model} width={args.width} {args.size}px, {args.images} images, {args.device}")
    print(f"{'method':22s} {'ours s/img':>11s} {'captum s/img':>13s} {'captum/ours':>12s}")
    for method in args.methods:
        options = {"steps": args.ig_steps} if method == "integrated_gradients" else None
        ours = make_attribution(method, model, layer, batch_size=args.batch_size, options=options)
        direct = captum_direct(method, model, layer, args)
        t_ours, t_direct = median_times([batched(ours.attribute), batched(direct)], args.repeats)
        per_ours, per_direct = t_ours / args.images, t_direct / args.images
        print(f"{method:22s} {per_ours:11.4f} {per_direct:13.4f} {t_direct / t_ours:12.3f}")


if __name__ == "__main__":
    main()
