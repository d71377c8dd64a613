"""NCSN++ as SGMSE+ configures it (sp-uhh/sgmse ``backbones/ncsnpp.py``), state-dict compatible.

A clean re-implementation with the same modules in the same order, so ``all_modules.N.*``
keys match and SGMSE+ checkpoints load with ``load_state_dict(strict=True)``. Default
configuration: 65,590,822 parameters (128 of them the fixed Fourier weights).

Input: complex ``x [B, 2, F, T]`` holding ``(x_t, y)`` and ``t [B]``; output complex
``[B, 1, F, T]``. With ``scale_by_sigma=True`` (SGMSE+'s ``ncsnpp``) the last feature map
is divided by ``t`` (the time, not sigma(t)) and SGMSE+ takes ``score = -output``.

Mixed precision: the complex <-> real conversions, the Fourier time embedding, the 1/t
scaling and the final 1x1 output layer run in float32 with autocast disabled; everything in
between follows the ambient autocast. (SGMSE+'s own backbone fails under bf16 autocast
because ``view_as_complex`` does not take bf16.) The output is always complex64.

Differences from SGMSE+ that do not change results for its inputs: attention placement is
fixed per level at construction (SGMSE+ tests ``h.shape[-2]`` at run time, which only agrees
with its module list when ``F == image_size``; here ``F != image_size`` with attention is an
error), and only the options SGMSE+'s configurations use are implemented
(``resblock_type='biggan'``, ``progressive`` in {output_skip, none}, ``progressive_input`` in
{input_skip, none}, ``conditional=True``, Fourier time embedding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._ncsnpp_layers import (
    AttnBlockpp,
    Combine,
    CrossAttnBlock,
    GaussianFourierProjection,
    ResnetBlockBigGANpp,
    conv3x3,
    dense,
    fir_downsample,
    fir_upsample,
    group_norm,
)
from .conditioning import BackboneCond

__all__ = ["NCSNpp", "NCSNPP_PRESETS", "count_parameters"]

#: Named configurations. ``sgmse``: SGMSE+'s ``ncsnpp`` / ``ncsnpp_v2`` (65,590,822 params);
#: ``sgmse_48k``: ``ncsnpp_48k`` (64,739,854); ``storm_m``: StoRM's "NCSN++M" (27,756,314);
#: ``storm_12m`` / ``storm_6m``: StoRM's smaller ones (11,675,546 / 5,216,762); ``tiny``:
#: the configuration of the parity fixture (321,718), handy for CPU tests with 64 bins.
NCSNPP_PRESETS: dict[str, dict[str, Any]] = {
    "sgmse": {},
    "sgmse_48k": {"attn_resolutions": (), "progressive": "none", "progressive_input": "none",
                  "scale_after_output": True},
    "storm_m": {"ch_mult": (1, 2, 2, 2), "num_res_blocks": 1, "attn_resolutions": ()},
    "storm_12m": {"nf": 96, "ch_mult": (1, 2, 2, 1), "num_res_blocks": 1, "attn_resolutions": ()},
    "storm_6m": {"nf": 96, "ch_mult": (1, 1, 1, 1), "num_res_blocks": 1, "attn_resolutions": ()},
    "tiny": {"nf": 16, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "attn_resolutions": (16,),
             "image_size": 64},
}


class NCSNpp(nn.Module):
    """NCSN++ score backbone (SGMSE+ configuration by default).

    Args:
        nf: base channels (128).
        ch_mult: channel multiplier per resolution level (7 levels: 256 -> 4 bins).
        num_res_blocks: residual blocks per level on the way down (+1 on the way up).
        attn_resolutions: frequency resolutions with self-attention (16).
        image_size: frequency bins ``F`` the network is built for (256).
        fir_kernel: FIR resampling taps ((1, 3, 3, 1)).
        skip_rescale: divide residual sums by sqrt 2.
        progressive: ``"output_skip"`` or ``"none"``.
        progressive_input: ``"input_skip"`` or ``"none"``.
        progressive_combine: ``"sum"`` or ``"cat"``.
        init_scale: init scale of the last conv of each block (0 -> ~0).
        fourier_scale: std of the fixed Fourier frequencies (16).
        dropout: dropout inside residual blocks (0).
        scale_by_sigma: divide the output features by ``t`` (SGMSE+'s ``ncsnpp``: True).
        scale_after_output: divide by ``t`` after the final 1x1 output layer (its bias
            included) instead of before it: SGMSE+'s ``ncsnpp_48k`` does this, its ``ncsnpp``
            the other way round.
        centered: inputs are centred (True); else ``x -> 2x - 1``.
        context_dim: if set, add cross-attention blocks (zero-initialised) reading
            ``BackboneCond.context [B, L, context_dim]`` after every self-attention site;
            they live in ``cross_attn`` (not in ``all_modules``), so SGMSE+ checkpoints load
            with ``strict=False`` and report only the new keys as missing.
        context_heads: heads of those blocks.
    """

    default_output_scaling = "none"  # score = -output (1/t already applied inside)

    def __init__(self, nf: int = 128, ch_mult: Sequence[int] = (1, 1, 2, 2, 2, 2, 2),
                 num_res_blocks: int = 2, attn_resolutions: Sequence[int] = (16,),
                 image_size: int = 256, fir_kernel: Sequence[float] = (1, 3, 3, 1),
                 skip_rescale: bool = True, progressive: str = "output_skip",
                 progressive_input: str = "input_skip", progressive_combine: str = "sum",
                 init_scale: float = 0.0, fourier_scale: float = 16.0, dropout: float = 0.0,
                 scale_by_sigma: bool = True, centered: bool = True,
                 context_dim: int | None = None, context_heads: int = 4,
                 scale_after_output: bool = False) -> None:
        super().__init__()
        if progressive not in ("output_skip", "none"):
            raise NotImplementedError(f"progressive={progressive!r} (SGMSE+ uses 'output_skip' "
                                      f"or 'none')")
        if progressive_input not in ("input_skip", "none"):
            raise NotImplementedError(f"progressive_input={progressive_input!r} (SGMSE+ uses "
                                      f"'input_skip' or 'none')")
        self.config: dict[str, Any] = dict(
            nf=nf, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks,
            attn_resolutions=tuple(attn_resolutions), image_size=image_size,
            fir_kernel=tuple(fir_kernel), skip_rescale=skip_rescale, progressive=progressive,
            progressive_input=progressive_input, progressive_combine=progressive_combine,
            init_scale=init_scale, fourier_scale=fourier_scale, dropout=dropout,
            scale_by_sigma=scale_by_sigma, centered=centered, context_dim=context_dim,
            context_heads=context_heads)
        if scale_after_output:  # only recorded when set: configs saved before the option stay as they were
            self.config["scale_after_output"] = True
        self.nf = nf
        self.num_resolutions = L = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.image_size = image_size
        self.all_resolutions = [image_size // (2 ** i) for i in range(L)]
        self.attn_levels = [r in attn_resolutions for r in self.all_resolutions]
        self.progressive = progressive
        self.progressive_input = progressive_input
        self.fir_kernel = tuple(fir_kernel)
        self.scale_by_sigma = scale_by_sigma
        self.scale_after_output = bool(scale_after_output)
        self.centered = centered
        self.temb_dim = 4 * nf
        self.context_dim = context_dim
        channels = 4  # Re/Im of x_t and of y

        self.output_layer = nn.Conv2d(channels, 2, 1)

        def resblock(in_ch: int, out_ch: int | None = None, up: bool = False,
                     down: bool = False) -> ResnetBlockBigGANpp:
            return ResnetBlockBigGANpp(in_ch, out_ch, temb_dim=self.temb_dim, up=up, down=down,
                                       dropout=dropout, fir_kernel=fir_kernel,
                                       skip_rescale=skip_rescale, init_scale=init_scale)

        def attn(ch: int) -> AttnBlockpp:
            return AttnBlockpp(ch, skip_rescale=skip_rescale, init_scale=init_scale)

        modules: list[nn.Module] = [
            GaussianFourierProjection(embedding_size=nf, scale=fourier_scale),
            dense(2 * nf, self.temb_dim),
            dense(self.temb_dim, self.temb_dim),
            conv3x3(channels, nf),
        ]
        attn_channels: list[int] = []  # channels at each self-attention site, in forward order
        hs_c = [nf]
        in_ch = nf
        for i_level in range(L):
            for _ in range(num_res_blocks):
                out_ch = nf * ch_mult[i_level]
                modules.append(resblock(in_ch, out_ch))
                in_ch = out_ch
                if self.attn_levels[i_level]:
                    modules.append(attn(in_ch))
                    attn_channels.append(in_ch)
                hs_c.append(in_ch)
            if i_level != L - 1:
                modules.append(resblock(in_ch, down=True))
                if progressive_input == "input_skip":
                    modules.append(Combine(channels, in_ch, method=progressive_combine))
                    if progressive_combine == "cat":
                        in_ch *= 2
                hs_c.append(in_ch)
        in_ch = hs_c[-1]
        modules += [resblock(in_ch), attn(in_ch), resblock(in_ch)]
        attn_channels.append(in_ch)
        for i_level in reversed(range(L)):
            for _ in range(num_res_blocks + 1):
                out_ch = nf * ch_mult[i_level]
                modules.append(resblock(in_ch + hs_c.pop(), out_ch))
                in_ch = out_ch
            if self.attn_levels[i_level]:
                modules.append(attn(in_ch))
                attn_channels.append(in_ch)
            if progressive == "output_skip":
                modules.append(group_norm(in_ch))
                modules.append(conv3x3(in_ch, channels, init_scale=init_scale))
            if i_level != 0:
                modules.append(resblock(in_ch, up=True))
        assert not hs_c
        if progressive != "output_skip":
            modules.append(group_norm(in_ch))
            modules.append(conv3x3(in_ch, channels, init_scale=init_scale))
        self.all_modules = nn.ModuleList(modules)
        if context_dim is not None:
            self.cross_attn = nn.ModuleList(
                CrossAttnBlock(ch, context_dim, heads=context_heads) for ch in attn_channels)

    # ---- construction helpers --------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> NCSNpp:
        """Build a named configuration from :data:`NCSNPP_PRESETS` (``overrides`` win)."""
        if name not in NCSNPP_PRESETS:
            raise ValueError(f"unknown NCSN++ preset {name!r}; known: {sorted(NCSNPP_PRESETS)}")
        return cls(**{**NCSNPP_PRESETS[name], **overrides})

    @property
    def downsampling_factor(self) -> int:
        """``F`` and ``T`` must be multiples of this (64 for SGMSE+'s 7 levels)."""
        return 2 ** (self.num_resolutions - 1)

    # ---- forward ---------------------------------------------------------------------------
    def time_embedding(self, t: Tensor) -> Tensor:
        """``[B] -> [B, 4 nf]``: Fourier features of ``log t`` through the two dense layers."""
        m = self.all_modules
        with torch.autocast(device_type=t.device.type, enabled=False):
            four = m[0](torch.log(t.float()))
        return m[2](F.silu(m[1](four)))

    def _check_input(self, x: Tensor, t: Tensor, cond: BackboneCond | None) -> None:
        if not x.is_complex() or x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"NCSNpp expects complex x [B, 2, F, T] holding (x_t, y), got "
                             f"{tuple(x.shape)} {x.dtype}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape [B] = [{x.shape[0]}], got {tuple(t.shape)}")
        Fq, T = x.shape[-2:]
        f = self.downsampling_factor
        if Fq % f or T % f:
            raise ValueError(f"F={Fq} and T={T} must be multiples of {f} for {self.num_resolutions} "
                             f"resolution levels; pad the frames with SpecTransform.pad_frames")
        if Fq != self.image_size and any(self.attn_levels):
            raise ValueError(f"this NCSNpp was built for image_size={self.image_size} frequency "
                             f"bins (attention at {self.config['attn_resolutions']}), got F={Fq}")
        if cond is not None and cond.context is not None and self.context_dim is None:
            raise ValueError("cond.context given but this NCSNpp has no cross-attention "
                             "(build it with context_dim=...)")
        if self.context_dim is not None and (cond is None or cond.context is None):
            raise ValueError("this NCSNpp has cross-attention blocks: pass cond.context "
                             "(zeros for a null condition)")

    def forward(self, x: Tensor, t: Tensor, cond: BackboneCond | None = None) -> Tensor:
        """``x`` complex ``[B, 2, F, T]`` (x_t, y), ``t [B]`` in (0, 1] -> complex ``[B, 1, F, T]``."""
        self._check_input(x, t, cond)
        m = self.all_modules
        B, _, Fq, T = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            if cond is not None and cond.input_add is not None:
                x = x + cond.input_add
            # (x_t.re, x_t.im, y.re, y.im) as float32 channels
            h_in = torch.view_as_real(x.to(torch.complex64)).permute(0, 1, 4, 2, 3).reshape(B, 4, Fq, T)
            if not self.centered:
                h_in = 2 * h_in - 1.0
        temb = self.time_embedding(t)
        if cond is not None:
            temb = cond.apply_temb(temb)
        context = cond.context if cond is not None else None
        cross = iter(self.cross_attn) if self.context_dim is not None else None

        def attend(idx: int, h: Tensor) -> Tensor:
            h = m[idx](h)
            if cross is not None:
                h = next(cross)(h, context)
            return h

        idx = 3
        input_pyramid = h_in
        hs = [m[idx](h_in)]
        idx += 1
        L = self.num_resolutions
        for i_level in range(L):
            for _ in range(self.num_res_blocks):
                h = m[idx](hs[-1], temb)
                idx += 1
                if self.attn_levels[i_level]:
                    h = attend(idx, h)
                    idx += 1
                hs.append(h)
            if i_level != L - 1:
                h = m[idx](hs[-1], temb)
                idx += 1
                if self.progressive_input == "input_skip":
                    input_pyramid = fir_downsample(input_pyramid, self.fir_kernel)
                    h = m[idx](input_pyramid, h)
                    idx += 1
                hs.append(h)
        h = hs[-1]
        h = m[idx](h, temb)
        h = attend(idx + 1, h)
        h = m[idx + 2](h, temb)
        idx += 3
        pyramid = None
        for i_level in reversed(range(L)):
            for _ in range(self.num_res_blocks + 1):
                h = m[idx](torch.cat([h, hs.pop()], dim=1), temb)
                idx += 1
            if self.attn_levels[i_level]:
                h = attend(idx, h)
                idx += 1
            if self.progressive == "output_skip":
                pyramid_h = m[idx + 1](F.silu(m[idx](h)))
                idx += 2
                if pyramid is None:
                    pyramid = pyramid_h
                else:
                    pyramid = fir_upsample(pyramid, self.fir_kernel) + pyramid_h
            if i_level != 0:
                h = m[idx](h, temb)
                idx += 1
        assert not hs
        if self.progressive == "output_skip":
            h = pyramid
        else:
            h = m[idx + 1](F.silu(m[idx](h)))
            idx += 2
        assert idx == len(m)
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = h.float()
            if self.scale_by_sigma and not self.scale_after_output:
                h = h / t.float().reshape(B, 1, 1, 1)
            h = self.output_layer(h)  # 4 -> 2 channels (Re, Im)
            if self.scale_by_sigma and self.scale_after_output:  # ncsnpp_48k: (W h + b) / t
                h = h / t.float().reshape(B, 1, 1, 1)
            return torch.view_as_complex(h.permute(0, 2, 3, 1).contiguous())[:, None]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items())


def count_parameters(module: nn.Module) -> int:
    """All parameters, trainable or not (SGMSE+ counts the fixed Fourier W too)."""
    return sum(p.numel() for p in module.parameters())

