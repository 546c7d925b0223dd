"""Attribution report: the methods' table and curves, files, HTML, escaping, containment."""

import copy
import functools
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_tree
from PIL import Image

from inception_lightning import create_model
from inception_lightning.data import Normalize
from inception_lightning.data.folders.report_dataset import evaluation_dataset
from inception_lightning.data.transforms.preprocessing import Preprocessing
from inception_lightning.explain import (
    Batch,
    Explainer,
    ExplainSpec,
    MethodRun,
    Predictions,
    SanityOptions,
    ScoreOptions,
    auc,
    balanced_sample,
    build_report,
    explain_batch,
    load_batch,
    make_attribution,
    meaning,
    predict_probs,
    road_check,
    run_checks,
    safe_name,
    write_report,
)
from inception_lightning.explain.html_report import write_atomic
from inception_lightning.explain.render import overlay

EVIL = ["<script>alert(1)</script>", "../../evil", "plain"]


class Collector(HTMLParser):
    """Collects tags, `img` sources and text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.sources += [v for k, v in attrs if tag == "img" and k == "src" and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@functools.cache
def cached_runs() -> list[MethodRun]:
    """Grad-CAM and HiResCAMMap on 6 images, half of them wrong, with MPRT 3 deep in each order
    on 3 of them and ROAD."""
    torch.manual_seed(0)
    model = create_model("inception_v3", num_classes=3, width=0.125, stem=79, aux_head=False)
    pixels = torch.randint(0, 256, (6, 3, 39, 39), dtype=torch.uint8)
    images = Normalize((0.5,) * 3, (0.5,) * 3)(pixels)
    methods = [make_attribution(name, model) for name in ("gradcam", "hirescam")]
    preds = predict_probs(methods[0], images).argmax(dim=1)
    labels = torch.where(torch.arange(6) % 2 == 0, preds, (preds + 1) % 3)  # half wrong
    masks = torch.zeros(6, 39, 39, dtype=torch.bool)
    masks[:, 10:30, 10:30] = True
    batch = Batch(list(range(100, 106)), pixels, images, labels, masks)
    options = SanityOptions(max_depth=3, min_samples=2)
    runs = []
    for m in methods:
        explanation = explain_batch(m, batch, steps=2, road=True)
        checks = run_checks(m, images[:3], labels[:3], 3, options, ["mprt"])
        checks.append(road_check(explanation.road, options))
        runs.append(MethodRun(m.name, m.describe(), explanation, checks))
    return runs


def make_runs() -> list[MethodRun]:
    """A fresh copy of `cached_runs` (computed once), which a test may change."""
    return copy.deepcopy(cached_runs())


def test_report_files_html_and_escaping(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "report"
    runs = make_runs()
    index = write_report(out, runs, EVIL, {"model": "<b>tiny</b>", "layer": "mixed_7c"})
    assert index == out / "index.html"
    html = index.read_text()
    assert "<script>" not in html and "<b>tiny</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parser = Collector()
    parser.feed(html)
    assert "script" not in parser.tags and "b" not in parser.tags  # <b>tiny</b> is text
    assert "<script>alert(1)</script>" in "".join(parser.text)  # shown as text, not run
    assert parser.sources and all((out / src).is_file() for src in parser.sources)
    assert {p.suffix for p in out.rglob("*") if p.is_file()} == {".html", ".json", ".png"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["info"]["model"] == "<b>tiny</b>"
    assert [m["method"] for m in summary["methods"]] == ["gradcam", "hirescam"]
    for row, run in zip(summary["methods"], runs, strict=True):
        assert row["count"] == 6 and row["accuracy"] == pytest.approx(0.5)
        assert row["empty"] == int(run.explanation.empty.sum())
        scores = run.explanation.scores["pointing_game"]
        assert row["pointing_game"] == pytest.approx(scores.nanmean().item(), nan_ok=True)
        names = ["mprt/top_down", "mprt/bottom_up", "mprt/independent", "road"]
        assert list(row["checks"]) == names
        for check in run.checks:
            assert row["checks"][check.name]["outcome"] == check.verdict.outcome
            assert row["checks"][check.name]["seconds_per_image"] > 0
            assert meaning(check) in html  # what it means, beside each verdict
        assert [c["name"] for c in row["sanity"]] == names
        assert row["sanity"][0]["curve"]["x"] == ["head", "mixed_7c", "mixed_7b"]
        assert row["road_combined"] == pytest.approx(
            run.explanation.scores["road_combined"].nanmean().item(), nan_ok=True
        )
        assert row["seconds_per_image"] > 0 and set(row["per_class"]) <= set(EVIL)
    assert "<h3>gradcam</h3>" in html and "<h3>hirescam</h3>" in html
    # mixed_7c feeds global pooling and one linear layer: Grad-CAM and HiResCAM coincide
    assert "gradcam and hirescam give the same maps on every image" in html
    assert (out / "sanity.png").is_file() and 'src="sanity.png"' in html
    wrong = [img for img in summary["images"] if img["wrong"]]
    assert len(wrong) == 3
    assert all("pred_overlay" in img["files"][m] for img in wrong for m in ("gradcam", "hirescam"))
    assert [len(img["top3"]) for img in summary["images"]] == [3] * 6
    html_misclassified = html.split("Misclassified (3)")[1]
    assert all(img["files"]["hirescam"]["pred_overlay"] in html_misclassified for img in wrong)


def test_empty_maps_are_reported_as_empty_and_json_has_no_nan(tmp_path: Path) -> None:
    runs = make_runs()
    expl = runs[0].explanation
    expl.maps[1] = 0  # as if the model had no evidence at all for the true class
    expl.scores["pointing_game"][1] = float("nan")
    write_report(tmp_path, runs[:1], EVIL, {})
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text
    summary = json.loads(text)
    assert summary["methods"][0]["empty"] == 1
    assert summary["images"][1]["empty"]["gradcam"] is True
    assert summary["images"][1]["scores"]["gradcam"]["pointing_game"] is None
    assert "gradcam (empty)" in (tmp_path / "index.html").read_text()


def test_nothing_is_written_outside_out(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out"
    write_report(out, make_runs()[:1], EVIL, {})
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert written and all(p.is_relative_to(out) for p in written)
    assert all(p.is_relative_to(out) for p in tmp_path.rglob("*evil*"))
    assert not any(p.name.startswith(".tmp-") for p in written)
    assert safe_name("../../evil") == "evil" and safe_name("<>") == "x"
    with pytest.raises(ValueError, match="outside"):
        write_atomic(out, "../../evil.png", b"x")
    with pytest.raises(ValueError, match="outside"):
        write_atomic(out, str(tmp_path / "abs.png"), b"x")
    assert not (tmp_path / "a" / "evil.png").exists() and not (tmp_path / "abs.png").exists()


VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class Nesting(HTMLParser):
    """Checks that every element is closed, in order; records the rows of each table and
    the `details` elements."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []
        self.details = 0
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.details += tag == "details"
        self.sources += [v for k, v in attrs if tag == "img" and k == "src" and v]
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.errors.append(f"</{tag}> closes nothing open")


