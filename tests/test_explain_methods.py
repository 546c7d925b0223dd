"""Every attribution method against Captum called directly, or a hand computation; fusion;
the registry; empty maps through the explainer."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from captum.attr import (
    GuidedGradCam,
    IntegratedGradients,
    LayerAttribution,
    LayerGradientXActivation,
    NoiseTunnel,
    Occlusion,
)
from helpers import TwoChannelNet
from torch import Tensor, nn

from inception_lightning import create_model
from inception_lightning.data import Normalize
from inception_lightning.explain import (
    METHODS,
    Batch,
    Method,
    explain_batch,
    fuse,
    make_attribution,
    summarize_explanation,
)

SIZE = 47
TARGETS = [0, 2, 1]
LAYER = "features.mixed_7c"


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    net = create_model("inception_v3", num_classes=3, width=0.0625, stem=79, aux_head=False)
    return net.eval()


@pytest.fixture(scope="module")
def images() -> Tensor:
    return torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def finish(raw: Tensor, sign: str = "relu") -> Tensor:
    """The shared post-processing, by hand: channel sum, sign, bilinear resize, peak 1 (an
    all-zero map stays zero)."""
    summed = raw.sum(dim=1, keepdim=True)
    summed = {"relu": summed.clamp(min=0), "abs": summed.abs(), "signed": summed}[sign]
    maps = LayerAttribution.interpolate(summed, (SIZE, SIZE), "bilinear")[:, 0]
    return (maps / maps.abs().amax(dim=(1, 2), keepdim=True)).nan_to_num()


def layer_gradients(model: nn.Module, x: Tensor, layer: str) -> tuple[Tensor, Tensor]:
    """Activations of `layer` and the gradients of each image's target logit, by autograd."""
    saved: list[Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, out: saved.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    (grads,) = torch.autograd.grad(logits[range(len(x)), TARGETS].sum(), saved[0])
    return saved[0].detach(), grads


def test_registry_lists_every_method_of_the_literal() -> None:
    assert tuple(METHODS) == get_args(Method)
    assert [cls.name for cls in METHODS.values()] == list(METHODS)


def test_gradcam_hirescam_and_layercam_by_hand(model: nn.Module, images: Tensor) -> None:
    acts, grads = layer_gradients(model, images, LAYER)
    hand = {
        "gradcam": grads.mean(dim=(2, 3), keepdim=True) * acts,
        "hirescam": grads * acts,
        "layercam": grads.clamp(min=0) * acts,
    }
    for method, raw in hand.items():
        maps = make_attribution(method, model).attribute(images, TARGETS)
        torch.testing.assert_close(maps, finish(raw), msg=method)
        assert (maps.amax(dim=(1, 2)) == 1).sum() >= 2, method  # not merely empty maps
    assert not torch.allclose(finish(hand["hirescam"]), finish(hand["layercam"]))


def test_hirescam_equals_captum_layer_gradient_x_activation(
    model: nn.Module, images: Tensor
) -> None:
    captum = LayerGradientXActivation(model, model.get_submodule(LAYER))
    expected = finish(captum.attribute(images, target=TARGETS))
    torch.testing.assert_close(
        make_attribution("hirescam", model).attribute(images, TARGETS), expected
    )


def test_guided_gradcam_equals_captum(model: nn.Module, images: Tensor) -> None:
    captum = GuidedGradCam(model, model.get_submodule(LAYER))
    raw = captum.attribute(
        images.clone().requires_grad_(), target=TARGETS, interpolate_mode="bilinear"
    )
    maps = make_attribution("guided_gradcam", model, batch_size=2).attribute(images, TARGETS)
    torch.testing.assert_close(maps, finish(raw, "abs"))


def test_integrated_gradients_and_noise_tunnel_equal_captum(
    model: nn.Module, images: Tensor
) -> None:
    options = {"steps": 8}
    maps = make_attribution("integrated_gradients", model, options=options).attribute(
        images, TARGETS
    )
    raw = IntegratedGradients(model).attribute(images, target=TARGETS, n_steps=8)
    torch.testing.assert_close(maps, finish(raw), rtol=1e-4, atol=1e-5)

    options = {"steps": 4, "noise_samples": 3, "noise_stdev": 0.2, "seed": 5}
    smooth = make_attribution("integrated_gradients", model, options=options)
    torch.manual_seed(5)
    raw = NoiseTunnel(IntegratedGradients(model)).attribute(
        images, nt_samples=3, nt_samples_batch_size=1, stdevs=0.2, target=TARGETS, n_steps=4
    )
    torch.testing.assert_close(smooth.attribute(images, TARGETS), finish(raw), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(smooth.attribute(images, TARGETS), smooth.attribute(images, TARGETS))


def test_occlusion_equals_captum(model: nn.Module, images: Tensor) -> None:
    occlusion = make_attribution("occlusion", model, options={"window": 12, "stride": 7})
    raw = Occlusion(model).attribute(
        images,
        sliding_window_shapes=(3, 12, 12),
        strides=(3, 7, 7),
        target=TARGETS,
        perturbations_per_eval=8,
    )
    torch.testing.assert_close(occlusion.attribute(images, TARGETS), finish(raw))
    default = make_attribution("occlusion", model)  # window: an eighth of 47 px, stride half
    raw = Occlusion(model).attribute(
        images[:1],
        sliding_window_shapes=(3, 6, 6),
        strides=(3, 3, 3),
        target=TARGETS[:1],
        perturbations_per_eval=32,
    )
    torch.testing.assert_close(default.attribute(images[:1], TARGETS[:1]), finish(raw))


def test_several_layers_fuse_as_layercam(model: nn.Module, images: Tensor) -> None:
    layers = ["features.mixed_6e", LAYER]
    each = [
        make_attribution("layercam", model, layer).attribute(images, TARGETS) for layer in layers
    ]
    fused = make_attribution("layercam", model, layers).attribute(images, TARGETS)
    hand = torch.maximum(torch.tanh(2 * each[0]), torch.tanh(2 * each[1]))
    torch.testing.assert_close(fused, hand / hand.amax(dim=(1, 2), keepdim=True))
    assert fuse([each[0]]) is each[0]


def test_every_method_gives_normalised_maps_at_the_input_size(
    model: nn.Module, images: Tensor
) -> None:
    fast = {"integrated_gradients": {"steps": 2}, "occlusion": {"window": 16, "stride": 16}}
    for method in METHODS:
        maps = make_attribution(method, model, options=fast.get(method)).attribute(images, TARGETS)
        assert maps.shape == (3, SIZE, SIZE) and maps.dtype == torch.float32, method
        peaks = maps.abs().amax(dim=(1, 2))
        assert ((peaks == 1) | (peaks == 0)).all() and (maps >= 0).all(), method


def test_bad_methods_and_options(model: nn.Module) -> None:
    with pytest.raises(ValueError, match="unknown attribution method 'smoothgrad'"):
        make_attribution("smoothgrad", model)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"occlusion has no option 'steps'.*window"):
        make_attribution("occlusion", model, options={"steps": 3})
    with pytest.raises(ValueError, match=r"no submodule named 'features\.nope'"):
        make_attribution("layercam", model, "features.nope")
    with pytest.raises(ValueError, match="steps >= 1"):
        make_attribution("integrated_gradients", model, options={"steps": 0})
    ig = make_attribution("integrated_gradients", model, layers="features.nope")
    assert ig.describe() == "integrated_gradients (relu, 32 steps)"  # layers: layer methods only


def test_empty_maps_are_counted_not_scored() -> None:
    pixels = torch.arange(32, dtype=torch.uint8).view(2, 1, 4, 4)
    normalize = Normalize((0.0,), (1.0,))
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, 0, 0] = True  # an empty map would "point" at (0, 0), inside the object
    labels = torch.tensor([0, 1])  # class 1's map is empty
    batch = Batch([0, 1], pixels, normalize(pixels), labels, masks)
    expl = explain_batch(make_attribution("gradcam", TwoChannelNet(), "conv"), batch, steps=2)
    assert expl.empty.tolist() == [False, True]
    assert (
        expl.scores["pointing_game"][1].isnan() and expl.scores["energy_pointing_game"][1].isnan()
    )
    overall = summarize_explanation(expl, ["a", "b"])["overall"]
    assert overall["empty"] == 1 and overall["count"] == 2
    assert overall["pointing_game"] == expl.scores["pointing_game"][0].item()  # of 1 image
    assert expl.seconds_per_image > 0
