"""bandsplit: band-split layers and models for speech enhancement (BSRNN, ...).

Public API (everything else is private):
- band tables: ``BSRNN_BAND_WIDTHS``, ``check_band_widths``, ``band_edges``, ``band_centers_hz``
- layers: ``BandSplit``, ``MaskDecoder``, ``apply_fir_mask``
- models: ``BSRNN``
"""

from .band_split import BandSplit
from .bands import BSRNN_BAND_WIDTHS, band_centers_hz, band_edges, check_band_widths
from .bsrnn import BSRNN
from .mask_decoder import MaskDecoder, apply_fir_mask

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
]
__version__ = "0.1.0"