def test_report_plots_exist_html_nests_and_classes_go_worst_first(tmp_path: Path) -> None:
    runs = make_runs()
    # 3 classes over 12 images: class 0 right 4 of 4, class 1 right 1 of 4, class 2 2 of 4;
    # the explained sample holds classes 0 and 1, which the report must list 1 first.
    labels = torch.tensor([0] * 4 + [1] * 4 + [2] * 4)
    predicted = torch.tensor([0, 0, 0, 0, 1, 0, 0, 2, 2, 2, 1, 1])
    probs = torch.full((12, 3), 0.1).scatter_(1, predicted[:, None], 0.8)
    index = write_report(tmp_path, runs, EVIL, {}, 2, Predictions(probs, labels))
    html = index.read_text()
    parser = Nesting()
    parser.feed(html)
    assert parser.errors == [] and parser.open == [], parser.errors or parser.open

    plots = {p.name for p in (tmp_path / "plots").iterdir()}
    assert plots == {"curves.png", "reliability.png", "confusion.png"}
    with Image.open(tmp_path / "plots" / "curves.png") as curves:
        assert curves.width == 4 * 500  # 5-inch panels: deletion, insertion, ROAD MoRF, LeRF
    for name in plots:
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{name}" in parser.sources

    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = summary["evaluation"]["per_class"]
    by_accuracy = [(r["name"], r["accuracy"]) for r in rows]
    assert by_accuracy == [(EVIL[1], 0.25), (EVIL[2], 0.5), (EVIL[0], 1.0)]
    assert rows[0]["confused_with"] == EVIL[0] and rows[0]["confused_share"] == 0.5
    assert summary["evaluation"]["accuracy"] == pytest.approx(7 / 12)
    # every image at confidence 0.8: ECE = |7/12 - 0.8|
    assert summary["evaluation"]["ece"] == pytest.approx(0.8 - 7 / 12, abs=1e-6)
    for method in summary["methods"]:  # each method's scores by class, in the same order
        assert list(method["per_class"]) == [EVIL[1], EVIL[0]]
    folds = len(runs) + len({int(label) for label in runs[0].explanation.labels})
    assert parser.details == folds  # scores by class per method, then one fold per class
    gallery = html.split("Gallery by class")[1]
    assert gallery.index("../../evil") < gallery.index("&lt;script&gt;")  # worst class first


def test_reliability_bins_and_ece_by_hand() -> None:
    # confidences 0.95 (bin 14: one right of two) and 0.55 (bin 8: both right)
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    bins = Predictions(probs, torch.tensor([0, 1, 0, 0])).reliability()
    assert bins.counts.tolist() == [0] * 8 + [2] + [0] * 5 + [2]
    assert bins.accuracy[8] == 1.0 and bins.accuracy[14] == 0.5
    assert bins.confidence[8] == pytest.approx(0.55) and bins.confidence[14] == pytest.approx(0.95)
    assert bins.ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)


