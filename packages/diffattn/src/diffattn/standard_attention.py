"""Plain multi-head softmax attention (Vaswani et al. 2017), the baseline of differential attention.

``StandardAttention`` has the interface of :class:`~diffattn.DifferentialAttention` so a model
can swap one for the other (the "with / without differential attention" ablation):

    head_h = softmax(Q_h K_hᵀ / √d) V_h,        out = out_proj(concat_h head_h)

with ``d = dim / num_heads`` and bias-free ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``
(``dim -> dim``): ``4·dim²`` parameters. The Differential Transformer (Ye et al. 2024,
arXiv 2410.05258, §3) compares ``H`` differential heads with a Transformer of ``2H`` heads of
the same size: give ``num_heads = 2H`` to match the differential sub-head size ``d``; the
differential layer then has ``6d`` parameters more (four λ vectors of ``d``, the per-head RMSNorm
gain of ``2d``). No λ, no per-head norm, no ``(1 − λ_init)`` scaling.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .differential_attention import Impl, _softmax_dtype, combine_masks


def softmax_map(q: Tensor, k: Tensor, *, scale: float, attn_mask: Tensor | None = None,
                causal: bool = False) -> Tensor:
    """Explicit attention map ``softmax(q kᵀ · scale)``: ``q [N, H, Lq, d]``, ``k [N, H, Lk, d]``
    -> ``[N, H, Lq, Lk]`` (rows sum to 1 over allowed keys; mask as :func:`combine_masks`)."""
    s = torch.matmul(q * scale, k.transpose(-1, -2))
    mask = combine_masks(attn_mask, causal, q.shape[-2], k.shape[-2], q.device)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    return torch.softmax(s, dim=-1, dtype=_softmax_dtype(s.dtype)).to(q.dtype)


class StandardAttention(nn.Module):
    """Multi-head softmax attention along dim -2: ``[..., L, dim] -> [..., L, dim]``.

    Args:
        dim: model width, divisible by ``num_heads``.
        num_heads: heads (``2H`` to match an ``H``-head :class:`~diffattn.DifferentialAttention`).
        causal: query ``t`` attends to keys ``<= t`` only.
        impl: ``"auto"`` (fused ``scaled_dot_product_attention`` unless analysis is requested),
            ``"sdpa"`` or ``"naive"`` (explicit map).

    Memory (fused path): ``O(N_seq · L · dim)``; the naive path and ``return_analysis=True``
    materialise ``[N_seq, H, L, L]``.
    """

    def __init__(self, dim: int, num_heads: int, causal: bool = False, *, impl: Impl = "auto") -> None:
        super().__init__()
        if num_heads <= 0 or dim <= 0 or dim % num_heads:
            raise ValueError(f"StandardAttention: dim ({dim}) must be a positive multiple of num_heads "
                             f"({num_heads})")
        if impl not in ("auto", "sdpa", "naive"):
            raise ValueError(f"impl must be 'auto', 'sdpa' or 'naive', got {impl!r}")
        self.dim, self.num_heads, self.causal, self.impl = dim, num_heads, causal, impl
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, *, return_analysis: bool = False,
                impl: Impl | None = None) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """Attend along dim -2.

        Args:
            x: ``[..., L, dim]`` (all leading dims are batch).
            attn_mask: bool (``True`` = may attend) or float additive mask broadcastable to
                ``[L, L]``; combined with ``causal``.
            return_analysis: also return ``{"attn": [..., H, L, L]}``.
            impl: override the constructor's code path.
        """
        if x.ndim < 2 or x.shape[-1] != self.dim:
            raise ValueError(f"StandardAttention expects [..., L, {self.dim}], got shape {tuple(x.shape)}")
        lead, L = x.shape[:-2], x.shape[-2]
        xf = x.reshape(-1, L, self.dim)
        n = xf.shape[0]
        q, k, v = (p(xf).view(n, L, self.num_heads, self.head_dim).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        path = impl or self.impl
        if path not in ("auto", "sdpa", "naive"):
            raise ValueError(f"impl must be 'auto', 'sdpa' or 'naive', got {path!r}")
        if return_analysis and path == "sdpa":
            raise ValueError("return_analysis=True needs the explicit map: use impl='naive' or 'auto'")
        if return_analysis or path == "naive":
            a = softmax_map(q, k, scale=self.scaling, attn_mask=attn_mask, causal=self.causal)
            o = torch.matmul(a, v)
        else:
            mask, causal = attn_mask, self.causal
            if causal and mask is not None:
                mask, causal = combine_masks(mask, True, L, L, q.device), False
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=self.scaling)
        y = self.out_proj(o.transpose(1, 2).flatten(2)).reshape(*lead, L, self.dim)
        if not return_analysis:
            return y
        return y, {"attn": a.reshape(*lead, self.num_heads, L, L)}

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, head_dim={self.head_dim}, causal={self.causal}"
