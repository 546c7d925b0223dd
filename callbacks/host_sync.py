"""Finding host-device synchronisations in training steps with the PyTorch profiler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from typing_extensions import override

from inception_lightning._compat import writes_logs
from inception_lightning.callbacks._loggers import has_logger
from inception_lightning.models.options import non_negative_int, positive_int

# On a GPU the audit counts the CUDA runtime calls that block the host: exact, and they also
# catch .cpu(), .tolist() and .numpy(). On the CPU, where nothing blocks, it counts the operators
# that would block on a GPU, so a CPU run finds the syncs its GPU run would have.
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
SYNC_OPS = {
    "aten::_local_scalar_dense": "a tensor read as a Python number (.item(), float(), bool(), if)",
    "aten::nonzero": "an output whose size depends on values (nonzero, boolean mask indexing)",
    "aten::_unique2": "an output whose size depends on values (unique)",
    "aten::unique_consecutive": "an output whose size depends on values (unique_consecutive)",
}
# torch's optimisers keep their step counts on the host (unless capturable or fused) and read
# them with .item(): a CPU run with `stacks` on leaves out reads made in their code, since a GPU
# run would not sync on them (without stacks they are counted).
HOST_STATE_CODE = "torch/optim/"


@dataclass(frozen=True)
class HostSync:
    """One host-device synchronisation: the step, the operator and the Python code that ran it."""

    step: int
    op: str
    frames: tuple[str, ...]

    def line(self) -> str:
        """`step N: op <- innermost frame <- ...`, for messages."""
        return f"step {self.step}: {self.op} <- " + " <- ".join(self.frames or ("?",))


class HostSyncAudit(Callback):
    """Profile training steps and list those on which the host waits for the device.

    Each step from ``first_step`` to ``first_step + num_steps - 1`` is profiled on its own, from
    its ``on_train_batch_start`` to the next one (or to the validation or the end of training),
    so the hooks, the logging and the progress bar of the step are covered. A sync is, on a
    GPU, a blocking CUDA runtime call (`SYNC_CALLS`) and, on the CPU, an operator that would
    block on a GPU (`SYNC_OPS`; see `HOST_STATE_CODE` for an exception), kept with the Python
    frames (outside torch) that led to it when ``stacks`` is on.

    Reading logged values on the steps where Lightning writes its logs (every
    ``trainer.log_every_n_steps``) is expected; at the end of training the audit warns, naming
    the code, if any other step synchronised, and logs ``perf/host_syncs`` per profiled step.
    The audit moves itself first in ``trainer.callbacks``, so each step's window opens before
    any other callback's hook.

    Attributes:
        syncs: the syncs found, by profiled step (an empty list: none).
        logging_steps: the profiled steps on which Lightning wrote its logs.

    Args:
        first_step: the first optimiser step to profile (later ones skip compilation and
            cuDNN autotuning).
        num_steps: how many steps to profile.
        stacks: record the Python frames of each sync (the profiler's ``with_stack``, which
            slows the profiled steps several times over); False counts the syncs only.
    """

    def __init__(self, first_step: int = 5, num_steps: int = 20, stacks: bool = True) -> None:
        non_negative_int("first_step", first_step)
        positive_int("num_steps", num_steps)
        self.first_step, self.num_steps, self.stacks = first_step, num_steps, stacks
        self.syncs: dict[int, list[HostSync]] = {}
        self.logging_steps: set[int] = set()
        self._profiler: profile | None = None
        self._step = -1

    @property
    def unexpected(self) -> list[HostSync]:
        """The syncs on steps where Lightning did not write logs."""
        return [
            sync
            for step, syncs in self.syncs.items()
            if step not in self.logging_steps
            for sync in syncs
        ]

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        trainer.callbacks.remove(self)
        trainer.callbacks.insert(0, self)
        has_logger(trainer, self, "perf/host_syncs is not logged (the warnings still list syncs)")

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._close()
        step = trainer.global_step
        if step in self.syncs or not self.first_step <= step < self.first_step + self.num_steps:
            return  # outside the window, or a later micro-batch of an accumulated step
        if writes_logs(trainer):
            self.logging_steps.add(step)
        activities = [ProfilerActivity.CPU]
        if pl_module.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self._step = step
        self._profiler = profile(activities=activities, with_stack=self.stacks)
        self._profiler.start()

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self._profiler is not None:
            self._profiler.stop()
            self._profiler = None

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()
        total = sum(len(syncs) for syncs in self.syncs.values())
        rank_zero_info(
            f"HostSyncAudit: {total} host-device syncs in {len(self.syncs)} profiled steps, "
            f"{len(self.unexpected)} of them on steps that wrote no logs"
        )
        if self.unexpected:
            listing = "\n".join(f"  {sync.line()}" for sync in self.unexpected)
            rank_zero_warn(f"host-device syncs on steps that wrote no logs:\n{listing}")
        for logger in trainer.loggers:
            for step, syncs in sorted(self.syncs.items()):
                logger.log_metrics({"perf/host_syncs": float(len(syncs))}, step=step)

    def _close(self) -> None:
        """Stop the running profile, if any, and keep the syncs it recorded."""
        if self._profiler is None:
            return
        self._profiler.stop()
        gpu = ProfilerActivity.CUDA in self._profiler.activities
        spans = _spans(self._profiler)
        is_sync = _blocks_on_gpu if gpu else _would_block_on_gpu
        self.syncs[self._step] = [
            HostSync(self._step, _operator(span, spans), _frames(span, spans))
            for span in spans
            if is_sync(span, spans)
        ]
        self._profiler = None


@dataclass(frozen=True)
class _Span:
    """One host-side event of a profile: an operator, a runtime call or a Python function."""

    name: str
    start: int
    end: int
    thread: int


def _spans(profiler: profile) -> list[_Span]:
    """The profile's host-side events, read from Kineto's results directly.

    torch's `profile.events()` builds a `FunctionEvent` tree of every event instead: 4-6 s per
    step of a tiny network with stacks (60,000 events, most of them Python functions), where
    only the few syncs' ancestors are needed (`_ancestors`).
    """
    return [
        _Span(event.name(), event.start_ns(), event.end_ns(), event.start_thread_id())
        for event in profiler.profiler.kineto_results.events()
        if event.device_type() == DeviceType.CPU
    ]


def _ancestors(span: _Span, spans: list[_Span]) -> list[_Span]:
    """The spans enclosing `span` on its thread, innermost first (as torch's event tree nests
    them: by time)."""
    enclosing = [
        other
        for other in spans
        if other.thread == span.thread
        and other.start <= span.start
        and other.end >= span.end
        and other is not span
    ]
    return sorted(enclosing, key=lambda other: (-other.start, other.end))


def _blocks_on_gpu(span: _Span, spans: list[_Span]) -> bool:
    """A CUDA runtime call that blocks the host."""
    return span.name in SYNC_CALLS


def _code(span: _Span, spans: list[_Span]) -> list[str]:
    """The Python frames above `span`, innermost first, as `package/file.py(line): function`."""
    return [p.name.split("site-packages/")[-1] for p in _ancestors(span, spans) if ".py(" in p.name]


def _would_block_on_gpu(span: _Span, spans: list[_Span]) -> bool:
    """A sync operator, unless torch's optimiser code reads its host state (`HOST_STATE_CODE`)."""
    if span.name not in SYNC_OPS:
        return False
    code = _code(span, spans)
    return not (code and code[0].startswith(HOST_STATE_CODE))


def _operator(span: _Span, spans: list[_Span]) -> str:
    """The span's name, after the innermost operator above it for a runtime call."""
    if span.name not in SYNC_CALLS:
        return span.name
    ops = [parent.name for parent in _ancestors(span, spans) if parent.name.startswith("aten::")]
    return f"{ops[0]} ({span.name})" if ops else span.name


def _frames(span: _Span, spans: list[_Span], depth: int = 4) -> tuple[str, ...]:
    """The innermost `depth` Python frames above `span` that are not torch's own."""
    return tuple(path for path in _code(span, spans) if not path.startswith("torch/"))[:depth]
