"""Real-valued forward passes of the package's models, for ONNX export (private).

ONNX exporters and runtimes have no complex tensors, so the exported graphs take and return the
real/imaginary spectrogram ``[B, 2, F, T]`` and compute with real tensors only. The modules here
run a model's own layers (BandSplit, the sequence blocks, the ERB-UNet) and replace only the
complex parts: the MaskDecoder's last step (its real ``[..., 3, 2]`` taps instead of a complex
view) and the 3-tap mask (complex products written out). Whole-utterance statistics are written
as explicit means over the frame axis, so a graph traced at one length stays exact at any other
(the MaskDecoder's ``layer_norm`` over ``(T, N)`` would freeze T into the graph).

:class:`RealSpectrogramModel` is the offline model; :class:`RealStreamStep` one streaming step
of a causal BSRNN with its state as explicit inputs and outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .bsdt import BSDT
from .bsrnn import BSRNN, _norm_channels_last
from .erb_adapter import ERBUNetAdapter
from .erb_unet import ERBUNet
from .mask_decoder import MaskDecoder

__all__ = ["RealSpectrogramModel", "RealStreamStep", "decoder_taps", "fir_real"]


def decoder_taps(dec: MaskDecoder, h: Tensor) -> Tensor:
    """``MaskDecoder`` on ``h [B, T, K, N]`` -> real taps ``[B, F, T, 3, 2]`` (the complex mask's
    real/imaginary parts), with the norm's statistics as explicit means (any T in a traced graph)."""
    b, t, k, n = h.shape
    perm = dec._perm
    hk = h.permute(2, 0, 1, 3).index_select(0, perm)                                   # [K, B, T, N]
    dims = (-1,) if dec.causal else (-2, -1)          # per (band, frame) or per (band, utterance)
    scale = dec.norm_weight.view(k, n).index_select(0, perm)[:, None, None, :]
    shift = dec.norm_bias.view(k, n).index_select(0, perm)[:, None, None, :]
    w1 = dec.fc1_weight.view(k, 4 * n, n).index_select(0, perm)
    b1 = dec.fc1_bias.view(k, 4 * n).index_select(0, perm)[:, None, :]
    rows = dec._fc2_rows
    w2 = nn.functional.pad(dec.fc2_weight.view(12 * dec.n_freq, 4 * n), (0, 0, 0, 1)).index_select(0, rows)
    b2 = nn.functional.pad(dec.fc2_bias, (0, 1)).index_select(0, rows)
    kgs = [kg for kg, _ in dec._groups]
    nrows = [kg * 12 * cap for kg, cap in dec._groups]
    parts = zip(dec._groups, hk.split(kgs), scale.split(kgs), shift.split(kgs), w1.split(kgs),
                b1.split(kgs), w2.split(nrows), b2.split(nrows))
    outs = []
    for (kg, cap), hg, sg, tg, w1g, b1g, w2g, b2g in parts:   # <= 4 width groups, not bands
        if dec.causal:   # per frame: one LayerNormalization over the N features (a constant shape)
            hn = nn.functional.layer_norm(hg, (dec.num_channel,), eps=dec.eps) * sg + tg
        else:            # per utterance: explicit means over (T, N), exact for any T
            cen = hg - hg.mean(dims, keepdim=True)
            hn = cen * torch.rsqrt(cen.square().mean(dims, keepdim=True) + dec.eps) * sg + tg
        y = torch.tanh(torch.baddbmm(b1g, hn.reshape(kg, b * t, n), w1g.transpose(1, 2)))
        z = torch.baddbmm(b2g.view(kg, 1, 12 * cap), y, w2g.view(kg, 12 * cap, 4 * n).transpose(1, 2))
        g = nn.functional.glu(z, dim=-1)                                              # [Kg, BT, 6 cap]
        outs.append(g.reshape(kg, b * t, cap, 6).transpose(0, 1).reshape(b * t, kg * cap, 6))
    g = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
    g = g.index_select(1, dec._out_idx).reshape(b, t, dec.n_freq, 3, 2)
    return g.transpose(1, 2)                                                          # [B, F, T, 3, 2]


def fir_real(taps: Tensor, x_ext: Tensor) -> Tensor:
    """``Y(t) = Σ_j M_j(t) X(t - 1 + j)`` in real arithmetic.

    ``taps`` ``[B, F, T, 3, 2]``; ``x_ext`` ``[B, 2, F, T + 2]``: the input with one frame before
    and one after (zeros at the ends of an utterance). Returns ``[B, 2, F, T]``.
    """
    xs = torch.stack([x_ext[..., :-2], x_ext[..., 1:-1], x_ext[..., 2:]], dim=-1)     # [B, 2, F, T, 3]
    xr, xi = xs[:, 0], xs[:, 1]
    mr, mi = taps[..., 0], taps[..., 1]
    return torch.stack([(mr * xr - mi * xi).sum(-1), (mr * xi + mi * xr).sum(-1)], dim=1)


