"""Every logger shows what the callbacks draw: the branch statistics, histograms and heat map,
the dying-residual report, the Grad-CAM overlays and scores, and the attribution report, each
read back through the logger's own reader (TensorBoard's event files, the CSV files, an MLflow
tracking server on 127.0.0.1 through `MlflowClient`, W&B's offline run folder); and the example
script, a plain Lightning project around timm's Inception-v3, logs them into that MLflow
server."""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from helpers import DatasetsModule, write_tree
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from user_project import Noise, Recorded, UserModule, wandb_history

from inception_lightning.callbacks import BranchActivationStats, DyingResidualDetector, GradCam
from inception_lightning.cli import main
from inception_lightning.explain import (
    MapOptions,
    ReportOptions,
    SampleOptions,
    SanityOptions,
    ScoreOptions,
)
from inception_lightning.models import InceptionNet
from inception_lightning.models.net import Architecture
from inception_lightning.models.specs import Conv, Stage

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "timm_inception_v3.py"
CONF = ROOT / "conf"
# What each run must show (tags with `{grid}`: the block's grid at 299 px).
BRANCH_MEAN = "watch.branch.mean.{grid}/block/b3x3"
HISTOGRAM = "watch.branch.activation.{grid}/block/b3x3"
HEATMAP = "watch.branch/heatmap"
DYING_REPORT = "watch.dying/report"
OVERLAY = "gradcam/val/overlays/"
SCALARS = ["watch.residual.norm_ratio/block", "watch.dying/pre_pool_dead_fraction"]


def mini_net() -> InceptionNet:
    """A stem conv and one residual Inception block whose projection kills output channel 0
    (bias -1e4 before the ReLU): a dead pre-pool unit, so the detector reports at once."""
    spec = {"b1x1": (Conv(4),), "b3x3": (Conv(4), Conv(4, 3, padding=1))}
    arch = Architecture(
        stems={299: (Stage("conv2d_1a_3x3", Conv(8, 3, stride=2)),)},
        body=(Stage("block", spec, residual_scale=0.2),),
        aux_after="block",
        aux_default=False,
    )
    torch.manual_seed(0)
    net = InceptionNet("mini", arch, num_classes=2)
    with torch.no_grad():
        net.features.block.project.bias[0] = -1e4
    return net


def fit(logger: Logger, root: Path) -> tuple[pl.Trainer, DyingResidualDetector]:
    """Three training steps with the three drawing callbacks, one validation epoch at the end
    (the overlays), then the report."""
    detector = DyingResidualDetector(threshold=0.0, patience=1, every_n_steps=1)
    callbacks = [
        BranchActivationStats(every_n_steps=1, histogram_every_n_steps=3),
        detector,
        GradCam(
            sample=SampleOptions(per_class=1),
            maps=MapOptions(batch_size=2),
            scores=ScoreOptions(steps=2),
            sanity=SanityOptions(samples=1),
            report=ReportOptions(per_class=1),
        ),
    ]
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=3, limit_train_batches=3, num_sanity_val_steps=0,
        logger=logger, callbacks=callbacks, default_root_dir=root, log_every_n_steps=1,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    data = DatasetsModule(Noise(6, 47, 2), Noise(4, 47, 2, seed=1), batch_size=2)
    trainer.fit(UserModule(mini_net()), datamodule=data)
    assert detector.fired_steps == [0]  # it reported
    return trainer, detector


def grid() -> str:
    return "149x149"  # the stem conv's output at 299 px: (299 - 3) // 2 + 1


def test_tensorboard(tmp_path: Path) -> None:
    trainer, _ = fit(TensorBoardLogger(tmp_path, name="tb"), tmp_path)
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars(BRANCH_MEAN.format(grid=grid()))] == [0, 1, 2]
    assert set(SCALARS) <= set(tags["scalars"]) and "gradcam/val/deletion_auc" in tags["scalars"]
    assert [e.step for e in events.Histograms(HISTOGRAM.format(grid=grid()))] == [2]
    assert HEATMAP in tags["images"]
    assert any(tag.startswith(OVERLAY) for tag in tags["images"])
    (report,) = events.Tensors(f"{DYING_REPORT}/text_summary")
    assert b"dying at step 0" in report.tensor_proto.string_val[0]
    assert (Path(trainer.log_dir) / "report" / "index.html").is_file()


