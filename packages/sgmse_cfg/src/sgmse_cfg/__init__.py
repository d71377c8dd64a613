"""sgmse_cfg: score-based diffusion for speech enhancement (SGMSE+), with hooks for
noise-aware conditioning and guidance.

Diffusion core: SGMSE+'s compressed complex STFT bound to a sample rate, the OUVE and
Schroedinger-bridge SDEs, samplers, the NCSN++ backbone (SGMSE+ state-dict compatible)
and a small UNet, and the ``ScoreModel`` wrapper with the DSM loss.
"""

__version__ = "0.1.0"

from .errors import BadAudioError, SampleRateError
from .sdes import SDE, OUVESDE, SBVESDE, batch_view, sde_from_dict
from .spec_transform import SpecTransform, normalize_by_noisy

__all__ = [
    "BadAudioError",
    "OUVESDE",
    "SBVESDE",
    "SDE",
    "SampleRateError",
    "SpecTransform",
    "batch_view",
    "normalize_by_noisy",
    "sde_from_dict",
]
