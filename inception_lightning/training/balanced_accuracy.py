"""`BalancedAccuracy`: the mean recall over the classes present, and each class's recall."""

from __future__ import annotations

from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy


class BalancedAccuracy(MulticlassAccuracy):
    """Balanced accuracy: the mean over classes of each class's recall (top-1), as
    scikit-learn's `balanced_accuracy_score`; on an imbalanced set every class weighs alike.

    torchmetrics' `MulticlassAccuracy(average="macro")` also averages classes that were
    predicted but never the target, as recall 0: here only the classes present in the targets
    count, so a class missing from a small validation set does not pull the score down.

    Args:
        num_classes: classifier outputs.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, top_k=1, average="none")

    def per_class(self) -> Tensor:
        """Each class's recall, NaN for a class absent from the targets."""
        tp, _, _, fn = self._final_state()
        return tp.double() / (tp + fn)

    def compute(self) -> Tensor:
        """The mean recall over the classes present (NaN before any update)."""
        return self.per_class().nanmean().float()
