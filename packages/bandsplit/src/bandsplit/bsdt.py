"""BSDT: the band-split differential transformer (v1: fixed harmonic graph, v2: learned graph).

Same I/O as :class:`bandsplit.BSRNN`: complex STFT ``[B, 257, T]`` (16 kHz, n_fft 512, hop
128) in, enhanced complex STFT out, through BSRNN's :class:`BandSplit` and 3-tap
:class:`MaskDecoder`. Between them, ``num_layer`` blocks act on band features
``z [B, K, T, N]`` (K = 31 bands):

1. **temporal differential attention** per band, weights shared across bands (the ``B·K``
   band sequences are one batch; no loop over bands):
   ``a = DiffAttn_T(RMSNorm(z))`` with ``λ_init`` set by the block's 0-based depth
   (``temporal_sharing="per_band"``: one module per band as in the BSDT design, batched;
   ``attention="standard"``: softmax attention instead, here and in step 4);
2. **frequency-adaptive multi-scale fusion** (``use_multiscale``): ``a`` is smoothed over
   centred odd windows covering 2, 4 and 8 frames; :class:`diffattn.FrequencyAdaptiveFusionGate`
   turns the statistics of ``a`` plus a learned band embedding into per-band scale weights
   ``w [B, K, 3]``, and :class:`diffattn.MultiScaleDynamicFusionGate` (its scales mixed with
   ``w``) predicts a per-frame gate ``g [B, K, T]`` between the unsmoothed attention output and
   the band's weighted multi-scale context: ``m = g·a + (1 − g)·Σ_s w_s·smooth_s(a)``;
   without it ``m = a``. Then ``z ← z + m``. Ablations (``fusion``, ``windows``): the
   seed-000 dynamic gate with global scale weights, fixed learned constants, equal weights,
   single-scale fusion, no fusion (see :class:`BSDT`);
3. a pre-norm feed-forward layer (``N → 2N → N``, GELU), residual;
4. **inter-band attention** (``use_inter_band``) across the K bands for every frame, on the
   graph ``graph``: ``"fixed"`` (harmonic sparse mask from the bands' real centre
   frequencies, v1), ``"learned"`` (learnable top-k graph, v2), ``"dense"`` or ``"none"``.

Every block is pre-norm with per-frame norms, so there are no whole-utterance statistics
inside the blocks (BandSplit/MaskDecoder keep BSRNN's GroupNorm, as in the reference).

Memory grows with ``B·K·T·N`` activations: temporal attention runs through the fused
scaled-dot-product kernel (no ``T × T`` map unless ``return_analysis="full"``), the
multi-scale fusion keeps 3 smoothed copies, the inter-band attention is over K = 31.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from diffattn import (
    ATTENTION_KINDS,
    BandwiseAttention,
    DifferentialAttention,
    FrequencyAdaptiveFusionGate,
    MultiScaleDynamicFusionGate,
    RMSNorm,
    StandardAttention,
    make_inter_band,
    odd_kernel,
    sliding_mean,
)

from ._masking import frame_mask, key_padding_mask
from .analysis import AnalysisMode, analysis_level, pca_2d
from .band_split import BandSplit
from .bands import BSRNN_BAND_WIDTHS, band_centres_hz, check_band_widths
from .mask_decoder import MaskDecoder, apply_fir_mask
from .stft import SpectrogramTransform

__all__ = ["BSDT", "BSDTBlock"]

GRAPH_KINDS = ("fixed", "learned", "dense", "none")


FUSION_KINDS = ("adaptive", "dynamic", "fixed", "equal", "none")
TEMPORAL_SHARING = ("shared", "per_band")


class _MultiScaleFusion(nn.Module):
    """Multi-scale temporal fusion of ``a [B, K, T, N]``: ``m = g·a + (1 − g)·Σ_s w_s·smooth_s(a)``.

    ``kind`` sets where the scale weights ``w`` and the gate ``g`` come from (see :class:`BSDT`):
    ``"adaptive"`` (per band and input: :class:`diffattn.FrequencyAdaptiveFusionGate`; per-frame
    gate from :class:`diffattn.MultiScaleDynamicFusionGate`), ``"dynamic"`` (learned global scale
    weights, per-frame gate), ``"fixed"`` (learned constants ``softmax(logits)`` and
    ``sigmoid(logit)``, input- and band-independent) or ``"equal"`` (``w = 1/S``, ``g = 0.5``, no
    parameters). With a single window ``w = 1`` and no parameters hold scale weights.
    """

    def __init__(self, dim: int, num_bands: int, windows: Sequence[int] = (2, 4, 8), stats_dim: int = 8,
                 centres_hz: Tensor | None = None, kind: str = "adaptive") -> None:
        super().__init__()
        self.kind = kind
        self.windows = tuple(int(w) for w in windows)
        self.kernels = tuple(odd_kernel(w) for w in self.windows)
        n_scales = len(self.windows)
        if kind in ("adaptive", "dynamic"):
            self.stats = nn.Linear(dim, stats_dim)  # per-frame statistics the gates read
            self.band_gate = (FrequencyAdaptiveFusionGate(stats_dim, num_bands, num_scales=n_scales,
                                                          centres_hz=centres_hz)
                              if kind == "adaptive" and n_scales > 1 else None)
            self.frame_gate = MultiScaleDynamicFusionGate(
                stats_dim, windows=self.windows, learn_scale_weights=kind == "dynamic" and n_scales > 1)
        elif kind == "fixed":
            self.scale_logits = nn.Parameter(torch.zeros(n_scales)) if n_scales > 1 else None
            self.gate_logit = nn.Parameter(torch.zeros(()))
        elif kind != "equal":
            raise ValueError(f"fusion kind must be one of {FUSION_KINDS[:-1]}, got {kind!r}")

    def _weights_and_gate(self, a: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """``w`` ``[B, K, S]`` or ``[1, 1, S]``, ``g`` ``[B, K, T, 1]`` or ``[]``, per-scale gates or None.
        ``mask``: bool ``[B, 1, T]`` valid frames (time pooling counts those only) or None."""
        n_scales = len(self.kernels)
        uniform = a.new_full((1, 1, n_scales), 1.0 / n_scales)
        if self.kind in ("adaptive", "dynamic"):
            s = self.stats(a)                                              # [B, K, T, S_d]
            if self.band_gate is not None:
                w = self.band_gate(s, mask=mask)                           # [B, K, S]
            elif self.kind == "dynamic" and n_scales > 1:
                w = self.frame_gate.learned_scale_weights().to(a.dtype)[None, None]
            else:
                w = uniform
            g, ga = self.frame_gate(s, scale_weights=w, return_analysis=True, mask=mask)  # [B, K, T]
            return w, g.unsqueeze(-1), ga["scale_gates"]
        if self.kind == "fixed":
            w = uniform if self.scale_logits is None else torch.softmax(self.scale_logits, 0).to(a.dtype)[None, None]
            return w, torch.sigmoid(self.gate_logit).to(a.dtype), None
        return uniform, a.new_tensor(0.5), None

    def forward(self, a: Tensor, return_analysis: AnalysisMode = False, mask: Tensor | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """``a [B, K, T, N] -> (m [B, K, T, N], info)``; ``info``: ``scale_weights [B, K, S]``,
        ``frame_gate [B, K, T]``, ``scale_gates [S, B, K, T]`` (attached; adaptive/dynamic) with
        ``return_analysis``; ``"full"`` adds ``band_embedding [K, E]`` (adaptive with S > 1).
        ``mask``: bool ``[B, 1, T]`` valid frames of a padded batch (smoothing and pooling over
        time count those only) or None."""
        level = analysis_level(return_analysis)
        w, g, scale_gates = self._weights_and_gate(a, mask)
        ctx = sum(w[..., i, None, None] * sliding_mean(a, k, mask) for i, k in enumerate(self.kernels))
        out = g * a + (1.0 - g) * ctx
        if not level:
            return out, {}
        b, k, t, _ = a.shape
        info = {"scale_weights": w.detach().expand(b, k, -1),
                "frame_gate": g.detach().expand(b, k, t, 1).squeeze(-1) if g.ndim else g.detach().expand(b, k, t)}
        if scale_gates is not None:
            info["scale_gates"] = scale_gates                              # [S, B, K, T], attached
        band_gate = getattr(self, "band_gate", None)
        if level >= 2 and band_gate is not None:
            info["band_embedding"] = band_gate.band_embedding.detach().float()   # [K, E]
        return out, info


def _temporal_attention(dim: int, num_heads: int, num_bands: int, depth: int, attention: str,
                        sharing: str) -> nn.Module:
    """The block's attention over time: one module shared by the bands, or one per band (batched)."""
    heads = num_heads if attention == "differential" else 2 * num_heads
    if sharing == "per_band":
        return BandwiseAttention(dim, heads, num_bands, depth, kind=attention)  # type: ignore[arg-type]
    if attention == "differential":
        return DifferentialAttention(dim, num_heads, depth)
    return StandardAttention(dim, heads)


