"""GradCam callback: TensorBoard output, equality with Captum, methods, sanity checks,
inference mode, ranks, report."""

import io
import json
from collections.abc import Callable
from copy import deepcopy
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import Dataset

from inception_lightning.callbacks import InceptionEMA
from inception_lightning.callbacks.grad_cam import VERDICT_VALUES, GradCam
from inception_lightning.data import Normalize
from inception_lightning.explain import (
    METHODS,
    Explainer,
    MapOptions,
    ReportOptions,
    SampleOptions,
    SanityOptions,
    ScoreOptions,
    make_attribution,
)
from inception_lightning.training import InceptionClassifier, LossOptions

SIZE = 47
SCORES = ["deletion_auc", "insertion_auc", "pointing_game", "energy_pointing_game"]
CHEAP = ["mprt_top_down", "mprt_bottom_up", "mprt_independent", "emprt", "random_logit"]
METRICS = [*SCORES, "empty", *(f"sanity/{c}{v}" for c in CHEAP for v in ("", "_verdict"))]


class Squares(Dataset):
    """A bright square of the class's colour channel on noise; `mask` is the square.

    A `LabelledImages`: uint8 items that `normalize` makes model input, like the package's own.
    """

    def __init__(self, n: int = 18) -> None:
        self.classes = ["red", "green", "<script>alert(1)</script>"]
        self.normalize = Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(n, 3, SIZE, SIZE, generator=g) * 13 + 128
        self.labels = [i % 3 for i in range(n)]
        self.corners = torch.randint(0, SIZE - 16, (n, 2), generator=g).tolist()
        for i, (y, x) in enumerate(self.corners):
            noise[i, self.labels[i], y : y + 16, x : x + 16] += 127
        self.images = noise.round().clamp(0, 255).to(torch.uint8)
        self.has_masks = True

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], self.labels[i]

    def mask(self, i: int) -> torch.Tensor:
        y, x = self.corners[i]
        m = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        m[y : y + 16, x : x + 16] = True
        return m


@pytest.fixture
def v3(classifier: Callable[..., InceptionClassifier]) -> Callable[[], InceptionClassifier]:
    """The project's module on a seeded tiny Inception-v3, plain cross-entropy and SGD."""
    kwargs = {"width": 0.125, "stem": 79, "aux_head": False}
    no_smoothing = LossOptions(label_smoothing=0.0)
    return partial(classifier, num_classes=3, model_kwargs=kwargs, loss=no_smoothing, sgd=0.01)


class Probe(Callback):
    """Placed around GradCam: records the state and the autograd context before it, and
    checks the state is back after it."""

    def __init__(self) -> None:
        self.flags: list[bool] = []
        self.checked = 0
        self.contexts: list[tuple[bool, bool]] = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        flags = [m.training for m in pl_module.modules()]
        hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in pl_module.modules())
        if not self.flags:
            self.flags = flags
            self.contexts.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
            assert hooks == 0
            pl_module.model.head.train()  # a mixed state GradCam must restore as it is
            self.flags = [m.training for m in pl_module.modules()]
        else:
            assert flags == self.flags and hooks == 0
            self.checked += 1
            self.flags = []


@pytest.fixture
def logged(trainer: Callable[..., pl.Trainer]) -> Callable[..., pl.Trainer]:
    """`logged(root, callbacks, **kwargs)`: a trainer logging to TensorBoard in `root/tb`."""

    def make(root: Path, callbacks: list[Callback], **kwargs) -> pl.Trainer:
        logger = TensorBoardLogger(root, name="tb", version=0)
        return trainer(logger=logger, callbacks=callbacks, num_sanity_val_steps=0, **kwargs)

    return make


