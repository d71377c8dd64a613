"""aa_distill: alias-free distillation of Neural Amp Modeler (NAM) teachers into TCN students.

Public API (everything else is private):

* ``.nam`` I/O — :func:`load_nam`, :func:`save_nam`, :func:`nam_document`,
  :func:`model_from_nam_dict`, :func:`nam_sha256`, :class:`NamFormatError`; the modules
  :class:`NamWaveNet` (with :class:`LayerArrayConfig`) and :class:`NamLSTM`.
* Bandlimiter, losses and metrics, sine-tone data, students, per-band metrics.
* A distillation run's parts — :class:`ToneDataSpec` (training tones, validation grid and
  the fingerprint of their cached targets), :func:`make_student`, :func:`student_config`,
  :func:`predict_last_second`, :func:`validation_metrics` (:data:`VALIDATION_METRICS`),
  the student's bf16 mixed precision (:func:`amp_forward`, :func:`amp_autocast`,
  :data:`AMP_DTYPES`),
  :func:`distillation_metadata`, :func:`builtin_teacher_record`,
  :func:`distillation_summary`.
* The teacher/student analysis (:mod:`aa_distill.analysis`) — :func:`model_outputs`,
  :func:`analyse_outputs` (:class:`ModelMetrics`), :func:`per_tone_rows`,
  :func:`per_band_rows`, :func:`per_tone_band_rows`, :func:`overall_rows`, :func:`mean_db`,
  :func:`target_verdicts`, :func:`target_summary`, :data:`ANALYSIS_METRICS`,
  :data:`ANALYSIS_TARGETS_DB`.
* Listening signals — :func:`exponential_sweep` (Farina's sine sweep) and :func:`plucked_string`
  (a Karplus-Strong guitar DI), for rendering audio through teachers and students.
"""

from .analysis import (
    ANALYSIS_METRICS,
    ANALYSIS_TARGETS_DB,
    ModelMetrics,
    analyse_outputs,
    mean_db,
    model_outputs,
    overall_rows,
    per_band_rows,
    per_tone_band_rows,
    per_tone_rows,
    target_summary,
    target_verdicts,
)

from .bandlimit import (
    CHEBYSHEV_ATTENUATION_DB,
    DEVICE_WINDOW_CACHE_SIZE,
    HOST_WINDOW_CACHE_SIZE,
    Bandlimiter,
    BandlimitResult,
    HarmonicAnalysis,
    bandlimit,
    chebyshev_window,
    harmonic_analysis,
    synthesize_harmonics,
)
from .band_metrics import (
    ANALYSIS_BANDS_HZ,
    analysis_tone_params,
    asr_per_band,
    band_label,
    band_membership,
    esr_per_band,
    group_nmr_band_ratios,
    hesr_per_band,
    nmr_per_band,
    spectral_band_shares,
)
from .distill_loss import DistillationLoss
from .excitation import GUITAR_OPEN_STRINGS_HZ, exponential_sweep, plucked_string
from .errors import NamFormatError
from .losses import (
    DCLoss,
    ESRLoss,
    HarmonicMagnitudeLoss,
    asr,
    curriculum_lambda,
    dc_loss,
    esr,
    hesr,
    hesr_parts,
    lambda_weights,
)
from .lowpass import KaiserLowpass, kaiser_lowpass_taps
from .nam_base import NAM_DEFAULT_SAMPLE_RATE, NAM_WRITE_VERSION, NamModel
from .nam_io import (
    SUPPORTED_ARCHITECTURES,
    load_nam,
    model_from_nam_dict,
    nam_document,
    nam_sha256,
    save_nam,
)
from .nam_lstm import NamLSTM, lstm_num_weights
from .nmr import NMR, NMRLoss, nmr_db
from .precision import AMP_DTYPES, amp_autocast, amp_forward
from .nam_wavenet import LayerArrayConfig, NamWaveNet, wavenet_num_weights

from .student import (
    WAVENET_PRESETS,
    builtin_teacher_record,
    check_teacher_student_pair,
    distillation_metadata,
    make_student,
    student_config,
    student_from_teacher,
    student_metadata,
    student_wavenet,
    teacher_record,
)
from .waveshaper import OversampledWaveshaper
from .tones import (
    F0_SAMPLINGS,
    LINEAR_F0_RANGE_HZ,
    MIDI_RANGE,
    SineToneDataset,
    ToneDataSpec,
    ToneParams,
    check_warmup,
    midi_to_hz,
    sample_tone_params,
    synthesize_tones,
    teacher_targets,
    validation_tone_params,
)
from .training import (
    VALIDATION_METRICS,
    distillation_summary,
    predict_last_second,
    validation_metrics,
)

__all__ = [
    "ANALYSIS_METRICS",
    "ANALYSIS_TARGETS_DB",
    "ModelMetrics",
    "analyse_outputs",
    "mean_db",
    "model_outputs",
    "overall_rows",
    "per_band_rows",
    "per_tone_band_rows",
    "per_tone_rows",
    "target_summary",
    "target_verdicts",
    "DEVICE_WINDOW_CACHE_SIZE",
    "HOST_WINDOW_CACHE_SIZE",
    "ANALYSIS_BANDS_HZ",
    "OversampledWaveshaper",
    "analysis_tone_params",
    "asr_per_band",
    "band_label",
    "band_membership",
    "esr_per_band",
    "group_nmr_band_ratios",
    "hesr_per_band",
    "nmr_per_band",
    "spectral_band_shares",
    "MIDI_RANGE",
    "F0_SAMPLINGS",
    "LINEAR_F0_RANGE_HZ",
    "SineToneDataset",
    "ToneParams",
    "WAVENET_PRESETS",
    "ToneDataSpec",
    "VALIDATION_METRICS",
    "builtin_teacher_record",
    "check_teacher_student_pair",
    "distillation_metadata",
    "distillation_summary",
    "make_student",
    "predict_last_second",
    "AMP_DTYPES",
    "amp_autocast",
    "amp_forward",
    "student_config",
    "validation_metrics",
    "check_warmup",
    "midi_to_hz",
    "sample_tone_params",
    "student_from_teacher",
    "student_metadata",
    "student_wavenet",
    "synthesize_tones",
    "teacher_record",
    "teacher_targets",
    "validation_tone_params",
    "CHEBYSHEV_ATTENUATION_DB",
    "BandlimitResult",
    "Bandlimiter",
    "DCLoss",
    "DistillationLoss",
    "ESRLoss",
    "HarmonicAnalysis",
    "HarmonicMagnitudeLoss",
    "KaiserLowpass",
    "NMR",
    "NMRLoss",
    "nmr_db",
    "asr",
    "bandlimit",
    "chebyshev_window",
    "curriculum_lambda",
    "dc_loss",
    "esr",
    "harmonic_analysis",
    "hesr",
    "hesr_parts",
    "kaiser_lowpass_taps",
    "lambda_weights",
    "synthesize_harmonics",
    "NAM_DEFAULT_SAMPLE_RATE",
    "NAM_WRITE_VERSION",
    "SUPPORTED_ARCHITECTURES",
    "LayerArrayConfig",
    "NamFormatError",
    "NamLSTM",
    "NamModel",
    "NamWaveNet",
    "load_nam",
    "lstm_num_weights",
    "model_from_nam_dict",
    "nam_document",
    "nam_sha256",
    "save_nam",
    "wavenet_num_weights",
    "GUITAR_OPEN_STRINGS_HZ",
    "exponential_sweep",
    "plucked_string",
]
__version__ = "0.1.0"
