"""Streaming with LitData: convert writes chunks, StreamingImageDataModule trains from them.

A `local:` URL stands in for object storage: LitData reads it through a downloader into a
cache folder, as it reads `s3://`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    KILLED_RUN_HEAD,
    TINY,
    assert_same,
    fit_in,
    kill_when_written,
    logged_metrics,
    write_tree,
)
from PIL import Image

from inception_lightning.cli import main
from inception_lightning.data import DatasetError, ImageFolderDataModule
from inception_lightning.data.data_options import AugmentOptions, CropOptions, LoaderOptions
from inception_lightning.data.streaming.chunk_info import INFO_FILE, ChunkInfo
from inception_lightning.data.streaming.chunk_writer import write_chunks
from inception_lightning.data.streaming.streaming_datamodule import StreamingImageDataModule
from inception_lightning.data.streaming.streaming_options import StreamOptions
from inception_lightning.training import read_checkpoint, read_description

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}


def _module(chunks: Path, cache: Path, size: int) -> StreamingImageDataModule:
    return StreamingImageDataModule(
        f"local:{chunks}",
        crop=CropOptions(size, crop_pct=1.0),
        stream=StreamOptions(cache_dir=str(cache)),
    )


def test_convert_keeps_the_folder_paths_pixels_labels_and_masks(tmp_path: Path) -> None:
    main(["make-dataset", "--out", str(tmp_path / "shapes"), "--num_classes", "3",
          "--image_size", "48", "--num_samples", "30"])  # fmt: skip
    root = tmp_path / "shapes"
    write_chunks(root, tmp_path / "chunks", chunk_bytes="16KB", progress=False)
    assert len(list((tmp_path / "chunks/train").glob("chunk-*.bin"))) > 1  # several chunks

    # a resize and a crop (48 -> 45 -> 40 px), for the images and the masks alike
    stream = StreamingImageDataModule(
        f"local:{tmp_path / 'chunks'}", LoaderOptions(batch_size=4), crop=CropOptions(40),
        stream=StreamOptions(cache_dir=str(tmp_path / "cache")),
    )  # fmt: skip
    stream.setup("fit")
    folder = ImageFolderDataModule(
        str(root),
        crop=CropOptions(40),
        files={"boxes_file": str(root / "boxes.json")},
        loader=LoaderOptions(num_workers=0),
    )
    folder.setup("fit")
    assert stream.classes == folder.classes == ["circle", "square", "triangle"]
    val, by_key = (
        stream.val_dataset,
        {r.path.relative_to(root).as_posix(): i for i, r in enumerate(folder.val_dataset.records)},
    )
    assert val.has_masks and len(val) == len(folder.val_dataset) == 3
    for index in range(len(val)):
        other = by_key[val.key(index)]
        assert torch.equal(val[index][0], folder.val_dataset[other][0])
        assert val[index][1] == val.labels[index] == folder.val_dataset[other][1]
        assert torch.equal(val.mask(index), folder.val_dataset.mask(other))
        assert val.mask(index).any() and not val.mask(index).all()
    train_info = ChunkInfo.read(str(tmp_path / "chunks/train"))
    assert sorted(train_info.labels) == sorted(folder.train_dataset.labels)


def test_a_flat_tree_is_held_out_as_fit_holds_it_out(
    tmp_path: Path, terminal_progress: io.StringIO
) -> None:
    root = write_tree(tmp_path / "flat", classes=("cat", "dog", "fox"), splits=("",), n=5)
    write_chunks(root, tmp_path / "chunks", val_fraction=0.2, split_seed=3)  # bars: a terminal
    shown = terminal_progress.getvalue()
    assert "checking images" in shown and "writing train chunks" in shown and "12/12" in shown
    assert "writing val chunks" in shown and "images/s" in shown
    folder = ImageFolderDataModule(
        str(root),
        crop=CropOptions(32),
        split={"val_fraction": 0.2, "seed": 3},
        loader=LoaderOptions(num_workers=0),
    )
    folder.setup("fit")
    stream = _module(tmp_path / "chunks", tmp_path / "cache", 32)
    stream.setup("validate")
    held_out = sorted(r.path.relative_to(root).as_posix() for r in folder.val_dataset.records)
    assert sorted(map(stream.val_dataset.key, range(len(stream.val_dataset)))) == held_out
    assert len(held_out) == 3  # one image of each class's five


def test_convert_names_bad_files_and_wants_an_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_tree(tmp_path / "data", n=2)
    (root / "train/cat/fake.jpg").write_text("an image by name only")
    (root / "train/cat/notes.txt").write_text("not a candidate, so not a bad file")
    out = tmp_path / "chunks"
    with pytest.raises(SystemExit) as error:
        main(["convert", "--data", str(root), "--out", str(out)])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert "1 bad image files" in message and f"{root / 'train/cat/fake.jpg'}" in message
    assert not out.exists()

    with pytest.warns(UserWarning, match="skipped 1 bad image files"):
        main(["convert", "--data", str(root), "--out", str(out), "--bad_files", "skip"])
    assert f"wrote {out}" in capsys.readouterr().out
    assert (out / "bad_files.txt").read_text().startswith(f"{root / 'train/cat/fake.jpg'}\t")
    assert ChunkInfo.read(str(out / "train")).labels == [0, 0, 1, 1]  # fake.jpg left out

    with pytest.raises(SystemExit) as error:
        main(["convert", "--data", str(root), "--out", str(out)])
    assert error.value.code == 2
    assert f"{out} is not an empty folder" in capsys.readouterr().err


def test_a_folder_that_was_not_converted_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"{tmp_path}/train/{INFO_FILE} does not exist"):
        StreamingImageDataModule(str(tmp_path))
    write_chunks(write_tree(tmp_path / "data", n=2), tmp_path / "chunks", progress=False)
    data = _module(tmp_path / "chunks", tmp_path / "cache", 32)
    with pytest.raises(DatasetError, match=r"no test split: local:.*/chunks/test was not"):
        data.setup("test")
    data.setup()  # every split there is
    assert data.test_dataset is None and len(data.val_dataset) == 4


def _coded_tree(root: Path, counts: dict[str, int], size: int = 75) -> Path:
    """Solid-colour PNGs whose red and green values code the image's number, 2 classes; any
    crop or resize of one keeps its colour, so a batch says which images it holds."""
    number = 0
    for split, count in counts.items():
        for _ in range(count):
            path = root / split / ("even" if number % 2 == 0 else "odd") / f"{number:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            colour = np.array([number % 256, number // 256, 7], dtype=np.uint8)
            Image.fromarray(np.broadcast_to(colour, (size, size, 3)).copy()).save(path)
            number += 1
    return root


def test_two_loader_workers_stream_each_sample_once(tmp_path: Path) -> None:
    root = _coded_tree(tmp_path / "data", {"train": 21, "val": 2}, size=47)
    write_chunks(root, tmp_path / "chunks", chunk_bytes="1KB", progress=False)
    data = StreamingImageDataModule(
        str(tmp_path / "chunks"), LoaderOptions(batch_size=4, num_workers=2),
        crop=CropOptions(47, crop_pct=1.0),
    )  # fmt: skip
    data.setup("fit")
    loader = data.train_dataloader()
    epochs = []
    for _ in range(2):
        numbers = []
        for images, _ in loader:
            numbers += [int(image[0, 0, 0]) for image in images]  # uint8: the image's number
        epochs.append(numbers)
    assert len(loader) == 5  # 21 // 4 whole batches, shared by the two workers
    for numbers in epochs:
        assert len(numbers) == len(set(numbers)) == 20 and set(numbers) <= set(range(21))
    assert epochs[0] != epochs[1]


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from lightning.pytorch import Callback, Trainer
    from inception_lightning.data.streaming.streaming_datamodule import StreamingImageDataModule
    from inception_lightning.data.data_options import CropOptions, LoaderOptions
    from inception_lightning.data.streaming.streaming_options import StreamOptions
    from inception_lightning.training.module import InceptionClassifier

    class Seen(Callback):
        "Every image number of every batch, by stage and epoch, on this rank."
        def __init__(self):
            self.seen = {}
        def _note(self, trainer, batch, stage):
            pixels = trainer.datamodule.normalize.invert(batch[0])[:, :, 0, 0].long()
            numbers = (pixels[:, 0] + 256 * pixels[:, 1]).tolist()
            self.seen.setdefault(f"{stage}{trainer.current_epoch}", []).extend(numbers)
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self._note(trainer, batch, "train")
        def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
            self._note(trainer, batch, "val")

    data = StreamingImageDataModule(
        sys.argv[1], LoaderOptions(batch_size=4, num_workers=0),
        crop=CropOptions(75, crop_pct=1.0), stream=StreamOptions(cache_dir=sys.argv[2]),
    )
    module = InceptionClassifier(num_classes=2, model_kwargs=TINY)
    seen = Seen()
    trainer = Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[seen],
    )
    trainer.fit(module, data)
    with open(f"seen_{trainer.global_rank}.json", "w") as f:
        json.dump(seen.seen, f)
    """
).replace("TINY", repr(TINY))


