"""Attribution report: files, HTML, escaping and path containment."""

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from inception_lightning import create_model
from inception_lightning.data import Normalize
from inception_lightning.explain import Batch, GradCAM, explain, predict, safe_name, write_report
from inception_lightning.explain.report import write_atomic

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


def make_explanation() -> tuple:
    torch.manual_seed(0)
    model = create_model("inception_v3", num_classes=3, width=0.125, stem="79", aux_head=False)
    pixels = torch.randint(0, 256, (6, 3, 39, 39), dtype=torch.uint8)
    images = Normalize((0.5,) * 3, (0.5,) * 3)(pixels)
    cam = GradCAM(model)
    preds = predict(cam, images).argmax(dim=1)
    labels = torch.where(torch.arange(6) % 2 == 0, preds, (preds + 1) % 3)  # half wrong
    masks = torch.zeros(6, 39, 39, dtype=torch.bool)
    masks[:, 10:30, 10:30] = True
    return explain(cam, Batch(list(range(100, 106)), pixels, images, labels, masks), steps=2)


def test_report_files_html_and_escaping(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "report"
    expl = make_explanation()
    index = write_report(out, expl, EVIL, {"model": "<b>tiny</b>", "layer": "mixed_7c"})
    assert index == out / "index.html"
    html = index.read_text()
    assert "<script>" not in html and "<b>tiny</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parser = Collector()
    parser.feed(html)
    assert "script" not in parser.tags and parser.tags.count("b") == 1  # the template's own
    assert "<script>alert(1)</script>" in "".join(parser.text)  # shown as text, not run
    assert parser.sources and all((out / src).is_file() for src in parser.sources)
    assert {p.suffix for p in out.rglob("*") if p.is_file()} == {".html", ".json", ".png"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["info"]["model"] == "<b>tiny</b>"
    overall = summary["overall"]
    assert overall["count"] == 6 and overall["accuracy"] == pytest.approx(0.5)
    assert set(overall) == {
        "count",
        "accuracy",
        "deletion_auc",
        "insertion_auc",
        "pointing_game",
        "energy_pointing_game",
    }
    assert set(summary["per_class"]) <= set(EVIL)
    wrong = [img for img in summary["images"] if img["wrong"]]
    assert len(wrong) == 3 and all("pred_overlay" in img["files"] for img in wrong)
    assert [len(img["top3"]) for img in summary["images"]] == [3] * 6
    html_misclassified = html.split("Misclassified (3)")[1]
    assert all(img["files"]["pred_overlay"] in html_misclassified for img in wrong)


def test_nothing_is_written_outside_out(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out"
    write_report(out, make_explanation(), EVIL, {})
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
