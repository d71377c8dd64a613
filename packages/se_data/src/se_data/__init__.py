"""se_data: audio I/O, resampling, datasets, noise mixing, OOD / non-stationary sets, demo corpus.

Every function takes and records explicit sample rates (Hz); audio at the wrong rate is an
error that says how to resample, never silently used.
"""

__version__ = "0.1.0"

# --- I/O, resampling and datasets ------------------------------------------------------
from .audio_io import AudioInfo, audio_info, load_audio, save_audio
from .errors import AudioFileError, SampleRateError
from .resample import RESAMPLE_FILTER, resample, resampled_length
from .resample_tree import ResampleReport, resample_tree

__all__ = [
    "AudioFileError",
    "AudioInfo",
    "RESAMPLE_FILTER",
    "ResampleReport",
    "SampleRateError",
    "audio_info",
    "load_audio",
    "resample",
    "resample_tree",
    "resampled_length",
    "save_audio",
]
# --- end of I/O, resampling and datasets -------------------------------------------------
