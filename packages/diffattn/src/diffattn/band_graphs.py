"""Inter-band modules: attention across the K bands of a band-split representation.

Layout. All modules take and return band features ``x [B, K, T, N]`` (batch, bands, frames,
features; channels last). A band-split model should keep this layout throughout: temporal
attention then runs over ``T`` for the ``B·K`` sequences with a free reshape, and the inter-band
modules here attend over ``K`` for each of the ``B·T`` (batch, frame) positions after one transpose
to ``[B, T, K, N]``. (BSRNN's ``[B, N, T, K]`` converts with ``x.permute(0, 3, 2, 1)``.)

Every module is a pre-norm residual block with one interface::

    y = module(x)                                   # [B, K, T, N] -> [B, K, T, N]
    y, info = module(x, return_analysis=True)       # info["graph"]: [K, K]

    y = x + DifferentialAttention_over_K( RMSNorm(x) + band_position[k] ; graph mask )

so :class:`NoInterBand` (``y = x``) is the exact "no inter-band" ablation. The graph enters
both softmax maps of the differential attention as a mask (fixed harmonic, learned top-k) or
not at all (dense).

Memory. Inference (no autograd): frames are independent here, so they are processed in blocks
of ~``block_elements`` input values; beyond the output (the input's size) the temporaries are
bounded, however long the utterance. Training: ``O(B · T · K · N)`` activations, plus
``O(B · T · 2H · K²)`` where the mask needs a gradient (the learned graph: the math kernel keeps
the maps, 961 values per (position, sub-head) for 31 bands). ``return_analysis=True``
materialises the maps: ``O(B · T · 2H · K²)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .differential_attention import DifferentialAttention
from .norms import RMSNorm
from .standard_attention import StandardAttention

GraphKind = Literal["fixed", "harmonic", "learned", "dense", "none"]


def band_centres_hz(widths: Sequence[int], sample_rate: int, n_fft: int) -> Tensor:
    """Centre frequency (Hz) of each band of consecutive STFT bins, ``[K]`` float64.

    Bin ``f`` is at ``f · sample_rate / n_fft`` Hz; a band's centre is the mean of its bins'
    frequencies. ``widths`` are in bins and start at bin 0 (DC); their sum may not exceed the
    ``n_fft // 2 + 1`` one-sided bins. Example: BSRNN's 31 bands at 16 kHz, n_fft 512 give
    15.6, 93.75, 187.5, ... 7750 Hz.
    """
    if sample_rate <= 0 or n_fft <= 0:
        raise ValueError(f"sample_rate and n_fft must be positive, got {sample_rate}, {n_fft}")
    w = torch.as_tensor(list(widths), dtype=torch.float64)
    if w.numel() == 0 or torch.any(w < 1):
        raise ValueError(f"band widths must be >= 1 bin, got {list(widths)}")
    if w.sum() > n_fft // 2 + 1:
        raise ValueError(f"band widths sum to {int(w.sum())} bins but n_fft={n_fft} has only "
                         f"{n_fft // 2 + 1} one-sided bins")
    start = torch.cumsum(w, 0) - w
    return (start + (w - 1) / 2) * sample_rate / n_fft


def harmonic_band_mask(centres_hz: Sequence[float] | Tensor, tol: float = 0.05,
                       max_harmonic: int = 8, min_hz: float = 50.0) -> Tensor:
    """Fixed sparse harmonic graph over bands: bool ``[K, K]``, symmetric, with self-loops.

    Bands ``i`` and ``j`` (centres ``f_i <= f_j``) are connected when ``f_j / f_i`` lies within a
    relative tolerance of an integer ``n`` in ``2..max_harmonic``: ``|f_j/f_i − n| <= tol · n``.
    Bands whose centre is below ``min_hz`` (the DC band; below any voice's F0) get only their
    self-loop. ``max_harmonic`` bounds the order because with a relative tolerance every large
    ratio is near some integer (for ``n > 1/(2·tol)`` nothing would be excluded).

    With BSRNN's 31 bands (16 kHz, n_fft 512) and the defaults the graph has 105 undirected
    edges plus 31 self-loops.
    """
    c = torch.as_tensor(centres_hz, dtype=torch.float64).detach().cpu()
    if c.ndim != 1 or c.numel() == 0 or not torch.all(torch.isfinite(c)) or torch.any(c < 0):
        raise ValueError("centres_hz must be a non-empty 1-D list of finite frequencies >= 0 Hz")
    if not 0 < tol < 0.5 or max_harmonic < 2:
        raise ValueError(f"need 0 < tol < 0.5 and max_harmonic >= 2, got {tol}, {max_harmonic}")
    lo = torch.minimum(c[:, None], c[None, :]).clamp_min(1e-12)
    hi = torch.maximum(c[:, None], c[None, :])
    ratio = hi / lo
    n = torch.arange(2, max_harmonic + 1, dtype=torch.float64)
    near = ((ratio[..., None] - n).abs() <= tol * n).any(-1)
    voiced = c >= min_hz
    near &= voiced[:, None] & voiced[None, :]
    return near | torch.eye(len(c), dtype=torch.bool)


class _BandAttention(nn.Module):
    """Shared body: ``x + Attn_K(RMSNorm(x) + band_pos, mask)`` for ``x [B, K, T, N]``.

    ``attention="differential"`` (default): :class:`DifferentialAttention` with ``num_heads``
    differential heads; ``"standard"``: :class:`StandardAttention` with ``2·num_heads`` softmax
    heads of the same size (the Differential Transformer's baseline), the graph entering its
    one map the same way.
    """

    def __init__(self, dim: int, num_heads: int, num_bands: int, depth: int = 0,
                 band_position: bool = True, norm_eps: float = 1e-5, attention: str = "differential") -> None:
        super().__init__()
        if num_bands <= 0:
            raise ValueError(f"num_bands must be positive, got {num_bands}")
        if attention not in ("differential", "standard"):
            raise ValueError(f"attention must be 'differential' or 'standard', got {attention!r}")
        self.dim, self.num_heads, self.num_bands = dim, num_heads, num_bands
        self.attention = attention
        self.norm = RMSNorm(dim, eps=norm_eps)
        # learned band-position embedding (zero at init); attention over K is otherwise blind to
        # which band is which
        self.band_pos = nn.Parameter(torch.zeros(num_bands, dim)) if band_position else None
        self.attn: nn.Module = (DifferentialAttention(dim, num_heads, depth, causal=False, norm_eps=norm_eps)
                                if attention == "differential" else StandardAttention(dim, 2 * num_heads))

    def graph_mask(self) -> Tensor | None:
        """The mask given to the attention: bool/float ``[K, K]`` or ``None`` (dense)."""
        raise NotImplementedError

    def graph(self) -> Tensor:
        """The graph for analysis: ``[K, K]`` float (edge weights, 0 = no edge)."""
        raise NotImplementedError

    block_elements = 1 << 18  # inference: input values per block of frames

    def forward(self, x: Tensor, *, return_analysis: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """``x [B, K, T, N] -> [B, K, T, N]``; with ``return_analysis=True`` also
        ``{"graph": [K, K], "diff_attention": [H, K, K] (the differential map averaged over B and
        T), "lambda": 0-d}`` (standard attention: ``"attention": [2H, K, K]`` instead of the
        differential map and λ)."""
        if x.ndim != 4 or x.shape[1] != self.num_bands or x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__} expects [B, {self.num_bands}, T, {self.dim}] "
                             f"(batch, bands, frames, features), got {tuple(x.shape)}")
        b, k, t, n = x.shape
        frames = max(1, self.block_elements // (b * k * n))
        inference = not (torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())))
        if not return_analysis and inference and t > frames:
            out = torch.empty_like(x)
            for start in range(0, t, frames):
                out[:, :, start:start + frames] = self._block(x[:, :, start:start + frames])
            return out
        return self._block(x, return_analysis)

    def _block(self, x: Tensor, return_analysis: bool = False
               ) -> Tensor | tuple[Tensor, dict[str, Any]]:
        h = self.norm(x)
        if self.band_pos is not None:
            h = h + self.band_pos[:, None, :].to(h.dtype)
        h = h.transpose(1, 2)  # [B, T, K, N]: one sequence over K per (batch, frame)
        mask = self.graph_mask()
        if mask is not None and mask.is_floating_point():
            mask = mask.to(h.dtype)
        if return_analysis:
            y, an = self.attn(h, attn_mask=mask, return_analysis=True)
        else:
            y = self.attn(h, attn_mask=mask)
        out = x + y.transpose(1, 2)
        if not return_analysis:
            return out
        info: dict[str, Any] = {"graph": self.graph().detach()}
        if "diff" in an:
            info.update(diff_attention=an["diff"].detach().mean(dim=(0, 1)), **{"lambda": an["lambda"]})
        else:
            info["attention"] = an["attn"].detach().mean(dim=(0, 1))
        return out, info


class HarmonicBandGraph(_BandAttention):
    """Inter-band differential attention on the fixed harmonic graph (BSDT v1).

    The mask is :func:`harmonic_band_mask` of the bands' real centre frequencies (a non-persistent
    buffer: it is recomputed from ``centres_hz``, not loaded from checkpoints).

    Args:
        dim, num_heads: feature width N and differential heads (``dim % (2·num_heads) == 0``).
        centres_hz: ``[K]`` band centres in Hz (e.g. :func:`band_centres_hz`).
        tol, max_harmonic, min_hz: see :func:`harmonic_band_mask`.
        depth: 0-based layer index for λ_init.
        attention: ``"differential"`` or ``"standard"`` (see :class:`_BandAttention`).
    Shapes/memory: see the module docstring.
    """

    def __init__(self, dim: int, num_heads: int, centres_hz: Sequence[float] | Tensor, *,
                 tol: float = 0.05, max_harmonic: int = 8, min_hz: float = 50.0, depth: int = 0,
                 band_position: bool = True, attention: str = "differential") -> None:
        mask = harmonic_band_mask(centres_hz, tol=tol, max_harmonic=max_harmonic, min_hz=min_hz)
        super().__init__(dim, num_heads, mask.shape[0], depth, band_position, attention=attention)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("centres_hz",
                             torch.as_tensor(centres_hz, dtype=torch.float64).detach().cpu(),
                             persistent=False)

    def graph_mask(self) -> Tensor:
        return self.mask

    def graph(self) -> Tensor:
        return self.mask.float()


class LearnableBandGraph(_BandAttention):
    """Inter-band differential attention on a learned, sparse, symmetric top-k graph (BSDT v2).

    Edge weights ``W = sigmoid((A + Aᵀ)/2)`` from a learnable logit matrix ``A [K, K]``. Each band
    keeps its ``k`` strongest other bands (top-k per row of ``W`` without the diagonal); the edge
    set is symmetrised (``E ∪ Eᵀ``) and gets self-loops. The graph enters both softmax maps as an
    additive bias ``log W`` on the edges and ``−inf`` elsewhere, i.e. each map is
    ``softmax_j(q·k_j/√d + log W_ij) ∝ W_ij · exp(q·k_j/√d)`` over the graph's neighbours; so the
    weights receive gradients and the top-k selection follows them as they change. The graph is
    input-independent (one per layer), as in the BSDT design.

    ``A`` starts as a local prior ``A_ij = 2 − |i − j|`` (nearest bands strongest; W≈0.88 for the
    self-loop and both neighbours), or from ``init_logits``.

    Args:
        dim, num_heads, num_bands: N, differential heads, K.
        k: neighbours kept per band (``1 <= k < K``; 5 in the BSDT design).
        depth: 0-based layer index for λ_init.
        init_logits: optional ``[K, K]`` initial ``A``.
        attention: ``"differential"`` or ``"standard"`` (see :class:`_BandAttention`).
    Shapes/memory: see the module docstring.
    """

    def __init__(self, dim: int, num_heads: int, num_bands: int, k: int = 5, *, depth: int = 0,
                 init_logits: Tensor | None = None, band_position: bool = True,
                 attention: str = "differential") -> None:
        super().__init__(dim, num_heads, num_bands, depth, band_position, attention=attention)
        if not 1 <= k < num_bands:
            raise ValueError(f"LearnableBandGraph: need 1 <= k < num_bands ({num_bands}), got {k}")
        self.k = k
        if init_logits is None:
            idx = torch.arange(num_bands, dtype=torch.float32)
            init_logits = 2.0 - (idx[:, None] - idx[None, :]).abs()
        if init_logits.shape != (num_bands, num_bands):
            raise ValueError(f"init_logits must be [{num_bands}, {num_bands}]")
        self.affinity = nn.Parameter(init_logits.detach().clone().float())

    def _edges_and_logweights(self) -> tuple[Tensor, Tensor]:
        logits = (self.affinity + self.affinity.T) / 2
        kk = self.num_bands
        eye = torch.eye(kk, dtype=torch.bool, device=logits.device)
        top = logits.detach().masked_fill(eye, float("-inf")).topk(self.k, dim=-1).indices
        edges = torch.zeros(kk, kk, dtype=torch.bool, device=logits.device)
        edges.scatter_(1, top, True)
        edges = edges | edges.T | eye
        return edges, F.logsigmoid(logits)

    def graph_mask(self) -> Tensor:
        edges, logw = self._edges_and_logweights()
        return logw.masked_fill(~edges, float("-inf"))

    def get_learned_graph(self) -> Tensor:
        """The learned graph ``[K, K]``: edge weights ``W_ij`` on the kept edges, 0 elsewhere
        (symmetric, detached)."""
        with torch.no_grad():
            edges, logw = self._edges_and_logweights()
            return logw.exp() * edges

    def graph(self) -> Tensor:
        return self.get_learned_graph()


class DenseBandAttention(_BandAttention):
    """Inter-band differential attention over all K bands (graph = all ones).

    Args: ``dim, num_heads, num_bands, depth, attention``. Shapes/memory: see the module docstring.
    """

    def __init__(self, dim: int, num_heads: int, num_bands: int, *, depth: int = 0,
                 band_position: bool = True, attention: str = "differential") -> None:
        super().__init__(dim, num_heads, num_bands, depth, band_position, attention=attention)

    def graph_mask(self) -> None:
        return None

    def graph(self) -> Tensor:
        return torch.ones(self.num_bands, self.num_bands, device=self.norm.weight.device)


class NoInterBand(nn.Module):
    """Identity with the inter-band interface (ablation): ``x [B, K, T, N] -> x``.

    ``return_analysis=True`` gives ``{"graph": eye(K)}`` (each band only "sees" itself).
    No parameters, no memory.
    """

    def forward(self, x: Tensor, *, return_analysis: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Any]]:
        if x.ndim != 4:
            raise ValueError(f"NoInterBand expects [B, K, T, N], got {tuple(x.shape)}")
        if not return_analysis:
            return x
        return x, {"graph": torch.eye(x.shape[1], device=x.device)}


def make_inter_band(kind: GraphKind, dim: int, num_heads: int, num_bands: int, *,
                    centres_hz: Sequence[float] | Tensor | None = None, k: int = 5,
                    depth: int = 0, **kwargs: Any) -> nn.Module:
    """Build an inter-band module by name.

    ``kind``: ``"fixed"``/``"harmonic"`` (:class:`HarmonicBandGraph`, needs ``centres_hz``),
    ``"learned"`` (:class:`LearnableBandGraph`, ``k`` neighbours), ``"dense"``
    (:class:`DenseBandAttention`) or ``"none"`` (:class:`NoInterBand`).
    """
    if kind in ("fixed", "harmonic"):
        if centres_hz is None:
            raise ValueError("the fixed harmonic graph needs the bands' centres_hz "
                             "(see diffattn.band_centres_hz)")
        if len(centres_hz) != num_bands:
            raise ValueError(f"{len(centres_hz)} centres_hz given for {num_bands} bands")
        return HarmonicBandGraph(dim, num_heads, centres_hz, depth=depth, **kwargs)
    if kind == "learned":
        return LearnableBandGraph(dim, num_heads, num_bands, k, depth=depth, **kwargs)
    if kind == "dense":
        return DenseBandAttention(dim, num_heads, num_bands, depth=depth, **kwargs)
    if kind == "none":
        return NoInterBand()
    raise ValueError(f"unknown inter-band kind {kind!r}: use fixed, learned, dense or none")
