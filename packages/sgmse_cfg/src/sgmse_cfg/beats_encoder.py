"""BEATs (Chen et al. 2023, microsoft/unilm) with the published checkpoint's layer names.

:class:`BEATsEncoder` has the state-dict keys and shapes of BEATs' own ``BEATs.py`` (the
``model`` entry of ``BEATs_iter3.pt`` / ``BEATs_iter3_plus_AS2M.pt``, which NASE fine-tunes):
``patch_embedding``, ``layer_norm``, ``post_extract_proj``, ``encoder.pos_conv.0.weight_g`` /
``weight_v`` / ``bias`` (weight-normalised convolutional position embedding),
``encoder.layers.N.self_attn.{q,k,v,out}_proj``, the shared ``relative_attention_bias``
(stored under every layer, as BEATs stores it), the gated relative-position terms
``grep_linear`` / ``grep_a``, ``self_attn_layer_norm``, ``fc1``, ``fc2``, ``final_layer_norm``,
``encoder.layer_norm`` and, for fine-tuned checkpoints, ``predictor``. Its constructor takes
the checkpoint's ``cfg`` names (:data:`BEATS_CONFIG_DEFAULTS` are BEATsConfig's defaults;
:data:`BEATS_ITER3_CONFIG` the released iter3 models').

The arithmetic follows BEATs (and SpeechBrain's port ``speechbrain.lobes.models.beats``, the
peer it is tested against): Kaldi fbank of ``wave * 2**15`` (128 mels, 25 / 10 ms, 16 kHz),
``(fbank - 15.41663) / (2 * 6.55582)``, 16x16 patches (trailing frames that do not fill a patch
are dropped), post-norm (deep-norm) transformer with BEATs' ``alpha = 32`` stabilised softmax.
``forward(wave [B, L])`` returns the transformer output ``[B, (frames // 16) * 8, 768]`` in
time-major order; :meth:`BEATsEncoder.clip_outputs` adds the fine-tuned predictor's sigmoid.
Padding masks are not supported: every waveform of a batch is used whole.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._audio_frontends import kaldi_fbank, kaldi_mel_banks

__all__ = ["BEATS_CONFIG_DEFAULTS", "BEATS_ITER3_CONFIG", "BEATsEncoder"]

#: BEATsConfig's defaults (a checkpoint's ``cfg`` overrides them, as in BEATs)
BEATS_CONFIG_DEFAULTS: dict[str, Any] = dict(
    input_patch_size=16, embed_dim=512, conv_bias=False, encoder_layers=12, encoder_embed_dim=768,
    encoder_ffn_embed_dim=3072, encoder_attention_heads=12, activation_fn="gelu", layer_norm_first=False,
    deep_norm=False, conv_pos=128, conv_pos_groups=16, relative_position_embedding=False, num_buckets=320,
    max_distance=1280, gru_rel_pos=False, finetuned_model=False, predictor_class=527)

#: the released BEATs_iter3 / BEATs_iter3_plus_AS2M configuration (the latter fine-tuned, 527 classes)
BEATS_ITER3_CONFIG: dict[str, Any] = {**BEATS_CONFIG_DEFAULTS, "deep_norm": True, "relative_position_embedding": True,
                                      "gru_rel_pos": True, "max_distance": 800}

FBANK_MEAN, FBANK_STD = 15.41663, 6.55582


class _WeightNormConv1d(nn.Module):
    """``Conv1d`` with ``weight = g * v / ||v||`` (norm over all axes but 2), stored as
    ``weight_g`` / ``weight_v`` / ``bias`` like ``torch.nn.utils.weight_norm(conv, dim=2)``."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.padding, self.groups = kernel // 2, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.randn(channels, channels // groups, kernel) * 0.02)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        w = torch._weight_norm(self.weight_v, self.weight_g, 2)
        return F.conv1d(x, w, self.bias, padding=self.padding, groups=self.groups)