@pytest.mark.e2e
def test_two_ranks_stream_each_sample_once_and_leave_out_the_remainder(tmp_path: Path) -> None:
    train, val, batch, ranks = 23, 7, 4, 2
    root = _coded_tree(tmp_path / "data", {"train": train, "val": val})
    write_chunks(root, tmp_path / "chunks", chunk_bytes="1KB", progress=False)
    assert len(list((tmp_path / "chunks/train").glob("chunk-*.bin"))) >= 4
    (tmp_path / "ddp.py").write_text(DDP_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "ddp.py", f"local:{tmp_path / 'chunks'}", str(tmp_path / "cache")],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = [json.loads((tmp_path / f"seen_{rank}.json").read_text()) for rank in range(ranks)]

    # The remainder rule: (23 // 4) // 2 = 2 whole batches a rank, 16 images an epoch, 7 out.
    per_rank = (train // batch) // ranks * batch
    for epoch in (0, 1):
        streamed = [rank[f"train{epoch}"] for rank in seen]
        assert [len(numbers) for numbers in streamed] == [per_rank] * ranks
        every = streamed[0] + streamed[1]
        assert len(set(every)) == len(every) == ranks * per_rank  # none twice across the ranks
        assert set(every) <= set(range(train))
    assert seen[0]["train0"] != seen[0]["train1"]  # shuffled anew each epoch
    # Validation is read by index and sharded by Lightning's sampler, as the folder path's:
    # padded to 8 = 2 x 4 with the split's first image, so every image is seen, one twice.
    first = 24  # the split's first image: class "even" comes first
    for epoch in (0, 1):
        validated = seen[0][f"val{epoch}"] + seen[1][f"val{epoch}"]
        assert sorted(validated) == sorted([first, *range(train, train + val)])


STREAM_RUN = (
    KILLED_RUN_HEAD
    + """
data:
  class_path: inception_lightning.data.StreamingImageDataModule
  init_args:
    input_dir: local:CHUNKS
    loader: {batch_size: 8, num_workers: 0}
    crop: {image_size: 75}
    augment: {min_scale: 0.3}  # random crops and flips: their draws replay too
    stream: {cache_dir: CACHE}
"""
)
STEPS_PER_EPOCH = 4  # 36 training images // 8


@pytest.mark.e2e
def test_killed_streaming_run_resumes_to_the_same_weights_and_metrics(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "data", classes=("cat", "dog", "fox"), n=12, size=(90, 80))
    (root / "val").rename(root / "held")  # a flat tree: convert holds out val_fraction 0.1
    write_chunks(root / "train", tmp_path / "chunks", chunk_bytes="64KB", progress=False)
    assert ChunkInfo.read(str(tmp_path / "chunks/train")).labels.__len__() == 33
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    for folder in (killed, whole):
        folder.mkdir()
        config = STREAM_RUN.replace("CHUNKS", str(tmp_path / "chunks"))
        (folder / "run.yaml").write_text(config.replace("CACHE", str(folder / "cache")))
    last = killed / "ckpt" / "last.ckpt"
    kill_when_written(killed, last)
    resumed_from = torch.load(last, weights_only=True)["global_step"]
    assert resumed_from % STEPS_PER_EPOCH != 0  # killed mid-epoch, before the end of training
    assert resumed_from < 2 * STEPS_PER_EPOCH

    fit_in(killed, "--ckpt_path", "last")  # in this process: only the killed run needs its own
    fit_in(whole)

    a = torch.load(killed / "ckpt" / "last.ckpt", weights_only=True)
    b = torch.load(whole / "ckpt" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 2 * STEPS_PER_EPOCH
    for key in ("state_dict", "current_model_state", "averaging_state", "optimizer_states"):
        assert_same(a[key], b[key], key)
    after_resume = [row for row in logged_metrics(whole, 0) if int(row["step"]) >= resumed_from]
    assert logged_metrics(killed, 1) == after_resume
    assert sum("val_ema/acc1" in row for row in after_resume) >= 1


MODEL_KWARGS = json.dumps({**TINY, "stem": "79"})
FIT_ARGS = [
    "--trainer.max_steps", "4", "--trainer.accelerator", "cpu",
    "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
    "--trainer.logger.class_path", "inception_lightning.training.ExclusiveTensorBoardLogger",
    "--trainer.logger.init_args.save_dir", "runs",
    "--model.model_kwargs", MODEL_KWARGS,
    "--model.loss.aux_weight", "0",
    "--data.init_args.loader", '{"batch_size": 6, "num_workers": 0}',
    "--data.init_args.crop", '{"image_size": 79}',
]  # fmt: skip
GRAD_CAM = """
trainer:
  callbacks+:
    - class_path: inception_lightning.callbacks.GradCam
      init_args:
        sample: {per_class: 1, misclassified_search: 4}
        scores: {steps: 2}
        sanity: {samples: 0}
"""


@pytest.mark.e2e
def test_convert_fit_report_and_predict_through_the_console_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["make-dataset", "--out", "shapes", "--num_classes", "3", "--image_size", "79",
          "--num_samples", "30"])  # fmt: skip
    main(["convert", "--data", "shapes", "--out", "chunks"])  # boxes.json found beside
    Path("grad_cam.yaml").write_text(GRAD_CAM)
    configs = ["fit.yaml", "model/inception_v3.yaml", "data/streaming.yaml"]
    main(["fit", *(a for c in configs for a in ("-c", str(CONF / c))), "-c", "grad_cam.yaml",
          "--data.init_args.input_dir", f"local:{tmp_path / 'chunks'}",
          "--data.init_args.stream.cache_dir", "cache", *FIT_ARGS])  # fmt: skip
    run = tmp_path / "runs" / "inception" / "version_0"
    (ckpt,) = (run / "checkpoints").glob("last.ckpt")
    trained = read_description(read_checkpoint(ckpt), ckpt)
    assert trained.classes == ["circle", "square", "triangle"]
    assert trained.preprocessing["image_size"] == 79
    summary = json.loads((run / "report" / "summary.json").read_text())  # GradCam's, at fit end
    assert "pointing_game" in json.dumps(summary)  # the val split's masks came along
    assert summary["evaluation"]["images"] == 3  # every val image predicted

    # the data follows the checkpoint: its classes and preprocessing, on the streamed val split
    capsys.readouterr()
    main(["validate", "-c", str(CONF / "model/inception_v3.yaml"),
          "-c", str(CONF / "data/streaming.yaml"), "--ckpt_path", str(ckpt),
          "--data.init_args.input_dir", f"local:{tmp_path / 'chunks'}",
          "--data.init_args.stream.cache_dir", "cache", "--trainer.logger", "false",
          "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
          "--model.model_kwargs", MODEL_KWARGS])  # fmt: skip
    (validated,) = re.findall(r"val_ema/acc1\W+([0-9.]+)", capsys.readouterr().out)
    assert float(validated) == pytest.approx(summary["evaluation"]["accuracy"])

    main(["report", "--ckpt_path", str(ckpt), "--data", "shapes", "--out", "report",
          "--per_class", "1", "--method", "gradcam", "--sanity.samples", "0"])  # fmt: skip
    evaluation = json.loads(Path("report/summary.json").read_text())["evaluation"]
    assert evaluation["images"] == 3
    assert evaluation["accuracy"] == pytest.approx(float(validated))

    main(["predict", "-c", str(CONF / "predict.yaml"), "--ckpt_path", str(ckpt),
          "--data.root", "shapes", "--trainer.enable_progress_bar", "false"])  # fmt: skip
    with open("predictions.csv") as file:
        rows = list(csv.DictReader(file))
    images = sorted(Path("shapes").glob("[tv]*/*/*.png"))
    assert len(images) == 30 and any(Path("shapes/masks").rglob("*.png"))
    assert sorted(Path(row["path"]).resolve() for row in rows) == [p.resolve() for p in images]


def test_a_stream_takes_the_augmentation_policy_and_refuses_class_sampling(
    tmp_path: Path,
) -> None:
    root = write_tree(tmp_path / "data", classes=("cat", "dog"), n=2, size=(48, 48))
    write_chunks(root, tmp_path / "chunks", progress=False)
    augment = AugmentOptions(policy="trivialaugment", erasing=0.5)
    stream = StreamingImageDataModule(
        f"local:{tmp_path / 'chunks'}", crop=CropOptions(40, crop_pct=1.0), augment=augment,
        stream=StreamOptions(cache_dir=str(tmp_path / "cache")),
    )  # fmt: skip
    steps = [type(t).__name__ for t in stream.train_transform.transforms]
    assert steps == ["Compose", "TrivialAugmentWide", "RandomErasing"]
    with pytest.raises(ValueError, match=r"loader\.sampling: a stream is read shard by shard"):
        StreamingImageDataModule(
            f"local:{tmp_path / 'chunks'}", LoaderOptions(sampling="class_balanced"),
            stream=StreamOptions(cache_dir=str(tmp_path / "cache")),
        )  # fmt: skip
