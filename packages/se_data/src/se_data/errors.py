"""Error types shared by the toolkit's packages for bad audio input.

:class:`SampleRateError` is the one sample-rate error family: ``bandsplit``, ``sgmse_cfg`` and
``se_metrics`` raise it or a subclass, so ``except se_data.SampleRateError`` catches a wrong
rate from any of them. Both classes derive from ``ValueError`` so callers that already catch
``ValueError`` keep working.
"""

from __future__ import annotations


class SampleRateError(ValueError):
    """Audio at another sample rate than the one asked for.

    The message always names the file (where there is one), both rates and a fix that a user
    of the installed package has (:func:`resample_hint`): ``se_data.resample``, or
    ``resample=True`` on load.
    """


class AudioFileError(ValueError):
    """A file that cannot be used as audio: missing, empty, corrupt, multi-channel where mono
    is required, or holding NaN/Inf samples. The message names the file and the fix."""


class CorpusLayoutError(ValueError):
    """A corpus folder that is missing or has none of the layouts :func:`se_data.detect_layout`
    knows. The message names the folder and the layouts expected."""


def resample_hint(target_sample_rate: int, *, tool_flag: str | None = None) -> str:
    """The fix for a sample-rate mismatch, shared by every error message.

    Names what a pip user has (``se_data.resample`` / ``resample=True`` on load) and, where
    the error comes from a tool, that tool's flag (``tool_flag="--resample"``) and the
    repository's whole-tree resampler.
    """
    fix = (f"resample to {target_sample_rate} Hz first: se_data.resample(audio, orig_sample_rate, "
           f"{target_sample_rate}), or se_data.load_audio(path, sample_rate={target_sample_rate}, "
           f"resample=True)")
    if tool_flag:
        fix = f"pass {tool_flag} to resample on load, or " + fix
    return (fix + f"; for a whole dataset, resample it once with se_data.resample_tree "
                  f"(`uv run tools/resample_dataset.py SRC DST --sr {target_sample_rate}` in the "
                  f"repository), which is faster for training")
