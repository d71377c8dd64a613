"""diffattn: differential attention, fusion gates and inter-band graphs (plain PyTorch)."""

from .adaptive_attention import AdaptiveDifferentialAttention
from .attention_stats import NUM_STATS, STAT_NAMES, differential_row_stats, row_stats_from_maps
from .band_graphs import (
    DenseBandAttention,
    HarmonicBandGraph,
    LearnableBandGraph,
    NoInterBand,
    band_centres_hz,
    harmonic_band_mask,
    make_inter_band,
)
from .differential_attention import (
    DifferentialAttention,
    combine_masks,
    differential_maps,
    lambda_init_fn,
    two_map_sdpa,
)
from .fusion_gates import (
    FrequencyAdaptiveFusionGate,
    MultiScaleDynamicFusionGate,
    odd_kernel,
    scale_diversity_loss,
    sliding_mean,
)
from .norms import RMSNorm
from .rotary import RotaryEmbedding, apply_rotary, rotary_angles

__all__ = [
    "AdaptiveDifferentialAttention",
    "DenseBandAttention",
    "HarmonicBandGraph",
    "LearnableBandGraph",
    "NoInterBand",
    "band_centres_hz",
    "harmonic_band_mask",
    "make_inter_band",
    "FrequencyAdaptiveFusionGate",
    "MultiScaleDynamicFusionGate",
    "NUM_STATS",
    "STAT_NAMES",
    "differential_row_stats",
    "odd_kernel",
    "row_stats_from_maps",
    "scale_diversity_loss",
    "sliding_mean",
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
