"""The audio side of LAION-CLAP (Wu, Chen et al. 2023) with the published checkpoint's names.

:class:`ClapAudioEncoder` holds ``audio_branch`` (HTS-AT, a Swin transformer on a folded
log-mel image, or PANNs CNN14) and ``audio_projection`` (``Linear``, ReLU, ``Linear`` to the
joint 512-d space) under exactly the keys and shapes of ``laion_clap``'s ``CLAP`` model, so the
audio part of ``630k-audioset-best.pt`` (HTSAT-tiny) or of a PANN-14 CLAP checkpoint loads into it
through :func:`sgmse_cfg.load_pretrained_encoder` (the text branch and the other heads in the
file are left out; nothing is downloaded).

Input handling follows ``CLAP_Module.get_audio_embedding_from_data(x, use_tensor=True)`` for a
non-fusion model: a waveform at 48 kHz no longer than ``clip_samples`` (10 s) is repeated
``int(clip_samples / L)`` times and zero-padded to 10 s. A longer one is cut into consecutive
10 s chunks (the last repeat-padded), each a token; CLAP itself would take one random 10 s crop.
CLAP's ``use_tensor=False`` path also rounds the waveform to 16 bits first; this module does not.

``forward(wave [B, L])`` returns ``output="embedding"`` (default): CLAP's L2-normalised joint
embedding per chunk ``[B, chunks, 512]``; ``output="frames"``: the audio branch's fine-grained
embedding before CLAP repeats it 32 times (``[B, chunks * 32, 768]`` for HTSAT-tiny; PANN:
``[B, chunks * frames / 32, 2048]``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._audio_frontends import TorchlibrosaLogmel, TorchlibrosaSpectrogram
from .pann_encoder import Cnn14Encoder

__all__ = ["CLAP_PRESETS", "ClapAudioEncoder", "HTSATEncoder"]


# ---------------------------------------------------------------------------- Swin / HTS-AT
def _window_partition(x: Tensor, w: int) -> Tensor:
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, w, w, C)


def _window_reverse(win: Tensor, w: int, H: int, W: int) -> Tensor:
    B = win.shape[0] // ((H // w) * (W // w))
    x = win.view(B, H // w, W // w, w, w, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, -1)


class _WindowAttention(nn.Module):
    relative_position_index: Tensor

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
        attn = attn + bias.permute(2, 0, 1)[None]
        if mask is not None:
            nW = mask.shape[0]
            attn = (attn.view(B_ // nW, nW, self.heads, N, N) + mask[None, :, None]).view(-1, self.heads, N, N)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B_, N, C))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _SwinBlock(nn.Module):
    def __init__(self, dim: int, res: tuple[int, int], heads: int, window: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.res = res
        if min(res) <= window:  # the window covers the map: no partition, no shift (as Swin)
            shift, window = 0, min(res)
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))
        mask = None
        if shift > 0:
            H, W = res
            img = torch.zeros(1, H, W, 1)
            cnt = 0
            for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                    img[:, hs, ws, :] = cnt
                    cnt += 1
            mw = _window_partition(img, window).view(-1, window * window)
            mask = mw[:, None, :] - mw[:, :, None]
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        self.register_buffer("attn_mask", mask)  # persistent, as in HTS-AT (a None buffer is not saved)

    def forward(self, x: Tensor) -> Tensor:
        H, W = self.res
        B, L, C = x.shape
        h = self.norm1(x).view(B, H, W, C)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), (1, 2))
        win = _window_partition(h, self.window).view(-1, self.window * self.window, C)
        win = self.attn(win, self.attn_mask).view(-1, self.window, self.window, C)
        h = _window_reverse(win, self.window, H, W)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), (1, 2))
        x = x + h.reshape(B, H * W, C)
        return x + self.mlp(self.norm2(x))


class _PatchMerging(nn.Module):
    def __init__(self, res: tuple[int, int], dim: int) -> None:
        super().__init__()
        self.res = res
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        H, W = self.res
        B, _, C = x.shape
        x = x.view(B, H, W, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class _BasicLayer(nn.Module):
    def __init__(self, dim: int, res: tuple[int, int], depth: int, heads: int, window: int, mlp_ratio: float,
                 downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_SwinBlock(dim, res, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio)
                                    for i in range(depth))
        self.downsample = _PatchMerging(res, dim) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, stride: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, patch, stride, (patch - stride) // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class HTSATEncoder(nn.Module):
    """HTS-AT (Chen et al. 2022) as LAION-CLAP builds it (non-fusion), with its state-dict
    names: torchlibrosa front end, ``bn0``, ``patch_embed``, Swin ``layers``, ``norm``,
    ``tscam_conv``, ``head`` (the last two only feed the AudioSet outputs).
    ``outputs(wave [B, clip_samples])`` -> ``{"embedding" [B, C], "fine_grained_embedding"
    [B, 32, C], "clipwise_output" [B, num_classes]}`` with ``C = embed_dim * 8``."""

    def __init__(self, *, sample_rate: int = 48000, window_size: int = 1024, hop_size: int = 480, mel_bins: int = 64,
                 fmin: float = 50.0, fmax: float = 14000.0, num_classes: int = 527, spec_size: int = 256,
                 patch_size: int = 4, patch_stride: int = 4, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (4, 8, 16, 32),
                 swin_window: int = 8, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if spec_size % mel_bins:
            raise ValueError(f"spec_size {spec_size} must be a multiple of mel_bins {mel_bins}")
        self.spec_size, self.freq_ratio = spec_size, spec_size // mel_bins
        self.patch_stride, self.depths = patch_stride, list(depths)
        self.spectrogram_extractor = TorchlibrosaSpectrogram(window_size, hop_size, window_size)
        self.logmel_extractor = TorchlibrosaLogmel(sample_rate, window_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        self.patch_embed = _PatchEmbed(patch_size, patch_stride, embed_dim)
        grid = spec_size // patch_stride
        n = len(self.depths)
        self.layers = nn.ModuleList(
            _BasicLayer(embed_dim * 2 ** i, (grid // 2 ** i, grid // 2 ** i), self.depths[i], int(num_heads[i]),
                        swin_window, mlp_ratio, i < n - 1) for i in range(n))
        self.num_features = embed_dim * 2 ** (n - 1)
        self.norm = nn.LayerNorm(self.num_features)
        sf = spec_size // 2 ** (n - 1) // patch_stride // self.freq_ratio
        self.tscam_conv = nn.Conv2d(self.num_features, num_classes, (sf, 3), padding=(0, 1))
        self.head = nn.Linear(num_classes, num_classes)

    def _to_image(self, x: Tensor) -> Tensor:
        B, C, T, Fm = x.shape
        tt, tf = self.spec_size * self.freq_ratio, self.spec_size // self.freq_ratio
        if T > tt or Fm > tf:
            raise ValueError(f"HTS-AT takes at most {tt} frames of {tf} mel bins, got {T} x {Fm}")
        if T < tt:
            x = F.interpolate(x, (tt, Fm), mode="bicubic", align_corners=True)
        if Fm < tf:
            x = F.interpolate(x, (x.shape[2], tf), mode="bicubic", align_corners=True)
        x = x.permute(0, 1, 3, 2)
        x = x.reshape(B, C, tf, self.freq_ratio, tt // self.freq_ratio).permute(0, 1, 3, 2, 4)
        return x.reshape(B, C, self.freq_ratio * tf, tt // self.freq_ratio)

    def outputs(self, wave: Tensor) -> dict[str, Tensor]:
        x = self.logmel_extractor(self.spectrogram_extractor(wave))
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self._to_image(x)
        frames = x.shape[2]
        h = self.patch_embed(x)
        for layer in self.layers:
            h = layer(h)
        h = self.norm(h)
        B, N, C = h.shape
        s = frames // 2 ** (len(self.depths) - 1) // self.patch_stride
        h = h.permute(0, 2, 1).reshape(B, C, s, s)
        cf = s // self.freq_ratio
        h = h.reshape(B, C, s // cf, cf, s).permute(0, 1, 3, 2, 4).reshape(B, C, cf, -1)
        fine = h.mean(dim=2).transpose(1, 2)  # [B, T', C]
        emb = h.flatten(2).mean(dim=2)
        clip = torch.sigmoid(self.tscam_conv(h).flatten(2).mean(dim=2))
        return {"embedding": emb, "fine_grained_embedding": fine, "clipwise_output": clip}


# ---------------------------------------------------------------------------- CLAP audio side
#: laion_clap's model configs (``model_configs/*.json``): audio branch and its settings
CLAP_PRESETS: dict[str, dict[str, Any]] = {
    "HTSAT-tiny": dict(audio_model="htsat", embed_dim=96, depths=[2, 2, 6, 2], num_heads=[4, 8, 16, 32]),
    "HTSAT-base": dict(audio_model="htsat", embed_dim=128, depths=[2, 2, 12, 2], num_heads=[4, 8, 16, 32]),
    "PANN-14": dict(audio_model="cnn14"),
}


class ClapAudioEncoder(nn.Module):
    """LAION-CLAP's audio encoder + projection (random weights unless loaded).

    Args:
        audio_model: ``"htsat"`` or ``"cnn14"`` (CLAP's ``HTSAT-*`` / ``PANN-14`` configs; see
            :data:`CLAP_PRESETS`).
        sample_rate, window_size, hop_size, mel_bins, fmin, fmax, num_classes: CLAP's
            ``audio_cfg`` (48 kHz, 1024 / 480, 64 mels, 50..14000 Hz, 527).
        embed_dim, depths, num_heads, swin_window, mlp_ratio, spec_size, patch_size,
            patch_stride: HTS-AT's sizes (HTSAT-tiny by default).
        joint_dim: width of the joint audio-text space (512).
        clip_samples: CLAP's input length (480000 = 10 s at 48 kHz).
        output: ``"embedding"`` or ``"frames"`` (see the module docstring).
    """

    arch = "clap"

    def __init__(self, audio_model: str = "htsat", *, sample_rate: int = 48000, window_size: int = 1024,
                 hop_size: int = 480, mel_bins: int = 64, fmin: float = 50.0, fmax: float = 14000.0,
                 num_classes: int = 527, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (4, 8, 16, 32), swin_window: int = 8, mlp_ratio: float = 4.0,
                 spec_size: int = 256, patch_size: int = 4, patch_stride: int = 4, joint_dim: int = 512,
                 clip_samples: int = 480000, output: str = "embedding") -> None:
        super().__init__()
        if audio_model not in ("htsat", "cnn14"):
            raise ValueError(f"audio_model must be 'htsat' or 'cnn14', got {audio_model!r}")
        if output not in ("embedding", "frames"):
            raise ValueError(f"output must be 'embedding' or 'frames', got {output!r}")
        self.config: dict[str, Any] = dict(
            audio_model=audio_model, sample_rate=sample_rate, window_size=window_size, hop_size=hop_size,
            mel_bins=mel_bins, fmin=fmin, fmax=fmax, num_classes=num_classes, embed_dim=embed_dim,
            depths=list(depths), num_heads=list(num_heads), swin_window=swin_window, mlp_ratio=mlp_ratio,
            spec_size=spec_size, patch_size=patch_size, patch_stride=patch_stride, joint_dim=joint_dim,
            clip_samples=clip_samples, output=output)
        self.sample_rate = int(sample_rate)
        self.clip_samples = int(clip_samples)
        self.output = output
        branch: nn.Module
        if audio_model == "htsat":
            branch = HTSATEncoder(sample_rate=sample_rate, window_size=window_size, hop_size=hop_size,
                                  mel_bins=mel_bins, fmin=fmin, fmax=fmax, num_classes=num_classes,
                                  spec_size=spec_size, patch_size=patch_size, patch_stride=patch_stride,
                                  embed_dim=embed_dim, depths=depths, num_heads=num_heads, swin_window=swin_window,
                                  mlp_ratio=mlp_ratio)
            width = branch.num_features
        else:
            branch = Cnn14Encoder(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, num_classes)
            width = 2048
        self.audio_branch = branch
        self.audio_projection = nn.Sequential(nn.Linear(width, joint_dim), nn.ReLU(), nn.Linear(joint_dim, joint_dim))
        self.embed_dim = int(joint_dim if output == "embedding" else width)

    def chunks(self, wave: Tensor) -> Tensor:
        """``[B, L]`` -> ``[B, n, clip_samples]``: CLAP's repeat-padding for ``L <= clip_samples``,
        else consecutive clips (the last one repeat-padded)."""
        if wave.ndim != 2:
            raise ValueError(f"ClapAudioEncoder takes waveforms [B, L], got {tuple(wave.shape)}")
        n = self.clip_samples
        pieces = []
        for s in range(0, max(wave.shape[1], 1), n):
            c = wave[:, s:s + n]
            if c.shape[1] < n:
                if c.shape[1] == 0:
                    raise ValueError("ClapAudioEncoder got an empty waveform")
                c = c.repeat(1, n // c.shape[1])
                c = F.pad(c, (0, n - c.shape[1]))
            pieces.append(c)
        return torch.stack(pieces, dim=1)

    def branch_outputs(self, clips: Tensor) -> tuple[Tensor, Tensor]:
        """``clips [N, clip_samples]`` -> ``(embedding [N, C], fine-grained frames [N, T', C])``."""
        if isinstance(self.audio_branch, HTSATEncoder):
            o = self.audio_branch.outputs(clips)
            return o["embedding"], o["fine_grained_embedding"]
        x = self.audio_branch.features(clips)
        emb, _ = self.audio_branch._clip(x)
        lat = F.max_pool1d(x, 3, 1, 1) + F.avg_pool1d(x, 3, 1, 1)
        return emb, F.relu(self.audio_branch.fc1(lat.transpose(1, 2)))

    def embed(self, wave: Tensor) -> Tensor:
        """CLAP's normalised audio embedding ``[B, joint_dim]`` of waveforms no longer than
        ``clip_samples`` (``get_audio_embedding_from_data(x, use_tensor=True)``)."""
        if wave.shape[-1] > self.clip_samples:
            raise ValueError(f"embed takes at most {self.clip_samples} samples; forward() chunks longer input")
        emb, _ = self.branch_outputs(self.chunks(wave)[:, 0])
        return F.normalize(self.audio_projection(emb), dim=-1)

    def forward(self, wave: Tensor) -> Tensor:
        clips = self.chunks(wave)
        B, n, L = clips.shape
        emb, frames = self.branch_outputs(clips.reshape(B * n, L))
        if self.output == "embedding":
            return F.normalize(self.audio_projection(emb), dim=-1).view(B, n, -1)
        return frames.reshape(B, n * frames.shape[1], -1)
