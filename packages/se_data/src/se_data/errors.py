"""Error types shared by the toolkit's packages for bad audio input.

:class:`SampleRateError` is the one sample-rate error family: ``bandsplit``, ``sgmse_cfg`` and
``se_metrics`` raise it or a subclass, so ``except se_data.SampleRateError`` catches a wrong
rate from any of them. Both classes derive from ``ValueError`` so callers that already catch
``ValueError`` keep working.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Mapping


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


#: What a command-line user does instead of an API keyword the tool has no flag for.
_CLI_FALLBACK: Mapping[str, str] = {
    "mono": ("convert it to mono first, e.g. `sox IN.wav -c 1 OUT.wav` or `ffmpeg -i IN.wav -ac 1 OUT.wav` "
             "(mean downmix)"),
    "allow_truncated": "re-create or re-download the file",
}
_FLAGS: contextvars.ContextVar[Mapping[str, str | None] | None] = contextvars.ContextVar(
    "se_data_cli_flags", default=None)


@contextlib.contextmanager
def cli_flags(**flags: str | None) -> Iterator[None]:
    """Phrase error fixes for a command-line tool while active.

    Each keyword is an API option a fix may name (``resample``, ``mono``, ``allow_truncated``)
    and its value the tool's flag (``resample="--resample"``) or ``None`` where the tool has
    none. Inside the block, messages say "pass `--resample`" instead of "pass resample=True",
    and for an option without a flag they say what to do outside the tool (for ``mono``: how to
    convert the file). Outside any block, messages name the API keywords. Context-local, so
    threads and nested tools keep their own phrasing.
    """
    token = _FLAGS.set(dict(flags))
    try:
        yield
    finally:
        _FLAGS.reset(token)


def fix_text(keyword: str, api_fix: str, *, does: str = "") -> str:
    """The fix naming API option ``keyword``: ``api_fix`` (e.g. ``"pass mono=True to average the
    channels"``) in library use; inside :func:`cli_flags`, "pass `FLAG` {does}" where the tool has
    a flag for ``keyword``, else what a command-line user does instead."""
    flags = _FLAGS.get()
    if flags is None:
        return api_fix
    flag = flags.get(keyword)
    if flag:
        return f"pass `{flag}`" + (f" {does}" if does else "")
    return _CLI_FALLBACK.get(keyword, api_fix)


def resample_hint(target_sample_rate: int, *, tool_flag: str | None = None) -> str:
    """The fix for a sample-rate mismatch, shared by every error message.

    Names what a pip user has (``se_data.resample`` / ``resample=True`` on load) and, where
    the error comes from a tool (``tool_flag="--resample"``, or a ``resample`` flag given to
    an active :func:`cli_flags`), that tool's flag and the repository's whole-tree resampler.
    Inside :func:`cli_flags` no API keyword is named.
    """
    flags = _FLAGS.get()
    if tool_flag is None and flags is not None:
        tool_flag = flags.get("resample")
    tool = f"`uv run tools/resample_dataset.py SRC DST --sr {target_sample_rate}`"
    if flags is not None:  # a command-line user: flags and tools only
        first = f"pass `{tool_flag}` to resample on load, or " if tool_flag else ""
        return first + f"for a whole dataset, resample it once with {tool}, which is faster for training"
    fix = (f"resample to {target_sample_rate} Hz first: se_data.resample(audio, orig_sample_rate, "
           f"{target_sample_rate}), or se_data.load_audio(path, sample_rate={target_sample_rate}, "
           f"resample=True)")
    if tool_flag:
        fix = f"pass {tool_flag} to resample on load, or " + fix
    return (fix + f"; for a whole dataset, resample it once with se_data.resample_tree ({tool} in the "
                  f"repository), which is faster for training")
