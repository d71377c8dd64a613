"""One temporal attention module per band, evaluated as one batched computation.

The BSDT design notes ("BandWiseDifferentialAttention") gives every frequency band its own
attention module (``ModuleList`` of K modules, a Python loop over bands). ``BandwiseAttention``
holds the K modules' weights stacked on a leading band axis and runs them together: the
projections are one ``einsum`` over ``[B, K, T, dim] x [K, dim_out, dim]`` and the attention
is one fused ``scaled_dot_product_attention`` over the ``B·K`` sequences, so there is no loop
over bands. Band ``k`` of the output is exactly what a :class:`~diffattn.DifferentialAttention`
(``kind="differential"``) or :class:`~diffattn.StandardAttention` (``kind="standard"``) with band
``k``'s weights computes on band ``k`` of the input (:meth:`BandwiseAttention.from_modules`
builds one from K such modules).

Per band and differential head ``h`` (Ye et al. 2024, arXiv 2410.05258; ``d = dim / (2H)``)::

    λ_k    = exp(λq1_k·λk1_k) − exp(λq2_k·λk2_k) + λ_init      (one scalar per band)
    head   = (1 − λ_init) · RMSNorm_k( (softmax(Q1 K1ᵀ/√d) − λ_k softmax(Q2 K2ᵀ/√d)) V )

Parameters: K times those of one module (``K·(4·dim² + 6d)`` differential, ``K·4·dim²``
standard). Memory: ``O(B·K·T·dim)`` activations on the fused path (no ``T×T`` tensor);
``return_analysis=True`` materialises the maps ``O(B·K·H·T²)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .differential_attention import (
    DifferentialAttention,
    combine_masks,
    differential_maps,
    lambda_init_fn,
    two_map_sdpa,
)
from .standard_attention import StandardAttention, softmax_map

AttentionKind = Literal["differential", "standard"]
ATTENTION_KINDS: tuple[str, ...] = ("differential", "standard")


def _rms(x: Tensor, eps: float) -> Tensor:
    """RMS-normalise the last dim without gain, statistics in at least float32."""
    if x.dtype in (torch.float32, torch.float64):
        return F.rms_norm(x, (x.shape[-1],), None, eps)
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


class BandwiseAttention(nn.Module):
    """K band-specific attention modules over time: ``x [B, K, T, dim] -> [B, K, T, dim]``.

    Args:
        dim: feature width; ``dim % (2·num_heads) == 0`` (differential) or ``dim % num_heads == 0``.
        num_heads: differential heads H (``kind="differential"``) or softmax heads.
        num_bands: K.
        depth: 0-based layer index (sets ``λ_init = 0.8 − 0.6·exp(−0.3·depth)``).
        kind: ``"differential"`` or ``"standard"``.
        causal: query ``t`` attends to keys ``<= t`` only.
        norm_eps: eps of the per-head RMSNorm (differential).
        impl: ``"auto"`` (fused SDPA unless analysis is requested) or ``"naive"`` (explicit maps).

    Parameters (stacked over bands, names as in the single modules): ``q_proj``, ``k_proj``,
    ``v_proj`` ``[K, dim, dim]``, ``out_proj`` ``[K, dim, dim]`` (``[out, in]`` per band, like
    ``nn.Linear.weight``), and for ``"differential"`` ``lambda_q1`` ... ``lambda_k2`` ``[K, d]``
    and ``subln`` ``[K, 2d]``. Each band's weights are drawn like ``nn.Linear``'s default.
    """

    def __init__(self, dim: int, num_heads: int, num_bands: int, depth: int = 0, *,
                 kind: AttentionKind = "differential", causal: bool = False, norm_eps: float = 1e-5,
                 impl: str = "auto") -> None:
        super().__init__()
        if impl not in ("auto", "naive"):
            raise ValueError(f"impl must be 'auto' or 'naive', got {impl!r}")
        self.impl = impl
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"kind must be one of {ATTENTION_KINDS}, got {kind!r}")
        per = 2 * num_heads if kind == "differential" else num_heads
        if num_heads <= 0 or dim <= 0 or dim % per:
            raise ValueError(f"BandwiseAttention({kind}): dim ({dim}) must be a positive multiple of {per}")
        if num_bands <= 0:
            raise ValueError(f"num_bands must be positive, got {num_bands}")
        self.dim, self.num_heads, self.num_bands, self.depth = dim, num_heads, num_bands, depth
        self.kind, self.causal, self.norm_eps = kind, causal, norm_eps
        self.head_dim = dim // per
        self.scaling = self.head_dim ** -0.5
        bound = 1.0 / math.sqrt(dim)
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            self.register_parameter(name, nn.Parameter(torch.empty(num_bands, dim, dim).uniform_(-bound, bound)))
        if kind == "differential":
            self.lambda_init = lambda_init_fn(depth)
            for name in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
                self.register_parameter(name, nn.Parameter(torch.zeros(num_bands, self.head_dim).normal_(0.0, 0.1)))
            self.subln = nn.Parameter(torch.ones(num_bands, 2 * self.head_dim))

    @classmethod
    def from_modules(cls, modules: Sequence[DifferentialAttention | StandardAttention]) -> BandwiseAttention:
        """Stack K single-band modules (all of one kind and size) into one ``BandwiseAttention``
        whose band ``k`` computes exactly ``modules[k]`` (e.g. to start per-band training from a
        shared module: ``from_modules([shared] * K)``)."""
        m0 = modules[0]
        if isinstance(m0, DifferentialAttention):
            kind: AttentionKind = "differential"
            out = cls(m0.dim, m0.num_heads, len(modules), m0.depth, kind=kind, causal=m0.causal,
                      norm_eps=m0.subln.eps)
        elif isinstance(m0, StandardAttention):
            kind = "standard"
            out = cls(m0.dim, m0.num_heads, len(modules), kind=kind, causal=m0.causal)
        else:
            raise TypeError(f"from_modules takes DifferentialAttention or StandardAttention, got {type(m0).__name__}")
        if any(type(m) is not type(m0) or m.dim != m0.dim or m.num_heads != m0.num_heads for m in modules):
            raise ValueError("from_modules needs modules of one type, dim and head count")
        with torch.no_grad():
            for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                getattr(out, name).copy_(torch.stack([getattr(m, name).weight for m in modules]))
            if kind == "differential":
                if any(m.depth != m0.depth for m in modules):
                    raise ValueError("from_modules needs differential modules of one depth (one λ_init)")
                for name in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
                    getattr(out, name).copy_(torch.stack([getattr(m, name) for m in modules]))
                out.subln.copy_(torch.stack([m.subln.weight for m in modules]))
        return out

    def lambda_full(self) -> Tensor:
        """λ per band, ``[K]`` (differential only)."""
        if self.kind != "differential":
            raise AttributeError("standard attention has no λ")
        l1 = torch.exp((self.lambda_q1 * self.lambda_k1).sum(-1))
        l2 = torch.exp((self.lambda_q2 * self.lambda_k2).sum(-1))
        return l1 - l2 + self.lambda_init

    @staticmethod
    def _project(x: Tensor, w: Tensor) -> Tensor:
        """Band-wise linear map: ``[B, K, T, in] x [K, out, in] -> [B, K, T, out]``."""
        return torch.einsum("bktd,ked->bkte", x, w.to(x.dtype))

    def _heads(self, t: Tensor, heads: int, size: int) -> Tensor:
        """``[B, K, T, heads·size] -> [B·K, heads, T, size]``."""
        b, k, n, _ = t.shape
        return t.reshape(b * k, n, heads, size).transpose(1, 2)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, *, return_analysis: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """``x [B, K, T, dim] -> [B, K, T, dim]``.

        ``attn_mask``: optional bool (``True`` = may attend) or float additive mask broadcastable
        to ``[B·K, heads, T, T]`` (e.g. a key-padding mask ``[B·K, 1, 1, T]``), as
        :class:`~diffattn.DifferentialAttention` takes it; combined with ``causal``.

        With ``return_analysis=True`` also ``{"attn1", "attn2", "diff" [B, K, H, T, T],
        "lambda" [K]}`` (differential) or ``{"attn" [B, K, H, T, T]}`` (standard).
        """
        if x.ndim != 4 or x.shape[1] != self.num_bands or x.shape[-1] != self.dim:
            raise ValueError(f"BandwiseAttention expects [B, {self.num_bands}, T, {self.dim}], "
                             f"got {tuple(x.shape)}")
        b, kb, t, _ = x.shape
        H, d = self.num_heads, self.head_dim
        analysis: dict[str, Any] = {}
        explicit = return_analysis or self.impl == "naive"
        if self.kind == "differential":
            q = self._heads(self._project(x, self.q_proj), 2 * H, d)
            k = self._heads(self._project(x, self.k_proj), 2 * H, d)
            v = self._heads(self._project(x, self.v_proj), H, 2 * d)
            lam = self.lambda_full().to(x.dtype)
            lam_n = lam.expand(b, kb).reshape(-1, 1, 1, 1)               # [B·K, 1, 1, 1]
            if explicit:
                a1, a2 = differential_maps(q, k, scale=self.scaling, attn_mask=attn_mask, causal=self.causal)
                diff = a1 - lam_n * a2
                o = torch.matmul(diff, v)
                hl = (b, kb, H, t, t)
                analysis = {"attn1": a1.reshape(hl), "attn2": a2.reshape(hl), "diff": diff.reshape(hl),
                            "lambda": lam.detach()}
            else:
                o1, o2 = two_map_sdpa(q, k, v, scale=self.scaling, attn_mask=attn_mask, causal=self.causal)
                o = o1 - lam_n * o2                                       # [B·K, H, T, 2d]
            o = _rms(o, self.norm_eps).reshape(b, kb, H, t, 2 * d)
            o = o * self.subln.to(o.dtype)[None, :, None, None, :] * (1.0 - self.lambda_init)
            o = o.transpose(2, 3).reshape(b, kb, t, self.dim)
        else:
            q, k, v = (self._heads(self._project(x, w), H, d) for w in (self.q_proj, self.k_proj, self.v_proj))
            if explicit:
                a = softmax_map(q, k, scale=self.scaling, attn_mask=attn_mask, causal=self.causal)
                o = torch.matmul(a, v)
                analysis = {"attn": a.reshape(b, kb, H, t, t)}
            else:
                mask, causal = attn_mask, self.causal
                if causal and mask is not None:
                    mask, causal = combine_masks(mask, True, t, t, q.device), False
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=self.scaling)
            o = o.reshape(b, kb, H, t, d).transpose(2, 3).reshape(b, kb, t, self.dim)
        y = self._project(o, self.out_proj)
        return (y, analysis) if return_analysis else y

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.num_heads}, num_bands={self.num_bands}, kind={self.kind!r}, "
                f"depth={self.depth}, causal={self.causal}")
