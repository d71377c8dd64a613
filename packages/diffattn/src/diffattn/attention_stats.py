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


def _score_row_stats(s: Tensor, valid: Tensor | None, n: Tensor, lam: Tensor | float) -> Tensor:
    """Statistics straight from masked scores ``s [N, 2H, c, S]`` (``-inf`` = blocked).

    Same numbers as :func:`row_stats_from_maps` on ``softmax(s)`` but cheaper: no logarithm over
    the map (``H = lse − E_p[s]``), ``max p = 1/Σexp(s − max s)``, and the differential row's
    negative mass from its L1 norm (``Σ relu(−D) = (‖D‖₁ − Σ D)/2`` with ``Σ D = 1 − λ``).
    """
    m = s.amax(-1, keepdim=True)
    e = torch.exp(s - m)
    z = e.sum(-1, keepdim=True)
    p = e / z
    s_fin = s if valid is None else s.masked_fill(~valid, 0.0)
    expected = torch.linalg.vecdot(p, s_fin)
    z = z.squeeze(-1)
    ent = (m.squeeze(-1) + torch.log(z) - expected) / torch.log(n.clamp_min(2))
    mx = 1.0 / z
    sq = torch.linalg.vector_norm(p, dim=-1).pow(2)
    cv = torch.sqrt(((n * sq - 1) / (n - 1).clamp_min(1)).clamp_min(0) + 1e-12)
    single = n <= 1
    ent, cv = ent.masked_fill(single, 0.0), cv.masked_fill(single, 0.0)
    pp = p.unflatten(1, (p.shape[1] // 2, 2))
    d = pp[:, :, 0] - lam * pp[:, :, 1]
    neg = (torch.linalg.vector_norm(d, ord=1, dim=-1) - (1 - lam)) / 2
    dmax = (d if valid is None else d.masked_fill(~valid, float("-inf"))).amax(-1)
    per_map = torch.stack([ent, mx, cv], dim=-1).unflatten(1, (p.shape[1] // 2, 2))  # [N,H,2,c,3]
    per_map = per_map.permute(0, 1, 3, 4, 2).flatten(-2)  # [N, H, c, 6]: e1 e2 m1 m2 c1 c2
    return torch.cat([per_map, neg.clamp_min(0).unsqueeze(-1), dmax.unsqueeze(-1)], dim=-1)


def differential_row_stats(q: Tensor, k: Tensor, lam: Tensor | float, *, scale: float,
                           causal: bool = False, attn_mask: Tensor | None = None,
                           max_chunk_elements: int = 1 << 22) -> Tensor:
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
    Compute: ``O(N · 2H · L · S)`` elementwise work in ~12 passes over each chunk (several times
    the fused attention kernel's time on CPU).
    """
    n, h2, L, _ = q.shape
    s_len = k.shape[-2]
    if attn_mask is not None and attn_mask.ndim > 2:
        raise ValueError("differential_row_stats takes a [L, S] mask shared by all sequences")
    rows = max(1, min(L, max_chunk_elements // max(1, n * h2 * s_len)))
    kt = k.transpose(-1, -2)
    sdt = q.dtype if q.dtype in (torch.float32, torch.float64) else torch.float32
    lam_c = lam.to(sdt) if isinstance(lam, Tensor) else lam
    out = []
    for start in range(0, L, rows):
        stop = min(L, start + rows)
        s = torch.matmul(q[:, :, start:stop].to(sdt) * scale, kt.to(sdt))  # [N, 2H, c, S]
        mask = attn_mask[start:stop] if attn_mask is not None and attn_mask.shape[0] == L \
            else attn_mask
        mask = combine_masks(mask, causal, stop - start, s_len, q.device, q_offset=start)
        valid = None
        if mask is None:
            cnt = torch.full((stop - start,), float(s_len), dtype=sdt, device=q.device)
        else:
            if mask.dtype == torch.bool:
                valid = mask
                s = s.masked_fill(~mask, float("-inf"))
            else:
                valid = torch.isfinite(mask)
                s = s + mask.to(sdt)
            cnt = valid.expand(stop - start, s_len).sum(-1).to(sdt)
        out.append(_score_row_stats(s, valid, cnt.expand(n, h2, -1), lam_c).to(q.dtype))
    return torch.cat(out, dim=2)
