"""sgmse_cfg: score-based diffusion for speech enhancement (SGMSE+), with hooks for
noise-aware conditioning and guidance.

Noise-aware conditioning (NASE) and guidance: noise-reference encoders (CNN, sequence
tokens for cross-attention, an adapter for a pretrained encoder from a local file), an NC
head, input-addition / FiLM / cross-attention injection, classifier-free guidance in one
batched forward and uncertainty-adaptive guidance scales (``NoiseCondScoreModel``).

Diffusion core: SGMSE+'s compressed complex STFT bound to a sample rate, the OUVE and
Schroedinger-bridge SDEs, samplers, the NCSN++ backbone (SGMSE+ state-dict compatible)
and a small UNet, and the ``ScoreModel`` wrapper with the DSM loss.

Training in your own loop (``training``): ``build_model`` from plain options,
``crops_to_specs``, ``SeededLoss`` (the DDP-ready loss) with ``step_seed``, ``ema_decay`` /
``ema_update``, ``validate`` and ``fit_bank_on_files`` (the k-NN bank from whole files).

OOD analysis: ``ood_scores`` turns the per-utterance uncertainty measures into scores that
are higher on unfamiliar noise (for an AUROC or a correlation with quality).

Trained models: ``load_model`` (a checkpoint from ``tools/train_sgmse.py``, or an official
SGMSE+ Lightning ``.ckpt`` through ``load_sgmse_checkpoint``; EMA or live weights),
``final_checkpoint`` (the final ``model.pt`` payload), ``enhance`` (one file, sampler from the
model's SDE, any guidance), ``enhance_batch`` (files of one padded length in one sampler run,
a generator and, for a noise-conditioned model, a condition per file) and ``enhance_like_sgmse`` (one file exactly as sgmse's
``enhancement.py`` does it; ``sgmse_file_order``: the files in its order). ``checkpoint_labels``
names the checkpoints of a comparison from ``[NAME=]PATH`` items.
"""

__version__ = "0.1.0"

from .conditioning import BackboneCond
from .guidance import (
    ADAPTIVE_MODES,
    GUIDANCE_MODES,
    EmbeddingBank,
    GuidedCond,
    expand_cond,
    guidance_weights,
    guided_score,
    nc_certainty,
    nc_confidence,
    nc_entropy,
)
from .injection import INJECTIONS, NoiseInjector
from .nc_head import IGNORE_LABEL, NC_WEIGHT, NoiseClassifier, nc_loss
from .guidance_conditions import MAX_GUIDANCE_SCALE, guidance_unavailable, parse_guidance_condition
from .checkpoint_labels import checkpoint_labels
from .noise_cond_model import NOISE_ENCODERS, NoiseCondScoreModel, register_noise_encoder, score_model_from_config
from .noise_encoders import SPEC_FEATURES, CNNNoiseEncoder, NoiseEncoding, SequenceNoiseEncoder, spec_features
from .pretrained_encoder import (
    AUDIO_ENCODER_ARCHS,
    AudioEncoder,
    PretrainedNoiseEncoder,
    TransformerAudioEncoder,
    load_audio_encoder,
    log_mel_filterbank,
    register_audio_encoder,
    resample_sinc,
    save_audio_encoder,
)
from .beats_encoder import BEATS_CONFIG_DEFAULTS, BEATS_ITER3_CONFIG, BEATsEncoder
from .clap_encoder import CLAP_PRESETS, ClapAudioEncoder, HTSATEncoder
from .encoder_checkpoints import (
    PRETRAINED_ENCODER_ARCHS,
    EncoderCheckpointError,
    check_encoder_checkpoint,
    convert_encoder_checkpoint,
    load_pretrained_encoder,
)
from .pann_encoder import PANNS_CNN14_CONFIG, Cnn14Encoder
from .enhancement import enhance, enhance_batch, resolve_sampler
from .errors import BadAudioError, CheckpointError, SampleRateError
from .model_loading import CHECKPOINT_FORMAT, FINAL_CHECKPOINT_KEYS, final_checkpoint, load_model
from .ncsnpp import NCSNPP_PRESETS, NCSNpp, count_parameters
from .ood_scores import OOD_SCORES, knn_reliability, ood_scores
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
from .score_model import BACKBONES, SAMPLERS, ScoreModel, register_backbone
from .small_unet import SmallUNet
from .sdes import SDE, OUVESDE, SBVESDE, batch_view, sde_from_dict
from .sgmse_checkpoint import (
    SGMSE_BACKBONES,
    SGMSE_SDES,
    is_sgmse_checkpoint,
    load_sgmse_checkpoint,
    read_sgmse_checkpoint,
    sgmse_backbone_state_dict,
    sgmse_model_config,
)
from .sgmse_compat import enhance_like_sgmse, sgmse_file_order
from .spec_transform import SpecTransform, normalize_by_noisy
from .training import (
    SeededLoss,
    build_model,
    crops_to_specs,
    ema_decay,
    ema_update,
    fit_bank_on_files,
    step_seed,
    validate,
)

__all__ = [
    "ADAPTIVE_MODES",
    "AUDIO_ENCODER_ARCHS",
    "AudioEncoder",
    "CHECKPOINT_FORMAT",
    "CNNNoiseEncoder",
    "CheckpointError",
    "EmbeddingBank",
    "FINAL_CHECKPOINT_KEYS",
    "GUIDANCE_MODES",
    "GuidedCond",
    "IGNORE_LABEL",
    "INJECTIONS",
    "NC_WEIGHT",
    "NOISE_ENCODERS",
    "NoiseClassifier",
    "NoiseCondScoreModel",
    "NoiseEncoding",
    "NoiseInjector",
    "MAX_GUIDANCE_SCALE",
    "OOD_SCORES",
    "PretrainedNoiseEncoder",
    "SPEC_FEATURES",
    "SequenceNoiseEncoder",
    "SeededLoss",
    "TransformerAudioEncoder",
    "build_model",
    "crops_to_specs",
    "ema_decay",
    "ema_update",
    "enhance",
    "enhance_batch",
    "expand_cond",
    "final_checkpoint",
    "fit_bank_on_files",
    "guidance_weights",
    "guided_score",
    "knn_reliability",
    "load_audio_encoder",
    "BEATS_CONFIG_DEFAULTS",
    "BEATS_ITER3_CONFIG",
    "BEATsEncoder",
    "CLAP_PRESETS",
    "ClapAudioEncoder",
    "HTSATEncoder",
    "PRETRAINED_ENCODER_ARCHS",
    "EncoderCheckpointError",
    "check_encoder_checkpoint",
    "convert_encoder_checkpoint",
    "load_pretrained_encoder",
    "PANNS_CNN14_CONFIG",
    "Cnn14Encoder",
    "load_model",
    "log_mel_filterbank",
    "nc_certainty",
    "nc_confidence",
    "nc_entropy",
    "nc_loss",
    "ood_scores",
    "parse_guidance_condition",
    "checkpoint_labels",
    "sgmse_file_order",
    "guidance_unavailable",
    "register_audio_encoder",
    "register_backbone",
    "register_noise_encoder",
    "resolve_sampler",
    "resample_sinc",
    "save_audio_encoder",
    "score_model_from_config",
    "spec_features",
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
    "SGMSE_BACKBONES",
    "SGMSE_SDES",
    "enhance_like_sgmse",
    "is_sgmse_checkpoint",
    "load_sgmse_checkpoint",
    "read_sgmse_checkpoint",
    "sgmse_model_config",
    "step_seed",
    "validate",
]
