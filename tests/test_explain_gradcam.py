"""GradCAMMap and the machinery every method shares: hand computation, equality with Captum,
sign modes, normalisation, hooks, train/eval state, precision."""

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from helpers import TwoChannelNet
from torch import nn

from inception_lightning import create_model
from inception_lightning.explain import GradCAMMap, empty_maps, eval_mode, normalize_maps


def lerp4(p: float, q: float) -> list[float]:
    """Bilinear 2 -> 4 samples, align_corners=False: source x = (i + 0.5) / 2 - 0.5, clamped."""
    return [p, 0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q, q]


def upsample4(coarse: torch.Tensor) -> torch.Tensor:
    """A 2x2 map brought to 4x4 by hand, rows then columns (bilinear is separable)."""
    rows = torch.tensor([lerp4(*row) for row in coarse.tolist()])
    return torch.tensor([lerp4(*col) for col in rows.T.tolist()]).T


def tiny_inception() -> nn.Module:
    torch.manual_seed(0)
    return create_model("inception_v3", num_classes=3, width=0.125, stem=79, aux_head=False)


def hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_tiny_net_matches_hand_computation() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # block sums s = [[10, 18], [42, 50]]; d y_0 / d A_k = W[0, k] / 4, so alpha = (1/4, 1/8)
    # and the class-0 map is s / 4 - s / 8 = s / 8; class 1: alpha = (0, 1/4), map = -s / 4.
    # Each map is then upsampled to 4x4 and divided by its largest magnitude (50/8 and 50/4).
    s = torch.tensor([[10.0, 18.0], [42.0, 50.0]])
    net = TwoChannelNet()
    torch.testing.assert_close(GradCAMMap(net, "conv").attribute(x, [0])[0], upsample4(s / 50))
    signed = GradCAMMap(net, "conv", sign="signed").attribute(x, [1])[0]
    torch.testing.assert_close(signed, upsample4(-s / 50))
    torch.testing.assert_close(
        GradCAMMap(net, "conv", sign="abs").attribute(x, [1])[0], signed.abs()
    )
    empty = GradCAMMap(net, "conv").attribute(x, [1])  # relu(-s / 4): no evidence for class 1
    assert empty.abs().sum() == 0 and empty_maps(empty).tolist() == [True]


@pytest.mark.parametrize("sign", ["relu", "abs", "signed"])
def test_equals_captum_called_directly(sign: str) -> None:
    model = tiny_inception().eval()
    x = torch.randn(5, 3, 47, 47)
    targets = [0, 2, 1, 1, 0]
    cam = GradCAMMap(model, sign=sign, batch_size=2)
    assert cam.layer == "features.mixed_7c"
    raw = LayerGradCam(model, model.get_submodule(cam.layer)).attribute(x, target=targets)
    raw = {"relu": raw.clamp(min=0), "abs": raw.abs(), "signed": raw}[sign]
    expected = LayerAttribution.interpolate(raw, (47, 47), "bilinear")[:, 0]
    peak = expected.abs().amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(cam.attribute(x, targets), expected / peak)


def test_normalize_maps_keeps_zero_maps() -> None:
    maps = torch.tensor([[[2.0, -4.0]], [[0.0, 0.0]], [[0.5, 0.25]]])
    expected = torch.tensor([[[0.5, -1.0]], [[0.0, 0.0]], [[1.0, 0.5]]])
    torch.testing.assert_close(normalize_maps(maps), expected)
    assert empty_maps(maps).tolist() == [False, True, False]


def test_inference_mode_escape_and_state_restored() -> None:
    model = tiny_inception()
    model.train()
    model.head.eval()  # a mixed state must come back exactly
    flags = [m.training for m in model.modules()]
    stats = model.features.mixed_7c.branches.b1x1[0].bn.running_mean.clone()
    x = torch.randn(2, 3, 47, 47)
    with eval_mode(model):
        expected = GradCAMMap(model).attribute(x, [0, 1])
    before = hooks(model)
    with torch.inference_mode():
        maps = GradCAMMap(model).attribute(torch.randn(2, 3, 47, 47) * 0 + x, [0, 1])
    torch.testing.assert_close(maps, expected)
    assert [m.training for m in model.modules()] == flags
    assert hooks(model) == before == 0
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(model.features.mixed_7c.branches.b1x1[0].bn.running_mean, stats)


def test_hooks_removed_after_a_failing_forward() -> None:
    model = tiny_inception()
    with pytest.raises(ValueError, match="needs inputs of at least"):
        GradCAMMap(model).attribute(torch.randn(1, 3, 8, 8), [0])
    assert hooks(model) == 0 and model.training


def test_parameters_created_in_inference_mode_give_a_clear_error() -> None:
    with torch.inference_mode():
        net = TwoChannelNet()
    with pytest.raises(RuntimeError, match="inference tensors"):
        GradCAMMap(net, "conv").attribute(torch.ones(1, 1, 4, 4), [0])


def test_in_place_relu_layers_match_an_out_of_place_copy() -> None:
    model = tiny_inception().eval()
    copy = tiny_inception().eval()
    for module in copy.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    x = torch.randn(3, 3, 47, 47)
    for layer in ("features.mixed_7c.branches.b1x1", "features.mixed_7b.branches.b1x1.0.act"):
        torch.testing.assert_close(
            GradCAMMap(model, layer, sign="signed").attribute(x, [0, 1, 2]),
            GradCAMMap(copy, layer, sign="signed").attribute(x, [0, 1, 2]),
        )


def test_channels_last_and_bf16_autocast() -> None:
    model = tiny_inception().eval()
    x = torch.randn(3, 3, 47, 47)
    reference = GradCAMMap(model, sign="signed").attribute(x, [0, 1, 2])
    model = model.to(memory_format=torch.channels_last)
    cl = GradCAMMap(model, sign="signed").attribute(
        x.to(memory_format=torch.channels_last), [0, 1, 2]
    )
    torch.testing.assert_close(cl, reference, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = GradCAMMap(model, sign="signed").attribute(x, [0, 1, 2])
    assert low.dtype == torch.float32 and low.isfinite().all()
    corr = torch.corrcoef(torch.stack([low.flatten(), reference.flatten()]))[0, 1]
    assert corr > 0.9


def test_grids_and_bad_arguments() -> None:
    model = tiny_inception()
    x = torch.randn(2, 3, 47, 47)
    assert GradCAMMap(model, "features.mixed_6e").grids(x) == [(9, 9)]
    assert GradCAMMap(model, ["features.mixed_6e", "features.mixed_7c"]).grids(x) == [
        (9, 9),
        (4, 4),
    ]
    assert GradCAMMap(model).grids(torch.randn(1, 3, 79, 79)) == [(8, 8)]
    sizes = model.spatial_sizes(47)  # the stage grids the callback suggests layers from
    assert (sizes["mixed_6e"], sizes["mixed_7c"]) == ((9, 9), (4, 4))
    assert hooks(model) == 0
    with pytest.raises(ValueError, match="no submodule"):
        GradCAMMap(model, "features.nope")
    with pytest.raises(ValueError, match="sign"):
        GradCAMMap(model, sign="positive")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="targets"):
        GradCAMMap(model).attribute(torch.randn(2, 3, 47, 47), [0])