def test_curves_start_and_end_at_the_intact_images_probability() -> None:
    expl = make_runs()[0].explanation
    for name in ("deletion", "insertion"):
        curve = expl.curves[name]
        assert curve.shape == (6, 3)  # steps=2: 3 points
        torch.testing.assert_close(auc(curve), expl.scores[f"{name}_auc"], equal_nan=True)
    intact = expl.probs.gather(1, expl.preds[:, None])[:, 0]
    shown = ~expl.curves["deletion"].isnan().any(dim=1)  # empty maps have no curve
    assert shown.any()
    torch.testing.assert_close(expl.curves["deletion"][shown, 0], intact[shown])  # none deleted
    torch.testing.assert_close(expl.curves["insertion"][shown, -1], intact[shown])  # all in


def test_a_known_image_comes_back_in_its_true_colours(tmp_path: Path) -> None:
    """Round trip through the real path: file -> dataset -> normalised model input ->
    explanation -> report PNG and overlay, against the file's own pixels."""
    # a gradient in a narrow range (40..200) on each channel: a min-max stretch would show
    # 0..255, and the wrong mean/std would shift it
    y, x = torch.meshgrid(torch.arange(40), torch.arange(40), indexing="ij")
    known = torch.stack([40 + 4 * x, 200 - 4 * y, 60 + 2 * (x + y)]).to(torch.uint8)
    for name in ("a", "b"):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        Image.fromarray(known.permute(1, 2, 0).numpy()).save(folder / "known.png")
    preprocessing = Preprocessing(40, crop_pct=1.0, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    dataset = evaluation_dataset(tmp_path / "data", preprocessing)
    model = create_model("inception_v3", num_classes=2, width=0.125, stem=79, aux_head=False)
    explainer = Explainer(make_attribution("gradcam", model), dataset, steps=2)
    expl = explainer.explain([0])

    assert (dataset.normalize.invert(expl.images[0]).int() - known.int()).abs().max() <= 1
    unblended = overlay(expl.pixels[0], expl.maps[0], alpha=0.0)
    assert np.array_equal(unblended, known.permute(1, 2, 0).numpy())
    run = MethodRun("gradcam", explainer.attribution.describe(), expl)
    write_report(tmp_path / "report", [run], dataset.classes, {})
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    shown = Image.open(tmp_path / "report" / summary["images"][0]["files"]["original"])
    shown = torch.from_numpy(np.asarray(shown.convert("RGB"))).permute(2, 0, 1)
    assert (shown.int() - known.int()).abs().max() <= 1


def test_build_report_explains_the_seeded_sample_checks_its_first_images_and_predicts_all(
    tmp_path: Path,
) -> None:
    """The one pipeline behind GradCam's end-of-fit report and the `report` command."""
    root = write_tree(tmp_path / "data", ("a", "b", "c"), ("val",), n=3, size=(47, 47))
    dataset = evaluation_dataset(root, Preprocessing(47, crop_pct=1.0))
    model = create_model("inception_v3", num_classes=3, width=0.125, stem=79, aux_head=False)
    spec = ExplainSpec(["layercam", "gradcam"], scores=ScoreOptions(steps=2), seed=3)
    sanity = SanityOptions(
        samples=3, max_depth=2, orders=("top_down",), checks=("mprt",), min_samples=2
    )

    index = build_report(spec, model, dataset, tmp_path / "r", {"run": "here"}, 2, sanity, False)

    summary = json.loads((index.parent / "summary.json").read_text())
    sample = balanced_sample(dataset.labels, per_class=2, seed=3)
    assert len(sample) == 6 and [image["index"] for image in summary["images"]] == sample
    assert [m["method"] for m in summary["methods"]] == ["layercam", "gradcam"]
    assert summary["evaluation"]["images"] == 9  # every image of the folder predicted
    assert summary["info"] == {"run": "here"}
    # the sanity check: on the sample's first 3 images, 2 units deep, seeded with spec's seed
    first = load_batch(dataset, sample[:3])
    (by_hand,) = run_checks(
        make_attribution("layercam", model), first.images, first.labels, 3, sanity, ["mprt"], 3
    )
    (checked,) = summary["methods"][0]["sanity"]
    assert checked["name"] == by_hand.name == "mprt/top_down"
    assert checked["curve"]["x"] == by_hand.curve.x
    assert by_hand.curve.x[:2] == ["head", "mixed_7c"]
    assert len(checked["scores"]) == 3
    assert checked["scores"] == pytest.approx(by_hand.scores, abs=1e-6, nan_ok=True)
    assert checked["verdict"]["outcome"] == by_hand.verdict.outcome
