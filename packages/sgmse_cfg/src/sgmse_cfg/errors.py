"""Error types raised by sgmse_cfg for bad input.

Both derive from ``ValueError`` so callers that already catch ``ValueError`` keep working.
"""

from __future__ import annotations


class SampleRateError(ValueError):
    """Audio at another sample rate than the transform / model was built for.

    The message names both rates and the fix: resample on load with
    ``se_data.load_audio(path, sr=16000, resample=True)`` or resample a whole tree once with
    ``uv run tools/resample_dataset.py SRC DST --sr 16000``.
    """


class BadAudioError(ValueError):
    """Audio that cannot be enhanced or transformed: NaN/Inf, silent, or malformed shape."""


def resample_fix(target_sr: int) -> str:
    """The fix for a sample-rate mismatch, shared by every error message."""
    return (f"resample it first: se_data.load_audio(path, sr={target_sr}, resample=True), "
            f"or resample the whole dataset once with "
            f"`uv run tools/resample_dataset.py SRC DST --sr {target_sr}`")