def test_fit_logs_to_tensorboard_matches_captum_and_writes_report(
    tmp_path: Path, v3: Callable, logged: Callable, datamodule: Callable
) -> None:
    data = Squares()
    cam = GradCam(
        "features.mixed_6e",
        every_n_epochs=2,
        sample=SampleOptions(max_misclassified=2, misclassified_search=6),
        scores=ScoreOptions(steps=2),
        report=ReportOptions(dir=tmp_path / "report", per_class=2),
    )
    probe = Probe()
    module = v3()
    fit = logged(tmp_path, [probe, cam, probe], max_epochs=2, limit_train_batches=1)
    fit.fit(module, datamodule=datamodule(data))

    events = EventAccumulator(str(tmp_path / "tb" / "version_0"))
    events.Reload()
    overlays = [t for t in events.Tags()["images"] if t.startswith("gradcam/val/overlays/")]
    expl = cam.last["gradcam"]
    assert sorted(overlays) == sorted(
        f"gradcam/val/overlays/{label}_{['red', 'green', 'script_alert_1_script'][label]}/{i}"
        for label, i in zip(expl.labels.tolist(), expl.indices.tolist(), strict=True)
    )  # a picture per explained image, grouped by class
    (picture,) = events.Images(overlays[0])
    assert (picture.width, picture.height) == (400, 270)  # legible in a TensorBoard card
    assert "gradcam/val/randomization" in events.Tags()["images"]
    val_steps = [e.step for e in events.Scalars("val/acc1")][1:]  # epoch 2 only: every 2
    for name in METRICS:  # logged by Lightning with the epoch's validation metrics
        assert [e.step for e in events.Scalars(f"gradcam/val/{name}")] == val_steps
    checks = cam.last_sanity["gradcam"]  # the cheap checks at every validation
    assert [c.name.replace("/", "_") for c in checks] == CHEAP
    for check in checks:
        tag = f"gradcam/val/sanity/{check.name.replace('/', '_')}"
        assert events.Scalars(tag + "_verdict")[0].value == VERDICT_VALUES[check.verdict.outcome]
        assert events.Scalars(tag)[0].value == pytest.approx(check.verdict.mean, nan_ok=True)
        assert len(check.scores) == 6  # the sample, fewer than `sanity.samples`
    assert checks[0].curve.x[0] == "head"
    assert probe.checked == 2 and probe.contexts == [(False, False)] * 2  # fit: no_grad

    expl = cam.last["gradcam"]
    assert len(cam.samples["val"]) == 6 and expl.indices[:6].tolist() == cam.samples["val"]
    assert sorted(data.labels[i] for i in cam.samples["val"]) == [0, 0, 1, 1, 2, 2]
    model = module.model.eval()
    captum = LayerGradCam(model, model.features.mixed_6e)
    for maps, targets in ((expl.maps, expl.labels), (expl.pred_maps, expl.preds)):
        raw = captum.attribute(expl.images, target=targets.tolist(), relu_attributions=True)
        expected = LayerAttribution.interpolate(raw, (SIZE, SIZE), "bilinear")[:, 0]
        peak = expected.amax(dim=(1, 2), keepdim=True)
        torch.testing.assert_close(maps, (expected / peak).nan_to_num())

    assert (tmp_path / "report" / "index.html").is_file()
    assert (tmp_path / "report" / "sanity.png").is_file()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    reported = [c["name"] for c in summary["methods"][0]["sanity"]]  # every check, ROAD too
    assert reported == [*(c.replace("_", "/", 1) for c in CHEAP[:3]), "smprt/bottom_up",
                        "emprt", "random_logit", "road"]  # fmt: skip
    html = (tmp_path / "report" / "index.html").read_text()
    assert "&lt;script&gt;" in html and "<script>" not in html

    resumed = GradCam()
    resumed.load_state_dict(cam.state_dict())
    assert resumed.samples == cam.samples


def test_validate_and_test_get_gradients_under_inference_mode(
    tmp_path: Path, v3: Callable, logged: Callable, datamodule: Callable
) -> None:
    data = Squares()
    cam = GradCam(
        sample=SampleOptions(max_misclassified=0),
        scores=ScoreOptions(steps=2),
        sanity=SanityOptions(samples=2),
    )
    probe = Probe()
    run = logged(tmp_path, [probe, cam, probe])
    with pytest.warns(UserWarning, match=r"4x4 map.*coarser than 7x7.*stem=79\).*mixed_6e"):
        run.validate(v3(), datamodule=datamodule(data))
    assert probe.checked == 1 and probe.contexts == [(True, False)]
    assert cam.last_weights == "raw"  # no average: the module's own weights
    assert set(cam.last) == {"gradcam"}
    assert set(cam.last_metrics) == {f"gradcam/val/{name}" for name in METRICS}
    assert set(cam.last_metrics) <= set(run.callback_metrics)  # through Lightning's logging
    run.test(v3(), datamodule=datamodule(data, test=data))
    assert set(cam.samples) == {"val", "test"}
    assert set(cam.last_metrics) == {f"gradcam/test/{name}" for name in METRICS}
    assert set(cam.last_metrics) <= set(run.callback_metrics)


