"""Deterministic stand-in weights for the pretrained-encoder parity fixture (not a test module).

``bench/pretrained_encoder_parity.py`` fills each peer model (panns_inference's Cnn14,
laion_clap's CLAP audio branch, SpeechBrain's BEATs) with :func:`recipe_state_dict` and stores
the peer's outputs; ``test_sgmse_cfg_encoder_parity.py`` rebuilds the same tensors from the
stored key list alone and loads them into this package's modules. Every learned tensor comes
from a generator seeded by the fixture seed and the tensor's name (so order does not matter),
scaled like a trained network (``1 / sqrt(fan_in)`` matrices, norm weights near 1, positive
running variances); fixed tensors (the torchlibrosa front end, Swin's index and mask buffers,
batch-norm counters) are taken from the module the weights go into.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

FIXED = ("spectrogram_extractor.", "logmel_extractor.", "relative_position_index", "attn_mask", "num_batches_tracked")


def is_fixed(name: str) -> bool:
    return any(f in name for f in FIXED)


def recipe_tensor(name: str, shape: Sequence[int], seed: int) -> Tensor:
    key = re.sub(r"layers\.\d+\.", "layers.*.", name) if "relative_attention_bias" in name else name
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    z = torch.randn(tuple(shape), generator=g)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 0.5 + 0.5 * z.abs()
    if leaf == "running_mean":
        return 0.1 * z
    if leaf in ("weight_g", "grep_a") or (len(shape) == 1 and leaf == "weight"):
        return 1.0 + 0.1 * z
    if len(shape) <= 1 or "relative" in name:
        return 0.05 * z
    fan_in = math.prod(shape[1:])
    return z / math.sqrt(fan_in)


def recipe_state_dict(keys: Sequence[tuple[str, Sequence[int]]], fixed: Mapping[str, Tensor], seed: int
                      ) -> dict[str, Tensor]:
    """``{name: tensor}`` for every ``(name, shape)``: fixed names from ``fixed``, the rest drawn."""
    out = {}
    for name, shape in keys:
        if is_fixed(name):
            out[name] = fixed[name].clone()
        else:
            out[name] = recipe_tensor(name, shape, seed)
    return out


def make_input(seed: int, batch: int, length: int) -> Tensor:
    """The fixture's waveforms: ``0.1 * randn(batch, length)`` from ``seed``."""
    return 0.1 * torch.randn(batch, length, generator=torch.Generator().manual_seed(seed))
