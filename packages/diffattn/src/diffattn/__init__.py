"""diffattn: differential attention, fusion gates and inter-band graphs (plain PyTorch)."""

from .differential_attention import (
    DifferentialAttention,
    combine_masks,
    differential_maps,
    lambda_init_fn,
    two_map_sdpa,
)
from .norms import RMSNorm
from .rotary import RotaryEmbedding, apply_rotary, rotary_angles

__all__ = [
    "DifferentialAttention",
    "RMSNorm",
    "RotaryEmbedding",
    "apply_rotary",
    "combine_masks",
    "differential_maps",
    "lambda_init_fn",
    "rotary_angles",
    "two_map_sdpa",
]
__version__ = "0.1.0"
