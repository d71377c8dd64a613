"""BSDT: the band-split differential transformer (v1: fixed harmonic graph, v2: learned graph).

Same I/O as :class:`bandsplit.BSRNN`: complex STFT ``[B, 257, T]`` (16 kHz, n_fft 512, hop
128) in, enhanced complex STFT out, through BSRNN's :class:`BandSplit` and 3-tap
:class:`MaskDecoder`. Between them, ``num_layer`` blocks act on band features
``z [B, K, T, N]`` (K = 31 bands):

1. **temporal differential attention** per band, weights shared across bands (the ``B·K``
   band sequences are one batch; no loop over bands):
   ``a = DiffAttn_T(RMSNorm(z))`` with ``λ_init`` set by the block's 0-based depth;
2. **frequency-adaptive multi-scale fusion** (``use_multiscale``): ``a`` is smoothed over
   centred odd windows covering 2, 4 and 8 frames; :class:`diffattn.FrequencyAdaptiveFusionGate`
   turns the statistics of ``a`` plus a learned band embedding into per-band scale weights
   ``w [B, K, 3]``, and :class:`diffattn.MultiScaleDynamicFusionGate` (its scales mixed with
   ``w``) predicts a per-frame gate ``g [B, K, T]`` between the unsmoothed attention output and
   the band's weighted multi-scale context: ``m = g·a + (1 − g)·Σ_s w_s·smooth_s(a)``;
   without it ``m = a``. Then ``z ← z + m``;
3. a pre-norm feed-forward layer (``N → 2N → N``, GELU), residual;
4. **inter-band attention** (``use_inter_band``) across the K bands for every frame, on the
   graph ``graph``: ``"fixed"`` (harmonic sparse mask from the bands' real centre
   frequencies, v1), ``"learned"`` (learnable top-k graph, v2), ``"dense"`` or ``"none"``.

Every block is pre-norm with per-frame norms, so there are no whole-utterance statistics
inside the blocks (BandSplit/MaskDecoder keep BSRNN's GroupNorm, as in the reference).

Memory grows with ``B·K·T·N`` activations: temporal attention runs through the fused
scaled-dot-product kernel (no ``T × T`` map unless ``return_analysis=True``), the
multi-scale fusion keeps 3 smoothed copies, the inter-band attention is over K = 31.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from diffattn import (
    DifferentialAttention,
    FrequencyAdaptiveFusionGate,
    MultiScaleDynamicFusionGate,
    RMSNorm,
    make_inter_band,
    odd_kernel,
    sliding_mean,
)

from .band_split import BandSplit
from .bands import BSRNN_BAND_WIDTHS, band_centres_hz, check_band_widths
from .mask_decoder import MaskDecoder, apply_fir_mask
from .stft import SpectrogramTransform

__all__ = ["BSDT", "BSDTBlock"]

GRAPH_KINDS = ("fixed", "learned", "dense", "none")


class _MultiScaleFusion(nn.Module):
    """Frequency-adaptive multi-scale temporal fusion of ``a [B, K, T, N]`` (see module docstring)."""

    def __init__(self, dim: int, num_bands: int, windows: Sequence[int] = (2, 4, 8), stats_dim: int = 8,
                 centres_hz: Tensor | None = None) -> None:
        super().__init__()
        self.windows = tuple(int(w) for w in windows)
        self.kernels = tuple(odd_kernel(w) for w in self.windows)
        self.stats = nn.Linear(dim, stats_dim)  # per-frame statistics the gates read
        self.band_gate = FrequencyAdaptiveFusionGate(stats_dim, num_bands, num_scales=len(self.windows),
                                                     centres_hz=centres_hz)
        self.frame_gate = MultiScaleDynamicFusionGate(stats_dim, windows=self.windows, learn_scale_weights=False)

    def forward(self, a: Tensor, return_analysis: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        s = self.stats(a)                                                  # [B, K, T, S_d]
        w = self.band_gate(s)                                              # [B, K, S]
        g = self.frame_gate(s, scale_weights=w)                            # [B, K, T]
        ctx = sum(w[..., i, None, None] * sliding_mean(a, k) for i, k in enumerate(self.kernels))
        g = g.unsqueeze(-1)
        out = g * a + (1.0 - g) * ctx
        info = {"scale_weights": w.detach(), "frame_gate": g.squeeze(-1).detach()} if return_analysis else {}
        return out, info


class BSDTBlock(nn.Module):
    """One BSDT block on band features ``z [B, K, T, N] -> [B, K, T, N]`` (see the module docstring)."""

    def __init__(self, dim: int, num_heads: int, num_bands: int, depth: int, *, centres_hz: Tensor,
                 use_multiscale: bool = True, use_inter_band: bool = True, graph: str = "learned",
                 top_k: int = 5, windows: Sequence[int] = (2, 4, 8)) -> None:
        super().__init__()
        self.norm_t = RMSNorm(dim)
        self.attn_t = DifferentialAttention(dim, num_heads, depth)
        self.fusion = (_MultiScaleFusion(dim, num_bands, windows, centres_hz=centres_hz)
                       if use_multiscale else None)
        self.norm_ff = RMSNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        kind = graph if use_inter_band else "none"
        self.inter_band = make_inter_band(kind, dim, num_heads, num_bands, centres_hz=centres_hz, k=top_k,
                                          depth=depth)
        self.graph_kind = kind

    def forward(self, z: Tensor, return_analysis: bool = False) -> tuple[Tensor, dict[str, Any]]:
        info: dict[str, Any] = {}
        a = self.attn_t(self.norm_t(z))                                    # over T, batch B·K
        if self.fusion is not None:
            a, finfo = self.fusion(a, return_analysis)
            info.update(finfo)
        z = z + a
        z = z + self.ff(self.norm_ff(z))
        if return_analysis:
            z, ginfo = self.inter_band(z, return_analysis=True)
            info["graph"] = ginfo["graph"]
            info["lambda"] = self.attn_t.lambda_full().detach()
        else:
            z = self.inter_band(z)
        return z, info


class BSDT(nn.Module):
    """Band-split differential transformer: complex STFT ``[B, 257, T]`` -> complex ``[B, 257, T]``.

    Args:
        num_channel: N, features per band.
        num_layer: number of BSDT blocks.
        num_heads: differential heads per attention (``num_channel`` divisible by ``2·num_heads``).
        graph: inter-band graph, ``"learned"`` (v2, default), ``"fixed"`` (v1: harmonic mask from
            the band centre frequencies), ``"dense"`` or ``"none"``.
        use_inter_band: ablation switch; ``False`` is the same as ``graph="none"``.
        use_multiscale: ablation switch for the frequency-adaptive multi-scale fusion.
        top_k: neighbours per band of the learned graph.
        band_widths, sample_rate, n_fft: the band table and the STFT it splits (bands' real centre
            frequencies feed the harmonic graph and the band embeddings).
        hop_length: hop of that STFT in samples; ``self.stft`` is the model's STFT
            (:func:`bandsplit.enhance` uses it).

    ``forward(x, return_analysis=True)`` returns ``(y, analysis)`` with ``fusion_weights``
    ``[L, K, 3]`` (per-band scale weights averaged over the batch; absent without multi-scale),
    ``graph`` ``[L, K, K]`` (each block's inter-band graph), ``lambda`` ``[L]`` and ``windows``.
    """

    supports_analysis = True

    def __init__(self, num_channel: int = 64, num_layer: int = 4, num_heads: int = 2, *, graph: str = "learned",
                 use_inter_band: bool = True, use_multiscale: bool = True, top_k: int = 5,
                 band_widths: Sequence[int] | None = None, sample_rate: int = 16000, n_fft: int = 512,
                 windows: Sequence[int] = (2, 4, 8), hop_length: int = 128) -> None:
        super().__init__()
        if graph not in GRAPH_KINDS:
            raise ValueError(f"graph must be one of {GRAPH_KINDS}, got {graph!r}")
        widths = check_band_widths(BSRNN_BAND_WIDTHS if band_widths is None else band_widths, n_fft // 2 + 1)
        self.num_channel, self.num_layer, self.num_heads = int(num_channel), int(num_layer), int(num_heads)
        self.band_widths, self.n_freq = widths, sum(widths)
        self.sample_rate, self.n_fft = int(sample_rate), int(n_fft)
        self.graph = graph if use_inter_band else "none"
        self.use_multiscale, self.use_inter_band = bool(use_multiscale), bool(use_inter_band)
        self.windows = tuple(windows)
        centres = band_centres_hz(widths, sample_rate, n_fft)
        self.band_split = BandSplit(widths, self.num_channel)
        self.blocks = nn.ModuleList(
            BSDTBlock(self.num_channel, self.num_heads, len(widths), depth=i, centres_hz=centres,
                      use_multiscale=use_multiscale, use_inter_band=use_inter_band, graph=graph, top_k=top_k,
                      windows=windows)
            for i in range(self.num_layer))
        self.mask_decoder = MaskDecoder(widths, self.num_channel)
        #: the model's STFT (no parameters; its window is a non-persistent buffer)
        self.stft = SpectrogramTransform(self.n_fft, hop_length, self.sample_rate)

    def extra_repr(self) -> str:
        return (f"num_channel={self.num_channel}, num_layer={self.num_layer}, num_heads={self.num_heads}, "
                f"graph={self.graph!r}, use_multiscale={self.use_multiscale}")

    def get_learned_graph(self) -> Tensor:
        """Each block's inter-band graph ``[L, K, K]`` (edge weights; identity for ``"none"``)."""
        k = len(self.band_widths)
        out = []
        for blk in self.blocks:
            ib = blk.inter_band
            if hasattr(ib, "get_learned_graph"):
                out.append(ib.get_learned_graph())
            elif hasattr(ib, "graph"):
                out.append(ib.graph().detach().float())
            else:
                out.append(torch.eye(k))
        return torch.stack([g.to(out[0].device) for g in out])

    def forward(self, x: Tensor, return_analysis: bool = False) -> Tensor | tuple[Tensor, dict[str, Any]]:
        if not x.is_complex() or x.dim() != 3 or x.shape[1] != self.n_freq:
            raise ValueError(f"BSDT expects a complex STFT [B, {self.n_freq}, T] "
                             f"(torch.stft(..., return_complex=True)), got {x.dtype} {tuple(x.shape)}")
        z = self.band_split(x).transpose(1, 2)                              # [B, K, T, N]
        infos = []
        for blk in self.blocks:
            z, info = blk(z, return_analysis)
            infos.append(info)
        mask = self.mask_decoder(z.transpose(1, 2))                         # [B, F, T, 3]
        y = apply_fir_mask(mask, x)
        if not return_analysis:
            return y
        analysis: dict[str, Any] = {"lambda": torch.stack([i["lambda"] for i in infos]),
                                    "graph": torch.stack([i["graph"].float() for i in infos]),
                                    "graph_kind": self.graph, "windows": self.windows}
        if self.use_multiscale:
            analysis["fusion_weights"] = torch.stack([i["scale_weights"].mean(0) for i in infos])
            analysis["frame_gate"] = torch.stack([i["frame_gate"] for i in infos])
        return y, analysis
