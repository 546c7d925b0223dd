"""Two nodes simulated on one machine: `fit`, then `predict`, through the console script.

Each node is one launch of `python node.py SUBCOMMAND ...` (the console script's `main`) with
`NODE_RANK` 0 or 1, `MASTER_ADDR=127.0.0.1`, `--trainer.num_nodes 2` and one device, in a
folder of its own (the nodes share the data folder and the checkpoint, not their working
folders). `node.py` logs every image check with its node, and holds each node's write of the
scan cache until the other node is writing too, so the two writes happen at once. A callback
from a module the test writes (`record.RecordRank`) reports each rank's EMA weights.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from helpers import age, write_image, write_tree

from inception_lightning.data import CropOptions, LoaderOptions, PredictDataModule
from inception_lightning.data.scanning.scan_cache import ScanCache

CONF = Path(__file__).resolve().parents[1] / "conf"
NODE = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    import inception_lightning.data.scanning.scan as scan
    import inception_lightning.data.scanning.scan_cache as scan_cache
    from inception_lightning.cli import main

    node = os.environ["NODE_RANK"]
    meet = Path(os.environ["MEET"])
    real_check, real_save = scan.check_image, scan_cache.ScanCache.save


    def check_image(path):
        with open(os.environ["SCAN_LOG"], "a") as log:
            log.write(f"{node} {os.environ.get('LOCAL_RANK', '0')} {path}\\n")
        return real_check(path)


    def save(self, *args, **kwargs):
        (meet / f"saving.{node}").touch()
        deadline = time.time() + 60
        while len(list(meet.glob("saving.*"))) < 2 and time.time() < deadline:
            time.sleep(0.01)
        return real_save(self, *args, **kwargs)


    scan.check_image, scan_cache.ScanCache.save = check_image, save
    main()
    """
)
RECORD = textwrap.dedent(
    """
    import hashlib, json
    from pathlib import Path

    from lightning.pytorch.callbacks import Callback

    from inception_lightning.callbacks import InceptionEMA


    class RecordRank(Callback):
        def __init__(self, out: str) -> None:
            self.out = Path(out)

        def on_train_end(self, trainer, pl_module):
            ema = next(cb for cb in trainer.callbacks if isinstance(cb, InceptionEMA))
            weights = b"".join(
                p.detach().numpy().tobytes() for p in ema.average_network().parameters()
            )
            record = {
                "node": trainer.node_rank,
                "world_size": trainer.world_size,
                "ema_updates": ema._average_model.num_updates,
                "ema_sha256": hashlib.sha256(weights).hexdigest(),
            }
            self.out.mkdir(exist_ok=True)
            (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
    """
)
TWO_NODES = [
    "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp",
    "--trainer.num_nodes", "2", "--trainer.devices", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--data.init_args.loader.num_workers", "0",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_nodes(tmp_path: Path, *args: str) -> list[str]:
    """Launch `node.py ARGS` as node 0 and node 1 at once; both must exit 0. Their outputs."""
    port, procs = str(_free_port()), []
    for node in ("0", "1"):
        cwd = tmp_path / f"node{node}"
        cwd.mkdir(exist_ok=True)
        env = {
            **os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1",
            "NODE_RANK": node, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
            "SCAN_LOG": str(tmp_path / "scans.log"), "MEET": str(tmp_path),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.getenv("PYTHONPATH")])),
        }  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, str(tmp_path / "node.py"), *args, *TWO_NODES],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    # a node left waiting would hang here: the timeout turns it into a failure
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    for node, (proc, output) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"node {node}:\n{output[-3000:]}"
    return outputs


@pytest.mark.e2e
def test_two_nodes_fit_then_predict(tmp_path: Path) -> None:
    data = write_tree(tmp_path / "data", n=3, size=(80, 80))
    write_image(data / "val" / "dog" / "extra.png", (80, 80), seed=7)  # 7 val images: padded
    age(data)
    (tmp_path / "node.py").write_text(NODE)
    (tmp_path / "record.py").write_text(RECORD)
    ranks = tmp_path / "ranks"
    record = tmp_path / "record.yaml"
    record.write_text(
        "trainer:\n  callbacks+:\n    - class_path: inception_lightning.callbacks.InceptionEMA\n"
        f"    - class_path: record.RecordRank\n      init_args: {{out: {ranks}}}\n"
    )
    outputs = _two_nodes(
        tmp_path, "fit", "-c", str(CONF / "data/folder.yaml"), "-c", str(record),
        "--data.init_args.root", str(data), "--data.init_args.crop.image_size", "75",
        "--data.init_args.loader.batch_size", "2",
        "--model.model_kwargs", '{"width": 0.0625, "aux_head": false}',
        "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
    )  # fmt: skip

    # the scan ran once per node: local rank 0 of each checked every file, once
    checks = [line.split(" ", 2) for line in (tmp_path / "scans.log").read_text().splitlines()]
    files = sorted(str(p) for p in data.rglob("*.png"))
    for node in ("0", "1"):
        assert sorted(path for n, local, path in checks if n == node and local == "0") == files
    assert len(checks) == 2 * len(files)
    # both nodes wrote the cache at once, neither warned, and it reads back whole
    assert sorted(p.name for p in tmp_path.glob("saving.*")) == ["saving.0", "saving.1"]
    for warning in ("could not be written", "ignoring it, every image is checked again"):
        assert not any(warning in output for output in outputs), warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupt cache is ignored with a warning
        entries = ScanCache(data).load()
    assert sorted(str(data / key) for key in entries) == files
    # EMA: one update per step on each node, and the same average on both
    node0, node1 = (json.loads((ranks / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (node0["node"], node1["node"]) == (0, 1)
    assert node0["world_size"] == node1["world_size"] == 2
    assert node0["ema_updates"] == node1["ema_updates"] == 2
    assert node0["ema_sha256"] == node1["ema_sha256"]

    (checkpoint,) = (tmp_path / "node0" / "runs").rglob("*.ckpt")
    _two_nodes(
        tmp_path, "predict", "-c", str(CONF / "predict.yaml"), "--ckpt_path", str(checkpoint),
        "--data.init_args.root", str(data / "val"), "--data.init_args.loader.batch_size", "1",
    )  # fmt: skip
    # node 0 wrote every node's rows, each image once, in input order; node 1 wrote nothing
    expected = PredictDataModule(
        str(data / "val"), ["cat", "dog"], crop=CropOptions(image_size=75),
        loader=LoaderOptions(batch_size=1, num_workers=0),
    )  # fmt: skip
    expected.setup("predict")
    dataset = expected.predict_dataset
    with (tmp_path / "node0" / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["path"] for row in rows] == [str(dataset.path(i)) for i in range(len(dataset))]
    assert len(rows) == 7 and {row["label"] for row in rows} == {"cat", "dog"}
    assert not (tmp_path / "node1" / "predictions.csv").exists()
