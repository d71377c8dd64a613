"""Per-query statistics of the two differential-attention maps, computed without ``T×T`` tensors.

The mean of a softmax row is always ``1/n`` (the row sums to 1), so it says nothing, and a gate fed
with it learns nothing from it. These 8 statistics describe *how* each query attends and are length-normalised.
For one query ``i`` with ``n`` allowed keys, maps ``a1``, ``a2`` (rows) and ``D = a1 − λ a2``:

====  ================  =====================================================================
 idx  name              definition
====  ================  =====================================================================
 0,1  ``entropy1/2``    ``−Σ a log a / log n`` in [0, 1]: 1 = uniform, 0 = a single key
 2,3  ``cv1/2``         ``√((n Σa² − 1)/(n − 1))`` in [0, 1]: the coefficient of variation
                        ``std(a)/mean(a)`` scaled to 1 for a one-hot row (0 = uniform)
 4    ``overlap``       ``Σ a1 a2 / √(Σa1² Σa2²)`` in [0, 1]: cosine similarity of the two maps,
                        i.e. how much common-mode attention the subtraction cancels
 5    ``diff_energy``   ``‖D‖₂ / ‖a1‖₂``: the share of the first map's energy that survives
                        the subtraction (the λ-differenced map's statistic)
 6,7  ``offset1/2``     ``asinh(Σ_j a_j · j − i)``: where the map looks, in frames relative to
                        the query (negative = past), compressed for long contexts
====  ================  =====================================================================

(``entropy``/``cv`` are 0 when ``n = 1``. The differential row's sum is always ``1 − λ``: also
uninformative, hence not used.)

Two implementations give the same numbers: :func:`row_stats_from_maps` from explicit maps (used
for analysis and as the reference) and :func:`differential_row_stats`, which only calls the fused
``scaled_dot_product_attention`` kernel. It needs each row's log-sum-exp, which SDPA does not
return; a "sink" key supplies it: a key whose score is a known per-query value ``b`` and whose
value is an indicator column. Its attention weight is ``w = e^b / (e^b + Σ_j e^{s_j})``, so
``lse = b + log(1 − w) − log(w)``, and the other value columns come out scaled by ``1 − w``.
``b`` is chosen near the true ``lse`` (``mean_j s_j + log n``, a lower bound) so that
``w ∈ (0, 1/2]`` and nothing cancels. Then

* ``Σ a s = q·(Σ a k)`` (values = keys) gives the entropy ``lse − Σ a s``; values = positions
  give the offset;
* ``Σ a² = exp(lse(2s) − 2 lse(s))`` (queries doubled) and
  ``Σ a1 a2 = exp(lse(s1 + s2) − lse(s1) − lse(s2))`` (q/k of the two maps concatenated).

Scores spreading by more than ~80 (``max − mean``) underflow the sink weight in float32; the
weight is clamped to the smallest normal number there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

STAT_NAMES: tuple[str, ...] = ("entropy1", "entropy2", "cv1", "cv2", "overlap", "diff_energy",
                               "offset1", "offset2")
NUM_STATS = len(STAT_NAMES)


def _finish_stats(ent1: Tensor, ent2: Tensor, sq1: Tensor, sq2: Tensor, cross: Tensor,
                  off1: Tensor, off2: Tensor, n: Tensor, lam: Tensor | float) -> Tensor:
    """Assemble ``[..., 8]`` from entropies (nats), Σa², Σa1a2 and offsets (frames)."""
    log_n = torch.log(n.clamp_min(2))
    single = n <= 1
    tiny = 1e-12

    def cv(sq: Tensor) -> Tensor:
        return torch.sqrt(((n * sq - 1) / (n - 1).clamp_min(1)).clamp_min(0) + tiny)

    overlap = cross / torch.sqrt(sq1 * sq2 + tiny)
    d_energy = torch.sqrt((sq1 - 2 * lam * cross + lam * lam * sq2).clamp_min(0) / sq1 + tiny)
    return torch.stack([
        (ent1 / log_n).masked_fill(single, 0.0), (ent2 / log_n).masked_fill(single, 0.0),
        cv(sq1).masked_fill(single, 0.0), cv(sq2).masked_fill(single, 0.0),
        overlap.clamp(0, 1), d_energy, torch.asinh(off1), torch.asinh(off2)], dim=-1)


def row_stats_from_maps(a1: Tensor, a2: Tensor, lam: Tensor | float,
                        valid: Tensor | None = None) -> Tensor:
    """The 8 statistics (see module docstring) of explicit maps.

    Args:
        a1, a2: ``[..., L, S]`` softmax rows of queries ``0..L−1`` over keys ``0..S−1``
            (exactly 0 at blocked keys).
        lam: λ, scalar or broadcastable to ``[..., L]``.
        valid: optional bool ``[..., L, S]`` (broadcastable) of allowed keys; default all.
    Returns:
        ``[..., L, 8]`` in the order of :data:`STAT_NAMES`.
    Memory: a few tensors of the maps' size.
    """
    L, S = a1.shape[-2:]
    if valid is None:
        n = torch.full(a1.shape[:-1], float(S), dtype=a1.dtype, device=a1.device)
    else:
        n = valid.expand(a1.shape).sum(-1).to(a1.dtype)
    keys = torch.arange(S, dtype=a1.dtype, device=a1.device)
    rows = torch.arange(L, dtype=a1.dtype, device=a1.device)
    ent1 = -torch.special.xlogy(a1, a1).sum(-1)
    ent2 = -torch.special.xlogy(a2, a2).sum(-1)
    return _finish_stats(ent1, ent2, a1.pow(2).sum(-1), a2.pow(2).sum(-1), (a1 * a2).sum(-1),
                         a1 @ keys - rows, a2 @ keys - rows, n, lam)


def _sdpa_lse(q: Tensor, k: Tensor, bias: Tensor, scale: float, causal: bool,
              values: Tensor | None = None, key_mask: Tensor | None = None
              ) -> tuple[Tensor, Tensor | None]:
    """Row log-sum-exp of ``scale·q·kᵀ`` (and ``softmax·values``) from one fused SDPA call.

    Args:
        q, k: ``[N, h, L, e]``; bias: ``[N, h, L]`` the sink score ``b`` (close to the lse);
        values: optional ``[N, h, L, c]``; key_mask: optional bool ``[N, L]`` (``True`` = valid key).
    Returns:
        ``lse [N, h, L]`` and ``softmax(s) @ values [N, h, L, c]`` (or ``None``).
    Memory: ``O(N · h · L · max(e, c))``: q/k/v are made 4-D with equal widths (CPU flash kernel).
    Layout: keys ``[sink, k_0, …]`` and queries ``[dummy, q_0, …]``, so ``is_causal`` lets query
    ``i`` see the sink and keys ``0..i``.
    """
    n, h, L, e = q.shape
    c = 0 if values is None else values.shape[-1]
    width = max(e + 1, c + 1)
    qa = q.new_zeros(n, h, L + 1, width)
    qa[:, :, 1:, :e] = q
    qa[:, :, 1:, e] = bias / scale
    ka = q.new_zeros(n, h, L + 1, width)
    ka[:, :, 1:, :e] = k
    ka[:, :, 0, e] = 1.0
    va = q.new_zeros(n, h, L + 1, width)
    if values is not None:
        va[:, :, 1:, :c] = values
    va[:, :, 0, c] = 1.0
    mask = None
    if key_mask is not None:  # the sink is always allowed
        mask = torch.cat([key_mask.new_ones(n, 1), key_mask], 1)[:, None, None, :]  # [N, 1, 1, L+1]
        if causal:
            steps = torch.arange(L + 1, device=q.device)
            mask, causal = mask & (steps[None, :] <= steps[:, None]), False
    o = F.scaled_dot_product_attention(qa, ka, va, attn_mask=mask, is_causal=causal, scale=scale)[:, :, 1:]
    fin = torch.finfo(o.dtype)
    w = o[..., c].clamp(fin.tiny, 1.0 - fin.eps)
    lse = bias + torch.log1p(-w) - torch.log(w)
    ev = o[..., :c] / (1 - w).unsqueeze(-1) if c else None
    return lse, ev


def differential_row_stats(q: Tensor, k: Tensor, lam: Tensor | float, *, scale: float,
                           causal: bool = False, key_padding_mask: Tensor | None = None) -> Tensor:
    """The 8 per-query statistics with three fused SDPA calls and no ``L×L`` tensor.

    Args:
        q, k: ``[N, 2H, L, d]`` (sub-heads ``2h``/``2h+1`` are the two maps of head ``h``, as in
            :class:`~diffattn.DifferentialAttention`); self-attention (same length L).
        lam: λ (scalar tensor or float).
        scale: score scale (``1/√d``).
        causal: query ``i`` sees keys ``<= i``.
        key_padding_mask: optional bool ``[N, L]`` (``True`` = valid key) of a padded batch: each
            row sees its sequence's valid keys only (and ``n`` counts them), so the valid rows of a
            sequence padded after its end get the statistics it gets alone. Every query needs an
            allowed key (a valid key, ``<= i`` when causal).
    Returns:
        ``[N, H, L, 8]`` in the order of :data:`STAT_NAMES`, differentiable w.r.t. ``q``/``k``
        (wrap in ``torch.no_grad()`` to use them as detached observations).
    Memory: ``O(N · H · L · d)`` (a key-padding mask adds ``[N, 1, 1, L+1]`` bools; with
    ``causal`` too, ``[N, 1, L+1, L+1]``). Compute: about 2–3× the differential attention itself.
    """
    if q.shape != k.shape:
        raise ValueError(f"differential_row_stats needs q and k of one shape [N, 2H, L, d], got "
                         f"{tuple(q.shape)} and {tuple(k.shape)}")
    n_seq, h2, L, d = q.shape
    dt = q.dtype if q.dtype in (torch.float32, torch.float64) else torch.float32
    q, k = q.to(dt), k.to(dt)
    pos = torch.arange(L, dtype=dt, device=q.device)
    km = None
    if key_padding_mask is not None:
        km = key_padding_mask
        if km.dtype != torch.bool or km.shape != (n_seq, L):
            raise ValueError(f"key_padding_mask must be bool [N, L] = [{n_seq}, {L}] (True = valid key), got "
                             f"{km.dtype} {tuple(km.shape)}")
        mf = km.to(dt)[:, None, :]                                   # [N, 1, L]
        if causal:
            n = torch.cumsum(mf, dim=2).clamp_min(1)                 # allowed keys of row i: valid ones <= i
            kbar = torch.cumsum(k * mf[..., None], dim=2) / n[..., None]
        else:
            n = mf.sum(2, keepdim=True).clamp_min(1)                 # [N, 1, 1]
            kbar = (k * mf[..., None]).sum(2, keepdim=True) / n[..., None]
    elif causal:
        n = pos + 1
        kbar = torch.cumsum(k, dim=2) / n[:, None]
    else:
        n = torch.full((L,), float(L), dtype=dt, device=q.device)
        kbar = k.mean(2, keepdim=True)
    log_n = torch.log(n)
    # call 1: lse, Σ a·k (-> expected score) and Σ a·j (-> centroid) for all 2H maps
    b1 = scale * (q * kbar).sum(-1) + log_n
    vals = torch.cat([k, pos.expand(n_seq, h2, L).unsqueeze(-1)], -1)
    lse, ev = _sdpa_lse(q, k, b1, scale, causal, vals, km)
    assert ev is not None
    entropy = lse - scale * (q * ev[..., :d]).sum(-1)
    centroid = ev[..., d]
    # call 2: lse of 2s per map (-> Σa² = exp(lse(2s) − 2 lse(s)))
    lse_2s, _ = _sdpa_lse(2 * q, k, 2 * lse - log_n, scale, causal, key_mask=km)
    sq = torch.exp(lse_2s - 2 * lse)
    # call 3: lse of s1 + s2 per head (q/k of the two maps side by side -> Σ a1 a2)
    pair = (n_seq, h2 // 2, L, 2 * d)
    lse1, lse2 = lse[:, 0::2], lse[:, 1::2]
    lse_x, _ = _sdpa_lse(q.view(n_seq, h2 // 2, 2, L, d).transpose(2, 3).reshape(pair),
                         k.view(n_seq, h2 // 2, 2, L, d).transpose(2, 3).reshape(pair),
                         lse1 + lse2 - log_n, scale, causal, key_mask=km)
    cross = torch.exp(lse_x - lse1 - lse2)
    lam_t = lam.to(dt) if isinstance(lam, Tensor) else lam
    nn_ = n.expand(n_seq, h2 // 2, L)  # n: [L], [N, 1, L] or [N, 1, 1]
    return _finish_stats(entropy[:, 0::2], entropy[:, 1::2], sq[:, 0::2], sq[:, 1::2], cross,
                         centroid[:, 0::2] - pos, centroid[:, 1::2] - pos, nn_, lam_t)

