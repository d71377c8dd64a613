"""Per-query statistics of the two differential-attention maps that carry information.

The mean of a softmax row is always ``1/L`` (the row sums to 1), so it says nothing; the seed's
gate used it. These statistics describe *how* each query attends, independent of the length:

====  =================  =====================================================================
 idx  name               definition for one query row ``a`` over its ``n`` allowed keys
====  =================  =====================================================================
 0,1  ``entropy1/2``     ``−Σ a log a / log n`` in [0, 1]: 1 = uniform, 0 = one key (0 if n=1)
 2,3  ``max1/2``         ``max a`` in [1/n, 1]: weight of the strongest key
 4,5  ``cv1/2``          ``std(a)/mean(a)/√(n−1) = √((nΣa² − 1)/(n − 1))`` in [0, 1]: 0 uniform,
                         1 one-hot (normalised coefficient of variation; 0 if n=1)
 6    ``diff_neg_mass``  ``Σ max(0, −(a1 − λ a2))``: how much the subtraction removes beyond zero
                         (the common-mode "noise" that differential attention cancels)
 7    ``diff_max``       ``max (a1 − λ a2)``: the strongest surviving key after cancelling
====  =================  =====================================================================

(The differential row's *sum* is always ``1 − λ``: also uninformative, hence not used.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from .differential_attention import combine_masks

STAT_NAMES: tuple[str, ...] = ("entropy1", "entropy2", "max1", "max2", "cv1", "cv2",
                               "diff_neg_mass", "diff_max")
NUM_STATS = len(STAT_NAMES)


def _one_map_stats(a: Tensor, n: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    log_n = torch.log(n.clamp_min(2))
    ent = -torch.special.xlogy(a, a).sum(-1) / log_n
    mx = a.amax(-1)
    cv = torch.sqrt(((n * a.pow(2).sum(-1) - 1) / (n - 1).clamp_min(1)).clamp_min(0) + 1e-12)
    single = n <= 1
    return ent.masked_fill(single, 0.0), mx, cv.masked_fill(single, 0.0)


def row_stats_from_maps(a1: Tensor, a2: Tensor, lam: Tensor | float,
                        valid: Tensor | None = None) -> Tensor:
    """The 8 statistics (see module docstring) of explicit maps.

    Args:
        a1, a2: ``[..., Lq, Lk]`` softmax rows (exactly 0 at blocked keys).
        lam: λ, scalar or broadcastable to ``[..., Lq, 1]``.
        valid: optional bool ``[..., Lq, Lk]`` (broadcastable) of allowed keys; default all.
    Returns:
        ``[..., Lq, 8]`` in the order of :data:`STAT_NAMES`.
    """
    lk = a1.shape[-1]
    if valid is None:
        n = torch.full(a1.shape[:-1], float(lk), dtype=a1.dtype, device=a1.device)
    else:
        n = valid.expand(a1.shape).sum(-1).to(a1.dtype)
    e1, m1, c1 = _one_map_stats(a1, n)
    e2, m2, c2 = _one_map_stats(a2, n)
    d = a1 - lam * a2
    neg = torch.relu(-d).sum(-1)
    dmax = (d if valid is None else d.masked_fill(~valid, float("-inf"))).amax(-1)
    return torch.stack([e1, e2, m1, m2, c1, c2, neg, dmax], dim=-1)


def differential_row_stats(q: Tensor, k: Tensor, lam: Tensor | float, *, scale: float,
                           causal: bool = False, attn_mask: Tensor | None = None,
                           max_chunk_elements: int = 1 << 24) -> Tensor:
    """The 8 per-query statistics computed in query chunks, never holding a full ``L×L`` map.

    Args:
        q: ``[N, 2H, L, d]``, k: ``[N, 2H, S, d]`` (sub-heads ``2h``/``2h+1`` are the two maps of
            head ``h``, as in :class:`~diffattn.DifferentialAttention`).
        lam: λ (scalar tensor or float).
        scale: score scale (``1/√d``).
        causal: query ``i`` sees keys ``<= i``.
        attn_mask: optional bool/float mask broadcastable to ``[L, S]`` (not per sequence).
        max_chunk_elements: bound on the elements of one chunk's score tensor
            (``N · 2H · chunk · S``); the chunk has at least one query row.
    Returns:
        ``[N, H, L, 8]`` in the dtype of ``q``. Runs under the caller's grad mode (wrap in
        ``torch.no_grad()`` to use the statistics as detached observations).
    Memory: ``O(max(max_chunk_elements, N · 2H · S))`` temporaries plus the ``O(N·H·L)`` output.
    """
    n, h2, L, _ = q.shape
    s_len = k.shape[-2]
    if attn_mask is not None and attn_mask.ndim > 2:
        raise ValueError("differential_row_stats takes a [L, S] mask shared by all sequences")
    rows = max(1, min(L, max_chunk_elements // max(1, n * h2 * s_len)))
    kt = k.transpose(-1, -2)
    out = []
    for start in range(0, L, rows):
        stop = min(L, start + rows)
        s = torch.matmul(q[:, :, start:stop] * scale, kt)  # [N, 2H, c, S]
        mask = attn_mask[start:stop] if attn_mask is not None and attn_mask.shape[0] == L \
            else attn_mask
        mask = combine_masks(mask, causal, stop - start, s_len, q.device, q_offset=start)
        valid = None
        if mask is not None:
            if mask.dtype == torch.bool:
                valid = mask
                s = s.masked_fill(~mask, float("-inf"))
            else:
                valid = torch.isfinite(mask)
                s = s + mask
        sdt = s.dtype if s.dtype in (torch.float32, torch.float64) else torch.float32
        a = torch.softmax(s, dim=-1, dtype=sdt).unflatten(1, (h2 // 2, 2))
        lam_c = lam.to(sdt) if isinstance(lam, Tensor) else lam
        out.append(row_stats_from_maps(a[:, :, 0], a[:, :, 1], lam_c, valid).to(q.dtype))
    return torch.cat(out, dim=2)
