"""Attributions of the input pixels, by Captum: integrated gradients and occlusion.

Both return one value per input channel and pixel; `attribution.to_map` sums the colour
channels (a pixel's attribution, as Captum's `visualize_image_attr` does) and normalises.
The baseline is the zero input, which after the datasets' `normalize` is the mean colour.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion
from torch import Tensor, nn

from inception_lightning.explain.attribution import Attribution, Interpolation, SignMode


class IntegratedGradientsMap(Attribution):
    """Integrated gradients (Sundararajan et al. 2017) by Captum, optionally smoothed.

    `(x - baseline) * mean over `steps` points of the path of dy_c/dx`; with
    `noise_samples > 0`, Captum's `NoiseTunnel` averages it over that many copies of the
    input with Gaussian noise of `noise_stdev` ("SmoothGrad", Smilkov et al. 2017), drawn from
    a generator seeded with `seed` on every call so that maps are reproducible.

    Args:
        model: maps images to logits.
        steps: points on the straight path from the baseline (Riemann, trapezoid).
        noise_samples: noisy copies per image for NoiseTunnel; 0: plain integrated gradients.
        noise_stdev: the noise's standard deviation in model-input units (0.3: 15% of the
            [-1, 1] range of Inception's normalisation, SmoothGrad's 10-20%).
        seed: seeds the noise.
        sign: None takes "relu" (positive contributions: evidence for the class).
        interpolation: unused (maps are at the input size already); kept for one signature.
        batch_size: images per pass; Captum runs `batch_size` path points at a time.
    """

    name = "integrated_gradients"
    costly = True

    def __init__(
        self,
        model: nn.Module,
        steps: int = 32,
        noise_samples: int = 0,
        noise_stdev: float = 0.3,
        seed: int = 0,
        sign: SignMode | None = None,
        interpolation: Interpolation = "bilinear",
        batch_size: int = 32,
    ) -> None:
        if steps < 1 or noise_samples < 0 or noise_stdev < 0:
            raise ValueError(
                "integrated_gradients needs steps >= 1, noise_samples >= 0 and noise_stdev >= 0,"
                f" got {steps}, {noise_samples} and {noise_stdev}"
            )
        self.steps, self.noise_samples, self.noise_stdev = steps, noise_samples, noise_stdev
        self.seed = seed
        super().__init__(model, sign, interpolation, batch_size)

    def describe(self) -> str:
        noise = f", NoiseTunnel {self.noise_samples}x sd {self.noise_stdev:g}"
        return f"{self.name} ({self.sign}, {self.steps} steps{noise if self.noise_samples else ''})"

    def _bind(self, model: nn.Module) -> None:
        self._ig = IntegratedGradients(model)
        self._tunnel = NoiseTunnel(self._ig)

    def _maps(self, inputs: Tensor, targets: list[int]) -> Tensor:
        args = {"target": targets, "n_steps": self.steps, "internal_batch_size": self.batch_size}
        if self.noise_samples == 0:
            raw = self._ig.attribute(inputs, **args)
        else:
            devices = [inputs.device] if inputs.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                raw = self._tunnel.attribute(
                    inputs,
                    nt_type="smoothgrad",
                    nt_samples=self.noise_samples,
                    nt_samples_batch_size=1,
                    stdevs=self.noise_stdev,
                    **args,
                )
        return self._finish(raw, tuple(inputs.shape[-2:]))


class OcclusionMap(Attribution):
    """Occlusion (Zeiler & Fergus 2014) by Captum's `Occlusion`: the drop of the class score
    when a `window` x `window` square (all channels) is set to the baseline, slid with
    `stride`; each pixel averages the windows that cover it.

    Args:
        model: maps images to logits.
        window: the square's side in pixels; None: an eighth of the input's shorter side
            (10 px at 79 px, 37 px at 299 px), at least 3.
        stride: None: half the window.
        sign: None takes "relu" (regions whose removal lowers the score).
        interpolation: unused (maps are at the input size already).
        batch_size: images per pass; Captum evaluates `batch_size` occluded copies at a time.
    """

    name = "occlusion"
    costly = True

    def __init__(
        self,
        model: nn.Module,
        window: int | None = None,
        stride: int | None = None,
        sign: SignMode | None = None,
        interpolation: Interpolation = "bilinear",
        batch_size: int = 32,
    ) -> None:
        if (window is not None and window < 1) or (stride is not None and stride < 1):
            raise ValueError(f"occlusion window and stride must be positive: {window}, {stride}")
        self.window, self.stride = window, stride
        super().__init__(model, sign, interpolation, batch_size)

    def describe(self) -> str:
        window = "1/8 of the input" if self.window is None else f"{self.window} px"
        return f"{self.name} ({self.sign}, window {window})"

    def _bind(self, model: nn.Module) -> None:
        self._occlusion = Occlusion(model)

    def _maps(self, inputs: Tensor, targets: list[int]) -> Tensor:
        window = self.window or max(3, round(min(inputs.shape[-2:]) / 8))
        stride = self.stride or max(1, window // 2)
        raw = self._occlusion.attribute(
            inputs,
            sliding_window_shapes=(inputs.shape[1], window, window),
            strides=(inputs.shape[1], stride, stride),
            target=targets,
            perturbations_per_eval=max(1, self.batch_size // len(inputs)),
        )
        return self._finish(raw, tuple(inputs.shape[-2:]))