def test_csv_files_beside_metrics(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="csv")
    fit(logger, tmp_path)
    run = Path(logger.log_dir)
    with (run / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    means = [r["step"] for r in rows if r.get(BRANCH_MEAN.format(grid=grid()))]
    assert means == ["0", "1", "2"]
    assert all(any(r.get(key) for r in rows) for key in [*SCALARS, "gradcam/val/deletion_auc"])
    with (run / "media" / "index.csv").open() as file:
        index = list(csv.DictReader(file))
    kinds = {(row["kind"], row["tag"]) for row in index}
    assert ("figure", HEATMAP) in kinds
    assert ("histogram", HISTOGRAM.format(grid=grid())) in kinds
    assert ("text", DYING_REPORT) in kinds
    assert any(kind == "image" and tag.startswith(OVERLAY) for kind, tag in kinds)
    for row in index:
        path = run / "media" / row["file"]
        if row["kind"] == "text":
            assert "dying at step 0" in path.read_text()
        else:
            assert Image.open(path).size[0] > 100  # a real PNG
    assert (run / "report" / "index.html").is_file()


@pytest.mark.e2e
def test_wandb_offline_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb", reason="the wandb extra: pip install -e '.[wandb]'")
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_SILENT", "true")
    settings = wandb.Settings(console="off", x_disable_stats=True, disable_git=True)
    logger = WandbLogger(save_dir=tmp_path, offline=True, project="media", settings=settings)
    try:
        fit(logger, tmp_path)
        run_dir = Path(logger.experiment.dir).parent
    finally:
        wandb.finish()
    history = wandb_history(run_dir)
    logged = {key: row for row in history for key in row}
    assert sum(BRANCH_MEAN.format(grid=grid()) in row for row in history) == 3
    assert all(key in logged for key in [*SCALARS, "gradcam/val/deletion_auc"])
    assert logged[HISTOGRAM.format(grid=grid())][HISTOGRAM.format(grid=grid())]["_type"] == (
        "histogram"
    )
    files = run_dir / "files"
    for key in (HEATMAP, next(k for k in logged if k.startswith(OVERLAY))):
        (image,) = logged[key][key]["filenames"]
        assert Image.open(files / image).size[0] > 100
    page = logged[DYING_REPORT][DYING_REPORT]["path"]
    assert "dying at step 0" in (files / page).read_text()
    assert (files / "report" / "index.html").is_file()  # the run's files, synced with it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """A real MLflow tracking server on 127.0.0.1 (SQLite store, local artifacts), started when
    the module starts (it takes seconds to come up, while the other loggers' tests run), and
    stopped after; None without the mlflow extra."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        yield None
        return
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'store.db'}",
        "--artifacts-destination", str(root / "artifacts"), "--workers", "1",
    ]  # fmt: skip
    log = (root / "server.log").open("w")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # seconds less to start
    server = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker
        server.wait(timeout=30)
        log.close()


