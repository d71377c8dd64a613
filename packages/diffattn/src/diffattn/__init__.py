"""diffattn: differential attention, fusion gates and inter-band graphs (plain PyTorch)."""

from .adaptive_attention import AdaptiveDifferentialAttention
from .bandwise_attention import ATTENTION_KINDS, BandwiseAttention
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
from .losses import ScaleDiversityLoss
from .norms import RMSNorm
from .rotary import RotaryEmbedding, apply_rotary, rotary_angles
from .standard_attention import StandardAttention, softmax_map

__all__ = [
    "ATTENTION_KINDS",
    "AdaptiveDifferentialAttention",
    "BandwiseAttention",
    "DenseBandAttention",
    "DifferentialAttention",
    "FrequencyAdaptiveFusionGate",
    "HarmonicBandGraph",
    "LearnableBandGraph",
    "MultiScaleDynamicFusionGate",
    "NUM_STATS",
    "NoInterBand",
    "RMSNorm",
    "RotaryEmbedding",
    "STAT_NAMES",
    "ScaleDiversityLoss",
    "StandardAttention",
    "apply_rotary",
    "band_centres_hz",
    "combine_masks",
    "differential_maps",
    "differential_row_stats",
    "harmonic_band_mask",
    "lambda_init_fn",
    "make_inter_band",
    "odd_kernel",
    "rotary_angles",
    "row_stats_from_maps",
    "scale_diversity_loss",
    "softmax_map",
    "sliding_mean",
    "two_map_sdpa",
]
__version__ = "0.1.0"
