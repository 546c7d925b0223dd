"""Sanity checks: Grad-CAM on a trained tiny network passes every one; an edge detector fails
MPRT; fresh noise fools top-down MPRT but not eMPRT; the orders randomise what they say, on a
copy; the similarities by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional import spearman_corrcoef

from inception_lightning import create_model
from inception_lightning.explain import (
    CHECKS,
    Attribution,
    SanityOptions,
    cascade_units,
    complexity,
    complexity_rise,
    efficient_mprt,
    fully_randomized,
    make_attribution,
    map_ssim,
    model_randomization,
    randomized_models,
    rank_correlation,
    road_check,
    road_curves,
    run_checks,
)
from inception_lightning.explain.attribution import normalize_maps
from inception_lightning.explain.explainer import Batch, explain_batch
from inception_lightning.explain.random_logit import other_classes
from inception_lightning.explain.sanity import verdict_depth

SIZE = 47
LAYER = "features.mixed_5d"  # 20x20 at 47 px; the last block's 4x4 is too coarse for eMPRT


def squares(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A bright 14 px square in the channel of the image's class (0-2), on noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, SIZE, SIZE, generator=g) * 0.3
    labels = torch.arange(n) % 3
    corners = torch.randint(0, SIZE - 14, (n, 2), generator=g)
    for i, (y, c) in enumerate(corners.tolist()):
        x[i, labels[i], y : y + 14, c : c + 14] += 2.0
    return x, labels


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    """A tiny Inception-v3 that learned which channel holds the square (60 Adam steps)."""
    torch.manual_seed(0)
    model = create_model("inception_v3", num_classes=3, width=0.0625, stem=79, aux_head=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(60):
        x, y = squares(16, seed=step)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    x, y = squares(30, seed=1000)
    with torch.no_grad():
        assert (model(x).argmax(dim=1) == y).float().mean() > 0.9  # it learned the task
    return model


class EdgeDetector(Attribution):
    """A test double that ignores the model: the Sobel gradient magnitude of the input."""

    name = "edges"

    def _bind(self, model: nn.Module) -> None:
        pass

    def _maps(self, inputs: Tensor, targets: list[int]) -> Tensor:
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        gray = inputs.mean(dim=1, keepdim=True)
        gx = F.conv2d(gray, kx.view(1, 1, 3, 3), padding=1)
        gy = F.conv2d(gray, kx.T.reshape(1, 1, 3, 3), padding=1)
        return normalize_maps((gx**2 + gy**2).sqrt()[:, 0])


class FreshNoise(Attribution):
    """A test double that ignores the model and the input: new Gaussian noise on every call."""

    name = "noise"

    def _bind(self, model: nn.Module) -> None:
        pass

    def _maps(self, inputs: Tensor, targets: list[int]) -> Tensor:
        return torch.randn(inputs.shape[0], *inputs.shape[-2:])


def test_gradcam_on_a_trained_tiny_network_passes_every_check(trained: nn.Module) -> None:
    x, y = squares(16, seed=2000)
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    rng = torch.random.get_rng_state()
    gradcam = make_attribution("gradcam", trained, LAYER)
    options = SanityOptions(noise_samples=2)
    results = run_checks(gradcam, x, y, 3, options, CHECKS)
    results.append(road_check(road_curves(trained, x, gradcam.attribute(x, y), y)))
    names = ["mprt/top_down", "mprt/bottom_up", "mprt/independent", "smprt/bottom_up"]
    assert [r.name for r in results] == [*names, "emprt", "random_logit", "road"]
    assert {r.name: r.verdict.outcome for r in results} == {r.name: "pass" for r in results}
    top_down = results[0]
    # the curve's 3 steps, then the verdict's: mixed_5d itself random (10 units)
    assert top_down.curve.x == ["head", "mixed_7c", "mixed_7b", "mixed_5d"]
    assert results[3].curve.x == ["conv2d_2b_3x3"]  # sMPRT maps its verdict step alone
    assert all(r.verdict.images == 16 and r.seconds_per_image > 0 for r in results)
    assert all(torch.equal(v, before[k]) for k, v in trained.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng)


class CostlyEdges(EdgeDetector):
    """The edge detector, declared costly as integrated gradients and occlusion are."""

    costly = True


def test_costly_methods_check_fewer_images_and_map_only_the_verdict_steps(
    trained: nn.Module,
) -> None:
    x, y = squares(16, seed=2000)
    options = SanityOptions(noise_samples=2, pixel_noise_samples=2)
    cheap = run_checks(EdgeDetector(trained), x, y, 3, options, ("mprt",))
    assert [r.verdict.images for r in cheap] == [16] * 3
    assert [len(r.curve.x) for r in cheap] == [3, 3, 3]  # max_depth 3
    costly = run_checks(CostlyEdges(trained), x, y, 3, options, ("mprt", "smprt"))
    assert [r.verdict.images for r in costly] == [12] * 4  # pixel_samples
    # pixel_max_depth 0: each cascade maps its verdict step (3 units random) alone, the
    # independent order its first unit
    assert [r.curve.x for r in costly] == [
        ["mixed_7b"],
        ["conv2d_2b_3x3"],
        ["head"],
        ["conv2d_2b_3x3"],
    ]


def test_a_pixel_methods_one_pass_gives_its_maps_and_the_checks_trained_maps(
    trained: nn.Module,
) -> None:
    x, y = squares(12, seed=2000)
    ig = make_attribution("integrated_gradients", trained, options={"steps": 4})
    explained = explain_batch(ig, Batch(list(range(12)), x, x, y, None), steps=2)
    torch.testing.assert_close(explained.maps, ig.attribute(x, y))
    signed = ig.with_sign("signed").attribute(x, y, normalize=False)
    torch.testing.assert_close(explained.signed_maps, signed)
    options = SanityOptions(pixel_noise_samples=2)
    alone = run_checks(ig, x, y, 3, options, ("mprt", "smprt"))
    shared = run_checks(ig, x, y, 3, options, ("mprt", "smprt"), trained=explained.signed_maps)
    for a, b in zip(alone, shared, strict=True):
        torch.testing.assert_close(torch.tensor(b.scores), torch.tensor(a.scores), equal_nan=True)


def test_an_edge_detector_that_ignores_the_model_fails(trained: nn.Module) -> None:
    x, y = squares(10, seed=2000)
    edges = EdgeDetector(trained)
    for order in ("top_down", "bottom_up"):
        result = model_randomization(edges, x, y, order, SanityOptions(max_depth=4))
        assert result.curve.y == pytest.approx([1.0] * 4)
        assert result.verdict.outcome == "fail"
    ssim = model_randomization(edges, x, y, "top_down", SanityOptions(similarity="ssim"))
    assert ssim.curve.y == pytest.approx([1.0] * 3) and ssim.verdict.outcome == "fail"


def test_fresh_noise_fools_top_down_mprt_but_fails_emprt(trained: nn.Module) -> None:
    """Noise correlates with nothing, so MPRT reads "the maps changed"; but it is as complex on
    the trained model as on a random one, so eMPRT sees no rise."""
    x, y = squares(16, seed=2000)
    noise = FreshNoise(trained)
    top_down = model_randomization(noise, x, y, "top_down")
    assert abs(top_down.verdict.mean) < 0.05 and top_down.verdict.outcome == "pass"
    emprt = efficient_mprt(noise, x, y)
    assert abs(emprt.verdict.mean) < 0.01 and emprt.verdict.high < 0.02
    assert emprt.verdict.outcome == "fail"


def test_orders_randomise_a_copy_unit_by_unit_with_the_same_weights_in_each(
    trained: nn.Module,
) -> None:
    units = [name for name, _ in cascade_units(trained)]
    trained_state = {k: v.clone() for k, v in trained.state_dict().items()}

    def random_units(model: nn.Module) -> list[str]:
        return [
            u for u in units
            if any(not torch.equal(v, trained_state[f"{u}.{k}"])
                   for k, v in model.get_submodule(u).state_dict().items())
        ]  # fmt: skip

    steps = {order: [] for order in ("top_down", "bottom_up", "independent")}
    weights = {}
    for order in steps:
        for name, model in randomized_models(trained, order, seed=3, max_depth=3):
            assert model is not trained
            steps[order].append((name, random_units(model)))
            state = model.get_submodule(name).state_dict()
            weights.setdefault(name, []).append({k: v.clone() for k, v in state.items()})
    assert steps["top_down"] == [(u, units[: i + 1]) for i, u in enumerate(units[:3])]
    reverse = units[::-1]
    assert steps["bottom_up"] == [(u, sorted(reverse[: i + 1], key=units.index))
                                  for i, u in enumerate(reverse[:3])]  # fmt: skip
    assert steps["independent"] == [(u, [u]) for u in units[:3]]
    head = weights["head"]  # randomised in top-down and independent orders: the same draw
    assert all(torch.equal(head[0][k], head[1][k]) for k in head[0])
    last = fully_randomized(trained, seed=3)
    assert random_units(last) == units
    *_, (_, end) = randomized_models(trained, "top_down", seed=3)
    assert all(torch.equal(v, last.state_dict()[k]) for k, v in end.state_dict().items())
    assert all(torch.equal(v, trained_state[k]) for k, v in trained.state_dict().items())


def test_the_model_seed_draws_the_weights_whatever_the_sample_seed(trained: nn.Module) -> None:
    x, y = squares(4, seed=3000)
    method = make_attribution("layercam", trained)
    options = SanityOptions(max_depth=3, min_samples=2)
    a = model_randomization(method, x, y, "bottom_up", options, seed=1)
    b = model_randomization(method, x, y, "bottom_up", options, seed=1)
    c = model_randomization(method, x, y, "bottom_up", options, seed=2)
    assert a.scores == b.scores and a.verdict == b.verdict and a.scores == c.scores
    other = SanityOptions(max_depth=3, min_samples=2, model_seed=5)
    d = model_randomization(method, x, y, "bottom_up", other, seed=1)
    assert a.scores != d.scores


def test_a_layer_methods_top_down_verdict_waits_for_its_stage(trained: nn.Module) -> None:
    assert verdict_depth(make_attribution("gradcam", trained, LAYER), "top_down") == 10
    assert verdict_depth(make_attribution("gradcam", trained), "top_down") == 3  # mixed_7c: 2
    assert verdict_depth(make_attribution("gradcam", trained, LAYER), "bottom_up") == 3
    assert verdict_depth(make_attribution("occlusion", trained), "top_down") == 3


def test_cascade_units_run_from_the_head_down_and_skip_parameter_free_stages() -> None:
    model = create_model("inception_v3", num_classes=3, width=0.0625, aux_head=False)
    names = [name for name, _ in cascade_units(model)]
    stages = [name for name, _ in model.features.named_children()]
    assert names[0] == "head" and names[1] == "features.mixed_7c"
    assert names[-1] == f"features.{stages[0]}" and len(names) == len(stages) - 2 + 1
    assert "features.maxpool_3a_3x3" not in names  # the stem's max pools have no weights
    assert "maxpool_3a_3x3" in stages and "maxpool_5a_3x3" in stages


def test_rank_correlation_by_hand_and_on_large_tied_maps() -> None:
    a = torch.tensor([[[1.0, 2.0, 2.0, 4.0]]])
    b = torch.tensor([[[1.0, 3.0, 2.0, 4.0]]])
    # ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4); centred (-1.5, 0, 0, 1.5) and (-1.5, .5, -.5, 1.5)
    hand = (2.25 + 2.25) / ((4.5**0.5) * (5.0**0.5))
    torch.testing.assert_close(rank_correlation(a, b), torch.tensor([hand]))
    torch.testing.assert_close(
        rank_correlation(a, b)[0], spearman_corrcoef(a.flatten(), b.flatten())
    )
    assert rank_correlation(a, torch.zeros_like(a)).tolist() == [0.0]  # constant: 0
    # 299 px ReLU-like maps, mostly zero: torchmetrics' int32 tie ranks overflow here
    big = torch.zeros(1, 299, 299)
    big[0, :40, :40] = torch.rand(40, 40) + 0.1
    assert rank_correlation(big, big.sqrt()).item() == pytest.approx(1.0)
    assert rank_correlation(big, -big).item() == pytest.approx(-1.0)


def test_complexity_and_ssim_by_hand() -> None:
    spread = torch.arange(100.0).view(1, 10, 10)  # one value per bin: ln 100
    halves = torch.cat([torch.zeros(50), torch.ones(50)]).view(1, 10, 10)  # two bins: ln 2
    constant = torch.full((1, 10, 10), 3.0)
    assert complexity(torch.cat([spread, halves, constant])).tolist() == pytest.approx(
        [torch.log(torch.tensor(100.0)).item(), torch.log(torch.tensor(2.0)).item(), 0.0]
    )
    rise = complexity_rise(torch.cat([halves, constant]), torch.cat([spread, spread]))
    assert rise[0].item() == pytest.approx((4.60517 - 0.693147) / 0.693147, rel=1e-4)
    assert rise[1].isnan()  # nothing to rise from
    maps = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0))
    assert map_ssim(maps, maps).tolist() == pytest.approx([1.0, 1.0])
    assert map_ssim(10 * maps, 10 * maps + 0).tolist() == pytest.approx([1.0, 1.0])
    # on the pair's joint range, a map shrunk to a tenth is not "the same map"
    assert (map_ssim(maps, maps / 10) < 0.5).all()
    assert map_ssim(normalize_maps(maps), normalize_maps(maps / 10)).tolist() == pytest.approx(
        [1.0, 1.0]
    )


def test_other_classes_are_never_the_target_and_options_are_checked() -> None:
    targets = torch.arange(300) % 3
    others = other_classes(targets, 3, seed=0)
    assert (others != targets).all() and set(others.tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"sanity\.similarity must be one of .*'pearson'"):
        SanityOptions(similarity="pearson")
    with pytest.raises(ValueError, match=r"sanity\.orders must be one of .*'sideways'"):
        SanityOptions(orders=("sideways",))
    with pytest.raises(ValueError, match=r"sanity\.orders must name some of"):
        SanityOptions(orders=())
    with pytest.raises(ValueError, match=r"sanity\.checks must be one of .*'mprt2'"):
        SanityOptions.of({"checks": ["mprt2"]})
    with pytest.raises(ValueError, match=r"sanity\.confidence must lie in"):
        SanityOptions(confidence=1.0)
    with pytest.raises(ValueError, match="sanity has no option 'depth'"):
        SanityOptions.of({"depth": 3})
