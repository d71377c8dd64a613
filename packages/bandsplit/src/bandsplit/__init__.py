"""bandsplit: band-split layers and models for speech enhancement.

Public API (everything else is private):
- band tables: ``BSRNN_BAND_WIDTHS``, ``check_band_widths``, ``band_edges``, ``band_centers_hz``
- layers: ``BandSplit``, ``MaskDecoder``, ``apply_fir_mask``, ``HarmonicAwareGroupedConv``
- models (complex STFT ``[B, 257, T]`` in and out): ``BSRNN``, ``BSDT`` (v1: ``graph="fixed"``,
  v2: ``graph="learned"``), ``ERBUNet`` (seed 000 Net2 at its own 601-bin resolution) with
  ``ERBUNetAdapter`` (option B), ``ERBUNet257`` (option C); ``build_model`` / ``MODEL_NAMES``
- STFT and inference: ``SpectrogramTransform``, ``enhance_waveform``
- training speed: ``GraphedTrainingForward`` (forward + backward replayed as CUDA graphs)
- the BSRNN training recipe: ``BSRNNLoss``, ``MetricDiscriminator``, ``compress_magnitude``,
  ``pesq_to_target``
"""

from .band_split import BandSplit
from .bands import BSRNN_BAND_WIDTHS, band_centers_hz, band_edges, check_band_widths
from .bsdt import BSDT, BSDTBlock
from .bsrnn import BSRNN
from .erb_adapter import ERBUNetAdapter
from .erb_conv import (
    HarmonicAwareGroupedConv,
    erb_group_bin_edges,
    erb_group_edges_hz,
    erb_rate,
    erb_rate_to_hz,
)
from .cuda_graphs import GraphedTrainingForward
from .erb_unet import ERB_UNET_SEED_SIZE, ERBUNet, ERBUNet257
from .inference import enhance_waveform
from .mask_decoder import MaskDecoder, apply_fir_mask
from .recipe import BSRNNLoss, MetricDiscriminator, compress_magnitude, pesq_to_target
from .registry import MODEL_NAMES, build_model
from .stft import SampleRateMismatchError, SpectrogramTransform

__all__: list[str] = [
    # band tables
    "BSRNN_BAND_WIDTHS",
    "check_band_widths",
    "band_edges",
    "band_centers_hz",
    # layers
    "BandSplit",
    "MaskDecoder",
    "apply_fir_mask",
    "HarmonicAwareGroupedConv",
    "erb_rate",
    "erb_rate_to_hz",
    "erb_group_edges_hz",
    "erb_group_bin_edges",
    # models
    "BSRNN",
    "BSDT",
    "BSDTBlock",
    "ERBUNet",
    "ERBUNet257",
    "ERBUNetAdapter",
    "ERB_UNET_SEED_SIZE",
    "MODEL_NAMES",
    "build_model",
    # STFT, inference and the training recipe
    "SpectrogramTransform",
    "SampleRateMismatchError",
    "enhance_waveform",
    "BSRNNLoss",
    "MetricDiscriminator",
    "compress_magnitude",
    "pesq_to_target",
    "GraphedTrainingForward",
]
__version__ = "0.1.0"
