"""Error types raised by se_data for bad audio input.

Both derive from ``ValueError`` so callers that already catch ``ValueError`` keep working;
catch the specific class to tell a wrong sample rate from a broken file.
"""

from __future__ import annotations


class SampleRateError(ValueError):
    """Audio at another sample rate than the one asked for.

    The message always names the file (where there is one), both rates and the fix:
    ``resample=True`` to resample on load, or pre-resample a whole tree once with
    ``uv run tools/resample_dataset.py SRC DST --sr RATE`` (faster for training).
    """


class AudioFileError(ValueError):
    """A file that cannot be used as audio: missing, empty, corrupt, multi-channel where mono
    is required, or holding NaN/Inf samples. The message names the file and the fix."""


def resample_hint(target_sr: int) -> str:
    """The fix for a sample-rate mismatch, shared by every error message."""
    return (f"pass resample=True to resample on load, or resample the whole tree once with "
            f"`uv run tools/resample_dataset.py SRC DST --sr {target_sr}` (faster for training)")
