"""Screenshots of a run's TensorBoard and of its attribution report, for the README.

Serves the run with TensorBoard on a local port and photographs pages with headless Chromium
(the Debian package: `apt-get install -y chromium`). Rerun it after the quickstart:

    .venv/bin/inception-lightning fit -c conf/quickstart.yaml
    .venv/bin/python docs/screenshots.py            # the newest runs/quickstart/version_N

It writes docs/img/tensorboard_*.png and docs/img/report.png.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
# name -> (TensorBoard page, window width,height)
VIEWS = {
    "tensorboard_scalars": (
        "timeseries",
        "^(train/loss|val/loss|val/acc1|val_ema/acc1)$",
        "1600,1000",
    ),
    "tensorboard_overlays": ("timeseries", "gradcam/val/overlays", "1600,1000"),
    "tensorboard_heatmap": ("images", "heatmap", "1300,1000"),  # at its size
    "tensorboard_hparams": ("hparams", "", "2200,700"),  # its left pane lists every hparam
    "tensorboard_custom_scalars": ("custom_scalars", "", "1400,800"),
}


def main() -> None:
    """Parse the arguments, serve the run, take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a version folder; default: the newest quickstart")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    run = args.run or newest(ROOT / "runs" / "quickstart")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    tensorboard = Path(sys.executable).parent / "tensorboard"
    spec = f"{run.parent.name}/{run.name}:{run}"  # the run's name in TensorBoard
    server = subprocess.Popen(
        [str(tensorboard), "--logdir_spec", spec, "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/data/plugins_listing")
        for name, (page, tags, window) in VIEWS.items():
            query = f"?darkMode=false&forceSVG=true&tagFilter={quote(tags)}"
            url = f"http://127.0.0.1:{port}/{query}#{page}&tagFilter={quote(tags)}"
            shoot(args.browser, url, args.out / f"{name}.png", window)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = run / "report" / "index.html"
    shoot(args.browser, report.resolve().as_uri(), args.out / "report.png", "1200,3000")
    print(f"wrote {len(VIEWS) + 1} screenshots of {run} to {args.out}")


def newest(experiment: Path) -> Path:
    """The highest `version_N` folder of an experiment."""
    versions = sorted(experiment.glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    if not versions:
        raise SystemExit(f"no run in {experiment}: run the quickstart first")
    return versions[-1]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, timeout: float = 120.0) -> None:
    """Poll `url` until it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def shoot(browser: str, url: str, out: Path, window: str) -> None:
    """A screenshot of `url` after its scripts have run for a while (virtual time)."""
    flags = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--force-prefers-reduced-motion", f"--window-size={window}",
        "--virtual-time-budget=30000", f"--screenshot={out}",
    ]  # fmt: skip
    subprocess.run([browser, *flags, url], check=True, capture_output=True, timeout=180)


if __name__ == "__main__":
    main()
