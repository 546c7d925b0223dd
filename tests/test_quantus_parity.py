"""Parity with Quantus 0.6 (the `crosscheck` extra): the same model, inputs and maps through
Quantus's metrics and ours.

Where both are deterministic the scores agree to 1e-4. Quantus draws its own randomness in
two places, handled so:
- the randomised weights (MPRT, sMPRT, eMPRT): ours are fed the very models Quantus's own
  generator yields with the same seed (`PyTorchModel.get_random_layer_generator`), so the
  weights are identical; our own generator is checked for the same orders separately;
- sMPRT's input noise (numpy's global generator; ours is torch's): with one sample (the clean
  input, on both sides) the scores agree to 1e-4; with noise, Quantus's per-layer mean over
  images must fall within 4 standard deviations of ours over 5 noise seeds, plus 0.02 for the
  finite number of seeds (a 4-sigma band: a spurious failure about once in 15,000 runs).

The models are small plain CNNs so that Quantus's per-module randomisation stays cheap; the
definitions do not depend on the architecture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from inception_lightning.explain import (
    SIMILARITIES,
    GradCAMMap,
    SanityOptions,
    efficient_mprt,
    linear_imputation,
    pointing_game,
    random_logit,
    randomization_scores,
    randomized_models,
    road_curves,
    smooth_mprt,
)

quantus = pytest.importorskip("quantus", reason="the crosscheck extra: pip install quantus")
from quantus.functions.perturb_func import noisy_linear_imputation  # noqa: E402
from quantus.functions.similarity_func import correlation_spearman  # noqa: E402
from quantus.helpers.model.pytorch_model import PyTorchModel  # noqa: E402

SIZE = 20
SEED = 7


def small_cnn(channels: int = 3, classes: int = 3) -> nn.Sequential:
    """conv-bn-relu x2, global pooling, linear: five modules with `reset_parameters`."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    )
    with torch.no_grad():  # BatchNorm statistics that re-initialisation visibly changes
        for bn in (model[1], model[4]):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def data(n: int = 6, channels: int = 3) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, channels, SIZE, SIZE, generator=generator), torch.arange(n) % 3


def gradcam(model: nn.Module) -> GradCAMMap:
    """Signed Grad-CAM on the second conv, Captum's `LayerGradCam` output as Quantus reads it."""
    return GradCAMMap(model, "3", sign="signed")


def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object):
    """Our raw maps (not normalised) for Quantus, `[N, 1, H, W]`."""
    maps = gradcam(model).attribute(torch.as_tensor(inputs), torch.as_tensor(targets), False)
    return maps[:, None].numpy()


def quantus_layers(model: nn.Module, order: str) -> list[tuple[str, nn.Module]]:
    """The models Quantus's own generator yields, each copied as it comes."""
    import copy

    generator = PyTorchModel(model, channel_first=True).get_random_layer_generator(order, SEED)
    return [(name, copy.deepcopy(m)) for name, m in generator]


@pytest.mark.parametrize("order", ["top_down", "bottom_up", "independent"])
def test_mprt_matches_quantus_layer_by_layer(order: str) -> None:
    model = small_cnn()
    x, y = data()
    theirs = quantus.MPRT(
        layer_order=order, seed=SEED, abs=False, normalise=False, disable_warnings=True
    )(model=model, x_batch=x.numpy(), y_batch=y.numpy(), explain_func=explain_func, device="cpu")
    theirs.pop("original")
    ours = randomization_scores(
        gradcam(model).with_sign("signed"), x, y, quantus_layers(model, order),
        SIMILARITIES["spearman"],
    )  # fmt: skip
    assert ours.steps == list(theirs)
    np.testing.assert_allclose(ours.scores.numpy(), np.array(list(theirs.values())), atol=1e-4)


