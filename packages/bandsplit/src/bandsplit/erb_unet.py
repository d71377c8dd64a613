"""The "Net2" ERB-UNet: an ERB-grouped convolutional U-Net with a differential-attention bottleneck.

``ERBUNet`` works at its own STFT resolution (default n_fft 1200, hop 100 at 16 kHz: 601 bins,
real/imag stacked ``[B, 2, 601, T]``). ``ERBUNet257`` is its redesign at BSRNN's
resolution (n_fft 512, hop 128: complex ``[B, 257, T]`` in and out, ERB groups recomputed for 257
bins). To run the 601-bin net on BSRNN's complex 257-bin input, wrap it in
:class:`bandsplit.erb_adapter.ERBUNetAdapter`, which converts exactly through the waveform.

Pitfalls of a straightforward implementation avoided here: odd kernels only (even kernels return
T+1 frames); no random unlearned positional buffer (a learned depthwise convolution over time gives
position information and works for any T); skip connections are aligned exactly (transposed
convolutions with the output padding that restores each level's bin count, no truncation that
shifts bins); GroupNorm instead of BatchNorm (independent of batch composition, works at B = 1);
real differential attention ``(softmax(Q1K1^T) - lambda softmax(Q2K2^T)) V`` from ``diffattn``,
not a convex mix of two maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from diffattn import AdaptiveDifferentialAttention, DifferentialAttention, StandardAttention
from torch import Tensor, nn

from ._complex import as_complex
from ._masking import frame_mask, key_padding_mask, masked_mean_var
from .analysis import AnalysisMode, analysis_level
from .erb_conv import DEFAULT_GROUP_KERNELS, HarmonicAwareGroupedConv, MaskResize
from .stft import SpectrogramTransform


AttentionKind = Literal["diff", "adaptive", "standard"]
#: how a decoder level's output meets its skip connection's bin count (see ERBUNet)
SkipAlign = Literal["exact", "adaptive_pool", "truncate"]
ConvKind = Literal["erb", "plain"]


def _norm_act(ch: int) -> nn.Sequential:
    return nn.Sequential(nn.GroupNorm(1, ch), nn.PReLU(ch))


def _masked_group_norm(gn: nn.GroupNorm, x: Tensor, m: Tensor) -> Tensor:
    """``gn(x)`` for ``x [B, C, F, T]`` with statistics over the valid frames of ``m [B, 1, 1, T]``."""
    b, c = x.shape[:2]
    xg = x.reshape(b, gn.num_groups, c // gn.num_groups, *x.shape[2:])
    mean, var = masked_mean_var(xg, m[:, None], (2, 3, 4))
    y = ((xg - mean) * torch.rsqrt(var + gn.eps)).reshape(x.shape)
    return y * gn.weight[:, None, None] + gn.bias[:, None, None] if gn.affine else y


def _seq(mods: nn.Sequential, x: Tensor, m: Tensor | None) -> Tensor:
    """``mods(x)``; with a frame mask ``m [B, 1, 1, T]`` (float 0/1) the GroupNorms count valid
    frames only and the output is zeroed past each item's end, which is what a convolution over
    time sees past the end of an item run alone (its zero padding)."""
    if m is None:
        return mods(x)
    for mod in mods:
        x = _masked_group_norm(mod, x, m) if isinstance(mod, nn.GroupNorm) else mod(x)
    return x * m


class _SwiGLU(nn.Module):
    """``W2(silu(W1 x) * W3 x)``: ``[..., d] -> [..., d]``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w13 = nn.Linear(dim, 2 * hidden)
        self.w2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(a) * b)


