"""The four variants: shapes, branches, scales, width, stems and the minimum-size error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inception_lightning import (
    InputTooSmallError,
    ResidualInceptionBlock,
    create_model,
    iter_branches,
    iter_residual_blocks,
    list_models,
)
from inception_lightning.models.stage_table import format_summary, summarize_stages

VARIANTS = ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2"]


def test_registry_lists_the_four_variants() -> None:
    assert list_models() == sorted(VARIANTS)


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'inception_v9'.*inception_resnet_v1"):
        create_model("inception_v9")


@pytest.mark.parametrize("name", VARIANTS)
def test_output_shapes_at_299_and_at_the_minimum(name: str) -> None:
    model = create_model(name, num_classes=7, width=0.125, aux_head=False).eval()
    assert model.min_input_size == 75
    with torch.no_grad():
        for size in (299, model.min_input_size):
            assert model(torch.randn(2, 3, size, size)).shape == (2, 7)


@pytest.mark.parametrize("name", VARIANTS)
def test_input_below_the_minimum_names_it(name: str) -> None:
    model = create_model(name, width=0.125, aux_head=False)
    with pytest.raises(InputTooSmallError, match=rf"{name} .*at least 75x75, got \(74, 74\)"):
        model(torch.randn(1, 3, 74, 74))


def test_aux_head_raises_the_minimum_and_says_so() -> None:
    model = create_model("inception_v3", width=0.125)
    assert model.min_input_size > 75
    with pytest.raises(InputTooSmallError, match=r"aux head.*drop the aux head"):
        model(torch.randn(1, 3, 75, 75))


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_with_aux_returns_both_heads_in_train_and_eval(name: str) -> None:
    model = create_model(name, num_classes=5, width=0.125, aux_head=True, stem=79)
    x = torch.randn(2, 3, 79, 79)
    for mode in (True, False):
        model.train(mode)
        logits, aux = model.forward_with_aux(x)
        assert logits.shape == aux.shape == (2, 5)
        assert model(x).shape == (2, 5)  # forward never returns the aux logits


def test_aux_defaults_follow_the_papers() -> None:
    assert create_model("inception_v3", width=0.125).aux is not None
    for name in VARIANTS[1:]:
        assert create_model(name, width=0.125).aux is None
    no_aux = create_model("inception_v3", width=0.125, aux_head=False).eval()
    assert no_aux.forward_with_aux(torch.randn(1, 3, 75, 75))[1] is None


def test_aux_head_has_batchnorm_in_its_convs() -> None:
    aux = create_model("inception_v3", width=0.125).aux
    assert isinstance(aux.conv0.bn, nn.BatchNorm2d) and isinstance(aux.conv1.bn, nn.BatchNorm2d)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("size", [151, 79])
def test_low_resolution_stems_keep_the_8x8_final_grid(name: str, size: int) -> None:
    model = create_model(name, width=0.125, stem=size, aux_head=False)
    assert model.spatial_sizes(size)[next(reversed(model.spatial_sizes(size)))] == (8, 8)
    assert create_model(name, width=0.125).spatial_sizes(299)["mixed_7a"] == (8, 8)
    with torch.no_grad():
        assert model.eval().forward_features(torch.randn(1, 3, size, size)).shape[-2:] == (8, 8)


def test_unknown_stem_names_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"inception_v3 has no stem 64; choose one of 299, 151, 79$"
    ):
        create_model("inception_v3", stem=64)
    with pytest.raises(ValueError, match=r"no stem '79'; choose one of .* \(stems are ints"):
        create_model("inception_v3", stem="79")


def test_branch_iteration_names_every_branch_of_v3() -> None:
    names = [(b, n) for b, n, _ in iter_branches(create_model("inception_v3", width=0.125))]
    blocks = sorted({b for b, _ in names})
    assert [b.removeprefix("features.") for b in blocks] == [
        "mixed_5b", "mixed_5c", "mixed_5d", "mixed_6a", "mixed_6b", "mixed_6c", "mixed_6d",
        "mixed_6e", "mixed_7a", "mixed_7b", "mixed_7c",
    ]  # fmt: skip
    assert [n for b, n in names if b == "features.mixed_5b"] == ["b1x1", "b5x5", "b3x3dbl", "pool"]
    assert [n for b, n in names if b == "features.mixed_7a"] == ["b3x3", "b7x7x3", "pool"]
    assert len(names) == 3 * 4 + 3 + 4 * 4 + 3 + 2 * 4


def test_branch_iteration_covers_every_block_module() -> None:
    model = create_model("inception_resnet_v2", width=0.125)
    named = {f"{b}.branches.{n}" for b, n, _ in iter_branches(model)}
    in_model = {n for n, _ in model.named_modules() if n.count(".") == 3 and ".branches." in n}
    assert named == in_model
    assert len({b for b, _, _ in iter_branches(model)}) == 1 + 10 + 1 + 20 + 1 + 10
    assert model.get_submodule("features.block35_10.branches.b3x3dbl") is not None


def test_branch_outputs_concatenate_to_the_block_output() -> None:
    block = create_model("inception_v3", width=0.125).features.mixed_7b.eval()
    x = torch.randn(1, block.branches["b1x1"][0].conv.in_channels, 8, 8)
    with torch.no_grad():
        expected = torch.cat([branch(x) for branch in block.branches.values()], dim=1)
        assert torch.equal(block(x), expected)


@pytest.mark.parametrize(
    ("name", "scales"),
    [
        ("inception_resnet_v1", {"block35": 0.17, "block17": 0.10, "block8": 0.20}),
        ("inception_resnet_v2", {"block35": 0.17, "block17": 0.10, "block8": 0.20}),
    ],
)
def test_paper_residual_scales_and_override(name: str, scales: dict[str, float]) -> None:
    blocks = dict(iter_residual_blocks(create_model(name, width=0.125)))
    for block_name, block in blocks.items():
        stage = block_name.removeprefix("features.").rsplit("_", 1)[0]
        expected = 1.0 if block_name == "features.block8_10" else scales[stage]  # TF-slim's last
        assert block.scale == expected, block_name
    overridden = dict(iter_residual_blocks(create_model(name, width=0.125, residual_scale=1.0)))
    assert {b.scale for b in overridden.values()} == {1.0}


def test_residual_block_adds_the_scaled_projection() -> None:
    block = create_model("inception_resnet_v1", width=0.125).features.block17_1.eval()
    assert isinstance(block, ResidualInceptionBlock)
    x = torch.randn(2, block.project.out_channels, 9, 9)
    seen = {}
    block.residual.register_forward_hook(lambda m, a, out: seen.setdefault("residual", out))
    with torch.no_grad():
        out = block(x)
        branches = torch.cat([b(x) for b in block.branches.values()], dim=1)
        expected_residual = block.project(branches) * 0.10
    torch.testing.assert_close(seen["residual"], expected_residual)
    torch.testing.assert_close(out, torch.relu(x + expected_residual))


def test_width_scales_every_channel_count() -> None:
    full = create_model("inception_v3", aux_head=False)
    half = create_model("inception_v3", aux_head=False, width=0.5)
    assert half.num_features == full.num_features // 2 == 1024
    full_convs = [m.out_channels for m in full.modules() if isinstance(m, nn.Conv2d)]
    half_convs = [m.out_channels for m in half.modules() if isinstance(m, nn.Conv2d)]
    assert half_convs == [round(c / 2) for c in full_convs]
    with pytest.raises(ValueError, match="width must be positive"):
        create_model("inception_v3", width=0)


@pytest.mark.parametrize(
    ("name", "aux", "count"),
    [
        ("inception_v3", False, 23_834_568),
        ("inception_v3", True, 27_161_264),
        ("inception_v4", False, 42_679_816),
        ("inception_resnet_v2", False, 55_843_464),
        # Our own count from the paper's Figs. 7 and 10-14 (timm has no IR-v1).
        ("inception_resnet_v1", False, 22_756_328),
    ],
)
def test_parameter_counts_at_1000_classes(name: str, aux: bool, count: int) -> None:
    model = create_model(name, aux_head=aux)
    assert sum(p.numel() for p in model.parameters()) == count


def test_summary_shows_v3s_multiply_adds() -> None:
    rows = summarize_stages(create_model("inception_v3", aux_head=False), 299)
    by_name = {r.name: r for r in rows}
    assert by_name["mixed_5b"].output_size == (35, 35) and by_name["mixed_5b"].channels == 256
    assert by_name["mixed_7c"].output_size == (8, 8) and by_name["mixed_7c"].channels == 2048
    assert by_name["conv2d_1a_3x3"].macs == 149 * 149 * 32 * 27  # output elements x (3 x 3 x 3)
    total = sum(r.macs for r in rows)
    assert 5.6e9 < total < 5.8e9  # the paper's ~5.7 G (v3 sect. 6)
    assert sum(r.params for r in rows) == 23_834_568
    text = format_summary(rows, "inception_v3")
    assert "5.71 G multiply-adds" in text and "mixed_6e" in text
