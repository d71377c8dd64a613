"""Helpers for the models' analysis outputs (``forward(..., return_analysis=...)``).

Two analysis levels, the same for :class:`~bandsplit.BSDT`, :class:`~bandsplit.ERBUNet`,
:class:`~bandsplit.ERBUNet257` and :class:`~bandsplit.ERBUNetAdapter`:

* ``return_analysis=True``: the cheap entries a *training* step may ask for (the diversity loss
  reads ``scale_gates`` from it every step): fusion weights, gates, graphs, λ. No ``T x T`` map
  is kept, and no attention runs on its explicit (map-materialising) path for it, except where the
  entry is itself computed from the maps (the adaptive ERB-UNet bottleneck's statistics).
* ``return_analysis="full"``: everything of ``True`` plus the figures' entries: attention maps
  (``O(B·K·H·T²)`` transient memory for BSDT's temporal attention: keep ``T`` to a few seconds),
  inter-band attention weights, band embeddings and their PCA projection, the expected fusion
  window per band. For inspection and plots (``tools/_bsdt_report.py``), not for training.
"""

from __future__ import annotations

from typing import Literal, Union

import torch
from torch import Tensor

__all__ = ["AnalysisMode", "analysis_level", "pca_2d"]

#: what ``forward(..., return_analysis=...)`` accepts
AnalysisMode = Union[bool, Literal["full"]]


def analysis_level(return_analysis: AnalysisMode) -> int:
    """``False`` -> 0 (no analysis), ``True`` -> 1 (cheap entries), ``"full"`` -> 2 (with maps)."""
    if return_analysis is False or return_analysis is None:
        return 0
    if return_analysis is True:
        return 1
    if return_analysis == "full":
        return 2
    raise ValueError(f"return_analysis must be False, True or 'full', got {return_analysis!r}")


def pca_2d(x: Tensor) -> tuple[Tensor, Tensor]:
    """Project the rows of ``x [K, E]`` onto their first two principal components.

    The rows are centred (mean over K subtracted) and projected onto the two right singular
    vectors of the largest singular values: ``P = (x − mean) V[:, :2]``. Each component's sign is
    fixed so that its largest-magnitude loading is positive (the SVD's sign is arbitrary).

    Returns:
        ``(P [K, 2], explained [2])`` in float32: the projection, and each component's share of
        the total variance (0 where there is none). With ``min(K, E) < 2`` the missing column is 0.
    """
    if x.ndim != 2:
        raise ValueError(f"pca_2d expects [K, E], got {tuple(x.shape)}")
    xc = x.detach().double().cpu()
    xc = xc - xc.mean(0, keepdim=True)
    k, e = xc.shape
    proj = torch.zeros(k, 2, dtype=torch.float64)
    explained = torch.zeros(2, dtype=torch.float64)
    if k == 0 or e == 0:
        return proj.float(), explained.float()
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    n = min(2, s.numel())
    v = vh[:n].T.clone()                                   # [E, n]
    flip = torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True)))
    v = v * torch.where(flip == 0, torch.ones_like(flip), flip)
    proj[:, :n] = xc @ v
    total = s.pow(2).sum()
    if total > 0:
        explained[:n] = s[:n].pow(2) / total
    return proj.float(), explained.float()