@pytest.mark.parametrize("loss", [None, LossOptions(mixup_alpha=0.8, cutmix_alpha=1.0)])
def test_fit_explains_the_ema_weights_the_checkpoint_will_hold(
    tmp_path: Path,
    classifier: Callable,
    logged: Callable,
    datamodule: Callable,
    loss: LossOptions | None,
) -> None:
    kwargs = {"width": 0.125, "stem": 79, "aux_head": False}
    module = classifier(num_classes=3, model_kwargs=kwargs, sgd=0.5, loss=loss or LossOptions())
    ema = InceptionEMA(decay=0.5)
    methods = ["gradcam", "integrated_gradients"]
    cam = GradCam(
        method=methods,
        sample=SampleOptions(max_misclassified=0),
        maps=MapOptions(method_options={"integrated_gradients": {"steps": 2}}),
        scores=ScoreOptions(steps=2),
        sanity=SanityOptions(samples=2, max_depth=2, orders=("top_down",), checks=("mprt",)),
        report=ReportOptions(dir=tmp_path / "report"),
    )
    data = datamodule(Squares())
    fit = logged(tmp_path, [ema, cam], max_epochs=1, limit_train_batches=2)
    fit.fit(module, datamodule=data)

    assert cam.last_weights == "ema"
    clean = data.normalize(data.val_dataset.images)  # mixed only inside the training step
    for images in (explained.images for explained in cam.last.values()):
        assert all(any(torch.equal(image, c) for c in clean) for image in images)
    average = ema.average_network()
    for method in methods:  # every method explains the averaged weights, maps and predictions
        expl = cam.last[method]
        with torch.no_grad():
            probs = average(expl.images).softmax(-1)
        torch.testing.assert_close(expl.probs, probs, rtol=0, atol=1e-6)
        options = cam.spec.maps.options_of(method)
        expected = make_attribution(method, average, options=options).attribute(
            expl.images, expl.labels
        )
        torch.testing.assert_close(expl.maps, expected)
    summary = (tmp_path / "report" / "summary.json").read_text()
    assert '"weights": "ema"' in summary


def test_several_methods_tag_by_method_fuse_layers_and_other_ranks_do_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    v3: Callable,
    logged: Callable,
    datamodule: Callable,
) -> None:
    layers = ["features.mixed_6e", "features.mixed_7c"]
    methods = ["layercam", "occlusion"]
    options = {"occlusion": {"window": 16, "stride": 16}}
    sanity = SanityOptions(samples=2)
    cam = GradCam(
        layers,
        methods,
        sample=SampleOptions(max_misclassified=0),
        maps=MapOptions(method_options=options),
        scores=ScoreOptions(steps=2),
        sanity=sanity,
    )
    module = v3()
    logged(tmp_path, [cam]).validate(module, datamodule=datamodule(Squares(6)))
    prefixes = {"/".join(k.split("/")[:3]) for k in cam.last_metrics}
    assert prefixes == {f"gradcam/val/{m}" for m in methods}
    assert set(cam.last_sanity) == set(methods)
    expl = cam.last["layercam"]
    fused = make_attribution("layercam", module.model, layers).attribute(expl.images, expl.labels)
    torch.testing.assert_close(expl.maps, fused)

    other = GradCam(layers, scores=ScoreOptions(steps=2))
    monkeypatch.setattr(pl.Trainer, "is_global_zero", property(lambda self: False))
    logged(tmp_path / "rank1", [other]).validate(v3(), datamodule=datamodule(Squares(6)))
    assert other.last == {} and other.samples == {}


