"""Adapter for a pretrained audio encoder (BEATs / CLAP style) loaded from a LOCAL file.

Nothing here downloads anything. The pieces:

* :class:`AudioEncoder` -- the protocol an encoder must follow: ``sample_rate`` (Hz),
  ``embed_dim``, ``config`` (plain data that rebuilds the architecture) and
  ``encoder(wave [B, L]) -> tokens [B, L', embed_dim]``.
* :class:`TransformerAudioEncoder` -- a concrete encoder in the BEATs layout (log-mel
  filterbank of ``wave * 2**15``, normalised ``(fbank - mean) / (2 std)``, 16 x 16 patch
  embedding, pre-norm transformer encoder). It has BEATs' *shape*, not BEATs' exact modules:
  real BEATs / CLAP weights need their own implementation registered with
  :func:`register_audio_encoder`.
* :func:`save_audio_encoder` / :func:`load_audio_encoder` -- a checkpoint file holding
  ``{"cfg": {"arch": NAME, **config}, "model": state_dict}`` (BEATs' own checkpoints keep
  ``cfg`` and ``model`` the same way), read with ``torch.load(weights_only=True)`` so a
  file from someone else never runs code; the state dict must match exactly.
* :class:`PretrainedNoiseEncoder` -- wraps any :class:`AudioEncoder` as a noise encoder for
  :class:`~sgmse_cfg.NoiseCondScoreModel`: resamples the 16 kHz waveform to the encoder's
  rate (``se_data``'s torch-only windowed-sinc resampler), runs the encoder (frozen by default: no
  gradients, always in eval mode), pools its tokens to a fixed ``num_tokens`` over time and
  projects them to ``dim`` (the only trained part when frozen).

Everything is plain PyTorch (no torchaudio).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn as nn
import torch.nn.functional as F
from se_data import sinc_resample
from torch import Tensor

from ._registry import new_registry, register
from .beats_encoder import BEATsEncoder
from .clap_encoder import ClapAudioEncoder
from .noise_encoders import NoiseEncoding
from .pann_encoder import Cnn14Encoder

__all__ = [
    "AUDIO_ENCODER_ARCHS",
    "AudioEncoder",
    "PretrainedNoiseEncoder",
    "TransformerAudioEncoder",
    "load_audio_encoder",
    "log_mel_filterbank",
    "register_audio_encoder",
    "resample_sinc",
    "save_audio_encoder",
]


@runtime_checkable
class AudioEncoder(Protocol):
    """What :class:`PretrainedNoiseEncoder` needs from a pretrained audio encoder."""

    sample_rate: int  # Hz the encoder expects
    embed_dim: int  # width D of its output tokens
    config: dict[str, Any]  # plain data; ``cls(**config)`` rebuilds the architecture

    def __call__(self, wave: Tensor) -> Tensor:  # [B, L] at sample_rate -> [B, L', D]
        ...


# ---------------------------------------------------------------------------- DSP helpers
def resample_sinc(wave: Tensor, orig_sr: int, new_sr: int, *, zero_crossings: int = 6,
                  rolloff: float = 0.99) -> Tensor:
    """Band-limited resampling ``[..., L]`` at ``orig_sr`` Hz -> ``[..., ceil(L new/orig)]``.

    Hann-windowed sinc with ``zero_crossings`` on each side and the cut-off at ``rolloff``
    times the lower Nyquist frequency: :func:`se_data.sinc_resample` (torchaudio's
    ``sinc_interp_hann``, equal to it), kept under this name for earlier callers.
    """
    if not wave.is_floating_point():
        wave = wave.float()
    return sinc_resample(wave, orig_sr, new_sr, lowpass_filter_width=zero_crossings, rolloff=rolloff)


def log_mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 20.0,
                       f_max: float | None = None) -> Tensor:
    """HTK-mel triangular filters ``[n_fft // 2 + 1, n_mels]`` (peak 1)."""
    f_max = sample_rate / 2 if f_max is None else f_max

    def mel(f: Tensor) -> Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    m_pts = torch.linspace(float(mel(torch.tensor(f_min))), float(mel(torch.tensor(f_max))),
                           n_mels + 2, dtype=torch.float64)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    lo, ce, hi = f_pts[:-2], f_pts[1:-1], f_pts[2:]
    up = (freqs[:, None] - lo) / (ce - lo)
    down = (hi - freqs[:, None]) / (hi - ce)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


def _sinusoidal(n: int, dim: int, device: torch.device) -> Tensor:
    """Fixed (parameter-free) sinusoidal position code ``[n, dim]``."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(dim // 2, device=device, dtype=torch.float32)
    ang = pos / (10000.0 ** (2 * i / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang[:, : dim // 2])
    return pe


# ---------------------------------------------------------------------------- the encoder
class TransformerAudioEncoder(nn.Module):
    """Patch-transformer audio encoder in the BEATs layout (random weights unless loaded).

    ``wave [B, L]`` at ``sample_rate`` -> ``tokens [B, (frames/patch) * (n_mels/patch),
    embed_dim]`` in time-major order. Front end: ``wave * 2**15``, 25 ms / 10 ms Hann STFT,
    ``n_mels`` HTK-mel power filterbank, ``log(. + 1e-6)``, ``(fbank - fbank_mean) /
    (2 fbank_std)`` (BEATs' constants by default), frames zero-padded to a multiple of
    ``patch``. Then ``Conv2d(1, D, patch, stride=patch)``, LayerNorm, a fixed sinusoidal
    position code, ``depth`` pre-norm transformer layers and a final LayerNorm.
    """

    arch = "transformer"

    def __init__(self, sample_rate: int = 16000, n_mels: int = 128, patch: int = 16,
                 embed_dim: int = 768, depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0,
                 fbank_mean: float = 15.41663, fbank_std: float = 6.55582) -> None:
        super().__init__()
        if n_mels % patch:
            raise ValueError(f"n_mels={n_mels} must be a multiple of patch={patch}")
        self.config: dict[str, Any] = dict(
            sample_rate=sample_rate, n_mels=n_mels, patch=patch, embed_dim=embed_dim, depth=depth,
            heads=heads, mlp_ratio=mlp_ratio, fbank_mean=fbank_mean, fbank_std=fbank_std)
        self.sample_rate = int(sample_rate)
        self.embed_dim = int(embed_dim)
        self.patch = int(patch)
        self.win = int(round(0.025 * sample_rate))
        self.hop = int(round(0.010 * sample_rate))
        self.n_fft = 1 << (self.win - 1).bit_length()
        self.register_buffer("mel_fb", log_mel_filterbank(self.n_fft, n_mels, sample_rate),
                             persistent=False)
        self.patch_embed = nn.Conv2d(1, embed_dim, patch, stride=patch)
        self.norm_in = nn.LayerNorm(embed_dim)
        layer = nn.TransformerEncoderLayer(embed_dim, heads, int(embed_dim * mlp_ratio),
                                           dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(embed_dim)

    def fbank(self, wave: Tensor) -> Tensor:
        """``[B, L]`` -> normalised log-mel ``[B, frames, n_mels]``."""
        x = wave.float() * 32768.0
        win = torch.hann_window(self.win, periodic=True, device=x.device)
        spec = torch.stft(x, self.n_fft, self.hop, self.win, window=win, center=True,
                          return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2  # [B, F, frames]
        mel = torch.log(torch.einsum("bft,fm->btm", power, self.mel_fb) + 1e-6)
        return (mel - self.config["fbank_mean"]) / (2.0 * self.config["fbank_std"])

    def forward(self, wave: Tensor) -> Tensor:
        if wave.ndim != 2:
            raise ValueError(f"TransformerAudioEncoder takes waveforms [B, L], got {tuple(wave.shape)}")
        fb = self.fbank(wave)
        pad = (-fb.shape[1]) % self.patch
        fb = F.pad(fb, (0, 0, 0, pad))
        h = self.patch_embed(fb[:, None])  # [B, D, T', M']
        tokens = h.flatten(2).transpose(1, 2)  # time-major: index = t * M' + m
        tokens = self.norm_in(tokens)
        tokens = tokens + _sinusoidal(tokens.shape[1], self.embed_dim, tokens.device).to(tokens.dtype)
        return self.norm_out(self.layers(tokens))


#: architectures :func:`load_audio_encoder` can build, by the ``cfg["arch"]`` name (a
#: read-only view; add with :func:`register_audio_encoder`)
_AUDIO_ENCODER_ARCHS, AUDIO_ENCODER_ARCHS = new_registry({
    "transformer": TransformerAudioEncoder, "beats": BEATsEncoder, "cnn14": Cnn14Encoder, "clap": ClapAudioEncoder})


def register_audio_encoder(name: str, cls: type[nn.Module]) -> type[nn.Module]:
    """Make ``cls`` (an :class:`AudioEncoder` module built by ``cls(**config)``) loadable
    from checkpoint files whose ``cfg["arch"]`` is ``name``. Returns ``cls``."""
    return register(_AUDIO_ENCODER_ARCHS, name, cls, kind="audio encoder", function="register_audio_encoder")


def _build(cfg: dict[str, Any], where: str) -> nn.Module:
    cfg = dict(cfg)
    arch = cfg.pop("arch", "transformer")
    if arch not in AUDIO_ENCODER_ARCHS:
        raise ValueError(f"{where}: unknown audio-encoder architecture {arch!r}; known: "
                         f"{sorted(AUDIO_ENCODER_ARCHS)} (register others with register_audio_encoder)")
    try:
        return AUDIO_ENCODER_ARCHS[arch](**cfg)
    except TypeError as e:
        raise ValueError(f"{where}: cfg does not fit {AUDIO_ENCODER_ARCHS[arch].__name__}: {e}") from e


def save_audio_encoder(encoder: nn.Module, path: str | os.PathLike) -> None:
    """Write ``{"cfg": {"arch": ..., **encoder.config}, "model": state_dict}`` to ``path``."""
    arch = getattr(encoder, "arch", None)
    if arch is None or not hasattr(encoder, "config"):
        raise ValueError("the encoder needs `arch` and `config` attributes to be saved")
    torch.save({"cfg": {"arch": arch, **encoder.config}, "model": encoder.state_dict()}, path)


def load_audio_encoder(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                       arch: str = "auto") -> nn.Module:
    """Build an encoder from a local checkpoint file; nothing is downloaded.

    Two kinds of file: this package's own ``{"cfg": {"arch": NAME, **config}, "model":
    state_dict}`` (:func:`save_audio_encoder`; NAME registered with
    :func:`register_audio_encoder`), or a published checkpoint of BEATs, PANNs CNN14 or
    LAION-CLAP as downloaded (:func:`~sgmse_cfg.load_pretrained_encoder`; ``arch`` ``"beats"``,
    ``"cnn14"``, ``"clap"`` or ``"auto"`` to detect it from the key names). Read with
    ``torch.load(weights_only=True)``; the state dict must match the architecture exactly
    (missing, unexpected or differently shaped tensors are an error naming the file).
    """
    from .encoder_checkpoints import PRETRAINED_ENCODER_ARCHS, load_pretrained_encoder, read_checkpoint

    p = Path(path)
    ck = read_checkpoint(p, map_location)
    own = isinstance(ck, dict) and isinstance(ck.get("cfg"), dict) and "model" in ck and "arch" in ck["cfg"]
    if not own or (arch != "auto" and ck["cfg"]["arch"] != arch):
        if arch != "auto" and arch not in PRETRAINED_ENCODER_ARCHS and arch not in AUDIO_ENCODER_ARCHS:
            raise ValueError(f"unknown audio-encoder architecture {arch!r}; known: "
                             f"{sorted(set(PRETRAINED_ENCODER_ARCHS) | set(AUDIO_ENCODER_ARCHS))}")
        if own and arch != "auto":
            raise ValueError(f"{p} holds a {ck['cfg']['arch']!r} encoder, not {arch!r}")
        return load_pretrained_encoder(p, arch, map_location=map_location)
    enc = _build(ck["cfg"], str(p))
    missing, unexpected = enc.load_state_dict(ck["model"], strict=False)
    if missing or unexpected:
        raise ValueError(f"{p}: state dict does not match {type(enc).__name__}{ck['cfg']}: "
                         f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    return enc


# ---------------------------------------------------------------------------- the adapter
class PretrainedNoiseEncoder(nn.Module):
    """A pretrained :class:`AudioEncoder` used as a noise encoder.

    ``wave [B, L]`` at ``input_sample_rate`` (the model's rate, 16 kHz) -> resampled to the
    encoder's rate -> encoder tokens ``[B, L', D_enc]`` -> adaptive average pooling over the
    token axis to ``num_tokens`` -> ``Linear(D_enc, dim)`` -> :class:`NoiseEncoding`
    (``tokens [B, num_tokens, dim]``, ``pooled`` = their mean).

    Args:
        encoder: the pretrained module (e.g. from :func:`load_audio_encoder`).
        dim: output width.
        num_tokens: fixed number of output tokens (cross-attention needs a fixed ``L`` for
            the batched null condition).
        freeze: no gradients into the encoder and keep it in eval mode (the
            default); ``False`` fine-tunes it jointly (NASE fine-tunes BEATs).
        input_sample_rate: rate (Hz) of the waveforms this adapter is given.
    """

    input_kind = "wave"

    def __init__(self, encoder: nn.Module, dim: int = 512, num_tokens: int = 16, freeze: bool = True,
                 input_sample_rate: int = 16000) -> None:
        super().__init__()
        for attr in ("sample_rate", "embed_dim", "config"):
            if not hasattr(encoder, attr):
                raise TypeError(f"{type(encoder).__name__} is not an AudioEncoder: it has no {attr!r}")
        self.encoder = encoder
        self.freeze = bool(freeze)
        self.dim = int(dim)
        self.num_tokens = int(num_tokens)
        self.input_sample_rate = int(input_sample_rate)
        self.proj = nn.Linear(int(encoder.embed_dim), dim)
        self.config: dict[str, Any] = dict(
            encoder={"arch": getattr(encoder, "arch", type(encoder).__name__), **encoder.config},
            dim=dim, num_tokens=num_tokens, freeze=freeze, input_sample_rate=input_sample_rate)
        if self.freeze:
            encoder.requires_grad_(False)
            encoder.eval()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PretrainedNoiseEncoder:
        """Rebuild the architecture (random encoder weights; a model state dict fills them)."""
        cfg = dict(config)
        enc = _build(cfg.pop("encoder"), "PretrainedNoiseEncoder config")
        return cls(enc, **cfg)

    def train(self, mode: bool = True) -> PretrainedNoiseEncoder:
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    def forward(self, wave: Tensor) -> NoiseEncoding:
        if wave.ndim == 3 and wave.shape[1] == 1:
            wave = wave[:, 0]
        if wave.ndim != 2:
            raise ValueError(f"PretrainedNoiseEncoder takes waveforms [B, L], got {tuple(wave.shape)}")
        x = resample_sinc(wave.float(), self.input_sample_rate, int(self.encoder.sample_rate))
        if self.freeze:
            with torch.no_grad():
                feats = self.encoder(x)
        else:
            feats = self.encoder(x)
        pooled_t = F.adaptive_avg_pool1d(feats.float().transpose(1, 2), self.num_tokens)  # [B, D, L]
        tokens = self.proj(pooled_t.transpose(1, 2))
        return NoiseEncoding(pooled=tokens.mean(dim=1), tokens=tokens)