@pytest.mark.parametrize("order", ["top_down", "bottom_up", "independent"])
def test_our_orders_randomise_the_same_units_as_quantus(order: str) -> None:
    """Module by module (Quantus's units), ours yields the same names in the same order and
    leaves the same units random at each step (the independent order: one at a time)."""
    model = small_cnn()
    units = [n for n, m in model.named_modules() if hasattr(m, "reset_parameters")][::-1]
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    theirs = quantus_layers(model, order)
    ours = [(name, {k: v.clone() for k, v in m.state_dict().items()}) for name, m in
            randomized_models(model, order, units, seed=SEED)]  # fmt: skip
    key = {"independent": lambda pair: pair[0]}.get(order)  # Quantus: input first; ours: head
    assert sorted(n for n, _ in ours) == sorted(n for n, _ in theirs)
    if key is None:
        assert [n for n, _ in ours] == [n for n, _ in theirs]
    for (name, state), (_, their_model) in zip(
        sorted(ours, key=key) if key else ours,
        sorted(theirs, key=key) if key else theirs,
        strict=True,
    ):
        changed = {k.split(".")[0] for k, v in state.items() if not torch.equal(v, trained[k])}
        their_state = their_model.state_dict()
        theirs_changed = {k.split(".")[0] for k, v in their_state.items()
                          if not torch.equal(v, trained[k])}  # fmt: skip
        assert changed == theirs_changed, name
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_smooth_mprt_matches_quantus_without_noise_and_in_distribution_with_it() -> None:
    model = small_cnn()
    x, y = data(8)
    # Quantus evaluates the layer name where its model is called `model`: each copy's layer
    kwargs = {"method": "LayerGradCam", "gc_layer": "model[3]", "interpolate": (SIZE, SIZE),
              "interpolate_mode": "bilinear"}  # fmt: skip

    def quantus_smprt(samples: int) -> dict[str, list[float]]:
        np.random.seed(0)
        scores = quantus.SmoothMPRT(
            layer_order="bottom_up", seed=SEED, nr_samples=samples, abs=False, normalise=False,
            disable_warnings=True,
        )(model=model, x_batch=x.numpy(), y_batch=y.numpy(), explain_func=quantus.explain,
          explain_func_kwargs=kwargs, device="cpu")  # fmt: skip
        scores.pop("original")
        return scores

    def ours(samples: int, seed: int) -> Tensor:
        from inception_lightning.explain.mprt import NoiseAveraged

        smoothed = NoiseAveraged(gradcam(model), samples, 0.1, seed)
        layers = quantus_layers(model, "bottom_up")
        return randomization_scores(smoothed, x, y, layers, SIMILARITIES["spearman"]).scores

    clean = quantus_smprt(1)
    np.testing.assert_allclose(ours(1, 0).numpy(), np.array(list(clean.values())), atol=1e-4)
    noisy = np.array(list(quantus_smprt(4).values())).mean(axis=1)
    runs = torch.stack([ours(4, seed).nanmean(dim=1) for seed in range(5)]).numpy()
    spread = 4 * runs.std(axis=0, ddof=1) + 0.02
    assert (np.abs(noisy - runs.mean(axis=0)) <= spread).all(), (noisy, runs.mean(0), spread)


def test_our_smooth_mprt_check_reads_the_bottom_up_verdict_step() -> None:
    model = small_cnn()
    x, y = data(8)
    result = smooth_mprt(gradcam(model), x, y, 2, options=SanityOptions(max_depth=3))
    assert result.name == "smprt/bottom_up" and result.details["noise_samples"] == 2
    assert result.curve is not None and result.curve.x == ["3"]  # the third unit from the input


def test_smooth_mprt_reuses_the_trained_maps_as_its_clean_sample() -> None:
    model = small_cnn()
    x, y = data(8)
    method = gradcam(model).with_sign("signed")
    trained = method.attribute(x, y, normalize=False)
    for samples in (1, 3):
        options = SanityOptions(max_depth=3)
        alone = smooth_mprt(method, x, y, samples, options=options)
        reusing = smooth_mprt(method, x, y, samples, options=options, trained=trained)
        np.testing.assert_allclose(reusing.scores, alone.scores, atol=1e-5)


def test_emprt_matches_quantus() -> None:
    model = small_cnn()
    x, y = data()
    theirs = quantus.EfficientMPRT(seed=SEED, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), explain_func=explain_func,
        device="cpu",
    )  # fmt: skip
    randomized = quantus_layers(model, "bottom_up")[-1][1]  # every module random
    ours = efficient_mprt(gradcam(model), x, y, randomized=randomized)
    np.testing.assert_allclose(ours.scores, theirs, atol=1e-4)