class BSDTBlock(nn.Module):
    """One BSDT block on band features ``z [B, K, T, N] -> [B, K, T, N]`` (see the module docstring)."""

    def __init__(self, dim: int, num_heads: int, num_bands: int, depth: int, *, centres_hz: Tensor,
                 use_multiscale: bool = True, use_inter_band: bool = True, graph: str = "learned",
                 top_k: int = 5, windows: Sequence[int] = (2, 4, 8), fusion: str | None = None,
                 attention: str = "differential", temporal_sharing: str = "shared") -> None:
        super().__init__()
        fusion = ("adaptive" if use_multiscale else "none") if fusion is None else fusion
        self.attention, self.temporal_sharing = attention, temporal_sharing
        self.norm_t = RMSNorm(dim)
        self.attn_t = _temporal_attention(dim, num_heads, num_bands, depth, attention, temporal_sharing)
        self.fusion = (_MultiScaleFusion(dim, num_bands, windows, centres_hz=centres_hz, kind=fusion)
                       if fusion != "none" else None)
        self.norm_ff = RMSNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        kind = graph if use_inter_band else "none"
        self.inter_band = make_inter_band(kind, dim, num_heads, num_bands, centres_hz=centres_hz, k=top_k,
                                          depth=depth, attention=attention)
        self.graph_kind = kind

    def _graph(self, num_bands: int, device: torch.device) -> Tensor:
        """The inter-band graph ``[K, K]`` (edge weights; identity without inter-band attention)."""
        ib = self.inter_band
        if hasattr(ib, "graph"):
            return ib.graph().detach()
        return torch.eye(num_bands, device=device)

    def forward(self, z: Tensor, return_analysis: AnalysisMode = False, mask: Tensor | None = None
                ) -> tuple[Tensor, dict[str, Any]]:
        """``z [B, K, T, N] -> (z', info)``. ``mask``: bool ``[B, T]`` valid frames of a padded
        batch (a key-padding mask for the temporal attention, valid-frame pooling in the fusion;
        the norms, feed-forward and inter-band attention are per frame) or None. ``info`` (empty without ``return_analysis``):
        ``graph [K, K]``, ``lambda`` (0-d, ``[K]`` per band; differential), the fusion's entries
        (see :class:`_MultiScaleFusion`); ``"full"`` adds ``temporal_attention [B, K, T, T]`` (the
        temporal map averaged over heads: ``attn1 − λ·attn2`` for differential attention, the
        softmax map for standard), ``interband_attention [K, K]`` (the inter-band map averaged over
        batch, frames and heads; absent for graph ``"none"``) and ``interband_lambda`` (0-d)."""
        level = analysis_level(return_analysis)
        info: dict[str, Any] = {}
        h = self.norm_t(z)
        keys = None if mask is None else key_padding_mask(mask, z.shape[1])  # [B·K, 1, 1, T]
        if level >= 2:                                                     # explicit maps
            a, tinfo = self.attn_t(h, keys, return_analysis=True)
            maps = tinfo["diff"] if "diff" in tinfo else tinfo["attn"]     # [B, K, H, T, T]
            info["temporal_attention"] = maps.detach().float().mean(2)
        else:
            a = self.attn_t(h, keys)                                       # over T, batch B·K (fused)
        if self.fusion is not None:
            a, finfo = self.fusion(a, return_analysis, None if mask is None else mask[:, None])
            info.update(finfo)
        z = z + a
        z = z + self.ff(self.norm_ff(z))
        if level >= 2:
            z, ginfo = self.inter_band(z, return_analysis=True)
            info["graph"] = ginfo["graph"]
            ib_map = ginfo.get("diff_attention", ginfo.get("attention"))  # [H, K, K], mean over B, T
            if ib_map is not None:
                info["interband_attention"] = ib_map.float().mean(0)
            if "lambda" in ginfo:
                info["interband_lambda"] = ginfo["lambda"].detach().float()
        else:
            # the cheap level (training with the diversity loss): fused inter-band attention, the
            # graph read from the module, no K x K maps per frame
            z = self.inter_band(z)
            if level:
                info["graph"] = self._graph(z.shape[1], z.device)
        if level and self.attention == "differential":
            info["lambda"] = self.attn_t.lambda_full().detach()
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
        use_multiscale: ablation switch; ``False`` is the same as ``fusion="none"`` (no fusion).
        top_k: neighbours kept per band by the learned graph (``graph="learned"``; ``1 <= top_k < K``).
        windows: temporal scales of the fusion in frames (default 2, 4, 8: centred odd kernels 3,
            5, 9); one window, e.g. ``(4,)``, is single-scale fusion that keeps the gate
            (``m = g·a + (1 − g)·smooth_4(a)``; scale weights are then 1, with no parameters).
        fusion: how the scales and the attention output are fused (``None``: ``"adaptive"``, or
            ``"none"`` with ``use_multiscale=False``):
            ``"adaptive"`` (default; the BSDT notes' frequency-adaptive fusion: per-band scale weights
            from the statistics of ``a`` and a learned band embedding, per-frame gate from the
            statistics), ``"dynamic"`` (the ERB-UNet notes' multi-scale dynamic fusion gate: per-frame gate
            from the statistics, learned global scale weights ``softmax(logits)``), ``"fixed"``
            (non-adaptive: learned constant scale weights ``softmax(logits)`` and a learned
            constant gate ``sigmoid(logit)``, the same for every input and band), ``"equal"``
            (``w = 1/S``, ``g = 0.5``, no parameters) or ``"none"`` (``m = a``).
        attention: ``"differential"`` (default) or ``"standard"``: softmax attention with
            ``2·num_heads`` heads of the same size (the Differential Transformer's baseline; no λ,
            no per-head norm), in the temporal and the inter-band attention alike.
        temporal_sharing: ``"shared"`` (default: one temporal attention for all bands) or
            ``"per_band"`` (the BSDT design's one temporal module per band, K times the temporal
            attention's parameters, run batched by :class:`diffattn.BandwiseAttention`).
        band_widths, sample_rate, n_fft: the band table and the STFT it splits (bands' real centre
            frequencies feed the harmonic graph and the band embeddings).
        hop_length: hop of that STFT in samples; ``self.stft`` is the model's STFT
            (:func:`bandsplit.enhance` uses it).

    ``forward(x, return_analysis=True)`` returns ``(y, analysis)`` with ``graph`` ``[L, K, K]``
    (each block's inter-band graph), ``graph_kind``, ``windows``, ``fusion``, ``lambda`` (``[L]``,
    ``[L, K]`` per band; absent for standard attention) and, with fusion, ``fusion_weights``
    ``[L, K, S]`` (scale weights per band, averaged over the batch), ``frame_gate``
    ``[L, B, K, T]`` and, for ``"adaptive"`` / ``"dynamic"``, ``scale_gates`` ``[L, S, B, K, T]``:
    the per-scale gates, *not* detached, for :class:`diffattn.ScaleDiversityLoss`
    (``loss + weight · ScaleDiversityLoss()(analysis["scale_gates"])[0]``). That level is cheap
    (no attention map is materialised): a training step may ask for it. With ``lengths=`` it
    also holds ``valid_frames`` ``[B, 1, T]`` (bool), the ``mask`` that keeps a padded batch's
    padded frames out of the loss (``ScaleDiversityLoss()(a["scale_gates"], a["valid_frames"])``).

    ``forward(x, return_analysis="full")`` (inspection and figures, not training; the temporal
    attention then runs on its explicit path, ``O(B·K·H·T²)`` transient memory) adds:
    ``band_centres_hz`` ``[K]``; ``temporal_attention`` ``[L, B, K, T, T]`` (each block's
    temporal map over frames, averaged over heads: ``attn1 − λ·attn2`` for differential attention,
    whose rows sum to ``1 − λ``; the softmax map, rows summing to 1, for standard attention);
    ``interband_attention`` ``[L, K, K]`` (each block's inter-band map, query band by key band,
    averaged over batch, frames and heads, 0 off the graph; absent for graph ``"none"``) and
    ``interband_lambda`` ``[L]`` (differential); with fusion ``expected_window`` ``[L, K]``
    (``Σ_s w_s · windows_s`` in frames from ``fusion_weights``); with ``fusion="adaptive"`` and
    more than one window ``band_embedding`` ``[L, K, E]`` (the
    :class:`diffattn.FrequencyAdaptiveFusionGate`'s learned band embedding),
    ``band_embedding_pca`` ``[L, K, 2]`` (its projection on the first two principal components,
    :func:`bandsplit.analysis.pca_2d`) and ``band_embedding_pca_explained`` ``[L, 2]`` (their
    shares of the variance).
    """

    supports_analysis = True

    def __init__(self, num_channel: int = 64, num_layer: int = 4, num_heads: int = 2, *, graph: str = "learned",
                 use_inter_band: bool = True, use_multiscale: bool = True, top_k: int = 5,
                 band_widths: Sequence[int] | None = None, sample_rate: int = 16000, n_fft: int = 512,
                 windows: Sequence[int] = (2, 4, 8), hop_length: int = 128, fusion: str | None = None,
                 attention: str = "differential", temporal_sharing: str = "shared") -> None:
        super().__init__()
        if graph not in GRAPH_KINDS:
            raise ValueError(f"graph must be one of {GRAPH_KINDS}, got {graph!r}")
        if fusion is None:
            fusion = "adaptive" if use_multiscale else "none"
        elif fusion not in FUSION_KINDS:
            raise ValueError(f"fusion must be one of {FUSION_KINDS}, got {fusion!r}")
        elif not use_multiscale and fusion != "none":
            raise ValueError(f"use_multiscale=False means fusion='none', but fusion={fusion!r} was given; "
                             f"drop use_multiscale")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        if temporal_sharing not in TEMPORAL_SHARING:
            raise ValueError(f"temporal_sharing must be one of {TEMPORAL_SHARING}, got {temporal_sharing!r}")
        windows = tuple(windows)
        if not windows or any(isinstance(w, bool) or int(w) != w or w < 1 for w in windows):
            raise ValueError(f"windows must be one or more window sizes >= 1 frame, got {windows}")
        widths = check_band_widths(BSRNN_BAND_WIDTHS if band_widths is None else band_widths, n_fft // 2 + 1)
        self.num_channel, self.num_layer, self.num_heads = int(num_channel), int(num_layer), int(num_heads)
        self.band_widths, self.n_freq = widths, sum(widths)
        self.sample_rate, self.n_fft = int(sample_rate), int(n_fft)
        self.graph = graph if use_inter_band else "none"
        self.fusion, self.attention, self.temporal_sharing = fusion, attention, temporal_sharing
        self.use_multiscale, self.use_inter_band = fusion != "none", bool(use_inter_band)
        self.windows = tuple(int(w) for w in windows)
        centres = band_centres_hz(widths, sample_rate, n_fft)
        self.band_split = BandSplit(widths, self.num_channel)
        self.blocks = nn.ModuleList(
            BSDTBlock(self.num_channel, self.num_heads, len(widths), depth=i, centres_hz=centres,
                      use_inter_band=use_inter_band, graph=graph, top_k=top_k, windows=self.windows,
                      fusion=fusion, attention=attention, temporal_sharing=temporal_sharing)
            for i in range(self.num_layer))
        self.mask_decoder = MaskDecoder(widths, self.num_channel)
        #: the model's STFT (no parameters; its window is a non-persistent buffer)
        self.stft = SpectrogramTransform(self.n_fft, hop_length, self.sample_rate)

    def extra_repr(self) -> str:
        return (f"num_channel={self.num_channel}, num_layer={self.num_layer}, num_heads={self.num_heads}, "
                f"graph={self.graph!r}, fusion={self.fusion!r}, windows={self.windows}, "
                f"attention={self.attention!r}, temporal_sharing={self.temporal_sharing!r}")

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

    def band_centres_hz(self) -> Tensor:
        """The bands' centre frequencies in Hz, ``[K]`` float32 (mean of each band's bin frequencies)."""
        return band_centres_hz(self.band_widths, self.sample_rate, self.n_fft).float()

    #: ``forward(x, lengths=...)`` runs a padded batch of utterances of different lengths
    supports_lengths = True

    def forward(self, x: Tensor, return_analysis: AnalysisMode = False, *,
                lengths: Tensor | Sequence[int] | None = None) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """Complex ``[B, F, T]`` -> complex ``[B, F, T]``; ``return_analysis`` ``True`` / ``"full"``
        also returns the analysis dict (see the class docstring and :mod:`bandsplit.analysis`).

        ``lengths``: optional valid frames per item (``[B]``, each in ``1 .. T``) of a batch
        padded to ``T`` frames: item ``b`` then gets, in its first ``lengths[b]`` frames, what it
        gets alone (whole-utterance norms over its valid frames, a key-padding mask in the
        temporal attention, valid-frame smoothing and pooling in the fusion, zeros past its end
        for the 3-tap mask), and zeros after them."""
        level = analysis_level(return_analysis)
        if not x.is_complex() or x.dim() != 3 or x.shape[1] != self.n_freq:
            raise ValueError(f"BSDT expects a complex STFT [B, {self.n_freq}, T] "
                             f"(torch.stft(..., return_complex=True)), got {x.dtype} {tuple(x.shape)}")
        valid = frame_mask(lengths, x.shape[0], x.shape[-1], x.device)      # [B, T] or None
        if valid is not None:
            x = x * valid[:, None, :]
        z = self.band_split(x, valid).transpose(1, 2)                       # [B, K, T, N]
        infos = []
        for blk in self.blocks:
            z, info = blk(z, return_analysis, valid)
            infos.append(info)
        mask = self.mask_decoder(z.transpose(1, 2), valid)                  # [B, F, T, 3]
        y = apply_fir_mask(mask, x)
        if valid is not None:
            y = y * valid[:, None, :]
        if not level:
            return y
        analysis: dict[str, Any] = {"graph": torch.stack([i["graph"].float() for i in infos]),
                                    "graph_kind": self.graph, "windows": self.windows, "fusion": self.fusion}
        if self.attention == "differential":
            analysis["lambda"] = torch.stack([i["lambda"] for i in infos])
        if self.use_multiscale:
            analysis["fusion_weights"] = torch.stack([i["scale_weights"].mean(0) for i in infos])
            analysis["frame_gate"] = torch.stack([i["frame_gate"] for i in infos])
            if "scale_gates" in infos[0]:
                analysis["scale_gates"] = torch.stack([i["scale_gates"] for i in infos])
        if valid is not None:  # the padded batch's frames, for ScaleDiversityLoss(..., mask=)
            analysis["valid_frames"] = valid[:, None, :]
        if level >= 2:
            analysis.update(self._full_analysis(infos, analysis))
        return y, analysis

    def _full_analysis(self, infos: list[dict[str, Any]], analysis: dict[str, Any]) -> dict[str, Any]:
        """The ``return_analysis="full"`` entries from the blocks' infos (see the class docstring)."""
        out: dict[str, Any] = {"band_centres_hz": self.band_centres_hz(),
                               "temporal_attention": torch.stack([i["temporal_attention"] for i in infos])}
        if "interband_attention" in infos[0]:
            out["interband_attention"] = torch.stack([i["interband_attention"] for i in infos])
        if "interband_lambda" in infos[0]:
            out["interband_lambda"] = torch.stack([i["interband_lambda"] for i in infos])
        fw = analysis.get("fusion_weights")
        if fw is not None:
            win = torch.tensor(self.windows, dtype=torch.float32, device=fw.device)
            out["expected_window"] = fw.float() @ win                       # [L, K] frames
        if "band_embedding" in infos[0]:
            emb = torch.stack([i["band_embedding"] for i in infos])         # [L, K, E]
            pcs = [pca_2d(e) for e in emb]
            out["band_embedding"] = emb
            out["band_embedding_pca"] = torch.stack([p for p, _ in pcs])    # [L, K, 2]
            out["band_embedding_pca_explained"] = torch.stack([v for _, v in pcs])   # [L, 2]
        return out
