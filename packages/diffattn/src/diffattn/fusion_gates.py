"""Fusion gates: multi-scale dynamic fusion and frequency-adaptive (per-band) scale weights.

Both gates read *statistics* (e.g. the per-query attention-map statistics of
:func:`diffattn.attention_stats.differential_row_stats`) and predict how to fuse.

Pooling: a common way to pool statistics over disjoint query windows and then repeat or
interpolate the per-window gate back to ``T`` frames breaks when ``T`` is not a multiple of the
window. Here every scale is a *centred sliding* average with an odd kernel ``2·⌊w/2⌋ + 1``
  (windows 1, 2, 4, 8 -> kernels 1, 3, 5, 9) and ``count_include_pad=False``, so each scale
  returns exactly ``T`` frames for any ``T >= 1`` (edges average only the frames that exist), and
  no even kernels, hence no ``T+1`` off-by-one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import flat_frame_mask, masked_centre


def odd_kernel(window: int) -> int:
    """Centred odd kernel covering a window of ``window`` frames: ``2·⌊window/2⌋ + 1``."""
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    return 2 * (window // 2) + 1


def sliding_mean(x: Tensor, kernel: int, mask: Tensor | None = None) -> Tensor:
    """Centred moving average over dim -2 of ``x [..., T, D]`` with an odd ``kernel``.

    Returns ``[..., T, D]`` for every ``T >= 1``; frames near the edges average only the existing
    frames (zero padding is not counted). ``mask`` (bool, ``True`` = valid frame, broadcastable
    to ``x.shape[:-1]``, e.g. ``[B, 1, T]`` for ``x [B, K, T, D]``): frames outside it count as
    absent, so each sequence of a padded batch averages only its own frames, exactly what it gets
    alone (the padded frames get the mean of the valid frames in their window, 0 if none).
    Memory: ``O(x.numel())``.
    """
    if kernel % 2 == 0:
        raise ValueError(f"sliding_mean needs an odd kernel (even kernels shift by half a frame), "
                         f"got {kernel}")
    if kernel == 1:
        return x
    lead, (t, d) = x.shape[:-2], x.shape[-2:]
    xf = x.reshape(-1, t, d).transpose(1, 2)  # [M, D, T]
    if mask is None:
        # avg_pool1d refuses padding > kernel/2 only; T=1 with kernel 9 / padding 4 still gives 1 frame
        y = F.avg_pool1d(xf, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
        return y.transpose(1, 2).reshape(*lead, t, d)
    mf = mask.to(x.dtype).expand(x.shape[:-1]).reshape(-1, 1, t)  # [M, 1, T]
    # both averages divide by the same in-range count: their ratio is sum(valid x) / n(valid)
    num = F.avg_pool1d(xf * mf, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    den = F.avg_pool1d(mf, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    y = num / den.clamp_min(torch.finfo(x.dtype).tiny)
    return y.transpose(1, 2).reshape(*lead, t, d)


def scale_diversity_loss(scale_gates: Tensor, eps: float = 1e-8, mask: Tensor | None = None) -> Tensor:
    """Mean absolute Pearson correlation over time between every pair of scale gates.

    Args:
        scale_gates: ``[S, ..., T]`` gate values of ``S`` scales.
        mask: optional bool frame mask (``True`` = valid) broadcastable to ``scale_gates.shape[1:]``:
            means and correlations over each sequence's valid frames only (a padded batch).
    Returns:
        0-d tensor in ``[0, 1]``: ~0 when the scales' gates are mutually uncorrelated over time
        (maximally diverse), 1 when they are identical (or exactly anti-correlated) and
        non-constant. A constant gate has no time variation to correlate and counts as 0;
        so does ``T = 1``. With fewer than 2 scales the loss is 0.
    """
    s = scale_gates.shape[0]
    if s < 2:
        return scale_gates.new_zeros(())
    t = scale_gates.shape[-1]
    fmask = flat_frame_mask(mask, scale_gates.shape[1:])
    g = masked_centre(scale_gates.reshape(s, -1, t), fmask).reshape(scale_gates.shape)
    g = g / torch.sqrt(g.pow(2).sum(-1, keepdim=True) + eps)
    corr = torch.einsum("a...t,b...t->ab...", g, g)  # [S, S, ...]
    iu = torch.triu_indices(s, s, 1, device=g.device)
    return corr[iu[0], iu[1]].abs().mean()


class _StackedMLP(nn.Module):
    """``S`` independent MLPs evaluated in one batched matmul per layer: ``[S, M, in] -> [S, M, out]``.

    Without autograd (inference) the rows are processed in blocks of ``block_rows`` so the hidden
    activations stay bounded (``S · block_rows · max(hidden)``) however long the input is.
    """

    block_rows = 1 << 13

    def __init__(self, num: int, sizes: Sequence[int], act: type[nn.Module] = nn.ReLU,
                 zero_last: bool = True) -> None:
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(num, fan_in, fan_out)
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init, per network
            nn.init.uniform_(w, -bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.empty(num, 1, fan_out).uniform_(-bound, bound)))
        if zero_last:
            nn.init.zeros_(self.weights[-1])
            nn.init.zeros_(self.biases[-1])
        self.act = act()

    def forward(self, x: Tensor) -> Tensor:
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(w.requires_grad for w in self.weights))
        if not needs_grad and x.shape[1] > self.block_rows:
            return torch.cat([self._run(blk) for blk in x.split(self.block_rows, dim=1)], dim=1)
        if needs_grad and x.is_cuda:
            return self._run_block_diagonal(x)
        return self._run(x)

    def _run(self, x: Tensor) -> Tensor:
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < n_layers - 1:
                x = self.act(x)
        return x

    def _run_block_diagonal(self, x: Tensor) -> Tensor:
        """The same MLPs as one matmul per layer against a block-diagonal weight, rows
        ``[M, S·in]``. On CUDA the batched form's weight gradients (``S`` products of
        ``[in, M] @ [M, out]`` with M ~ 50k) ran as ``S`` thread blocks for the whole GPU,
        0.6 ms each on an H100; one ``mm`` gets split-K kernels: BSDT's 32 x 2 s training step
        went from 270 to 190 ms. Used for CUDA training only (inference keeps the batched
        form, which was faster there; on a CPU the batched form is faster too)."""
        s, rows, fan_in = x.shape
        h = x.transpose(0, 1).reshape(rows, s * fan_in)
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.addmm(b.reshape(-1), h, torch.block_diag(*w.unbind(0)))
            if i < n_layers - 1:
                h = self.act(h)
        return h.reshape(rows, s, -1).transpose(0, 1)


class MultiScaleDynamicFusionGate(nn.Module):
    """Per-frame gate in (0, 1) from statistics pooled over several temporal scales.

    For each window ``w`` in ``windows`` the input statistics are averaged over a centred odd
    window (:func:`odd_kernel`), fed to that scale's own MLP ``dim-32-16-1`` (8-32-16-1 for the 8 map statistics) and a
    sigmoid; the scales are mixed with weights that sum to 1: ``softmax(scale_logits)`` (learned,
    uniform at init) or weights supplied by the caller (e.g. per band from
    :class:`FrequencyAdaptiveFusionGate`). The MLPs' last layer starts at zero, so every gate is
    exactly 0.5 at initialisation.

    Args:
        dim: number of statistics per frame (last input dim).
        windows: temporal scales in frames (default 2, 4, 8; ``(1,)`` = a single per-frame gate).
        hidden: hidden widths of each scale's MLP.
        learn_scale_weights: keep the learned global ``scale_logits``; set ``False`` when the caller
            always supplies ``scale_weights`` (then there is no unused parameter, which DDP
            without ``find_unused_parameters`` would reject).

    Shapes: ``forward(stats [..., T, dim]) -> gate [..., T]``; any ``T >= 1``.
    Memory: training ``O(S · numel(stats) + S · numel(gate) · max(hidden))``; inference (no
    autograd) processes whole sequences in blocks of ~``block_elements`` statistics, so only the
    output gate ``O(numel(gate))`` grows with the input.
    """

    def __init__(self, dim: int, windows: Sequence[int] = (2, 4, 8),
                 hidden: Sequence[int] = (32, 16), learn_scale_weights: bool = True) -> None:
        super().__init__()
        if dim <= 0 or len(windows) == 0:
            raise ValueError(f"MultiScaleDynamicFusionGate needs dim > 0 and >= 1 window, "
                             f"got dim={dim}, windows={windows}")
        self.dim = dim
        self.windows = tuple(int(w) for w in windows)
        self.kernels = tuple(odd_kernel(w) for w in self.windows)
        self.mlp = _StackedMLP(len(self.windows), (dim, *hidden, 1))
        if learn_scale_weights:
            self.scale_logits = nn.Parameter(torch.zeros(len(self.windows)))
        else:
            self.register_parameter("scale_logits", None)

    block_elements = 1 << 18  # inference: statistics processed per block of whole sequences

    def _scale_gates(self, flat: Tensor, mask: Tensor | None = None) -> Tensor:
        """``[M, T, dim] -> [S, M, T]`` per-scale sigmoid gates (``mask`` bool ``[M, T]``)."""
        m, t, _ = flat.shape
        pooled = torch.stack([sliding_mean(flat, k, mask) for k in self.kernels])  # [S, M, T, D]
        logits = self.mlp(pooled.reshape(self.num_scales, m * t, self.dim))
        return torch.sigmoid(logits).reshape(self.num_scales, m, t)

    @property
    def num_scales(self) -> int:
        return len(self.windows)

    def learned_scale_weights(self) -> Tensor:
        """``softmax(scale_logits)``: ``[S]``, sums to 1 (uniform if not learned)."""
        if self.scale_logits is None:
            return torch.full((self.num_scales,), 1.0 / self.num_scales,
                              device=self.mlp.weights[0].device)
        return torch.softmax(self.scale_logits, dim=0)

    def forward(self, stats: Tensor, scale_weights: Tensor | None = None, *,
                return_diversity_loss: bool = False, return_analysis: bool = False,
                mask: Tensor | None = None) -> Tensor | tuple[Any, ...]:
        """Predict the fused gate.

        Args:
            stats: ``[..., T, dim]``.
            mask: optional bool frame mask (``True`` = valid) broadcastable to ``stats.shape[:-1]``:
                the windows average valid frames only (:func:`sliding_mean`), so a padded
                sequence's valid frames get the gate they get alone.
            scale_weights: optional ``[..., S]`` (broadcastable to the leading dims of ``stats``
                plus ``S``), non-negative and summing to 1 over ``S``; replaces the learned
                global weights.
            return_diversity_loss: also return :func:`scale_diversity_loss` of the per-scale gates.
            return_analysis: also return ``{"scale_gates" [S, ..., T], "scale_weights" [..., S],
                "windows", "kernels"}``.
        Returns:
            ``gate [..., T]``; with flags, ``(gate, diversity_loss?, analysis?)`` in that order.
        """
        if stats.ndim < 2 or stats.shape[-1] != self.dim:
            raise ValueError(f"MultiScaleDynamicFusionGate expects [..., T, {self.dim}], "
                             f"got shape {tuple(stats.shape)}")
        lead, t = stats.shape[:-2], stats.shape[-2]
        if t < 1:
            raise ValueError("MultiScaleDynamicFusionGate needs at least one frame (T >= 1)")
        s = self.num_scales
        flat = stats.reshape(-1, t, self.dim)
        fmask = flat_frame_mask(mask, stats.shape[:-1])
        inference = not (torch.is_grad_enabled() and (
            stats.requires_grad or any(p.requires_grad for p in self.parameters())))
        block = max(1, self.block_elements // (t * self.dim))
        if inference and flat.shape[0] > block:
            # bounded temporaries: whole sequences in blocks (gates are per sequence)
            masks = fmask.split(block) if fmask is not None else [None] * len(flat.split(block))
            scale_gates = torch.cat([self._scale_gates(b, m) for b, m in zip(flat.split(block), masks)], dim=1)
        else:
            scale_gates = self._scale_gates(flat, fmask)
        scale_gates = scale_gates.reshape(s, *lead, t)
        if scale_weights is None:
            if self.scale_logits is None:
                raise ValueError("this gate was built with learn_scale_weights=False: pass "
                                 "scale_weights")
            w = self.learned_scale_weights().to(stats.dtype)
            gate = torch.einsum("s...t,s->...t", scale_gates, w)
            w_out = w.expand(*lead, s)
        else:
            if scale_weights.shape[-1] != s:
                raise ValueError(f"scale_weights must end in {s} scales, got "
                                 f"{tuple(scale_weights.shape)}")
            w_out = scale_weights.expand(*lead, s)
            gate = torch.einsum("s...t,...s->...t", scale_gates, w_out.to(stats.dtype))
        out: list[Any] = [gate]
        if return_diversity_loss:
            out.append(scale_diversity_loss(scale_gates, mask=None if fmask is None else fmask.reshape(*lead, t)))
        if return_analysis:
            out.append({"scale_gates": scale_gates, "scale_weights": w_out,
                        "windows": self.windows, "kernels": self.kernels})
        return out[0] if len(out) == 1 else tuple(out)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, windows={self.windows}, kernels={self.kernels}"


def _sinusoidal_codes(values: Tensor, dim: int) -> Tensor:
    """``[K] -> [K, dim]`` sin/cos codes of ``values`` at ``dim/2`` geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(64.0), half, dtype=torch.float64))
    ang = values.to(torch.float64)[:, None] * freqs[None, :]
    codes = torch.cat([ang.sin(), ang.cos()], dim=-1)
    if dim % 2:
        codes = torch.cat([codes, torch.zeros(len(values), 1, dtype=torch.float64)], dim=-1)
    return codes.float()


