"""Run a network built for another STFT on BSRNN's complex ``[B, 257, T]`` input, exactly.

Interpolating 257 bins bilinearly to 601 and back would be wrong twice: the two
STFTs have different bin spacings (31.25 Hz vs 13.33 Hz) *and* different hops (128 vs 100
samples), so interpolating along frequency at fixed frame index mixes unrelated bins, misaligns
time, and destroys phase. The exact conversion goes through the waveform:

1. inverse the 257-bin frames (n_fft 512, hop 128) by windowed overlap-add over their *whole*
   support (the centred STFT's reflect padding included): ``z``, ``512 + 128 (T - 1)`` samples;
2. STFT ``z`` at the net's resolution (``net.n_fft``, ``net.hop``), run the net on real/imag
   stacked ``[B, 2, F_net, T_net]``, inverse STFT: waveform ``y`` of the same length;
3. return ``X + frame(y - z)``: the input plus what the net changed, framed again at 512/128
   without padding (exactly T frames, aligned with the input).

Step 3's residual form makes an identity net return its input exactly (to float rounding), for
any spectrogram. It also lets step 1 stay robust: the outermost samples of the support are seen
through a window that is nearly zero, so dividing by the overlap-added window^2 there would
amplify rounding noise (or the inconsistency of a spectrogram that is no STFT of any signal)
thousands of times before the net sees it; below ``edge_floor`` times the steady-state envelope
the division is by the floor instead (those samples fade out). For the STFT of a waveform the part
of ``X`` the net does not see this way (passed through unchanged) lies in the first and last frames
only, with ~1e-5 of their energy (~3e-3 in amplitude) at the default floor 1e-3 (measured on noise
and tones; floor 1e-2 gives ~2e-4 of the energy).
All steps are differentiable.

Padded batches (``forward(spec, lengths=...)``, the frames of each item at the I/O grid): step 1
overlap-adds each item's valid frames only, divided by its own frames' envelope, so item ``b``'s
waveform ``z`` is its own ``512 + 128 (T_b − 1)`` samples followed by exact zeros; step 2 frames
each item with the reflect padding at its own end (one gather) and runs the net with its own frame
count at the net's grid, ``len(z_b) // net.hop + 1``, and inverts with its own frames' envelope;
step 3 frames each item inside its own support. Nothing of the padded tail reaches an item's
valid frames, and its output frames past ``T_b`` are zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from se_data import resample_hint

from ._complex import as_complex
from ._masking import frame_mask
from ._ragged import ragged_overlap_add, reflect_index
from .analysis import AnalysisMode
from .stft import SampleRateMismatchError, SpectrogramTransform


def _frame_support_inverse(spec: Tensor, n_fft: int, hop: int, window: Tensor, floor: float) -> Tensor:
    """Complex ``[B, n_fft//2+1, T]`` -> waveform ``[B, n_fft + hop (T - 1)]`` (un-centred frames).

    Least-squares inverse of ``frame(x)[t] = window * x[hop t : hop t + n_fft]``: overlap-add of
    ``window * irfft(frame)`` divided by the overlap-added ``window^2``. Samples whose envelope is
    below ``floor`` (only the outermost samples of the support, which the window nearly zeroes)
    are divided by ``floor`` instead, so they fade out rather than amplify noise.
    """
    b, _, t = spec.shape
    length = n_fft + hop * (t - 1)
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None]  # [B, n_fft, T]
    ola = F.fold(frames, output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop))
    env = F.fold((window.square()[:, None]).expand(n_fft, t)[None], output_size=(1, length),
                 kernel_size=(1, n_fft), stride=(1, hop))
    return (ola / env.clamp_min(floor)).reshape(b, length)


class ERBUNetAdapter(nn.Module):
    """Wrap a net working on its own STFT so it maps complex ``[B, 257, T]`` to complex ``[B, 257, T]``.

    Args:
        net: module mapping real/imag stacked ``[B, 2, net.n_fft//2+1, T']`` to the same shape, with
            attributes ``n_fft``, ``hop`` and ``sample_rate`` (e.g. :class:`bandsplit.ERBUNet`).
        io_n_fft, io_hop: the STFT of the adapter's input/output (BSRNN's 512/128), periodic Hann,
            centred frames (``bandsplit.stft.SpectrogramTransform``).
        sample_rate: sample rate (Hz) of the I/O spectrograms; must equal ``net.sample_rate``
            (converting rates is not this module's job: resample the audio instead).
        edge_floor: floor of the window^2 envelope, relative to its steady-state value
            ``sum(w^2) / hop``, used when inverting the I/O frames (see the module docstring).

    ``forward(spec)``: complex ``[B, io_n_fft//2+1, T]`` (any T >= 1) -> complex, same shape and
    dtype. Cost: two STFTs and two inverse STFTs besides the net; memory linear in T.
    ``forward(spec, return_analysis=True)`` (or ``"full"``, passed on) returns ``(out, analysis)``
    with the net's analysis (its frames are the net's own, ``net.hop`` apart), for nets that
    support it (``supports_analysis``).
    """

    def __init__(self, net: nn.Module, io_n_fft: int = 512, io_hop: int = 128, sample_rate: int = 16000,
                 edge_floor: float = 1e-3) -> None:
        super().__init__()
        for attr in ("n_fft", "hop", "sample_rate"):
            if not hasattr(net, attr):
                raise TypeError(f"ERBUNetAdapter needs a net with attribute '{attr}' (its STFT); "
                                f"{type(net).__name__} has none")
        if int(net.sample_rate) != int(sample_rate):
            raise SampleRateMismatchError(
                f"the net works at {net.sample_rate} Hz but the adapter's spectrograms are at "
                f"{sample_rate} Hz; build both for the same rate (ERBUNetAdapter(net, "
                f"sample_rate={net.sample_rate})) and bring the audio to it, never the spectrogram. "
                f"Fix for the audio: {resample_hint(int(net.sample_rate))}")
        if io_hop > io_n_fft:
            raise ValueError(f"io_hop ({io_hop}) > io_n_fft ({io_n_fft}) leaves gaps between frames")
        self.net = net
        self.io = SpectrogramTransform(io_n_fft, io_hop, sample_rate)
        self.net_stft = SpectrogramTransform(int(net.n_fft), int(net.hop), int(sample_rate))
        self.sample_rate = int(sample_rate)
        if not 0.0 < edge_floor < 1.0:
            raise ValueError(f"edge_floor is a fraction of the steady-state window envelope, in (0, 1); "
                             f"got {edge_floor}")
        self.edge_floor = float(edge_floor)
        self._floor = edge_floor * float(self.io.window.double().square().sum()) / io_hop

    @property
    def supports_analysis(self) -> bool:
        """Whether ``forward(..., return_analysis=True)`` works (the net's own flag)."""
        return bool(getattr(self.net, "supports_analysis", False))

    @property
    def supports_lengths(self) -> bool:
        """Whether ``forward(spec, lengths=...)`` runs a padded batch (the net's own flag: it must
        take ``lengths`` at its grid, as :class:`bandsplit.ERBUNet` does)."""
        return bool(getattr(self.net, "supports_lengths", False))

    @property
    def stft(self) -> SpectrogramTransform:
        """The STFT of the adapter's input and output (what :func:`bandsplit.enhance` uses)."""
        return self.io

    @property
    def num_freqs(self) -> int:
        """Bins of the I/O spectrogram (``io_n_fft // 2 + 1``)."""
        return self.io.num_freqs

    @property
    def num_bins(self) -> int:
        """Alias of :attr:`num_freqs`."""
        return self.io.num_freqs

    def forward(self, spec: Tensor, return_analysis: AnalysisMode = False, *,
                lengths: Tensor | Sequence[int] | None = None) -> Tensor | tuple[Tensor, dict]:
        """Complex ``[B, F_io, T]`` -> complex ``[B, F_io, T]`` through ``net`` at its own resolution.

        ``lengths``: optional valid frames per item (``[B]``, each in ``1 .. T``) of a batch padded
        to ``T`` frames: item ``b`` gets, in its first ``lengths[b]`` frames, what it gets alone
        (see the module docstring), and zeros after them. Needs ``supports_lengths``."""
        if return_analysis and not self.supports_analysis:
            raise ValueError(f"{type(self.net).__name__} returns no analysis (no supports_analysis)")
        if not spec.is_complex() or spec.dim() != 3 or spec.shape[1] != self.io.num_freqs or spec.shape[2] < 1:
            raise ValueError(f"ERBUNetAdapter expects a complex spectrogram [B, {self.io.num_freqs}, T] "
                             f"(n_fft {self.io.n_fft}, hop {self.io.hop_length}, {self.sample_rate} Hz), got "
                             f"{'complex' if spec.is_complex() else spec.dtype} {list(spec.shape)}")
        valid = frame_mask(lengths, spec.shape[0], spec.shape[2], spec.device)
        if valid is not None:
            if not self.supports_lengths:
                raise TypeError(f"{type(self.net).__name__} takes no lengths=..., so the adapter cannot run a "
                                f"padded batch: give the utterances one at a time")
            return self._forward_padded(spec, valid, return_analysis)
        n_fft, hop, t = self.io.n_fft, self.io.hop_length, spec.shape[2]
        window = self.io.window.to(spec.real.dtype)
        z_in = _frame_support_inverse(spec, n_fft, hop, window, self._floor)  # [B, L]
        length = z_in.shape[1]
        z = z_in
        # The net's centred STFT reflect-pads n_fft_net // 2 samples: zero-pad very short inputs first.
        short = max(0, self.net_stft.n_fft // 2 + 1 - length)
        if short:
            z = F.pad(z, (short // 2, short - short // 2))
        spec_net = self.net_stft.stft(z)  # [B, F_net, T_net]
        net_in = torch.view_as_real(spec_net).permute(0, 3, 1, 2)
        out_ri, analysis = (self.net(net_in, return_analysis=return_analysis) if return_analysis
                            else (self.net(net_in), None))
        if out_ri.shape != (spec_net.shape[0], 2, *spec_net.shape[1:]):
            raise ValueError(f"the net returned {list(out_ri.shape)}, expected real/imag stacked "
                             f"{[spec_net.shape[0], 2, *spec_net.shape[1:]]}")
        out_net = as_complex(out_ri.permute(0, 2, 3, 1).contiguous())
        y = self.net_stft.istft(out_net, length=z.shape[1])
        if short:
            y = y[:, short // 2: short // 2 + length]
        delta = torch.stft(y - z_in, n_fft, hop, window=window, center=False, onesided=True,
                           return_complex=True)
        assert delta.shape[-1] == t, (delta.shape, t)
        return (spec + delta, analysis) if return_analysis else spec + delta

    def _forward_padded(self, spec: Tensor, valid: Tensor, return_analysis: AnalysisMode
                        ) -> Tensor | tuple[Tensor, dict]:
        """:meth:`forward` of a padded batch, ``valid`` bool ``[B, T]`` (a prefix per item)."""
        n_fft, hop = self.io.n_fft, self.io.hop_length
        nn_fft, nhop = self.net_stft.n_fft, self.net_stft.hop_length
        rdt, dev = spec.real.dtype, spec.device
        vf = valid.to(rdt)
        # 1. each item's own waveform support (zeros past it): [B, L], lengths [B]
        z_in = ragged_overlap_add(spec, vf, n_fft, hop, self.io.window.to(dev, rdt), self._floor)
        length = n_fft + hop * (valid.sum(1) - 1)
        # 2. per item: zero-pad a short one (as forward does), reflect at its own ends, frame
        half = nn_fft // 2
        short = (half + 1 - length).clamp_min(0)
        left, zlen = short // 2, length + short
        frames_net = zlen // nhop + 1
        t_net = int(frames_net.max())
        q = torch.arange(-half, nn_fft - half + nhop * (t_net - 1), device=dev)[None, :]
        src = reflect_index(q, zlen[:, None]) - left[:, None]               # index into z_in
        keep = (src >= 0) & (src < length[:, None]) & (q < (zlen + half)[:, None])
        wave = z_in.gather(1, src.clamp(0, z_in.shape[1] - 1)) * keep
        net_window = self.net_stft.window.to(dev, rdt)
        spec_net = torch.stft(wave, nn_fft, nhop, window=net_window, center=False, onesided=True,
                              return_complex=True)                               # [B, F_net, T_net]
        net_in = torch.view_as_real(spec_net).permute(0, 3, 1, 2)
        out = self.net(net_in, return_analysis=return_analysis, lengths=frames_net) if return_analysis \
            else self.net(net_in, lengths=frames_net)
        out_ri, analysis = out if return_analysis else (out, None)
        if out_ri.shape != net_in.shape:
            raise ValueError(f"the net returned {list(out_ri.shape)}, expected real/imag stacked {list(net_in.shape)}")
        valid_net = (torch.arange(t_net, device=dev)[None, :] < frames_net[:, None]).to(rdt)
        y_net = ragged_overlap_add(as_complex(out_ri.permute(0, 2, 3, 1).contiguous()), valid_net, nn_fft, nhop,
                                   net_window, 1e-11)                            # centred: sample j at j + half
        # 3. back to each item's own support, framed inside it
        j = torch.arange(z_in.shape[1], device=dev)[None, :]
        pos = j + half + left[:, None]
        inside = (j < length[:, None]) & (pos < y_net.shape[1])
        y = y_net.gather(1, pos.clamp(max=y_net.shape[1] - 1)) * inside
        delta = torch.stft(y - z_in, n_fft, hop, window=self.io.window.to(dev, rdt), center=False, onesided=True,
                           return_complex=True)
        res = torch.where(valid[:, None, :], spec + delta, torch.zeros((), dtype=spec.dtype, device=dev))
        return (res, analysis) if return_analysis else res