def _bsrnn_norm(model: BSRNN, x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """BSRNN's block norm of ``[B, T, K, N]``; the per-frame form with the constant shape (K, N)."""
    if not model.causal:
        return _norm_channels_last(x, norm, False)
    shape = (len(model.band_widths), model.num_channel)
    return nn.functional.layer_norm(x, shape, norm.weight.expand(shape), norm.bias.expand(shape), norm.eps)


def bsrnn_time_block(model: BSRNN, z: Tensor, i: int, state: tuple[Tensor, Tensor] | None = None
                     ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """BSRNN's time block ``i`` (one LSTM call over all frames), from and to an LSTM state."""
    b, t, k, n = z.shape
    out = _bsrnn_norm(model, z, getattr(model, f"norm_t{i}")).transpose(1, 2).reshape(b * k, t, n)
    y, state = getattr(model, f"lstm_t{i}")(out, state)
    return z + getattr(model, f"fc_t{i}")(y).view(b, k, t, n).transpose(1, 2), state


def bsrnn_band_block(model: BSRNN, z: Tensor, i: int) -> Tensor:
    """BSRNN's band block ``i`` (the band BLSTM over the K bands of every frame)."""
    b, t, k, n = z.shape
    out = _bsrnn_norm(model, z, getattr(model, f"norm_k{i}")).reshape(b * t, k, n)
    return z + getattr(model, f"fc_k{i}")(getattr(model, f"lstm_k{i}")(out)[0]).view(b, t, k, n)


def _core(model: nn.Module, z: Tensor) -> Tensor:
    """The sequence blocks of BSRNN / BSDT on band features ``[B, T, K, N]``."""
    if isinstance(model, BSRNN):
        for kind, i in model._order:
            z = bsrnn_time_block(model, z, i)[0] if kind == "t" else bsrnn_band_block(model, z, i)
        return z
    z = z.transpose(1, 2)
    for blk in model.blocks:
        z, _ = blk(z)
    return z.transpose(1, 2)


def _net_of(model: nn.Module) -> nn.Module:
    return model.net if isinstance(model, ERBUNetAdapter) else model


class RealSpectrogramModel(nn.Module):
    """A model of this package on real/imaginary spectrograms: ``[B, 2, F, T]`` -> ``[B, 2, F, T]``.

    For :class:`~bandsplit.BSRNN` and :class:`~bandsplit.BSDT` (F = 257) the output equals
    ``view_as_real(model(X))`` of the complex input ``X = x[:, 0] + i x[:, 1]``, computed without
    complex tensors. :class:`~bandsplit.ERBUNet` and :class:`~bandsplit.ERBUNet257` already work on
    ``[B, 2, F, T]`` at their own resolution and run unchanged; for an
    :class:`~bandsplit.ERBUNetAdapter` this is its inner net at the net's own STFT (601 bins,
    n_fft 1200, hop 100 for the default): the adapter's waveform round trip (STFTs) stays outside.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        net = _net_of(model)
        if not isinstance(net, (BSRNN, BSDT, ERBUNet)):
            raise TypeError(f"RealSpectrogramModel takes a BSRNN, BSDT, ERBUNet, ERBUNet257 or ERBUNetAdapter, "
                            f"got {type(model).__name__}")
        self.model = net

    def forward(self, x: Tensor) -> Tensor:
        net = self.model
        if isinstance(net, ERBUNet):
            return ERBUNet.forward(net, x)  # ERBUNet257's own forward takes complex input
        z = net.band_split(x.permute(0, 2, 3, 1))                                   # [B, T, K, N]
        taps = decoder_taps(net.mask_decoder, _core(net, z))
        return fir_real(taps, nn.functional.pad(x, (1, 1)))


class RealStreamStep(nn.Module):
    """One streaming step of a causal :class:`~bandsplit.BSRNN` with its state as tensors.

    ``forward(frames, h, c, x_prev, taps_prev)``:

    * ``frames`` ``[B, 2, F, n]``: the next ``n >= 1`` input frames (real/imaginary);
    * ``h``, ``c`` ``[L, B·K, 2N]``: the time LSTMs' states (zeros at the start);
    * ``x_prev`` ``[B, 2, F, 2]``: the two input frames before ``frames`` (zeros at the start);
    * ``taps_prev`` ``[B, F, 1, 3, 2]``: the mask of the frame before ``frames`` (zeros at the start).

    Returns ``(y, h, c, x_prev, taps_prev)``: ``y`` ``[B, 2, F, n]`` the output frames ``t - 1 ..
    t + n - 2`` (``t``: the first new frame; at the start the first of them is frame -1, zero, which
    the caller drops), and the state after the step.
    """

    def __init__(self, model: BSRNN) -> None:
        super().__init__()
        if not isinstance(model, BSRNN) or not model.causal:
            raise ValueError("RealStreamStep needs a causal BSRNN (BSRNN(..., causal=True))")
        self.model = model

    def forward(self, frames: Tensor, h: Tensor, c: Tensor, x_prev: Tensor, taps_prev: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        m = self.model
        z = m.band_split(frames.permute(0, 2, 3, 1))                               # [B, n, K, N]
        hs, cs = [], []
        for kind, i in m._order:
            if kind == "k":
                z = bsrnn_band_block(m, z, i)
                continue
            z, (hi, ci) = bsrnn_time_block(m, z, i, (h[i - 1:i], c[i - 1:i]))
            hs.append(hi)
            cs.append(ci)
        taps = torch.cat([taps_prev, decoder_taps(m.mask_decoder, z)], dim=2)      # frames t-1 .. t+n-1
        x_ext = torch.cat([x_prev, frames], dim=-1)                                 # frames t-2 .. t+n-1
        y = fir_real(taps[:, :, :-1], x_ext)
        return y, torch.cat(hs), torch.cat(cs), x_ext[..., -2:], taps[:, :, -1:]
