"""Smooth MPRT and efficient MPRT (Hedström et al. 2023, "Sanity Checks Revisited",
arXiv 2401.06465, sect. 4).

- sMPRT: MPRT on maps averaged over `N` noisy copies of each input, `x + N(0, sigma^2)` with
  sigma a share (0.1) of the image's value range, so that the noise a method's maps carry
  does not pass for a change of the model. Bottom-up by default, as the paper recommends.
- eMPRT: no step-by-step comparison at all: the relative rise in the maps' complexity
  (entropy of a 100-bin histogram, `similarity.complexity_rise`) from the trained to the
  fully randomised model. A map that depends on the model turns noisier when the model is
  random; a map that ignores it (an edge detector, or noise) keeps its complexity.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from inception_lightning.explain.attribution import Attribution, model_device
from inception_lightning.explain.explain_options import SanityOptions
from inception_lightning.explain.randomization import Order, fully_randomized
from inception_lightning.explain.sanity import model_randomization, synchronize
from inception_lightning.explain.similarity import complexity, complexity_rise
from inception_lightning.explain.verdict import CheckResult, bootstrap_verdict

EMPRT_THRESHOLD = 0.05


class NoiseAveraged(Attribution):
    """Another attribution's maps averaged over noisy copies of the input (sMPRT's maps).

    Sample `i < N - 1` adds Gaussian noise of standard deviation `magnitude * (max - min)` of
    each image; the last sample is the clean input (as Quantus's sMPRT), unless `clean` is
    False (every sample noisy, the same draws). The noise is drawn from `seed` on every call,
    so the trained and the randomised model see the same noisy inputs and the comparison sees
    the model's change, not the noise's (Quantus draws new noise for every model).

    Args:
        base: the method to average.
        samples: N, the copies per image.
        magnitude: the noise as a share of each image's value range.
        seed: seeds the noise.
        clean: the last sample is the clean input.
    """

    name = "noise_averaged"

    def __init__(
        self, base: Attribution, samples: int, magnitude: float, seed: int = 0, clean: bool = True
    ) -> None:
        if samples < 1 or magnitude < 0:
            raise ValueError(f"samples must be >= 1 and magnitude >= 0: {samples}, {magnitude}")
        self.base, self.samples, self.magnitude, self.seed = base, samples, magnitude, seed
        self.clean = clean
        self._generator = torch.Generator()
        super().__init__(base.model, base.sign, base.interpolation, base.batch_size)

    @property
    def explained_layers(self) -> list[str]:
        return self.base.explained_layers

    @property
    def costly(self) -> bool:  # type: ignore[override]
        return self.base.costly

    def describe(self) -> str:
        return f"{self.base.describe()}, averaged over {self.samples} noisy copies"

    def attribute(
        self, inputs: Tensor, targets: Tensor | Sequence[int], normalize: bool = True
    ) -> Tensor:
        self._generator = torch.Generator(model_device(self.model)).manual_seed(self.seed)
        return super().attribute(inputs, targets, normalize)

    def _bind(self, model: nn.Module) -> None:
        if self.base.model is not model:
            self.base = self.base.with_model(model)

    def _maps(self, inputs: Tensor, targets: list[int]) -> Tensor:
        flat = inputs.flatten(1)
        sigma = (flat.amax(dim=1) - flat.amin(dim=1)).view(-1, 1, 1, 1) * self.magnitude
        total = torch.zeros((), device=inputs.device)
        for i in range(self.samples):
            noisy = inputs.detach().clone()
            if i < self.samples - 1 or not self.clean:
                draw = torch.randn(inputs.shape, generator=self._generator, device=inputs.device)
                noisy = noisy + draw * sigma
            total = total + self.base._maps(noisy, targets)
        return total / self.samples


def smooth_mprt(
    attribution: Attribution,
    inputs: Tensor,
    targets: Tensor | Sequence[int],
    samples: int,
    order: Order = "bottom_up",
    options: SanityOptions | None = None,
    seed: int = 0,
    trained: Tensor | None = None,
) -> CheckResult:
    """sMPRT: `sanity.model_randomization` of maps averaged over `samples` noisy copies, at the
    verdict's step alone (a curve would cost `samples` maps a step).

    Args:
        attribution: the method on the trained model.
        inputs: images `[N, 3, H, W]`.
        targets: the class explained per image.
        samples: noisy copies per image (N; 1 is MPRT itself).
        order: the randomisation order (the paper: bottom-up).
        options: similarity, threshold, depth, noise magnitude and verdict settings.
        seed: seeds the noise and the bootstrap (the weights drawn: `options.model_seed`).
        trained: the trained model's un-normalised maps of the clean `inputs`, if already
            computed: the average's clean sample, so only the noisy ones are mapped.
    """
    options = options or SanityOptions()
    magnitude = options.noise_magnitude
    smoothed = NoiseAveraged(attribution, samples, magnitude, seed)
    trained_smoothed = trained
    if trained is not None and samples > 1:
        noisy = NoiseAveraged(attribution, samples - 1, magnitude, seed, clean=False)
        noisy_mean = noisy.attribute(inputs, targets, normalize=False).cpu()
        trained_smoothed = (noisy_mean * (samples - 1) + trained) / samples
    result = model_randomization(
        smoothed, inputs, targets, order, options, seed, trained_smoothed, f"smprt/{order}", False
    )
    result.details.update(noise_samples=samples, noise_magnitude=options.noise_magnitude)
    return result


def efficient_mprt(
    attribution: Attribution,
    inputs: Tensor,
    targets: Tensor | Sequence[int],
    options: SanityOptions | None = None,
    seed: int = 0,
    trained: Tensor | None = None,
    randomized: nn.Module | None = None,
    threshold: float = EMPRT_THRESHOLD,
) -> CheckResult:
    """eMPRT: the relative rise in complexity from the trained to the fully randomised model.

    Args:
        attribution: the method on the trained model.
        inputs: images `[N, 3, H, W]`.
        targets: the class explained per image.
        options: verdict settings (`min_samples`, `confidence`).
        seed: seeds the bootstrap (the weights drawn: `options.model_seed`).
        trained: the trained model's un-normalised maps of `inputs`, if already computed.
        randomized: the fully randomised model; None: `randomization.fully_randomized`.
        threshold: the rise the mean must exceed to pass. Hedström et al. read any rise as a
            pass; 5% keeps the sampling noise of a model-independent map (about 1%) out.
    """
    options = options or SanityOptions()
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if trained is None:
        trained = attribution.attribute(inputs, targets, normalize=False).cpu()
    start = time.perf_counter()
    randomized = (
        fully_randomized(attribution.model, seed=options.model_seed)
        if randomized is None
        else randomized
    )
    maps = attribution.with_model(randomized).attribute(inputs, targets, normalize=False).cpu()
    synchronize(attribution.model)
    seconds = time.perf_counter() - start
    rise = complexity_rise(trained, maps)
    verdict = bootstrap_verdict(
        rise, threshold, True, options.confidence, min_images=options.min_samples, seed=seed
    )
    return CheckResult(
        name="emprt",
        statistic="complexity rise, trained -> fully randomised model",
        scores=[float(v) for v in rise],
        verdict=verdict,
        seconds_per_image=seconds / max(1, len(targets)),
        details={
            "complexity_trained": float(complexity(trained).mean()),
            "complexity_randomized": float(complexity(maps).mean()),
            "method": attribution.describe(),
        },
    )