class _BEATsAttention(nn.Module):
    def __init__(self, dim: int, heads: int, *, rel_pos: bool, num_buckets: int, max_distance: int,
                 gru_rel_pos: bool) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"encoder_embed_dim {dim} is not a multiple of encoder_attention_heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim ** -0.5
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.has_relative_attention_bias = rel_pos
        if rel_pos:
            self.relative_attention_bias = nn.Embedding(num_buckets, heads)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gru_rel_pos = gru_rel_pos
        if gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _buckets(self, rel: Tensor) -> Tensor:
        nb = self.num_buckets // 2
        out = (rel > 0).long() * nb
        rel = rel.abs()
        max_exact = nb // 2
        large = max_exact + (torch.log(rel.clamp(min=1).float() / max_exact) / math.log(self.max_distance / max_exact)
                             * (nb - max_exact)).long()
        large = large.clamp(max=nb - 1)
        return out + torch.where(rel < max_exact, rel, large)

    def compute_bias(self, n: int, device: torch.device) -> Tensor:
        pos = torch.arange(n, device=device)
        return self.relative_attention_bias(self._buckets(pos[None, :] - pos[:, None])).permute(2, 0, 1)  # [H, n, n]

    def forward(self, x: Tensor, pos_bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        B, n, _ = x.shape
        alpha = 32.0
        if self.has_relative_attention_bias and pos_bias is None:
            pos_bias = self.compute_bias(n, x.device)
        q = (self.q_proj(x) * self.scaling * (1.0 / alpha)).view(B, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, n, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, n, self.heads, self.head_dim).transpose(1, 2)
        attn = q @ k.transpose(-1, -2)  # [B, H, n, n]
        attn = (attn - attn.max(dim=-1, keepdim=True).values) * alpha
        if pos_bias is not None:
            rel = pos_bias[None]
            if self.gru_rel_pos:
                g = torch.sigmoid(self.grep_linear(q * alpha / self.scaling).view(B, self.heads, n, 2, 4).sum(-1))
                gate_a, gate_b = g.chunk(2, dim=-1)
                rel = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * rel
            attn = attn + rel
        attn = F.softmax(attn, dim=-1).type_as(attn)
        out = (attn @ v).transpose(1, 2).reshape(B, n, -1)
        return self.out_proj(out), pos_bias


class _BEATsLayer(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        dim = cfg["encoder_embed_dim"]
        self.self_attn = _BEATsAttention(dim, cfg["encoder_attention_heads"],
                                         rel_pos=cfg["relative_position_embedding"],
                                         num_buckets=cfg["num_buckets"], max_distance=cfg["max_distance"],
                                         gru_rel_pos=cfg["gru_rel_pos"])
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg["encoder_ffn_embed_dim"])
        self.fc2 = nn.Linear(cfg["encoder_ffn_embed_dim"], dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg["layer_norm_first"]
        self.act = nn.GELU() if cfg["activation_fn"] == "gelu" else nn.ReLU()
        self.alpha = math.pow(2 * cfg["encoder_layers"], 0.25) if cfg["deep_norm"] else 1.0

    def forward(self, x: Tensor, pos_bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.layer_norm_first:
            h, pos_bias = self.self_attn(self.self_attn_layer_norm(x), pos_bias)
            x = x + h
            return x + self.fc2(self.act(self.fc1(self.final_layer_norm(x)))), pos_bias
        h, pos_bias = self.self_attn(x, pos_bias)
        x = self.self_attn_layer_norm(x * self.alpha + h)
        return self.final_layer_norm(x * self.alpha + self.fc2(self.act(self.fc1(x)))), pos_bias


class _BEATsTransformer(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        dim = cfg["encoder_embed_dim"]
        self.pos_conv = nn.Sequential(_WeightNormConv1d(dim, cfg["conv_pos"], cfg["conv_pos_groups"]))
        self.remove = 1 if cfg["conv_pos"] % 2 == 0 else 0  # BEATs' SamePad
        self.layers = nn.ModuleList(_BEATsLayer(cfg) for _ in range(cfg["encoder_layers"]))
        if cfg["relative_position_embedding"]:  # one table, stored under every layer (as BEATs does)
            for layer in list(self.layers)[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm_first = cfg["layer_norm_first"]
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        c = self.pos_conv(x.transpose(1, 2))
        if self.remove:
            c = c[:, :, :-self.remove]
        x = x + F.gelu(c).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        pos_bias = None
        for layer in self.layers:
            x, pos_bias = layer(x, pos_bias)
        return self.layer_norm(x) if self.layer_norm_first else x


class BEATsEncoder(nn.Module):
    """BEATs audio encoder (random weights unless loaded); keyword arguments are BEATs' ``cfg``
    names (see :data:`BEATS_CONFIG_DEFAULTS`; dropout settings are not needed for inference and
    are not taken). ``sample_rate`` is 16 kHz (BEATs' fbank is fixed to it)."""

    arch = "beats"

    def __init__(self, **cfg: Any) -> None:
        super().__init__()
        unknown = sorted(set(cfg) - set(BEATS_CONFIG_DEFAULTS))
        if unknown:
            raise TypeError(f"BEATsEncoder got unknown config keys {unknown}")
        c = {**BEATS_CONFIG_DEFAULTS, **cfg}
        if c["activation_fn"] not in ("gelu", "relu"):
            raise ValueError(f"activation_fn {c['activation_fn']!r} is not supported (gelu, relu)")
        if c["deep_norm"] and c["layer_norm_first"]:
            raise ValueError("deep_norm and layer_norm_first cannot both be set (as in BEATs)")
        self.config: dict[str, Any] = c
        self.sample_rate = 16000
        self.embed_dim = int(c["encoder_embed_dim"])
        self.patch = int(c["input_patch_size"])
        self.register_buffer("mel_banks", kaldi_mel_banks(128, 512, 16000.0), persistent=False)
        self.post_extract_proj = (nn.Linear(c["embed_dim"], c["encoder_embed_dim"])
                                  if c["embed_dim"] != c["encoder_embed_dim"] else None)
        self.patch_embedding = nn.Conv2d(1, c["embed_dim"], self.patch, stride=self.patch, bias=c["conv_bias"])
        self.encoder = _BEATsTransformer(c)
        self.layer_norm = nn.LayerNorm(c["embed_dim"])
        self.predictor = nn.Linear(c["encoder_embed_dim"], c["predictor_class"]) if c["finetuned_model"] else None

    def fbank(self, wave: Tensor) -> Tensor:
        """``[B, L]`` at 16 kHz -> normalised Kaldi fbank ``[B, frames, 128]``."""
        fb = kaldi_fbank(wave.float() * 32768.0, mel_banks=self.mel_banks)
        return (fb - FBANK_MEAN) / (2.0 * FBANK_STD)

    def forward(self, wave: Tensor) -> Tensor:
        if wave.ndim != 2:
            raise ValueError(f"BEATsEncoder takes waveforms [B, L], got {tuple(wave.shape)}")
        fb = self.fbank(wave)
        if fb.shape[1] < self.patch:
            raise ValueError(f"BEATsEncoder needs at least {self.patch} fbank frames "
                             f"({(self.patch - 1) * 160 + 400} samples at 16 kHz), got {wave.shape[1]} samples")
        h = self.patch_embedding(fb[:, None])
        h = self.layer_norm(h.flatten(2).transpose(1, 2))
        if self.post_extract_proj is not None:
            h = self.post_extract_proj(h)
        return self.encoder(h)

    def clip_outputs(self, wave: Tensor) -> dict[str, Tensor]:
        """``{"tokens": [B, N, D]}`` plus, for a fine-tuned model, ``"probs"``: the sigmoid of
        the predictor's logits averaged over tokens ``[B, predictor_class]``."""
        tokens = self.forward(wave)
        out = {"tokens": tokens}
        if self.predictor is not None:
            out["probs"] = torch.sigmoid(self.predictor(tokens).mean(dim=1))
        return out
