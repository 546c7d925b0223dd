"""`inception-lightning sweep`: an Optuna study over any config keys, each trial a normal run.

The study lives in a storage that outlives the process: an SQLite file beside the runs by
default, so a killed sweep started again resumes. Every trial is `inception-lightning fit` with
the sweep's configs, its fixed overrides and the trial's values, run in this process, logging to
`SAVE_DIR/STUDY/trial_NNNN/` (TensorBoard events with an hparams entry, config.yaml,
checkpoints, and whatever the configs' callbacks write there, such as the Grad-CAM report).
Optuna's pruner reads the monitored validation metric after every validation epoch (through
optuna-integration's `PyTorchLightningPruningCallback`) and stops runs that fall behind.

A trial still marked running whose worker is gone (killed, or its machine lost) is marked
failed and queued again with the same values; its run starts over in the same folder, so the
study counts it once. A worker on this machine is known gone when its process is; a worker on
another machine when its heartbeat (RDB storages only) is older than twice `heartbeat` seconds.

Several workers: start the same command again. On one machine they share a journal file
(`storage: runs/study.journal`; SQLite is not for concurrent writers); across machines, an RDB
server all of them reach (`storage: postgresql://user:password@host/db`, `mysql+pymysql://...`).
Workers stop once the trials finished or running reach `n_trials`.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jsonargparse.typing import Path_fr

if TYPE_CHECKING:  # optuna is an optional extra, imported when a sweep runs
    import optuna

# The installs that bring optuna and its Lightning pruning callback.
EXTRA = "pip install 'inception-lightning[sweep]' (optuna and optuna-integration)"
SUMMARY_FILE = "summary.md"
DASHBOARD_BEST = ("val/acc1", "val_ema/acc1")  # TensorBoardDashboards' default `best`
Direction = Literal["maximize", "minimize"]
Scalar = bool | int | float | str


@dataclass(frozen=True)
class SearchRange:
    """Where a sweep looks for one config key's value: a range, or a list of choices.

    Integer bounds (and step) sample integers; otherwise floats.

    Args:
        low: the smallest value.
        high: the largest value.
        log: sample on a log scale (learning rates, weight decay).
        step: sample only multiples of `step` above `low`.
        choices: sample one of these instead of a range.
    """

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    choices: list[Scalar] | None = None

    def check(self, key: str) -> None:
        """Raise a one-line `ValueError` naming `key` for a range that cannot be sampled."""
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError(f"params.{key}: give a non-empty choices list, or low and high")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(
                f"params.{key}: needs low < high (or choices), got low={self.low}, high={self.high}"
            )
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError(f"params.{key}: a log range needs low > 0 and no step")

    def suggest(self, trial: optuna.Trial, key: str) -> Scalar:
        """The trial's value for `key` (a queued trial's own, when it has one)."""
        if self.choices is not None:
            return trial.suggest_categorical(key, self.choices)
        bounds = (self.low, self.high, self.step)
        if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds if b is not None):
            return trial.suggest_int(key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(key, self.low, self.high, step=self.step, log=self.log)


def sweep(
    params: dict[str, SearchRange],
    configs: list[Path_fr] | None = None,
    overrides: dict[str, Any] | None = None,
    n_trials: int = 20,
    metric: str = "val/acc1",
    direction: Direction = "maximize",
    study_name: str = "sweep",
    save_dir: str = "runs",
    storage: str | None = None,
    sampler: dict[str, Any] | None = None,
    pruner: dict[str, Any] | None = None,
    heartbeat: int = 60,
) -> str:
    """Search config values with Optuna: every trial a `fit` run; prints the best one's command.

    Args:
        params: config keys as fit spells them (`model.optimizer.init_args.lr`) and where to
            search each (`{low: 1e-4, high: 1e-2, log: true}`, `{choices: [0.125, 0.25]}`).
        configs: the fit configs every trial composes, in order; in a config file, relative
            to it.
        overrides: further fit keys every trial sets, as `{key: value}`.
        n_trials: finished (complete or pruned) trials the study should hold; a sweep started
            again goes on until it does.
        metric: the logged validation metric to optimise and to prune on; a trial's value is
            its last validation's.
        direction: maximize (accuracies) or minimize (losses).
        study_name: the study, and the folder of its runs in `save_dir`.
        save_dir: the folder of the runs.
        storage: where the study lives: an RDB URL (`sqlite:///file.db`, or a server's URL
            for workers on several machines), or a journal file's path (several workers on
            one machine); None: `SAVE_DIR/STUDY/optuna.db`.
        sampler: an Optuna sampler as `{class_path, init_args}`; None: TPE, seeded 0.
        pruner: an Optuna pruner as `{class_path, init_args}`; None: median pruning once 2
            trials are done and from the second epoch on.
        heartbeat: seconds between the heartbeats of a trial in an RDB storage; a trial
            silent for twice as long is taken for dead.
    """
    optuna = _import_optuna()
    for key, search in params.items():
        search.check(key)
    if not params:
        raise ValueError("params: name at least one config key to search")
    folder = Path(save_dir) / study_name
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=_storage(optuna, storage, folder, heartbeat),
        load_if_exists=True,
        direction=direction,
        sampler=_instance(optuna.samplers.BaseSampler, sampler, "sampler")
        or optuna.samplers.TPESampler(seed=0),
        pruner=_instance(optuna.pruners.BasePruner, pruner, "pruner")
        or optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    runner = _Trials(
        study, params, [Path(c.absolute) for c in configs or []], overrides or {}, metric, folder
    )
    runner.reclaim_dead()
    if runner.finished() < n_trials:
        study.optimize(
            lambda trial: runner.run(trial, n_trials),
            callbacks=[lambda study, trial: runner.stop_when_enough(n_trials)],
            catch=(_Surplus,),
        )
    summary = runner.summary()
    (folder / SUMMARY_FILE).write_text(summary + "\n")
    return summary


class _Surplus(Exception):
    """A trial asked for after the study already had `n_trials` trials, by a racing worker."""


class _Trials:
    """Runs trials as fit runs in this process; finds trials whose worker is gone."""

    def __init__(
        self,
        study: optuna.Study,
        params: dict[str, SearchRange],
        configs: list[Path],
        overrides: dict[str, Any],
        metric: str,
        folder: Path,
    ) -> None:
        self.study, self.params, self.configs = study, params, configs
        self.overrides, self.metric, self.folder = overrides, metric, folder

    def run(self, trial: optuna.Trial, n_trials: int) -> float:
        """The objective: the trial's fit run, and the metric its last validation logged."""
        import optuna

        trial.set_user_attr("worker", _this_worker())
        self.reclaim_dead()
        if self._earlier(trial.number) >= n_trials:
            self.study.stop()
            raise _Surplus(f"trial {trial.number}: the study had {n_trials} trials already")
        run = trial.user_attrs.get("run") or f"trial_{trial.number:04d}"  # a retry keeps its own
        trial.set_user_attr("run", run)
        values = {key: search.suggest(trial, key) for key, search in self.params.items()}
        command = self.command({**self.overrides, **values})
        trial.set_user_attr("command", shlex.join(command))
        shutil.rmtree(self.folder / run, ignore_errors=True)  # a killed attempt's leftovers
        shown = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                          for key, value in values.items())  # fmt: skip
        print(f"trial {trial.number} ({self.folder / run}): {shown}", flush=True)
        try:
            value = self._fit(trial, command, run, values)
        except optuna.TrialPruned:
            print(f"trial {trial.number} pruned", flush=True)
            raise
        print(f"trial {trial.number} finished: {self.metric} {value:.4f}", flush=True)
        return value

    def command(self, values: dict[str, Any]) -> list[str]:
        """`inception-lightning fit` with the configs and `values`, as a user would type it."""
        words = ["inception-lightning", "fit"]
        for config in self.configs:
            relative = os.path.relpath(config)
            words += ["-c", str(config) if relative.startswith("..") else relative]
        return words + [f"--{key}={_flag_value(value)}" for key, value in values.items()]

    def _fit(
        self, trial: optuna.Trial, command: list[str], run: str, values: dict[str, Any]
    ) -> float:
        """Run `command` in this process, logging to the trial's folder, pruned by Optuna."""
        from optuna_integration import PyTorchLightningPruningCallback

        logger = {
            "class_path": "inception_lightning.training.ExclusiveTensorBoardLogger",
            "init_args": {
                "save_dir": str(self.folder.parent),
                "name": self.folder.name,
                "version": run,
            },
        }
        hparams = {"trial": trial.number, **values}
        bookkeeping = [f"--trainer.logger={json.dumps(logger)}",
                       f"--dashboards.hparams={json.dumps(hparams)}"]  # fmt: skip
        if self.metric not in DASHBOARD_BEST:  # the hparams tab compares trials on it too
            bookkeeping.append(f"--dashboards.best={json.dumps([*DASHBOARD_BEST, self.metric])}")
        pruning = PyTorchLightningPruningCallback(trial, monitor=self.metric)
        trainer = _fit_in_process([*command[2:], *bookkeeping], [pruning], trial.number)
        logged = trainer.callback_metrics
        if self.metric not in logged:
            raise ValueError(
                f"metric: {self.metric} was not logged by the run; it logged "
                f"{', '.join(sorted(logged)) or 'nothing'}"
            )
        return float(logged[self.metric])

    def stop_when_enough(self, n_trials: int) -> None:
        """Stop this worker once the trials finished or running elsewhere reach `n_trials`."""
        import optuna

        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if self.finished() + len(running) >= n_trials:
            self.study.stop()

    def finished(self) -> int:
        """Trials complete or pruned."""
        import optuna

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=states))

    def _earlier(self, number: int) -> int:
        """Trials numbered below `number` that count: finished, or running."""
        import optuna

        states = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.RUNNING,
        )
        return sum(t.number < number for t in self.study.get_trials(deepcopy=False, states=states))

    def reclaim_dead(self) -> None:
        """Fail every running trial whose worker on this machine is gone, and queue it again.

        Trials of other machines are left to the storage's heartbeat (RDB only), and so is a
        trial whose worker was killed in the instant between asking for it and recording
        itself.
        """
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError

        running = self.study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        for trial in running:
            if not _worker_gone(trial.user_attrs.get("worker")):
                continue
            try:
                self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            except (UpdateFinishedTrialError, ValueError):  # another worker was first
                continue
            queue_again(self.study, trial)
            print(
                f"trial {trial.number} was running when its worker died: queued again", flush=True
            )

    def summary(self) -> str:
        """The trials as a table, then the best one's run folder and command line."""
        import optuna

        state = optuna.trial.TrialState
        trials = [
            t for t in self.study.get_trials() if t.state != state.FAIL or "run" in t.user_attrs
        ]
        keys = list(self.params)
        header = ["trial", "run", "state", self.metric, *keys]
        rows = [
            [str(t.number), t.user_attrs.get("run", "-"), t.state.name.lower(), _shown(t.value)]
            + [_shown(t.params.get(key)) for key in keys]
            for t in trials
        ]
        lines = [f"study {self.study.study_name}: {self.finished()} trials finished"]
        lines += _table([header, *rows])
        complete = [t for t in trials if t.state == state.COMPLETE]
        if not complete:
            return "\n".join([*lines, "no trial has completed yet"])
        best = self.study.best_trial
        lines += [
            "",
            f"best: trial {best.number}, {self.metric} {best.value:.4f}, in "
            f"{self.folder / best.user_attrs['run']}",
            f"  {best.user_attrs['command']}",
        ]
        return "\n".join(lines)


