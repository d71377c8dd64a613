"""Older keyword spellings kept working (not part of the public API)."""

from __future__ import annotations


def sample_rate_alias(sample_rate: int | None, sr: int | None, where: str) -> int:
    """The sample rate (Hz) given as ``sample_rate`` or its older keyword alias ``sr``."""
    if sample_rate is not None and sr is not None:
        raise TypeError(f"{where}: give sample_rate or its alias sr, not both")
    value = sample_rate if sample_rate is not None else sr
    if value is None:
        raise TypeError(f"{where}: missing the sample rate: pass sample_rate=<Hz>")
    return value
