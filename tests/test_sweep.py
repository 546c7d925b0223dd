"""`inception-lightning sweep`: an Optuna study of fit runs that survives kill -9, shares a
journal file between workers, prunes on the validation metric and names the best command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from inception_lightning.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(Path(sys.executable).parent / "inception-lightning")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
LR = "model.optimizer.init_args.lr"
SMOOTHING = "model.loss.label_smoothing"
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
    "data.init_args.loader.batch_size": 8,
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
def test_killed_sweep_resumes_without_repeating_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """6 trials; the console script killed (-9) during the 4th, the sweep started again: the 4th
    runs again in its own folder, then the 5th and 6th; the first three are not repeated and the
    hparams tab lists 6 runs. (The restart runs in this process: the kill is the boundary.)"""
    config = _sweep_file(tmp_path, 6)
    first = subprocess.Popen(
        [SCRIPT, "sweep", "-c", str(config)], cwd=tmp_path, env=ENV, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    killed_run = tmp_path / "runs" / "s" / "trial_0003"
    for line in first.stdout:
        if line.startswith("trial 3 ("):  # trials 0, 1, 2 are done and the 4th has begun
            while not list(killed_run.glob("events.out.tfevents.*")) and first.poll() is None:
                time.sleep(0.02)  # killed with files in its run folder, as a user's would be
            first.send_signal(signal.SIGKILL)
            break
    assert first.wait(timeout=60) == -signal.SIGKILL
    assert {t.state for t in _study(tmp_path).trials} == {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.RUNNING,
    }

    monkeypatch.chdir(tmp_path)
    main(["sweep", "-c", str(config)])
    out = capsys.readouterr().out
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


@pytest.mark.e2e
def test_two_workers_share_a_journal_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console script in a second process and `main` in this one, on one journal file:
    the 4 trials are split between them, each run once."""
    journal = tmp_path / "runs" / "s.journal"
    journal.parent.mkdir()
    config = _sweep_file(tmp_path, 4, storage=str(journal))
    with (tmp_path / "worker.err").open("w") as errors:
        other = subprocess.Popen(
            [SCRIPT, "sweep", "-c", str(config)], cwd=tmp_path, env=ENV, text=True,
            stdout=subprocess.PIPE, stderr=errors,
        )  # fmt: skip
        first = next((line for line in other.stdout if line.startswith("trial ")), None)
        assert first, (tmp_path / "worker.err").read_text()[-2000:]  # it ended without a trial
        started = [first]
        monkeypatch.chdir(tmp_path)
        main(["sweep", "-c", str(config)])  # joins while the other runs its first trial
        started += other.stdout.readlines()
    assert other.wait(timeout=120) == 0, (tmp_path / "worker.err").read_text()[-2000:]
    trials = _study(tmp_path, str(journal)).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    here = capsys.readouterr().out.splitlines()
    ran = [{int(line.split()[1]) for line in lines if line.startswith("trial ") and " (" in line}
           for lines in (started, here)]  # fmt: skip
    assert ran[0] | ran[1] == {0, 1, 2, 3} and not ran[0] & ran[1]  # each trial run once
    assert ran[0] and ran[1]  # both took trials
    assert {t.user_attrs["worker"]["pid"] for t in trials} == {other.pid, os.getpid()}
    assert sorted(p.name for p in (tmp_path / "runs" / "s").glob("trial_*")) == [
        f"trial_{n:04d}" for n in range(4)
    ]


def test_pruner_stops_a_trial_on_the_validation_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A threshold no accuracy reaches prunes the trial at its first validation: Optuna holds
    the val/acc1 TensorBoard shows for epoch 0, and the run stops there."""
    overrides = {**SHRUNK, "trainer.max_epochs": 3}
    pruner = {"class_path": "optuna.pruners.ThresholdPruner", "init_args": {"lower": 1.01}}
    config = _sweep_file(tmp_path, 1, overrides=overrides, pruner=pruner)
    monkeypatch.chdir(tmp_path)
    main(["sweep", "-c", str(config)])
    (trial,) = _study(tmp_path).trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    events = EventAccumulator(str(tmp_path / "runs" / "s" / "trial_0000"))
    events.Reload()
    logged = events.Scalars("val/acc1")
    assert [e.value for e in logged] == pytest.approx([trial.intermediate_values[0]])
    assert list(trial.intermediate_values) == [0]  # pruned after epoch 0 of 3
    out = capsys.readouterr().out
    assert "trial 0 pruned" in out and "no trial has completed yet" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {LR: {"low": 0.1, "high": 0.01}}}, f"params.{LR}: needs low < high"),
        ({"params": {LR: {"low": 0.0, "high": 0.1, "log": True}}}, "a log range needs low > 0"),
        (
            {"pruner": {"class_path": "optuna.samplers.RandomSampler"}},
            "is not an Optuna BasePruner",
        ),
        ({"metric": "val/nothing"}, "val/nothing was not logged by the run; it logged"),
    ],
)
def test_bad_sweep_settings_end_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict, message: str
) -> None:
    config = _sweep_file(tmp_path, 1, **change)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "-c", str(config)])
    assert message in str(exit_info.value.code) and "\n" not in str(exit_info.value.code)


def test_sweep_without_optuna_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed: import fails
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "-c", str(_sweep_file(tmp_path, 1))])
    assert "pip install 'inception-lightning[sweep]'" in str(exit_info.value.code)