def _fit_in_process(words: list[str], callbacks: list[Any], number: int) -> Any:
    """`inception-lightning fit WORDS` in this process, with `callbacks` added; its trainer."""
    from inception_lightning.cli import fit_in_process

    try:
        return fit_in_process(words, callbacks)
    except SystemExit as exit:  # the parser refused the words, or the run its input
        raise ValueError(f"trial {number}: fit ended early: {exit.code}") from None


def _import_optuna() -> Any:
    try:
        import optuna
        import optuna_integration  # noqa: F401 (the pruning callback's package)
    except ImportError:
        # a ValueError: the console script reports it in one line, as any other bad setting
        raise ValueError(f"sweep needs optuna: {EXTRA}") from None
    return optuna


def _storage(optuna: Any, spec: str | None, folder: Path, heartbeat: int) -> Any:
    """An RDB storage (with heartbeats, to fail trials of lost workers), or a journal file."""
    if spec is not None and "://" not in spec:
        backend = optuna.storages.journal.JournalFileBackend(str(Path(spec)))
        return optuna.storages.JournalStorage(backend)
    url = spec or f"sqlite:///{(folder / 'optuna.db').resolve()}"
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat,
            grace_period=2 * heartbeat,
            heartbeat_stale_trial_callback=queue_again,
        )


