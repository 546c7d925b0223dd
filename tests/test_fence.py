"""`training.fence.rank_zero_alone` under 2-process CPU DDP: when rank 0's fenced work raises,
every rank raises, the others naming the work and rank 0's error, and none is left waiting.

(A fenced report slower than the group's timeout, through the console script, is
`test_ddp_end.py`.)
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers import run_two_ranks

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from lightning.pytorch import Callback, LightningModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset
    from inception_lightning.training.fence import rank_zero_alone

    class Linear(LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class FailingWork(Callback):
        def on_fit_end(self, trainer, pl_module):
            try:
                with rank_zero_alone(trainer, "the test's work") as lead:
                    if lead:
                        raise ValueError("the work failed on purpose")
            except Exception as error:
                out = Path(sys.argv[2]) / f"rank{trainer.global_rank}.txt"
                out.parent.mkdir(exist_ok=True)
                out.write_text(f"{type(error).__name__}: {error}")
            trainer.strategy.barrier()  # rank 0 leaves after rank 1 has written its error

    loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)
    trainer = Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[FailingWork()],
    )
    trainer.fit(Linear(), loader)
    if trainer.global_rank == 0:
        Path(sys.argv[1]).write_text(json.dumps({"world_size": trainer.world_size}))
    """
)


@pytest.mark.e2e
def test_fenced_work_failing_on_rank_zero_raises_on_every_rank(tmp_path: Path) -> None:
    assert run_two_ranks(SCRIPT, tmp_path) == {"world_size": 2}
    errors = tmp_path / "runs"
    assert (errors / "rank0.txt").read_text() == "ValueError: the work failed on purpose"
    assert (errors / "rank1.txt").read_text() == (
        "RuntimeError: the test's work failed on rank 0: ValueError: the work failed on purpose"
    )