def test_random_logit_matches_quantus_for_the_class_it_drew() -> None:
    """Quantus draws the other class with numpy; its score must be ours for one of the two
    other classes (3 classes), and ours must match it exactly when given that class."""
    model = small_cnn()
    x, y = data()
    theirs = quantus.RandomLogit(
        num_classes=3, similarity_func=correlation_spearman, seed=SEED, abs=False,
        normalise=False, disable_warnings=True,
    )(model=model, x_batch=x.numpy(), y_batch=y.numpy(), explain_func=explain_func,
      device="cpu")  # fmt: skip
    method = gradcam(model)
    per_other = [random_logit(method, x, y, 3, others=(y + shift) % 3).scores for shift in (1, 2)]
    for i, score in enumerate(theirs):
        assert min(abs(score - options[i]) for options in per_other) <= 1e-4, i


def test_pointing_game_matches_quantus_without_tolerance() -> None:
    """Quantus has no tolerance; ours with tolerance 0 on maps without ties is its game."""
    generator = torch.Generator().manual_seed(3)
    maps = torch.rand(16, SIZE, SIZE, generator=generator)
    masks = torch.zeros(16, SIZE, SIZE, dtype=torch.bool)
    for i in range(16):
        top, left = torch.randint(0, SIZE - 8, (2,), generator=generator).tolist()
        masks[i, top : top + 8, left : left + 8] = True
    x, y = data(16)
    theirs = quantus.PointingGame(abs=False, normalise=False, disable_warnings=True)(
        model=small_cnn(), x_batch=x.numpy(), y_batch=y.numpy(), a_batch=maps[:, None].numpy(),
        s_batch=masks[:, None].numpy().astype(float), device="cpu",
    )  # fmt: skip
    ours = pointing_game(maps, masks, tolerance=0)
    assert 0 < ours.sum() < 16  # some hits, some misses
    np.testing.assert_allclose(ours.numpy(), np.array(theirs, dtype=float), atol=1e-4)


def test_imputation_matches_quantus_sparse_solve() -> None:
    """Our batched conjugate-gradient solve of ROAD's system against Quantus's SciPy one."""
    generator = torch.Generator().manual_seed(4)
    images = torch.randn(3, 3, 47, 47, generator=generator)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(3, 1, 47, 47, generator=generator), 9, 1, 4)
    removed = torch.stack([smooth[i, 0] > smooth[i].quantile(q) for i, q in
                           enumerate((0.9, 0.5, 0.1))])  # fmt: skip
    ours = linear_imputation(images, removed, tolerance=1e-6, max_iterations=2000)
    for i in range(3):
        indices = torch.nonzero(removed[i].flatten()).flatten().numpy()
        theirs = noisy_linear_imputation(images[i].numpy(), indices, noise=0.0)
        np.testing.assert_allclose(ours[i].numpy(), theirs, atol=1e-4)


def test_road_matches_quantus_on_a_one_channel_model() -> None:
    """Quantus 0.6's ROAD broadcasts a one-channel map over the input's channels and then
    indexes the image with channel-expanded positions (IndexError on RGB inputs), so the
    comparison runs on one-channel images; without noise both are deterministic. Quantus has
    MoRF only: its MoRF of the reversed map is our LeRF. The model's own predictions are the
    targets and the map is the pixels' magnitude, so the curves fall and differ."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 5, padding=2), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten()
    ).eval()
    x, _ = data(12, channels=1)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    maps = x[:, 0].abs()
    percentages = [10, 30, 50, 70, 90]

    def quantus_morf(a_batch: Tensor) -> np.ndarray:
        road = quantus.ROAD(
            percentages=percentages, noise=0.0, abs=False, normalise=False, disable_warnings=True
        )
        theirs = road(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                      a_batch=a_batch[:, None].numpy(), device="cpu")  # fmt: skip
        return np.array([theirs[p] for p in percentages])

    ours = road_curves(model, x, maps, y, [p / 100 for p in percentages], noise=0.0)
    morf, lerf = ours.morf_hits[:, 1:].mean(dim=0), ours.lerf_hits[:, 1:].mean(dim=0)
    assert morf.max() - morf.min() > 0.3 and (lerf - morf).abs().max() > 0.3
    np.testing.assert_allclose(morf.numpy(), quantus_morf(maps), atol=1e-4)
    np.testing.assert_allclose(lerf.numpy(), quantus_morf(maps.max() - maps), atol=1e-4)