def test_bad_arguments(v3: Callable) -> None:
    with pytest.raises(ValueError, match="every_n_epochs"):
        GradCam(every_n_epochs=0)
    with pytest.raises(ValueError, match="layers"):
        GradCam(layers=[])
    with pytest.raises(ValueError, match=r"maps\.sign must be one of"):
        GradCam(maps=MapOptions(sign="up"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown attribution method 'smoothgrad'"):
        GradCam(method="smoothgrad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"maps\.method_options names \['occlusion'\]"):
        GradCam(method="gradcam", maps=MapOptions(method_options={"occlusion": {"window": 3}}))
    with pytest.raises(ValueError, match=r"sanity\.threshold must lie in"):
        GradCam(sanity={"threshold": 1.5})
    with pytest.raises(ValueError, match=r"sanity\.similarity must be one of .*'pearson'"):
        GradCam(sanity=SanityOptions(similarity="pearson"))
    with pytest.raises(ValueError, match=r"sample\.per_class must be a positive integer"):
        GradCam(sample={"per_class": 0})
    with pytest.raises(ValueError, match="report has no option 'report_dir'"):
        GradCam(report={"report_dir": "out"})
    options = MapOptions(method_options={"occlusion": {"steps": 3}})
    with pytest.raises(ValueError, match="occlusion has no option 'steps'"):
        GradCam(method="occlusion", maps=options).setup(pl.Trainer(logger=False), v3(), "fit")
    with pytest.raises(ValueError, match="no submodule"):
        GradCam("features.nope").setup(pl.Trainer(logger=False), v3(), "fit")


def test_checkpoints_monitor_grad_cam_scalars(
    tmp_path: Path, v3: Callable, logged: Callable, datamodule: Callable
) -> None:
    # |map|: a barely trained network has no positive evidence for most classes, and an empty
    # map scores NaN, which a checkpoint never takes for the best
    cam = GradCam(
        sample=SampleOptions(max_misclassified=0),
        maps=MapOptions(sign="abs"),
        scores=ScoreOptions(steps=2),
        sanity=SanityOptions(samples=0),
        report=ReportOptions(enabled=False),
    )
    best = ModelCheckpoint(tmp_path / "ckpt", monitor="gradcam/val/insertion_auc", mode="max")
    fit = logged(
        tmp_path, [cam, best], max_epochs=2, limit_train_batches=1, enable_checkpointing=True
    )
    fit.fit(v3(), datamodule=datamodule(Squares(6)))
    events = EventAccumulator(str(tmp_path / "tb" / "version_0"))
    events.Reload()
    logged_values = [e.value for e in events.Scalars("gradcam/val/insertion_auc")]
    assert len(logged_values) == 2 and all(v == v for v in logged_values)  # no NaN
    assert float(best.best_model_score) == pytest.approx(max(logged_values))
    assert Path(best.best_model_path).is_file()


def test_reports_land_beside_their_runs_with_progress_unless_the_bar_is_off(
    tmp_path: Path, terminal_progress: io.StringIO, v3: Callable, datamodule: Callable
) -> None:
    shown = terminal_progress
    for bar in (True, False):
        cam = GradCam(
            every_n_epochs=5,
            sample=SampleOptions(max_misclassified=0),
            maps=MapOptions(batch_size=1),
            scores=ScoreOptions(steps=2),
            sanity=SanityOptions(samples=0),
            report=ReportOptions(per_class=1),
        )
        pl.Trainer(
            accelerator="cpu", max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0,
            logger=TensorBoardLogger(tmp_path, name="tb"), enable_checkpointing=False,
            enable_progress_bar=bar, enable_model_summary=False, callbacks=[cam],
        ).fit(v3(), datamodule=datamodule(Squares(6)))  # fmt: skip
        text, _ = shown.getvalue(), shown.truncate(0)
        assert ("deletion/insertion" in text and "3/3" in text and "images/s" in text) == bar
    for version in (0, 1):  # two runs, two reports
        report = tmp_path / "tb" / f"version_{version}" / "report"
        assert (report / "index.html").is_file() and (report / "summary.json").is_file()


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_maps_and_scores_are_fp32_whatever_the_training_precision(
    tmp_path: Path, v3: Callable, logged: Callable, datamodule: Callable, precision: str
) -> None:
    data = Squares(6)
    options = {"integrated_gradients": {"steps": 2}, "occlusion": {"window": 16, "stride": 16}}
    layer = "features.mixed_6e"
    cam = GradCam(
        layer, list(METHODS), sample=SampleOptions(max_misclassified=0),
        maps=MapOptions(method_options=options), scores=ScoreOptions(steps=2),
        sanity=SanityOptions(samples=0), report=ReportOptions(enabled=False),
    )  # fmt: skip
    module = v3()
    run = logged(tmp_path, [cam], max_epochs=1, limit_train_batches=1, precision=precision)
    run.fit(module, datamodule=datamodule(data))
    assert next(module.model.parameters()).dtype == (
        torch.bfloat16 if precision == "bf16-true" else torch.float32
    )

    # The same weights in fp32, explained by every method with no autocast anywhere.
    network = deepcopy(module.model).float()
    for method in METHODS:
        expl = cam.last[method]
        assert expl.maps.dtype == torch.float32
        attribution = make_attribution(method, network, layer, options=options.get(method))
        explainer = Explainer(attribution, data, steps=2)
        reference = explainer.explain(expl.indices.tolist())
        # fp32 against fp32: summation order alone. A bf16 forward and backward differ by ~1e-2
        # of the map's range (measured: see below), a thousand times this tolerance.
        scale = reference.maps.abs().amax()
        torch.testing.assert_close(expl.maps, reference.maps, rtol=0, atol=1e-5 * scale)
        torch.testing.assert_close(expl.probs, reference.probs, rtol=0, atol=1e-5)
        for name, values in reference.scores.items():
            torch.testing.assert_close(expl.scores[name], values, rtol=0, atol=1e-5, equal_nan=True)

    gradcam = make_attribution("gradcam", network, layer)
    reference = Explainer(gradcam, data, steps=2).explain(cam.last["gradcam"].indices.tolist())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the callback no longer does
        in_bf16 = gradcam.attribute(reference.images, reference.labels)
    scale = reference.maps.abs().amax()
    assert (in_bf16 - reference.maps).abs().amax() > 1e-3 * scale