def queue_again(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue a trial whose worker died, with its values and its run folder, to run again.

    Optuna's `RetryHeartbeatStaleTrialCallback` does the same but copies every user attribute,
    the dead worker's identity included, which would mark the new trial dead in its turn.
    """
    retry_of = trial.user_attrs.get("retry_of", trial.number)
    run = trial.user_attrs.get("run", f"trial_{trial.number:04d}")
    study.enqueue_trial(trial.params, user_attrs={"run": run, "retry_of": retry_of})


def _instance(base: type, spec: dict[str, Any] | None, key: str) -> Any:
    """`spec`'s class built with its init_args; a one-line error for anything else."""
    if spec is None:
        return None
    from jsonargparse.typing import import_object

    try:
        made = import_object(spec["class_path"])(**spec.get("init_args", {}))
    except (KeyError, ImportError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{key}: cannot build {spec} ({err})") from None
    if not isinstance(made, base):
        raise ValueError(f"{key}: {spec['class_path']} is not an Optuna {base.__name__}")
    return made


def _this_worker() -> dict[str, Any]:
    """Who runs a trial: the machine, the process and when the process started."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _started(os.getpid())}


def _started(pid: int) -> str | None:
    """When process `pid` started (Linux: `/proc/PID/stat`'s start time), telling a reused
    process id from the original; None elsewhere or for no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22, past the command name


def _worker_gone(worker: dict[str, Any] | None) -> bool:
    """Whether the worker of a running trial is known to be gone: it ran on this machine, and
    its process has ended. A worker that had not yet recorded itself is not known."""
    if worker is None or worker["host"] != socket.gethostname():
        return False
    try:
        os.kill(worker["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return worker["start"] is not None and _started(worker["pid"]) != worker["start"]


def _flag_value(value: Any) -> str:
    """A config value as a fit flag's value: YAML's spelling of scalars, JSON of the rest."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip
