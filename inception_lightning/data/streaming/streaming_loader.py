"""`ResumableStreamingDataLoader`: LitData's loader, resumed mid-epoch bit-identically."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from litdata import StreamingDataLoader

from inception_lightning.data.resumable import rng_states, set_rng_states


class ResumableStreamingDataLoader(StreamingDataLoader):
    """`StreamingDataLoader` whose checkpointed state also holds the global RNGs.

    LitData's state (which Lightning checkpoints, as for any loader with `state_dict`) says how
    many items each rank's workers had yielded, so a resumed epoch streams the items it had not
    yet seen, in the same order. The random crops and dropout masks drawn since are another
    matter: Lightning does not checkpoint the global RNGs. As `data.resumable.ResumableDataLoader`
    does for folders, the state here adds the torch (CPU and CUDA), Python and NumPy RNG states
    at the moment of saving, and the resumed epoch's first batch sets them back.

    Exact for `num_workers=0`; augmentations drawn inside worker processes are not replayed.
    Under DDP the checkpoint holds rank 0's state: every rank resumes its own share of the
    items, with rank 0's RNGs. All arguments are `StreamingDataLoader`'s.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending_rng: dict[str, Any] | None = None
        self._resuming = False

    def __iter__(self) -> Iterator[Any]:
        """The epoch's batches; after `load_state_dict`, those not yet consumed, with the RNGs
        as they were when the state was saved."""
        if not self._resuming:
            # LitData clears `restore` only when an epoch's iterator runs to its end, but
            # Lightning stops a sized loader after its last batch, so the epoch after a resumed
            # one would replay the loaded state (and yield nothing): one resumed epoch only.
            self.restore = False
        self._resuming = False
        if self._pending_rng is not None:
            state, self._pending_rng = self._pending_rng, None
            set_rng_states(state)
        yield from super().__iter__()

    def state_dict(self) -> dict[str, Any]:
        """LitData's state, and the global RNGs now."""
        return {**super().state_dict(), "rng": rng_states()}

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        """Resume from `obj` at the next iteration."""
        state = dict(obj)
        self._pending_rng = state.pop("rng", None)
        self._resuming = True
        super().load_state_dict(state)