def wait_until_up(uri: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


@pytest.mark.e2e
def test_mlflow_tracking_server(tmp_path: Path, mlflow_server: str | None) -> None:
    if mlflow_server is None:
        pytest.skip("the mlflow extra: pip install -e '.[mlflow]'")
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient

    wait_until_up(mlflow_server)
    logger = MLFlowLogger(experiment_name="media", tracking_uri=mlflow_server)
    fit(logger, tmp_path)
    client = MlflowClient(mlflow_server)
    run = client.get_run(logger.run_id)
    history = client.get_metric_history(run.info.run_id, BRANCH_MEAN.format(grid=grid()))
    assert [m.step for m in history] == [0, 1, 2]
    assert set(SCALARS) | {"gradcam/val/deletion_auc"} <= set(run.data.metrics)

    def listed(path: str) -> list[str]:
        found = []
        for info in client.list_artifacts(run.info.run_id, path):
            found += listed(info.path) if info.is_dir else [info.path]
        return found

    artifacts = listed("")
    assert "figures/watch.branch/heatmap/step_000002.png" in artifacts
    assert f"histograms/{HISTOGRAM.format(grid=grid())}/step_000002.png" in artifacts
    assert any(a.startswith("images/gradcam~val~overlays~") for a in artifacts)
    assert "report/index.html" in artifacts
    text = client.download_artifacts(run.info.run_id, "text/watch.dying/report", str(tmp_path))
    assert "dying at step 0" in (Path(text) / "step_000000.txt").read_text()


def test_other_loggers_get_one_warning_per_callback(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="cannot show") as warned:
        fit(Recorded(), tmp_path)
    lines = sorted(str(w.message) for w in warned if "cannot show" in str(w.message))
    assert [line.split(":")[0] for line in lines] == [
        "BranchActivationStats",
        "DyingResidualDetector",
        "GradCam",
    ]
    assert lines[0].startswith("BranchActivationStats: Recorded cannot show its heat map")


@pytest.mark.e2e
def test_example_script_trains_timm_v3_into_an_mlflow_run(
    tmp_path: Path,
    mlflow_server: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if mlflow_server is None:
        pytest.skip("the mlflow extra: pip install -e '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    write_tree(tmp_path / "data", classes=("cat", "dog"), n=2)  # 2 steps of 2, 4 to validate
    wait_until_up(mlflow_server)
    # the script's own main, in this process (its process boundary is not the point)
    spec = importlib.util.spec_from_file_location("timm_inception_v3", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.chdir(tmp_path)
    example.main([
        "--data", "data", "--tracking-uri", mlflow_server, "--image-size", "75",
        "--batch-size", "2", "--epochs", "1", "--log-every", "1", "--workers", "0",
    ])  # fmt: skip

    client = MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("timm_inception_v3").experiment_id])
    assert f"MLflow run {run.info.run_id}" in capsys.readouterr().out
    metrics = set(run.data.metrics)
    # timm's names, seen as the paper's: Mixed_6b.branch7x7dbl_5 is mixed_6b's b7x7dbl
    assert {"watch.branch.mean.17x17/mixed_6b/b7x7dbl", "val/loss", "gradcam/val/deletion_auc"} <= (
        metrics
    )
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any(path.startswith("images/gradcam~val~overlays~") for path in images)
    report = [a.path for a in client.list_artifacts(run.info.run_id, "report")]
    assert "report/index.html" in report


@pytest.mark.e2e
def test_console_script_quickstart_with_a_csv_logger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped quickstart with `--trainer.logger CSVLogger`: the Grad-CAM overlays land as
    PNG files beside `metrics.csv`, and the report beside them."""
    monkeypatch.chdir(tmp_path)
    logger = (
        '{"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "csv"}}'
    )
    main([
        "fit", "-c", str(CONF / "quickstart.yaml"), "--trainer.logger", logger,
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks.sanity.samples", "0", "--trainer.callbacks.report.per_class", "1",
        "--model.model_kwargs", '{"width": 0.0625, "stem": "79"}',
        "--data.init_args.num_samples", "40", "--data.init_args.loader.batch_size", "8",
    ])  # fmt: skip
    run = tmp_path / "csv" / "quickstart" / "version_0"  # the recipe names the run
    with (run / "media" / "index.csv").open() as file:
        overlays = [row for row in csv.DictReader(file) if row["tag"].startswith(OVERLAY)]
    assert overlays and all((run / "media" / row["file"]).is_file() for row in overlays)
    assert (run / "report" / "index.html").is_file()
    assert "val_ema/acc1" in (run / "metrics.csv").read_text()
