"""Multi-head differential attention (Ye et al. 2024, "Differential Transformer", arXiv 2410.05258).

Faithful to the reference ``microsoft/unilm`` ``Diff-Transformer/multihead_diffattn.py``:

    DiffAttn(X) = (softmax(Q1 K1ᵀ/√d) − λ · softmax(Q2 K2ᵀ/√d)) V
    λ          = exp(λq1·λk1) − exp(λq2·λk2) + λ_init          (one scalar per layer, all heads)
    λ_init     = 0.8 − 0.6 · exp(−0.3 · depth)                 (depth = 0-based layer index)
    head_h     = (1 − λ_init) · RMSNorm_{2d}(DiffAttn_h(X))    (eps 1e-5, affine gain shared by heads)
    out        = out_proj(concat_h head_h)

How the dimensions split (``dim`` = model width, ``num_heads`` = H = half the heads of a plain
transformer of the same size, ``d = dim / (2H)``):

* ``q_proj``, ``k_proj``: ``dim -> dim`` viewed as ``2H`` sub-heads of size ``d``; sub-heads
  ``2h`` and ``2h+1`` give the two maps (Q1/K1 and Q2/K2) of differential head ``h``.
* ``v_proj``: ``dim -> dim`` viewed as ``H`` heads of size ``2d``.
* ``out_proj``: ``H·2d = dim -> dim``. All four projections have no bias; the parameter count
  equals a plain ``dim``-wide multi-head attention's (4·dim²) plus ``4d`` (λ vectors) plus ``2d``
  (RMSNorm gain). Parameter names match the reference state dict.

Two code paths give the same numbers:

* fused (default): one ``torch.nn.functional.scaled_dot_product_attention`` call on the ``2H``
  stacked maps, then ``O1 − λ·O2`` (the difference commutes with ``·V``). q/k are zero-padded
  from ``d`` to ``2d`` (the scale stays ``1/√d``) so that q, k and v have equal head sizes and
  are 4-D: that is what PyTorch's memory-efficient CPU (flash) kernel requires; otherwise it
  silently falls back to the math kernel, which materialises ``[N, 2H, L, L]``.
* naive: explicit softmax maps (used for ``return_analysis=True``, which returns the maps).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .norms import RMSNorm
from .rotary import RotaryEmbedding

Impl = Literal["auto", "sdpa", "naive"]


def lambda_init_fn(depth: int) -> float:
    """``λ_init = 0.8 − 0.6·exp(−0.3·depth)`` with ``depth`` the 0-based layer index (0 -> 0.2)."""
    if depth < 0:
        raise ValueError(f"depth is the 0-based layer index and must be >= 0, got {depth}")
    return 0.8 - 0.6 * math.exp(-0.3 * depth)


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def combine_masks(attn_mask: Tensor | None, causal: bool, q_len: int, k_len: int,
                  device: torch.device, q_offset: int = 0) -> Tensor | None:
    """Merge an optional mask with a causal constraint into one mask (or ``None``).

    ``attn_mask``: bool (``True`` = may attend) or float (added to the scores, ``-inf`` = blocked),
    broadcastable to ``[..., q_len, k_len]``. Causal: query ``i`` (absolute index
    ``q_offset + i``) sees keys ``j <= q_offset + i``. The result keeps ``attn_mask``'s kind.
    """
    if not causal:
        return attn_mask
    qi = torch.arange(q_offset, q_offset + q_len, device=device)[:, None]
    allowed = torch.arange(k_len, device=device)[None, :] <= qi
    if attn_mask is None:
        return allowed
    if attn_mask.dtype == torch.bool:
        return attn_mask & allowed
    return attn_mask.masked_fill(~allowed, float("-inf"))


def differential_maps(q: Tensor, k: Tensor, *, scale: float, attn_mask: Tensor | None = None,
                      causal: bool = False, q_offset: int = 0) -> tuple[Tensor, Tensor]:
    """The two explicit softmax maps.

    Args:
        q: ``[N, 2H, Lq, d]``, k: ``[N, 2H, Lk, d]`` (sub-heads ``2h``/``2h+1`` pair up).
        scale: multiplies the scores (``1/√d``).
        attn_mask, causal, q_offset: see :func:`combine_masks`.
    Returns:
        ``(A1, A2)``, each ``[N, H, Lq, Lk]``, rows summing to 1 over allowed keys.
    Memory: ``O(N · 2H · Lq · Lk)``.
    """
    s = torch.matmul(q * scale, k.transpose(-1, -2))
    mask = combine_masks(attn_mask, causal, q.shape[-2], k.shape[-2], q.device, q_offset)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    a = torch.softmax(s, dim=-1, dtype=_softmax_dtype(s.dtype)).to(q.dtype)
    a = a.unflatten(1, (a.shape[1] // 2, 2))
    return a[:, :, 0], a[:, :, 1]


def two_map_sdpa(q: Tensor, k: Tensor, v: Tensor, *, scale: float,
                 attn_mask: Tensor | None = None, causal: bool = False) -> tuple[Tensor, Tensor]:
    """``(A1 V, A2 V)`` with one fused ``scaled_dot_product_attention`` call, no ``L×L`` tensor.

    Args:
        q: ``[N, 2H, L, d]``, k: ``[N, 2H, S, d]``, v: ``[N, H, S, dv]``.
        attn_mask: bool/float, broadcastable to ``[N, 2H, L, S]`` (e.g. ``[L, S]``).
    Returns:
        ``(O1, O2)``, each ``[N, H, L, dv]``.
    Memory: ``O(N · H · (L + S) · max(d, dv))`` on kernels with a memory-efficient path (CPU flash
    kernel, CUDA flash/efficient kernels); the heads of q/k/v are made equal-sized and 4-D for that.
    """
    n, h2, L, d = q.shape
    dv = v.shape[-1]
    v2 = v.unsqueeze(2).expand(-1, -1, 2, -1, -1).reshape(n, h2, v.shape[-2], dv)
    if dv > d:
        q, k = F.pad(q, (0, dv - d)), F.pad(k, (0, dv - d))
    elif d > dv:
        v2 = F.pad(v2, (0, d - dv))
    if causal and attn_mask is not None:
        attn_mask = combine_masks(attn_mask, True, L, k.shape[-2], q.device)
        causal = False
    o = F.scaled_dot_product_attention(q, k, v2, attn_mask=attn_mask, is_causal=causal,
                                       scale=scale)
    o = o[..., :dv].unflatten(1, (h2 // 2, 2))
    return o[:, :, 0], o[:, :, 1]


class DifferentialAttention(nn.Module):
    """Multi-head differential attention (see the module docstring for the formula and dims).

    Args:
        dim: model width; must be divisible by ``2 · num_heads``.
        num_heads: differential heads H (half a plain transformer's head count for equal size).
        depth: 0-based index of this layer in its stack (sets ``λ_init``).
        causal: query ``t`` attends to keys ``<= t`` only.
        rotary: apply rotary position embeddings (interleaved, base ``rotary_base``) to every
            q/k sub-head along the sequence axis (needs an even head size ``d``).
        norm_eps: eps of the per-head RMSNorm (reference 1e-5).
        impl: default code path, ``"auto"`` (fused SDPA unless analysis is requested),
            ``"sdpa"`` or ``"naive"``; ``forward(impl=...)`` overrides it.

    Shapes: ``forward(x [..., L, dim]) -> [..., L, dim]``; all leading dims are batch (a band
    feature tensor ``[B, K, T, N]`` is attended over ``T`` for each of the ``B·K`` sequences).

    Memory (inference, fused path): activations ``O(N_seq · L · dim)``; no ``L×L`` tensor.
    ``return_analysis=True`` or ``impl="naive"``: ``O(N_seq · 2H · L²)`` (the explicit maps).
    Training keeps what the chosen kernel keeps for backward (the math kernel keeps the maps).

    Parameters draw from the global torch RNG: call ``torch.manual_seed`` before construction.
    """

    def __init__(self, dim: int, num_heads: int, depth: int, causal: bool = False, *,
                 rotary: bool = False, rotary_base: float = 10000.0, norm_eps: float = 1e-5,
                 impl: Impl = "auto") -> None:
        super().__init__()
        if num_heads <= 0 or dim <= 0 or dim % (2 * num_heads):
            raise ValueError(f"DifferentialAttention: dim ({dim}) must be a positive multiple of "
                             f"2·num_heads ({2 * num_heads}); d = dim/(2·num_heads) per sub-head")
        if impl not in ("auto", "sdpa", "naive"):
            raise ValueError(f"impl must be 'auto', 'sdpa' or 'naive', got {impl!r}")
        self.dim = dim
        self.num_heads = num_heads
        self.depth = depth
        self.causal = causal
        self.impl: Impl = impl
        self.head_dim = dim // num_heads // 2
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.out_proj = nn.Linear(num_heads * 2 * self.head_dim, dim, bias=False)
        self.lambda_init = lambda_init_fn(depth)
        self.lambda_q1 = nn.Parameter(torch.zeros(self.head_dim).normal_(0.0, 0.1))
        self.lambda_k1 = nn.Parameter(torch.zeros(self.head_dim).normal_(0.0, 0.1))
        self.lambda_q2 = nn.Parameter(torch.zeros(self.head_dim).normal_(0.0, 0.1))
        self.lambda_k2 = nn.Parameter(torch.zeros(self.head_dim).normal_(0.0, 0.1))
        self.subln = RMSNorm(2 * self.head_dim, eps=norm_eps, elementwise_affine=True)
        self.rotary = RotaryEmbedding(self.head_dim, rotary_base) if rotary else None

    # -- pieces shared with the adaptive variant --------------------------------------------
    def lambda_full(self) -> Tensor:
        """λ = exp(λq1·λk1) − exp(λq2·λk2) + λ_init as a 0-d tensor (in the parameters' dtype)."""
        l1 = torch.exp(torch.sum(self.lambda_q1 * self.lambda_k1))
        l2 = torch.exp(torch.sum(self.lambda_q2 * self.lambda_k2))
        return l1 - l2 + self.lambda_init

    def _check_input(self, x: Tensor) -> None:
        if x.ndim < 2 or x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__} expects [..., L, {self.dim}], "
                             f"got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating tensor, got {x.dtype}")

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x [N, L, dim]`` -> ``q, k [N, 2H, L, d]`` (rotary applied), ``v [N, H, L, 2d]``."""
        n, L, _ = x.shape
        q = self.q_proj(x).view(n, L, 2 * self.num_heads, self.head_dim)
        k = self.k_proj(x).view(n, L, 2 * self.num_heads, self.head_dim)
        v = self.v_proj(x).view(n, L, self.num_heads, 2 * self.head_dim)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def finish(self, o: Tensor) -> Tensor:
        """Per-head RMSNorm, ``·(1 − λ_init)``, merge heads, out_proj: ``[N, H, L, 2d] -> [N, L, dim]``."""
        o = self.subln(o) * (1.0 - self.lambda_init)
        o = o.transpose(1, 2).flatten(2)
        return self.out_proj(o)

    def _resolve_impl(self, impl: Impl | None, return_analysis: bool) -> str:
        impl = impl or self.impl
        if impl not in ("auto", "sdpa", "naive"):
            raise ValueError(f"impl must be 'auto', 'sdpa' or 'naive', got {impl!r}")
        if return_analysis:
            if impl == "sdpa":
                raise ValueError("return_analysis=True needs the explicit maps: use impl='naive' "
                                 "or 'auto'")
            return "naive"
        return "sdpa" if impl == "auto" else impl

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: Tensor, attn_mask: Tensor | None = None, *, return_analysis: bool = False,
                impl: Impl | None = None) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """Attend along dim -2.

        Args:
            x: ``[..., L, dim]``.
            attn_mask: optional bool (``True`` = may attend) or float additive mask broadcastable
                to ``[L, L]`` (or ``[N_seq, 2H, L, L]`` after flattening the leading dims); it is
                applied to both maps and combined with ``causal``. Every query needs at least one
                allowed key.
            return_analysis: also return ``{"attn1", "attn2", "diff"}`` (``[..., H, L, L]``; ``diff``
                is ``attn1 − λ·attn2``), ``"lambda"`` (0-d) and ``"lambda_init"`` (float).
            impl: override the constructor's code path.
        Returns:
            ``y [..., L, dim]``, or ``(y, analysis)``.
        """
        self._check_input(x)
        lead, L = x.shape[:-2], x.shape[-2]
        q, k, v = self.project(x.reshape(-1, L, self.dim))
        lam = self.lambda_full().to(q.dtype)
        path = self._resolve_impl(impl, return_analysis)
        if path == "naive":
            a1, a2 = differential_maps(q, k, scale=self.scaling, attn_mask=attn_mask,
                                       causal=self.causal)
            diff = a1 - lam * a2
            o = torch.matmul(diff, v)
        else:
            o1, o2 = two_map_sdpa(q, k, v, scale=self.scaling, attn_mask=attn_mask,
                                  causal=self.causal)
            o = o1 - lam * o2
        y = self.finish(o).reshape(*lead, L, self.dim)
        if not return_analysis:
            return y
        hl = (self.num_heads, L, L)
        analysis = {"attn1": a1.reshape(*lead, *hl), "attn2": a2.reshape(*lead, *hl),
                    "diff": diff.reshape(*lead, *hl), "lambda": lam.detach(),
                    "lambda_init": self.lambda_init}
        return y, analysis

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.num_heads}, head_dim={self.head_dim}, "
                f"depth={self.depth}, lambda_init={self.lambda_init:.4f}, causal={self.causal}, "
                f"rotary={self.rotary is not None}")
