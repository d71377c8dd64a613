"""sgmse_cfg: score-based diffusion for speech enhancement (SGMSE+), with hooks for
noise-aware conditioning and guidance.

Diffusion core: SGMSE+'s compressed complex STFT bound to a sample rate, the OUVE and
Schroedinger-bridge SDEs, samplers, the NCSN++ backbone (SGMSE+ state-dict compatible)
and a small UNet, and the ``ScoreModel`` wrapper with the DSM loss.
"""

__version__ = "0.1.0"

from .conditioning import BackboneCond
from .errors import BadAudioError, SampleRateError
from .ncsnpp import NCSNPP_PRESETS, NCSNpp, count_parameters
from .sampling import (
    CORRECTORS,
    PREDICTORS,
    ald_step,
    euler_maruyama_step,
    ode_sampler,
    pc_sampler,
    reverse_diffusion_step,
    sb_sampler,
)
from .score_model import BACKBONES, SAMPLERS, ScoreModel
from .small_unet import SmallUNet
from .sdes import SDE, OUVESDE, SBVESDE, batch_view, sde_from_dict
from .sgmse_checkpoint import sgmse_backbone_state_dict
from .spec_transform import SpecTransform, normalize_by_noisy

__all__ = [
    "BACKBONES",
    "BackboneCond",
    "BadAudioError",
    "CORRECTORS",
    "NCSNPP_PRESETS",
    "NCSNpp",
    "OUVESDE",
    "PREDICTORS",
    "SAMPLERS",
    "SBVESDE",
    "SDE",
    "SampleRateError",
    "ScoreModel",
    "SmallUNet",
    "SpecTransform",
    "ald_step",
    "batch_view",
    "count_parameters",
    "euler_maruyama_step",
    "normalize_by_noisy",
    "ode_sampler",
    "pc_sampler",
    "reverse_diffusion_step",
    "sb_sampler",
    "sde_from_dict",
    "sgmse_backbone_state_dict",
]