class FrequencyAdaptiveFusionGate(nn.Module):
    """Per-band softmax weights over temporal scales from statistics + a band embedding.

    ``features = [mean_t(stats), std_t(stats), band_embedding[k]]`` ->
    ``Linear(2·dim+E, 64)-LayerNorm-GELU-Linear(64, 32)-LayerNorm-GELU-Linear(32, S)`` -> softmax.
    The MLP is sized for 8 map statistics + a 16-d embedding by default; the statistics here are
    the time mean *and* standard deviation of whatever per-frame statistics are passed in.

    The band embedding (``[K, E]``, learned) starts as sin/cos codes of ``log2(centre_hz)`` when
    ``centres_hz`` is given (so nearby bands start similar), else of the band index; it is not a
    random buffer and it receives gradients.

    Args:
        dim: statistics per frame (last input dim).
        num_bands: K.
        num_scales: S, the number of scales the weights are over (3 for windows 2, 4, 8).
        band_embed_dim: E (default 16).
        hidden: the two hidden widths (default 64, 32).
        centres_hz: optional ``[K]`` band centre frequencies in Hz for the embedding's init.

    Shapes: ``forward(stats [B, K, *, dim]) -> weights [B, K, S]`` (every dim between K and
    ``dim`` - heads, frames - is pooled). Memory: ``O(numel(stats))`` for the pooled moments.
    """

    def __init__(self, dim: int, num_bands: int, num_scales: int = 3, band_embed_dim: int = 16,
                 hidden: Sequence[int] = (64, 32), centres_hz: Sequence[float] | None = None) -> None:
        super().__init__()
        if dim <= 0 or num_bands <= 0 or num_scales <= 0 or band_embed_dim <= 0:
            raise ValueError("FrequencyAdaptiveFusionGate: dim, num_bands, num_scales and "
                             "band_embed_dim must be positive")
        self.dim, self.num_bands, self.num_scales = dim, num_bands, num_scales
        if centres_hz is not None:
            c = torch.as_tensor(centres_hz, dtype=torch.float64)
            if c.shape != (num_bands,) or not torch.all(c > 0):
                raise ValueError(f"centres_hz must be {num_bands} positive frequencies in Hz, "
                                 f"got {tuple(c.shape)}")
            init = _sinusoidal_codes(torch.log2(c), band_embed_dim)
        else:
            init = _sinusoidal_codes(torch.arange(num_bands, dtype=torch.float64) / 4.0,
                                     band_embed_dim)
        self.band_embedding = nn.Parameter(init)
        h1, h2 = hidden
        self.net = nn.Sequential(
            nn.Linear(2 * dim + band_embed_dim, h1), nn.LayerNorm(h1), nn.GELU(),
            nn.Linear(h1, h2), nn.LayerNorm(h2), nn.GELU(),
            nn.Linear(h2, num_scales))

    def forward(self, stats: Tensor, *, return_analysis: bool = False, mask: Tensor | None = None
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """``stats [B, K, *, dim]`` -> ``weights [B, K, S]`` (softmax over S, sums to 1).

        ``mask``: optional bool (``True`` = valid) broadcastable to ``stats.shape[:-1]`` (e.g.
        ``[B, 1, T]`` for frames): the moments pool the valid entries only, so a padded sequence
        gets the weights it gets alone.
        With ``return_analysis=True`` also ``{"features": [B, K, 2·dim+E], "band_embedding": [K, E]}``.
        """
        if stats.ndim < 3 or stats.shape[1] != self.num_bands or stats.shape[-1] != self.dim:
            raise ValueError(f"FrequencyAdaptiveFusionGate expects [B, {self.num_bands}, ..., "
                             f"{self.dim}], got shape {tuple(stats.shape)}")
        b, k = stats.shape[:2]
        flat = stats.reshape(b, k, -1, self.dim)
        if mask is None:
            var, mean = torch.var_mean(flat, dim=2, correction=0)
        else:
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be a bool tensor (True = valid), got {mask.dtype}")
            m = mask.to(stats.dtype).expand(stats.shape[:-1]).reshape(b, k, -1, 1)
            count = m.sum(2)
            mean = (flat * m).sum(2) / count
            var = ((flat - mean[:, :, None]) * m).square().sum(2) / count
        emb = self.band_embedding.to(stats.dtype).expand(b, k, -1)
        # +1e-8 keeps the gradient finite where the std is 0 (T = 1, constant statistics)
        feats = torch.cat([mean, torch.sqrt(var + 1e-8), emb], dim=-1)
        weights = torch.softmax(self.net(feats), dim=-1)
        if not return_analysis:
            return weights
        return weights, {"features": feats, "band_embedding": self.band_embedding.detach()}

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_bands={self.num_bands}, num_scales={self.num_scales}"
