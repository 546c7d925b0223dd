"""`inception-lightning sweep`: an Optuna study of fit runs that survives kill -9, shares a
journal file between workers, prunes on the validation metric and names the best command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(Path(sys.executable).parent / "inception-lightning")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
LR = "model.optimizer.init_args.lr"
SMOOTHING = "model.label_smoothing"
# The shipped quickstart, shrunk: one step of training and one of validation per trial.
SHRUNK = {
    "trainer.callbacks": [],
    "trainer.max_epochs": 1,
    "trainer.limit_train_batches": 1,
    "trainer.limit_val_batches": 1,
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
    "cpu_recipe": None,
    "data.init_args.num_samples": 20,
    "data.init_args.batch_size": 8,
    "model.model_kwargs.width": 0.0625,
}


def _sweep_file(tmp_path: Path, n_trials: int, **settings: object) -> Path:
    """conf/sweep.yaml's search of lr and label smoothing, over the shrunk quickstart."""
    shipped = yaml.safe_load((ROOT / "conf" / "sweep.yaml").read_text())
    assert set(shipped["params"]) == {LR, SMOOTHING}
    config = {
        **shipped,
        "configs": [str(ROOT / "conf" / "quickstart.yaml")],
        "overrides": SHRUNK,
        "n_trials": n_trials,
        "study_name": "s",
        **settings,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _study(tmp_path: Path, storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{tmp_path / 'runs' / 's' / 'optuna.db'}"
    if "://" not in url:
        url = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    return optuna.load_study(study_name="s", storage=url)


def _hparams(run: Path) -> dict[str, float | str]:
    events = EventAccumulator(str(run))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {k: v.string_value or v.number_value for k, v in start.items()}


@pytest.mark.e2e
def test_killed_sweep_resumes_without_repeating_trials(tmp_path: Path) -> None:
    """6 trials; killed during the 4th, started again: the 4th runs again in its own folder,
    then the 5th and 6th; the first three are not repeated and the hparams tab lists 6 runs."""
    config = _sweep_file(tmp_path, 6)
    first = subprocess.Popen(
        [SCRIPT, "sweep", "-c", str(config)], cwd=tmp_path, env=ENV, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for line in first.stdout:
        if line.startswith("trial 3 ("):  # trials 0, 1, 2 are done and the 4th has begun
            first.send_signal(signal.SIGKILL)
            break
    assert first.wait(timeout=60) == -signal.SIGKILL
    assert {t.state for t in _study(tmp_path).trials} == {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.RUNNING,
    }

    second = subprocess.run(
        [SCRIPT, "sweep", "-c", str(config)], cwd=tmp_path, env=ENV, text=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    out = second.stdout
    assert "trial 3 was running when its worker died: queued again" in out
    assert not any(f"trial {n} (" in out for n in (0, 1, 2))  # not repeated
    trials = _study(tmp_path).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE"] * 3 + ["FAIL"] + ["COMPLETE"] * 3
    retry = next(t for t in trials[4:] if t.user_attrs["run"] == "trial_0003")
    assert retry.params == trials[3].params  # the killed trial's values, run again
    assert sorted(t.user_attrs["run"] for t in trials if t.state.name == "COMPLETE") == [
        f"trial_{n:04d}" for n in (0, 1, 2, 3, 5, 6)
    ]

    runs = sorted((tmp_path / "runs" / "s").glob("trial_*"))
    assert [run.name for run in runs] == [f"trial_{n:04d}" for n in (0, 1, 2, 3, 5, 6)]
    complete = {t.user_attrs["run"]: t for t in trials if t.state.name == "COMPLETE"}
    for run in runs:  # each a normal run: hparams entry, config, checkpoint
        values, trial = _hparams(run), complete[run.name]
        assert values["trial"] == trial.number
        assert values[LR] == pytest.approx(trial.params[LR])
        assert values[SMOOTHING] == pytest.approx(trial.params[SMOOTHING])
        assert (run / "config.yaml").is_file() and list(run.glob("checkpoints/*.ckpt"))
        assert len(list(run.glob("events.out.tfevents.*"))) == 1  # the killed attempt's gone

    best = max(complete.values(), key=lambda t: t.value)
    summary = (tmp_path / "runs" / "s" / "summary.md").read_text()
    assert summary in out  # printed, and written beside the runs
    assert f"best: trial {best.number}, val/acc1 {best.value:.4f}" in summary
    assert f"--{LR}={best.params[LR]!r}" in summary
    assert f"--{SMOOTHING}={best.params[SMOOTHING]!r}" in summary
