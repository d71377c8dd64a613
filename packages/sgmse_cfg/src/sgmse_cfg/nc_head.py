"""Noise-classification (NC) head and loss (NASE, Hu et al. 2024).

NASE trains its noise encoder with ``L = L_DSM + 0.3 * CE`` over the 10 VoiceBank-DEMAND
training noise types (``se_data.VBDEMAND_TRAIN_NOISE_CLASSES``), labels from the dataset's
``log_trainset_28spk.txt``. Its head is BEATs' predictor: dropout 0.1, a linear layer on
the frame embeddings averaged over time -- a linear layer commutes with the mean, so here
it is applied to the pooled embedding. NASE passes *sigmoid* outputs to
``CrossEntropyLoss`` (a softmax on top of a sigmoid); this head returns plain logits and the
loss is the ordinary cross-entropy on them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._batch_random import share_rand

__all__ = ["NoiseClassifier", "nc_loss", "NC_WEIGHT", "IGNORE_LABEL"]

#: NASE's weight of the cross-entropy term
NC_WEIGHT = 0.3
#: label of an utterance without a training noise class (unlabelled or unseen type)
IGNORE_LABEL = -1


class NoiseClassifier(nn.Module):
    """``pooled [B, D] -> logits [B, n_classes]`` (dropout, then linear)."""

    def __init__(self, dim: int, n_classes: int = 10, dropout: float = 0.1) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"an NC head needs at least 2 classes, got {n_classes}")
        self.n_classes = int(n_classes)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(dim, n_classes)

    def forward(self, pooled: Tensor, generator: torch.Generator | None = None,
                share: tuple[int, int] | None = None) -> Tensor:
        """In training with a ``generator`` the dropout mask is drawn from it (``share``: one rank's
        items of a data-parallel global batch), so seeded and data-parallel runs repeat exactly; without one,
        ``nn.Dropout`` (the global RNG)."""
        p = self.dropout.p
        if self.training and p > 0 and generator is not None:
            keep = share_rand(tuple(pooled.shape), generator, pooled.device, pooled.dtype, share) >= p
            return self.linear(pooled * keep / (1.0 - p))
        return self.linear(self.dropout(pooled))


def nc_loss(logits: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """NC loss of ``logits [B, C]`` against ``labels [B]`` (``0..C-1``; ``-1`` = no label,
    ignored): ``(ce, {"nc": ce.detach(), "nc_acc": accuracy})``.

    ``ce`` is the mean cross-entropy over the labelled items and ``nc_acc`` the fraction of
    them whose argmax is right. A batch without any label gives ``ce = 0`` (still attached to
    the graph, so DDP sees every parameter used) and ``nc_acc = 0``."""
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must be [B] = [{logits.shape[0]}], got {tuple(labels.shape)}")
    labels = labels.to(device=logits.device, dtype=torch.long)
    bad = (labels < IGNORE_LABEL) | (labels >= logits.shape[1])
    if bool(bad.any()):
        raise ValueError(f"NC labels must be in 0..{logits.shape[1] - 1} or {IGNORE_LABEL} (no label), "
                         f"got {labels[bad].tolist()}")
    valid = labels != IGNORE_LABEL
    n_valid = valid.sum().clamp(min=1)
    ce = F.cross_entropy(logits.float(), labels.clamp(min=0), reduction="none")
    ce = (ce * valid).sum() / n_valid
    correct = (logits.detach().argmax(dim=-1) == labels) & valid
    return ce, {"nc": ce.detach(), "nc_acc": correct.sum() / n_valid}