class _DiffTransformerLayer(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))`` then ``x + SwiGLU(LN(x))``, ``[B, T, D] -> [B, T, D]``.

    ``attention``: ``"diff"`` (DifferentialAttention, H heads), ``"adaptive"``
    (AdaptiveDifferentialAttention) or ``"standard"`` (softmax attention with 2H heads of the same size).
    """

    def __init__(self, dim: int, num_heads: int, depth: int, ffn_mult: float,
                 attention: AttentionKind) -> None:
        super().__init__()
        self.kind = attention
        self.norm1 = nn.LayerNorm(dim)
        if attention == "diff":
            self.attn: nn.Module = DifferentialAttention(dim, num_heads, depth, causal=False)
        elif attention == "adaptive":
            self.attn = AdaptiveDifferentialAttention(dim, num_heads, depth, causal=False)
        else:
            self.attn = StandardAttention(dim, 2 * num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = _SwiGLU(dim, max(1, int(round(ffn_mult * dim))))

    def forward(self, x: Tensor, return_analysis: AnalysisMode = False, keys: Tensor | None = None
                ) -> tuple[Tensor, dict[str, Any]]:
        """``x [B, T, D]`` -> ``(x', info)`` (``keys``: a key-padding mask ``[B, 1, 1, T]``); ``info`` is empty unless ``return_analysis``
        (``"full"`` adds ``attention_map [B, T, T]``: the map averaged over heads, ``attn1 −
        λ·attn2`` (``λ_eff`` per query for ``"adaptive"``) or the softmax map for ``"standard"``)."""
        level = analysis_level(return_analysis)
        info: dict[str, Any] = {}
        an: dict[str, Any] | None = None
        # every kind takes the key-padding mask as attn_mask (None: no padding)
        if level and self.kind == "adaptive":
            a, an = self.attn(self.norm1(x), keys, return_analysis=True)
            info = {"lambda": an["lambda"], "alpha": an["gate"], "lambda_eff": an["lambda_eff"],
                    "scale_gates": an["scale_gates"],
                    "scale_weights": self.attn.gate.learned_scale_weights().detach()}
        elif level >= 2:
            a, an = self.attn(self.norm1(x), keys, return_analysis=True)
        else:
            a = self.attn(self.norm1(x), keys)
        if level and self.kind == "diff":
            info = {"lambda": self.attn.lambda_full().detach()}
        if level >= 2 and an is not None:
            maps = an["diff"] if "diff" in an else an["attn"]              # [B, H, T, T]
            info["attention_map"] = maps.detach().float().mean(1)
        x = x + a
        return x + self.ffn(self.norm2(x)), info


class _DiffTransformerBottleneck(nn.Module):
    """Full-band differential-attention transformer over time: ``[B, C, Fb, T] -> [B, C, Fb, T]``.

    Frequency is folded into the channels: each frame's ``C * Fb`` values are projected to one
    ``d_model`` token, so every token sees the whole band and the projection keeps each bin's
    identity (no frequency position encoding needed). Tokens attend over time (non-causal).
    Position over time comes from a learned depthwise ``Conv1d`` (odd kernel, 'same' padding) added
    to the tokens ("convolutional position encoding"): learned, relative, valid for any T.
    Layer i uses ``DifferentialAttention(..., depth=i)``, i.e. lambda_init = 0.8 - 0.6 exp(-0.3 i)
    (or, with ``attention="adaptive"``, ``diffattn.AdaptiveDifferentialAttention``: lambda modulated
    per head and frame by the multi-scale gate over windows 2, 4, 8).
    The block is residual around the fold/unfold. Memory grows with ``T^2`` per head (attention).
    """

    def __init__(self, channels: int, freq_bins: int, d_model: int, num_layers: int, num_heads: int,
                 ffn_mult: float = 2.0, pos_kernel: int = 7, attention: AttentionKind = "diff") -> None:
        super().__init__()
        if pos_kernel % 2 == 0 or pos_kernel < 1:
            raise ValueError(f"pos_kernel must be odd ('same' length over time), got {pos_kernel}")
        self.channels, self.freq_bins = channels, freq_bins
        self.proj_in = nn.Linear(channels * freq_bins, d_model)
        self.pos = nn.Conv1d(d_model, d_model, pos_kernel, padding=pos_kernel // 2, groups=d_model)
        self.layers = nn.ModuleList(
            _DiffTransformerLayer(d_model, num_heads, depth=i, ffn_mult=ffn_mult, attention=attention)
            for i in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.proj_out = nn.Linear(d_model, channels * freq_bins)

    def forward(self, x: Tensor, return_analysis: AnalysisMode = False, mask: Tensor | None = None
                ) -> tuple[Tensor, list[dict[str, Any]]]:
        """``x [B, C, Fb, T]`` -> ``(y, per-layer analysis dicts)`` (empty dicts unless requested).
        ``mask``: bool ``[B, T]`` valid frames of a padded batch (zeros past each item's end for
        the position convolution, a key-padding mask in the attention) or None."""
        b, c, f, t = x.shape
        tok = self.proj_in(x.permute(0, 3, 1, 2).reshape(b, t, c * f))  # [B, T, D]
        if mask is not None:
            tok = tok * mask[:, :, None].to(tok.dtype)
        tok = tok + self.pos(tok.transpose(1, 2)).transpose(1, 2)
        keys = None if mask is None else key_padding_mask(mask, 1)
        infos = []
        for layer in self.layers:
            tok, info = layer(tok, return_analysis, keys)
            infos.append(info)
        y = self.proj_out(self.norm(tok)).reshape(b, t, c, f).permute(0, 2, 3, 1)
        return x + y, infos


#: Keyword arguments that give ERBUNet the research design's "~15-20 M" size (16.98 M parameters at
#: 601 bins).
ERB_UNET_FULL_SIZE: dict[str, object] = {
    "base_channels": 32, "channel_mults": (1, 2, 4, 4, 2), "d_model": 384, "transformer_layers": 7,
    "num_heads": 8}
#: the earlier name of :data:`ERB_UNET_FULL_SIZE`
ERB_UNET_SEED_SIZE = ERB_UNET_FULL_SIZE


def _freq_sizes(num_bins: int, depth: int) -> list[int]:
    """Bins per level: each stride-2 'same' convolution maps F -> ceil(F / 2) (bin j <- bin 2j)."""
    sizes = [num_bins]
    for _ in range(depth):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class ERBUNet(nn.Module):
    """ERB-grouped U-Net with a differential-attention bottleneck, masking its own STFT.

    Input/output: real/imag stacked ``[B, 2, F, T]`` with ``F = n_fft // 2 + 1`` (601 at the default
    n_fft 1200, hop 100, 16 kHz), any ``T >= 1``. The output is the input multiplied (complex
    product) by a **bounded complex mask** ``M = m * b tanh(|m| / b) / |m|`` with ``m = 1 + head(h)``
    (so ``|M| < mask_bound``; near-identity at initialisation, magnitude ~0.9 for b = 2):
    a mask keeps the network's output tied to the input's phase and scale, which is the robust
    choice for training from scratch; ``mask_bound`` > 1 leaves room for bins where speech and
    noise cancelled.

    Architecture (``depth`` levels; level l has ``F_l = ceil(F_{l-1} / 2)`` bins and
    ``c_l = base_channels * channel_mults[l]`` channels):

    * features: ``X |X|^(c-1)`` (magnitude compressed by ``input_compression`` c = 0.3, phase
      kept) stacked real/imag; the mask is applied to the uncompressed input;
    * encoder level l: ``HarmonicAwareGroupedConv`` (4 ERB groups of the level's own grid,
      learnable soft masks) -> GroupNorm -> PReLU (kept as the skip), then a (3, 3) convolution
      with stride (2, 1) (frequency only; T is kept) -> GroupNorm -> PReLU;
    * bottleneck: :class:`_DiffTransformerBottleneck` over time with the level's
      ``c_depth * F_depth`` values folded into each token;
    * decoder level l: (3, 3) transposed convolution with stride (2, 1) and the output padding that
      restores exactly ``F_l`` bins, aligned bin-for-bin with the encoder (output j <- input 2j)
      -> GroupNorm -> PReLU, concatenated with the skip -> 1x1 convolution (2 c_l -> c_l) ->
      ``HarmonicAwareGroupedConv`` -> GroupNorm -> PReLU (the 1x1 merge halves the cost of the
      grouped convolution, 54 taps per channel pair, compared with feeding it 2 c_l channels);
    * head: 1x1 convolution to the 2 mask channels.

    The small default (base_channels 8, channels 8-8-16-16-16 over depth 4, d_model 96, 2 layers,
    4 heads) has 395,258 parameters at 601 bins (325,250 for ERBUNet257) and trains on a CPU; its
    cost is dominated by the grouped convolutions at the two finest levels (measured on the shared
    2-core CPU, one thread, under load: forward + backward of 6 x 2 s takes ~4-5 s for ERBUNet257,
    ~16 s for ERBUNet behind the adapter, whose 601 x 321 grid has 2.8 x the bins x frames).
    The design's "~15-20 M" size is reached with :data:`ERB_UNET_FULL_SIZE` (base_channels 32,
    channel_mults (1, 2, 4, 4, 2), d_model 384, 7 layers, 8 heads): 16,981,402 parameters at 601 bins.

    Args:
        n_fft, hop, sample_rate: the STFT this net works on (Hz); ``self.transform`` is it.
        base_channels, channel_mults: channels per level (``depth + 1`` multipliers, the last one
            for the bottleneck level); default (1, 1, 2, 2, 2, ...) truncated to ``depth + 1``.
        depth: number of frequency downsamplings.
        transformer_layers, num_heads, d_model, ffn_mult: the bottleneck (``d_model`` divisible by
            ``2 * num_heads``: differential attention splits each head into two).
        kernels: (freq, time) kernel per ERB group, odd sizes (see HarmonicAwareGroupedConv).
        mask_bound: upper bound of the mask magnitude.
        input_compression: power applied to the input magnitude for the features (None: none).
        attention: ``"diff"`` (DifferentialAttention) or ``"adaptive"`` (the research notes' adaptive variant,
            ``diffattn.AdaptiveDifferentialAttention``) in the bottleneck, or ``"standard"`` (softmax
            attention with ``2 * num_heads`` heads of the same size: the "without differential
            attention" ablation).
        conv: ``"erb"`` (``HarmonicAwareGroupedConv``, default) or ``"plain"``: one ``Conv2d`` per
            position with the largest group kernel (7, 3 by default: the same receptive field, no
            ERB groups, no soft masks; the "regular conv vs ERB-aware conv" ablation of the ERB-UNet research notes).
            The modules keep their names (``enc_hag``, ``dec_hag``) either way.

    ``forward(x, return_analysis=True)`` returns ``(y, analysis)``: ``attention``, ``conv``,
    ``lambda`` ``[Lb]`` (one per bottleneck layer; differential kinds), and for
    ``attention="adaptive"`` the seed's "alpha" pattern: ``alpha`` ``[Lb, B, H, T]`` (the gate
    ``g ∈ (0, 1)`` per head and frame; ``λ_eff = 2·alpha·λ`` is the strength of the subtraction,
    ``alpha = 0.5`` is plain differential attention), ``lambda_eff`` ``[Lb, B, H, T]``,
    ``scale_weights`` ``[Lb, S]`` (the learned weights of the windows ``windows``, 2, 4, 8
    frames) and ``scale_gates`` ``[Lb, S, B, H, T]`` (per-window gates, not detached, for
    :class:`diffattn.ScaleDiversityLoss`; with ``lengths=``, ``valid_frames`` ``[B, 1, T]`` is its
    ``mask``); with ``conv="erb"`` also ``erb_masks_enc`` /
    ``erb_masks_dec`` (lists over levels of the soft group masks ``[G, F_l]``); and the net's STFT,
    ``hop_length``, ``sample_rate``, ``n_fft`` (ints). T counts this net's frames (its own hop).
    The analysis path materialises the ``T x T`` attention maps of the adaptive bottleneck.
    ``return_analysis="full"`` (inspection and figures) adds ``attention_maps`` ``[Lb, B, T, T]``:
    each bottleneck layer's map over frames averaged over heads, ``attn1 − λ·attn2`` (rows sum to
    ``1 − λ``; ``λ_eff`` per query frame and head for ``"adaptive"``) or the softmax map (rows sum
    to 1) for ``"standard"``.

    Resolution variants: the ERB-UNet notes' "Net2" is this net at n_fft 1200 (601 bins), its "Net1" at
    n_fft 1600, hop 100 (801 bins; registry name ``"erb-unet-801"``). The seed lists two more
    differences, both workarounds for shapes that did not line up in that code and absent here
    at either resolution: the soft ERB masks were defined on the input grid and resized to each
    level (nearest in Net1, bilinear in Net2), while here each level computes its masks from its
    own bins' real frequencies (level ``l``'s bin ``j`` is input bin ``2^l j``: exactly what a
    nearest-neighbour resize samples, without the unused logits); and decoder outputs were
    adaptive-pooled (Net1) or truncated (Net2) to the skip's size, while here the transposed
    convolutions' output padding restores each level's bin count, so skips align bin for bin.

    Both research variants are available as options: ``mask_resize="nearest"`` /
    ``"bilinear"`` defines the masks on the input grid and resizes them to each level, and
    ``skip_align="adaptive_pool"`` / ``"truncate"`` builds the transposed convolutions without the
    restoring output padding (``2F - 1`` bins, average-pooled up to the skip's count) or with one
    bin too many where the skip's count is odd (the top bin cut). The research's Net1 is
    ``ERBUNet(n_fft=1600, hop=100, mask_resize="nearest", skip_align="adaptive_pool")``, its
    Net2 ``ERBUNet(mask_resize="bilinear", skip_align="truncate")``; the defaults (``"none"``,
    ``"exact"``) are the aligned design described above.

    GroupNorm statistics span the whole utterance (like BSRNN's), so the net is non-causal.
    Parameters draw from the global torch RNG: call ``torch.manual_seed`` before construction.
    """

    def __init__(self, n_fft: int = 1200, hop: int = 100, sample_rate: int = 16000, base_channels: int = 8,
                 depth: int = 4, transformer_layers: int = 2, num_heads: int = 4, d_model: int = 96,
                 channel_mults: Sequence[int] | None = None, ffn_mult: float = 2.0,
                 kernels: Sequence[tuple[int, int]] = DEFAULT_GROUP_KERNELS, num_groups: int = 4,
                 mask_bound: float = 2.0, input_compression: float | None = 0.3,
                 attention: AttentionKind = "diff", conv: ConvKind = "erb", mask_resize: MaskResize = "none",
                 skip_align: SkipAlign = "exact") -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1 (frequency downsamplings before the bottleneck), "
                             f"got {depth}")
        if channel_mults is None:
            channel_mults = [1 if level < 2 else 2 for level in range(depth + 1)]
        channel_mults = [int(m) for m in channel_mults]
        if len(channel_mults) != depth + 1 or min(channel_mults) < 1:
            raise ValueError(f"channel_mults needs depth + 1 = {depth + 1} positive entries (the last for "
                             f"the bottleneck), got {channel_mults}")
        if attention not in ("diff", "adaptive", "standard"):
            raise ValueError(f"attention must be 'diff', 'adaptive' or 'standard', got {attention!r}")
        if conv not in ("erb", "plain"):
            raise ValueError(f"conv must be 'erb' or 'plain', got {conv!r}")
        if skip_align not in ("exact", "adaptive_pool", "truncate"):
            raise ValueError(f"skip_align must be 'exact', 'adaptive_pool' or 'truncate', got {skip_align!r}")
        if mask_resize != "none" and conv != "erb":
            raise ValueError(f"mask_resize={mask_resize!r} applies to the ERB-grouped conv; conv={conv!r} has no masks")
        self.attention, self.conv = attention, conv
        self.mask_resize, self.skip_align = mask_resize, skip_align
        if mask_bound <= 0:
            raise ValueError(f"mask_bound must be > 0, got {mask_bound}")
        self.transform = SpectrogramTransform(n_fft, hop, sample_rate)
        self.n_fft, self.hop, self.sample_rate = int(n_fft), int(hop), int(sample_rate)
        self.num_bins = self.n_fft // 2 + 1
        self.mask_bound = float(mask_bound)
        self.input_compression = input_compression
        sizes = _freq_sizes(self.num_bins, depth)
        ch = [base_channels * m for m in channel_mults]
        self.freq_sizes, self.channels = tuple(sizes), tuple(ch)

        plain_kernel = (max(int(k[0]) for k in kernels), max(int(k[1]) for k in kernels))

        def hag(cin: int, cout: int, level: int) -> nn.Module:
            if conv == "plain":
                return nn.Conv2d(cin, cout, plain_kernel, padding=(plain_kernel[0] // 2, plain_kernel[1] // 2))
            return HarmonicAwareGroupedConv(cin, cout, sizes[level], sample_rate, n_fft, num_groups, kernels,
                                            bin_stride=2 ** level, mask_resize=mask_resize)

        def up_padding(level: int) -> int:
            # a stride-2 transposed conv (kernel 3, padding 1) gives 2 F - 1 + output_padding bins:
            # "exact" restores the skip's bin count, "adaptive_pool" leaves 2 F - 1 to be pooled to
            # it, "truncate" makes 2 F (>= the skip's count) and cuts the top bin where it is over
            if skip_align == "exact":
                return sizes[level] - (2 * sizes[level + 1] - 1)
            return 0 if skip_align == "adaptive_pool" else 1

        self.enc_hag = nn.ModuleList(hag(2 if lv == 0 else ch[lv], ch[lv], lv) for lv in range(depth))
        self.enc_hag_norm = nn.ModuleList(_norm_act(ch[lv]) for lv in range(depth))
        self.enc_down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch[lv], ch[lv + 1], 3, stride=(2, 1), padding=1), *_norm_act(ch[lv + 1]))
            for lv in range(depth))
        self.bottleneck = _DiffTransformerBottleneck(ch[depth], sizes[depth], d_model, transformer_layers,
                                                     num_heads, ffn_mult, attention=attention)
        self.dec_up = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(ch[lv + 1], ch[lv], 3, stride=(2, 1), padding=1,
                                   output_padding=(up_padding(lv), 0)),
                *_norm_act(ch[lv]))
            for lv in range(depth))
        self.dec_merge = nn.ModuleList(nn.Conv2d(2 * ch[lv], ch[lv], 1) for lv in range(depth))
        self.dec_hag = nn.ModuleList(hag(ch[lv], ch[lv], lv) for lv in range(depth))
        self.dec_hag_norm = nn.ModuleList(_norm_act(ch[lv]) for lv in range(depth))
        self.head = nn.Conv2d(ch[0], 2, 1)

    def features(self, x: Tensor) -> Tensor:
        """Network input from ``[B, 2, F, T]``: magnitude compressed by ``input_compression``."""
        if self.input_compression is None:
            return x
        power = (x.square().sum(dim=1, keepdim=True) + 1e-8) ** ((self.input_compression - 1.0) / 2.0)
        return x * power

    supports_analysis = True

    #: ``forward(x, lengths=...)`` runs a padded batch of utterances of different lengths (every
    #: attention kind: the adaptive gate's statistics and windows count valid frames only)
    supports_lengths = True

    def mask(self, x: Tensor, return_analysis: AnalysisMode = False, *, valid: Tensor | None = None
             ) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """Bounded complex mask ``[B, 2, F, T]`` (real/imag) for input ``[B, 2, F, T]``
        (with ``return_analysis``: ``(mask, analysis)``, see the class docstring). ``valid``:
        bool ``[B, T]`` valid frames of a padded batch (``x`` zero past them) or None."""
        analysis_level(return_analysis)  # rejects anything but False, True, "full"
        fm = None if valid is None else valid[:, None, None, :].to(x.dtype)   # [B, 1, 1, T]
        h = self.features(x)
        skips = []
        for hag, hag_norm, down in zip(self.enc_hag, self.enc_hag_norm, self.enc_down, strict=True):
            h = _seq(hag_norm, hag(h), fm)
            skips.append(h)
            h = _seq(down, h, fm)
        h, infos = self.bottleneck(h, return_analysis, valid)
        if fm is not None:
            h = h * fm
        for lv in reversed(range(len(self.dec_up))):
            h = self._align(_seq(self.dec_up[lv], h, fm), skips[lv].shape[2])
            h = self.dec_merge[lv](torch.cat([h, skips[lv]], dim=1))
            if fm is not None:  # the 1x1 merge's bias past each end: zeros for the conv over time
                h = h * fm
            h = _seq(self.dec_hag_norm[lv], self.dec_hag[lv](h), fm)
        m = self.head(h)
        m = m + torch.tensor([1.0, 0.0], dtype=m.dtype, device=m.device)[:, None, None]
        r = torch.sqrt(m.square().sum(dim=1, keepdim=True) + 1e-12)
        m = m * (self.mask_bound * torch.tanh(r / self.mask_bound) / r)
        return (m, self._analysis(infos)) if return_analysis else m

    def _align(self, h: Tensor, bins: int) -> Tensor:
        """Decoder output ``[B, C, F', T]`` to the skip's ``bins``: as built ("exact"), adaptive
        average pooling over frequency (the research code's Net1), or truncation (its Net2)."""
        if h.shape[2] == bins:
            return h
        if self.skip_align == "adaptive_pool":
            return F.adaptive_avg_pool2d(h, (bins, h.shape[3]))
        return h[:, :, :bins]

    def _analysis(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"attention": self.attention, "conv": self.conv,
                               "hop_length": self.hop, "sample_rate": self.sample_rate, "n_fft": self.n_fft}
        if infos and "lambda" in infos[0]:
            out["lambda"] = torch.stack([i["lambda"] for i in infos])
        if self.attention == "adaptive" and infos:
            for key in ("alpha", "lambda_eff", "scale_gates", "scale_weights"):
                out[key] = torch.stack([i[key] for i in infos])
            out["windows"] = self.bottleneck.layers[0].attn.gate.windows
        if infos and "attention_map" in infos[0]:
            out["attention_maps"] = torch.stack([i["attention_map"] for i in infos])
        if self.conv == "erb":
            out["erb_masks_enc"] = [c.masks().detach() for c in self.enc_hag]
            out["erb_masks_dec"] = [c.masks().detach() for c in self.dec_hag]
        return out

    def forward(self, x: Tensor, return_analysis: AnalysisMode = False, *,
                lengths: Tensor | Sequence[int] | None = None) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """``[B, 2, F, T]`` real/imag (F = n_fft // 2 + 1) -> enhanced ``[B, 2, F, T]`` (and the
        analysis dict with ``return_analysis=True``).

        ``lengths``: optional valid frames per item (``[B]``, each in ``1 .. T``) of a batch
        padded to ``T`` frames: item ``b`` then gets, in its first ``lengths[b]`` frames, what it
        gets alone (GroupNorm statistics over its valid frames, zeros past its end for every
        convolution over time, a key-padding mask in the bottleneck's attention, and with
        ``attention="adaptive"`` the gate's statistics and windows over valid frames), and zeros
        after them."""
        if x.dim() != 4 or x.shape[1] != 2 or x.shape[2] != self.num_bins or x.shape[3] < 1:
            raise ValueError(
                f"ERBUNet(n_fft={self.n_fft}, hop={self.hop}) expects real/imag stacked "
                f"[B, 2, {self.num_bins}, T], got {list(x.shape)}; for complex [B, 257, T] input use "
                f"ERBUNetAdapter(ERBUNet()) or ERBUNet257")
        if x.is_complex():
            raise ValueError("ERBUNet takes real/imag stacked real tensors; got a complex tensor")
        valid = frame_mask(lengths, x.shape[0], x.shape[-1], x.device)
        if valid is None:
            m, analysis = self.mask(x, return_analysis) if return_analysis else (self.mask(x), None)
        else:
            x = x * valid[:, None, None, :].to(x.dtype)
            out = self.mask(x, return_analysis, valid=valid)
            m, analysis = out if return_analysis else (out, None)
            if analysis is not None:  # for ScaleDiversityLoss(..., mask=) on a padded batch
                analysis["valid_frames"] = valid[:, None, :]
        xr, xi = x[:, 0], x[:, 1]
        mr, mi = m[:, 0], m[:, 1]
        y = torch.stack([mr * xr - mi * xi, mr * xi + mi * xr], dim=1)
        return (y, analysis) if return_analysis else y

    def extra_repr(self) -> str:
        return (f"n_fft={self.n_fft}, hop={self.hop}, sample_rate={self.sample_rate}, bins per level="
                f"{list(self.freq_sizes)}, channels={list(self.channels)}, mask_bound={self.mask_bound}")


class ERBUNet257(ERBUNet):
    """The ERB-UNet redesigned for BSRNN's STFT (n_fft 512, hop 128): complex ``[B, 257, T]``.

    Same architecture as :class:`ERBUNet` built on 257 bins (ERB groups recomputed for the
    512-point grid at ``sample_rate``: bins [0, 11, 37, 101, 257] at 16 kHz; 257 -> 129 -> 65 -> 33 ->
    17 bins over the default depth 4), with BSRNN's I/O contract: ``forward(spec)`` takes a complex
    ``[B, 257, T]`` spectrogram and returns the enhanced complex ``[B, 257, T]`` of the same dtype,
    so a trainer can swap it for BSRNN. Keyword arguments are those of ERBUNet except the STFT.
    """

    def __init__(self, sample_rate: int = 16000, **kwargs: object) -> None:
        for k in ("n_fft", "hop"):
            if k in kwargs:
                raise TypeError(f"ERBUNet257 fixes {k} (512/128, BSRNN's STFT); use ERBUNet for another "
                                f"resolution")
        super().__init__(n_fft=512, hop=128, sample_rate=sample_rate, **kwargs)  # type: ignore[arg-type]

    @property
    def stft(self) -> SpectrogramTransform:
        """The model's STFT (n_fft 512, hop 128 at ``sample_rate``; :func:`bandsplit.enhance` uses it)."""
        return self.transform

    def forward(self, spec: Tensor, return_analysis: AnalysisMode = False, *,  # type: ignore[override]
                lengths: Tensor | Sequence[int] | None = None) -> Tensor | tuple[Tensor, dict[str, Any]]:
        """Complex ``[B, 257, T]`` -> complex ``[B, 257, T]`` (``return_analysis``, ``lengths``:
        see ERBUNet)."""
        if not spec.is_complex() or spec.dim() != 3 or spec.shape[1] != self.num_bins:
            raise ValueError(f"ERBUNet257 expects a complex spectrogram [B, {self.num_bins}, T] "
                             f"(n_fft 512, hop 128), "
                             f"got {'complex' if spec.is_complex() else spec.dtype} {list(spec.shape)}")
        out = super().forward(torch.view_as_real(spec).permute(0, 3, 1, 2), return_analysis, lengths=lengths)
        y, analysis = out if return_analysis else (out, None)
        y = as_complex(y.permute(0, 2, 3, 1).contiguous())
        return (y, analysis) if return_analysis else y
