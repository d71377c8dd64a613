"""se_data: audio I/O, resampling, datasets, noise mixing, OOD / non-stationary sets, demo corpus.

Every function takes and records explicit sample rates (Hz); audio at the wrong rate is an
error that says how to resample, never silently used.
"""

__version__ = "0.1.0"

# --- I/O, resampling and datasets ------------------------------------------------------
from .audio_io import AudioInfo, audio_info, load_audio, save_audio
from .checkpoint_io import CHECKPOINT_FORMAT, CheckpointError, read_checkpoint, reader_of
from .collate import pad_collate
from .crop import PAD_POLICIES, crop_pair, crop_start, item_generator
from .datasets import PairedAudioDataset, PairedFolders, PairEntry, match_pairs
from .dns_challenge import DNSChallengeDataset
from .batches import epoch_batches, iterate_batches
from .corpus import DEMO_NOISE_CLASSES, TrainingCorpus, detect_layout, open_training_corpus
from .errors import AudioFileError, CorpusLayoutError, SampleRateError, cli_flags, fix_text, resample_hint
from .fingerprint import file_fingerprint, fingerprint_change, write_json_atomic
from .keyword_alias import keyword_alias
from .overlap_add import chunk_starts, chunked_apply, crossfade_weights
from .resample import RESAMPLE_FILTER, resample, resample_segment, resample_window, resampled_length, sinc_resample
from .resample_tree import ResampleReport, resample_tree
from .segment_io import load_segment
from .vbdemand import (
    VBDEMAND_TEST_NOISE_CLASSES,
    VBDEMAND_TEST_SPEAKERS,
    VBDEMAND_TRAIN_NOISE_CLASSES,
    VBDEMAND_TRAIN_SPEAKERS,
    VBDEMAND_VALID_SPEAKERS,
    VoiceBankDEMAND,
    find_vbdemand_log,
    read_vbdemand_log,
)

__all__ = [
    "AudioFileError",
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CorpusLayoutError",
    "DEMO_NOISE_CLASSES",
    "TrainingCorpus",
    "detect_layout",
    "epoch_batches",
    "iterate_batches",
    "open_training_corpus",
    "AudioInfo",
    "PAD_POLICIES",
    "PairEntry",
    "PairedAudioDataset",
    "PairedFolders",
    "RESAMPLE_FILTER",
    "ResampleReport",
    "SampleRateError",
    "VBDEMAND_TEST_NOISE_CLASSES",
    "VBDEMAND_TEST_SPEAKERS",
    "VBDEMAND_TRAIN_NOISE_CLASSES",
    "VBDEMAND_TRAIN_SPEAKERS",
    "VBDEMAND_VALID_SPEAKERS",
    "VoiceBankDEMAND",
    "DNSChallengeDataset",
    "audio_info",
    "chunk_starts",
    "chunked_apply",
    "crossfade_weights",
    "crop_pair",
    "crop_start",
    "find_vbdemand_log",
    "item_generator",
    "keyword_alias",
    "load_audio",
    "load_segment",
    "match_pairs",
    "pad_collate",
    "read_checkpoint",
    "reader_of",
    "read_vbdemand_log",
    "resample",
    "file_fingerprint",
    "fingerprint_change",
    "cli_flags",
    "fix_text",
    "resample_hint",
    "resample_segment",
    "resample_window",
    "resample_tree",
    "resampled_length",
    "save_audio",
    "sinc_resample",
    "write_json_atomic",
]
# --- end of I/O, resampling and datasets -------------------------------------------------

# --- noise, mixing, OOD sets and demo corpus -------------------------------------------
from .demo_corpus import DEFAULT_NOISE_WEIGHTS, DEMO_GENERATOR_VERSION, demo_corpus_dir, make_demo_corpus
from .mixing import MixInfo, fit_to_length, mix_at_snr, si_sdr_db
from .noise import ESC50, NoiseEntry, NoiseFolder, NoiseItem, NoiseSet, UrbanSound8K, load_noise, open_noise_set
from .noise_augment import TemporalAugment, augment_noise, mix_noises
from .ood import (
    OOD_TOOL_VERSION,
    OODRow,
    build_ood_set,
    pick_noise_offset,
    read_ood_manifest,
    rebuild_ood_set,
    sha256_file,
)
from .nonstationary import (
    add_events,
    compose_nonstationary,
    concat_noises,
    mix_with_snr_trajectory,
    snr_trajectory,
    synthetic_event,
)
from .noise_aug_dataset import NO_LABEL, UNKNOWN_NOISE_CLASS, NoiseAugmentedDataset, augment_generator, merge_class_names
from .nonstationary_set import (
    NONSTATIONARY_TOOL_VERSION,
    NonstationaryRow,
    build_nonstationary_set,
    read_nonstationary_manifest,
    rebuild_nonstationary_set,
)
from .speechlike import Speaker, random_speaker, synth_speech
from .synthetic_noise import babble_noise, brown_noise, colored_noise, pink_noise, synthetic_noise, white_noise

__all__ += [
    "DEFAULT_NOISE_WEIGHTS",
    "DEMO_GENERATOR_VERSION",
    "ESC50",
    "MixInfo",
    "NoiseEntry",
    "NoiseFolder",
    "NoiseItem",
    "NoiseSet",
    "OODRow",
    "OOD_TOOL_VERSION",
    "Speaker",
    "TemporalAugment",
    "UrbanSound8K",
    "add_events",
    "augment_noise",
    "babble_noise",
    "brown_noise",
    "build_ood_set",
    "colored_noise",
    "compose_nonstationary",
    "concat_noises",
    "demo_corpus_dir",
    "fit_to_length",
    "load_noise",
    "make_demo_corpus",
    "mix_at_snr",
    "mix_noises",
    "mix_with_snr_trajectory",
    "open_noise_set",
    "pick_noise_offset",
    "pink_noise",
    "random_speaker",
    "read_ood_manifest",
    "rebuild_ood_set",
    "sha256_file",
    "si_sdr_db",
    "snr_trajectory",
    "synth_speech",
    "synthetic_event",
    "synthetic_noise",
    "white_noise",
    # on-the-fly noise augmentation and non-stationary test sets
    "NONSTATIONARY_TOOL_VERSION",
    "NO_LABEL",
    "NoiseAugmentedDataset",
    "NonstationaryRow",
    "UNKNOWN_NOISE_CLASS",
    "augment_generator",
    "build_nonstationary_set",
    "merge_class_names",
    "read_nonstationary_manifest",
    "rebuild_nonstationary_set",
]
# --- end of noise, mixing, OOD sets and demo corpus -------------------------------------
