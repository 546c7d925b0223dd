"""timm weight compatibility and local checkpoint loading, all from files the tests make."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from inception_lightning import create_model
from inception_lightning.models.weights import UnsafeCheckpointError, read_state_dict

TIMM_VARIANTS = ["inception_v3", "inception_v4", "inception_resnet_v2"]


def _timm_model_with_batch_stats(name: str, **kwargs: bool) -> nn.Module:
    """A random timm model whose BN running stats are real batch statistics (not 0/1)."""
    model = timm.create_model(name, **kwargs)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one batch sets the statistics
    with torch.no_grad():
        model(torch.randn(2, 3, 299, 299))
    return model.eval()


@pytest.mark.e2e  # full-size networks at 299 px
@pytest.mark.parametrize("name", TIMM_VARIANTS)
def test_timm_state_dict_gives_the_same_logits(name: str, tmp_path: Path) -> None:
    reference = _timm_model_with_batch_stats(name)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    ours = create_model(name, aux_head=name == "inception_v3", checkpoint_path=path).eval()
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, atol=1e-4, rtol=0)
    assert expected.std() > 0.1  # the comparison is not between near-constant outputs


@pytest.mark.e2e  # full-size networks at 299 px
def test_timm_aux_head_maps_too(tmp_path: Path) -> None:
    reference = _timm_model_with_batch_stats("inception_v3", aux_logits=True)
    path = tmp_path / "v3.pth"
    torch.save(reference.state_dict(), path)
    ours = create_model("inception_v3", checkpoint_path=path).eval()
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        features = reference.forward_preaux(x)
        expected_aux = reference.AuxLogits(features)
        torch.testing.assert_close(ours.forward_with_aux(x)[1], expected_aux, atol=1e-4, rtol=0)


@pytest.mark.e2e  # full-size networks at 299 px
def test_pretrained_goes_through_timms_loader(tmp_path: Path) -> None:
    reference = _timm_model_with_batch_stats("inception_v4")
    path = tmp_path / "released.pth"
    torch.save(reference.state_dict(), path)
    ours = create_model(
        "inception_v4", pretrained=True, pretrained_cfg_overlay={"file": str(path)}
    ).eval()
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-4, rtol=0)


@pytest.mark.e2e  # full-size networks at 299 px
def test_new_num_classes_keeps_the_backbone_and_resets_the_heads(tmp_path: Path) -> None:
    reference = _timm_model_with_batch_stats("inception_v3")
    path = tmp_path / "v3.pth"
    torch.save(reference.state_dict(), path)
    ours = create_model("inception_v3", num_classes=5, checkpoint_path=path).eval()
    assert ours.head.fc.out_features == ours.aux.fc.out_features == 5
    with torch.no_grad():
        x = torch.randn(1, 3, 299, 299)
        torch.testing.assert_close(
            ours.forward_features(x), reference.forward_features(x), atol=1e-4, rtol=0
        )


def test_our_own_state_dict_and_lightning_checkpoint_round_trip(tmp_path: Path) -> None:
    model = create_model("inception_resnet_v1", num_classes=4, width=0.125).eval()
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    lightning = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    torch.save(lightning, tmp_path / "run.ckpt")
    x = torch.randn(2, 3, 75, 75)
    for file in ("plain.pt", "run.ckpt"):
        loaded = create_model(
            "inception_resnet_v1", num_classes=4, width=0.125, checkpoint_path=tmp_path / file
        ).eval()
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))


def test_wrong_architecture_is_named(tmp_path: Path) -> None:
    torch.save(timm.create_model("inception_v3").state_dict(), tmp_path / "v3.pth")
    with pytest.raises(ValueError, match="another architecture"):
        create_model("inception_v4", checkpoint_path=tmp_path / "v3.pth")


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth"):
        create_model("inception_v3", checkpoint_path=tmp_path / "nowhere.pth")


class _Payload:
    """Stands in for any pickled object that weights_only loading must refuse."""


def test_pickled_objects_are_refused_unless_trusted(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt.*trust_pickle=True"):
        read_state_dict(path)
    assert set(read_state_dict(path, trust_pickle=True)) == {"w"}


def test_create_model_refuses_pickles_unless_trusted(tmp_path: Path) -> None:
    model = create_model("inception_resnet_v1", num_classes=4, width=0.125)
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": model.state_dict(), "extra": _Payload()}, path)
    kwargs = {"num_classes": 4, "width": 0.125, "checkpoint_path": path}
    with pytest.raises(UnsafeCheckpointError, match=r"--model\.init\.trust_pickle true"):
        create_model("inception_resnet_v1", **kwargs)
    trusted = create_model("inception_resnet_v1", trust_pickle=True, **kwargs)
    assert torch.equal(trusted.head.fc.weight, model.head.fc.weight)
