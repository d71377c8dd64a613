"""Error types raised by sgmse_cfg for bad input.

``SampleRateError`` is the toolkit's one sample-rate error (a subclass of
``se_data.SampleRateError``, so ``except se_data.SampleRateError`` catches it); its messages end
with ``se_data.resample_hint``, the fix a user of the installed packages has. All errors here
derive from ``ValueError`` so callers that already catch ``ValueError`` keep working.
"""

from __future__ import annotations

import se_data

__all__ = ["BadAudioError", "CheckpointError", "SampleRateError"]


class SampleRateError(se_data.SampleRateError):
    """Audio at another sample rate than the transform / model was built for.

    The message names both rates and the fix (:func:`se_data.resample_hint`): resample with
    ``se_data.resample(audio, orig_sample_rate, 16000)`` or on load with
    ``se_data.load_audio(path, sample_rate=16000, resample=True)``.
    """


class BadAudioError(ValueError):
    """Audio that cannot be enhanced or transformed: NaN/Inf, silent, or malformed shape."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot give a model: unreadable, not written by this toolkit's
    ``tools/train_sgmse.py``, or holding weights that do not fit its own config. The message
    names the file and the fix."""
