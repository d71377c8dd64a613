"""bandsplit: band-split layers and models for speech enhancement (BSRNN, ...).

Public API (everything else is private):
- band tables: ``BSRNN_BAND_WIDTHS``, ``check_band_widths``, ``band_edges``, ``band_centers_hz``
- layers: ``BandSplit``, ``MaskDecoder``, ``apply_fir_mask``
- models: ``BSRNN``
"""

from .band_split import BandSplit
from .bands import BSRNN_BAND_WIDTHS, band_centers_hz, band_edges, check_band_widths
from .bsrnn import BSRNN
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
    # models
    "BSRNN",
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
]
__version__ = "0.1.0"
