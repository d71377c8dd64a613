"""Adaptive differential attention: a gated multi-scale fusion, made genuinely differential.

A convex mix of the two maps, ``α·A1 + (1 − α)·A2`` - a weighted average of two
attention maps, which is ordinary attention with a different map and cancels nothing. Here the
gate modulates λ inside the Differential Transformer's difference, per head and per query frame:

    λ_eff[n, h, t] = λ · 2·g[n, h, t],        g = MultiScaleDynamicFusionGate(stats) ∈ (0, 1)
    out_h(t)       = (1 − λ_init) · RMSNorm( Σ_s (A1[t, s] − λ_eff[t] · A2[t, s]) · V[s] )

so the output is always the first map *minus* a scaled second map (differential attention with
a data-dependent noise-cancellation strength in ``(0, 2λ)``). The gate's last layer starts at
zero, so ``g = 0.5`` and ``λ_eff = λ`` at initialisation: a freshly built layer computes exactly
:class:`~diffattn.DifferentialAttention`.

The gate reads the 8 per-query statistics of :mod:`diffattn.attention_stats` (normalised
entropy, coefficient of variation and look-direction of both maps; their overlap; the energy
share of ``A1 − λA2`` that survives the subtraction at the base λ), pooled over centred windows
of 2, 4, 8 frames. Optional frequency adaptivity: with ``num_bands`` set, the input is ``[B, K, T, dim]`` and the scale mix of each
band comes from a :class:`~diffattn.FrequencyAdaptiveFusionGate` (statistics + band embedding)
instead of one learned global mix.

Because ``λ_eff`` is constant along a query row, ``(A1 − λ_eff A2)V = A1V − λ_eff·(A2V)``: the
output still comes from the fused SDPA kernel, and so do the statistics
(:func:`~diffattn.attention_stats.differential_row_stats`, two more fused calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .attention_stats import NUM_STATS, STAT_NAMES, differential_row_stats, row_stats_from_maps
from .differential_attention import (
    DifferentialAttention,
    Impl,
    combine_masks,
    differential_maps,
    two_map_sdpa,
)
from .fusion_gates import FrequencyAdaptiveFusionGate, MultiScaleDynamicFusionGate


class AdaptiveDifferentialAttention(DifferentialAttention):
    """Differential attention whose λ is modulated per head and frame by a multi-scale gate.

    Args (beyond :class:`~diffattn.DifferentialAttention`'s ``dim, num_heads, depth, causal,
    rotary, rotary_base, norm_eps, impl``):
        windows: gate scales in frames (default 2, 4, 8; ``(1,)`` = single-scale gate).
        num_bands: if set, inputs are ``[B, num_bands, T, dim]`` and each band's scale weights come
            from a :class:`~diffattn.FrequencyAdaptiveFusionGate`; else one learned global mix.
        band_embed_dim: band-embedding size of that gate (16 by default).
        centres_hz: optional band centre frequencies (Hz) to initialise the band embedding.
        detach_stats: compute the gate's statistics as observations without gradient (default);
            with ``False`` they backpropagate into q/k as well.

    Shapes: ``forward(x [..., T, dim]) -> [..., T, dim]`` (``[B, K, T, dim]`` when ``num_bands``).

    Memory: ``O(N_seq · T · dim)`` (fused attention and the two fused statistics calls; no
    ``T×T`` tensor), in inference and training alike on kernels with a memory-efficient
    backward. Compute: about 3–4× a plain ``DifferentialAttention`` on CPU.
    ``return_analysis=True`` materialises the maps: ``O(N_seq · 2H · T²)``.

    Padded batches: ``forward(x, attn_mask)`` takes a bool key-padding mask ``[N_seq, 1, 1, T]``
    (``True`` = valid frame; as :class:`~diffattn.DifferentialAttention` and
    :class:`~diffattn.BandwiseAttention` take it). The maps, the statistics (``n`` and the key mean
    count valid keys only), the gate's windows and the band gate's moments then all see each
    sequence's valid frames only, so a sequence padded after its end gets, in its valid frames,
    what it gets alone. Other masks are refused: the statistics are defined for full (or causal)
    self-attention over a sequence's own frames.
    """

    def __init__(self, dim: int, num_heads: int, depth: int, causal: bool = False, *,
                 windows: Sequence[int] = (2, 4, 8), num_bands: int | None = None,
                 band_embed_dim: int = 16, centres_hz: Sequence[float] | None = None,
                 detach_stats: bool = True, rotary: bool = False, rotary_base: float = 10000.0, norm_eps: float = 1e-5,
                 impl: Impl = "auto") -> None:
        super().__init__(dim, num_heads, depth, causal, rotary=rotary, rotary_base=rotary_base,
                         norm_eps=norm_eps, impl=impl)
        self.gate = MultiScaleDynamicFusionGate(NUM_STATS, windows,
                                                learn_scale_weights=num_bands is None)
        self.num_bands = num_bands
        self.band_gate = (FrequencyAdaptiveFusionGate(NUM_STATS, num_bands, len(self.gate.windows),
                                                      band_embed_dim, centres_hz=centres_hz)
                          if num_bands is not None else None)
        self.detach_stats = detach_stats

    def _key_padding(self, attn_mask: Tensor | None, n_seq: int, length: int) -> Tensor | None:
        """A key-padding ``attn_mask`` broadcastable to ``[N_seq, 1, 1, T]`` -> bool ``[N_seq, T]``."""
        if attn_mask is None:
            return None
        shape = (1,) * (4 - attn_mask.ndim) + tuple(attn_mask.shape)
        if (attn_mask.dtype != torch.bool or attn_mask.ndim > 4 or shape[0] not in (1, n_seq)
                or shape[1:3] != (1, 1) or shape[3] != length):
            raise ValueError(f"{type(self).__name__} takes a bool key-padding mask [N_seq, 1, 1, T] = "
                             f"[{n_seq}, 1, 1, {length}] (True = valid frame) as attn_mask, got "
                             f"{attn_mask.dtype} {tuple(attn_mask.shape)}: its statistics are defined for "
                             f"self-attention over each sequence's own frames")
        km = attn_mask.reshape(shape[0], length).expand(n_seq, length)
        ok = km[:, 0].all() if self.causal else km.any(1).all()
        if not bool(ok):
            raise ValueError("every sequence needs a valid first frame (causal) or at least one valid frame")
        return km

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, *, return_analysis: bool = False,
                return_diversity_loss: bool = False, impl: Impl | None = None
                ) -> Tensor | tuple[Any, ...]:
        """Attend along dim -2 with the gated λ.

        Args:
            x: ``[..., T, dim]`` (``[B, K, T, dim]`` when built with ``num_bands``).
            attn_mask: optional bool key-padding mask broadcastable to ``[N_seq, 1, 1, T]``
                (``N_seq`` = the leading dims of ``x`` flattened; ``True`` = valid frame), see the
                class docstring. The padded frames' outputs are finite but meaningless.
            return_analysis: also return a dict with ``attn1``, ``attn2`` ``[..., H, T, T]``,
                ``diff`` (``attn1 − λ_eff·attn2``), ``lambda`` (0-d), ``lambda_eff``
                ``[..., H, T]``, ``gate`` ``[..., H, T]``, ``stats`` ``[..., H, T, 8]``,
                ``stat_names``, ``scale_gates`` ``[S, ..., H, T]`` (not detached: it keeps its graph
                for :class:`~diffattn.ScaleDiversityLoss`; the other entries are detached), ``scale_weights``
                ``[..., H, S]`` and, with bands, ``band_scale_weights`` ``[B, K, S]``.
            return_diversity_loss: also return the gate's scale-diversity loss (0-d).
        Returns:
            ``y``; with flags ``(y, diversity_loss?, analysis?)`` in that order.
        """
        self._check_input(x)
        if self.band_gate is not None and (x.ndim != 4 or x.shape[1] != self.num_bands):
            raise ValueError(f"AdaptiveDifferentialAttention(num_bands={self.num_bands}) expects "
                             f"[B, {self.num_bands}, T, {self.dim}], got {tuple(x.shape)}")
        lead, L = x.shape[:-2], x.shape[-2]
        q, k, v = self.project(x.reshape(-1, L, self.dim))
        km = self._key_padding(attn_mask, q.shape[0], L)                 # [N, T] or None
        mask4 = None if km is None else km[:, None, None, :]
        lam = self.lambda_full().to(q.dtype)
        path = self._resolve_impl(impl, return_analysis)
        lam_obs = lam.detach() if self.detach_stats else lam
        if path == "naive":
            a1, a2 = differential_maps(q, k, scale=self.scaling, attn_mask=mask4, causal=self.causal)
            o1, o2 = torch.matmul(a1, v), torch.matmul(a2, v)
            valid = combine_masks(mask4, self.causal, L, L, q.device)
            if self.detach_stats:
                stats = row_stats_from_maps(a1.detach(), a2.detach(), lam_obs, valid)
            else:
                stats = row_stats_from_maps(a1, a2, lam_obs, valid)
        else:
            o1, o2 = two_map_sdpa(q, k, v, scale=self.scaling, attn_mask=mask4, causal=self.causal)
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_stats):
                stats = differential_row_stats(q, k, lam_obs, scale=self.scaling,
                                               causal=self.causal, key_padding_mask=km)
        # stats: [N, H, T, 8]; the gates pool valid query frames only
        frames = None if km is None else km[:, None, :]                # [N, 1, T]
        band_w = None
        scale_w = None
        if self.band_gate is not None:
            b, kb = lead
            band_w = self.band_gate(stats.reshape(b, kb, self.num_heads, L, NUM_STATS),
                                    mask=None if km is None else km.reshape(b, kb, 1, L))
            scale_w = band_w.reshape(b * kb, 1, -1)
        gate_out = self.gate(stats, scale_w, return_diversity_loss=return_diversity_loss,
                             return_analysis=return_analysis, mask=frames)
        gate_out = gate_out if isinstance(gate_out, tuple) else (gate_out,)
        g = gate_out[0]  # [N, H, T]
        lam_eff = lam * 2.0 * g
        o = o1 - lam_eff.unsqueeze(-1) * o2
        y = self.finish(o).reshape(*lead, L, self.dim)
        out: list[Any] = [y]
        if return_diversity_loss:
            out.append(gate_out[1])
        if return_analysis:
            ga = gate_out[-1]
            h = self.num_heads
            analysis = {
                "attn1": a1.reshape(*lead, h, L, L), "attn2": a2.reshape(*lead, h, L, L),
                "diff": (a1 - lam_eff.unsqueeze(-1) * a2).reshape(*lead, h, L, L),
                "lambda": lam.detach(), "lambda_init": self.lambda_init,
                "lambda_eff": lam_eff.detach().reshape(*lead, h, L),
                "gate": g.detach().reshape(*lead, h, L),
                "stats": stats.detach().reshape(*lead, h, L, NUM_STATS), "stat_names": STAT_NAMES,
                "scale_gates": ga["scale_gates"].reshape(-1, *lead, h, L),
                "scale_weights": ga["scale_weights"].detach().reshape(*lead, h, -1),
            }
            if band_w is not None:
                analysis["band_scale_weights"] = band_w.detach()
            out.append(analysis)
        return out[0] if len(out) == 1 else tuple(out)
