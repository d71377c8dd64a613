"""Range-checked argparse types for the numeric flags of every tool in tools/ (not a public API).

One CLI contract: every numeric flag is checked when the command line is parsed, before
anything is read or written. A value that is not a number, is NaN or infinite, or lies outside
the flag's declared range is an argparse error naming the flag and the range, exit status 2::

    train_bsdt.py: error: argument --epochs: invalid value '-1': expected an integer with x >= 1

Each type is a :class:`Range` (or :class:`RangeList` for comma-separated lists) that declares
its range (``low``, ``high``, ``low_open``, ``high_open``, ``integer``, ``allow_none``), so
tests/test_tools_cli_ranges.py can walk every parser and probe every bound. Call
:func:`annotate_help` on a finished parser to add each numeric flag's range to its ``--help``.
Checks between flags (e.g. ``--overlap-seconds`` below ``--chunk-seconds``) belong in the tool's
``parse_args`` right after parsing, with ``p.error`` (see :func:`check_less`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = [
    "Range", "RangeList", "int_range", "positive_int", "nonneg_int", "float_range", "optional", "int_list",
    "seconds", "PROBABILITY", "SNR_DB", "SAMPLE_RATE_HZ", "LEVEL_DBFS", "SEED", "THREADS", "WORKERS", "LOADER_WORKERS",
    "INFERENCE_BATCH", "LEARNING_RATE", "GUIDANCE_SCALE", "MIDI_NOTE", "FREQUENCY_HZ", "annotate_help",
    "range_actions",
    "check_less",
]


def _num(v: float) -> str:
    """A bound as people write it: 1000 not 1000.0, 1e-09 kept exact."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


@dataclass(frozen=True)
class Range:
    """An argparse ``type``: a finite number (or an integer) in ``[low, high]``; ``low_open`` /
    ``high_open`` exclude the bound, ``None`` leaves that side unbounded (the value must still
    be finite). ``allow_none``: the word ``none`` gives ``None`` (the flag's "no limit").
    ``noun`` names what is expected in messages, ``unit`` the unit shown in ``--help``."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    allow_none: bool = False
    noun: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"Range.{name} must be finite or None, got {v!r}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"Range needs low < high, got {self.low} and {self.high}")
        if not self.noun:
            object.__setattr__(self, "noun", "an integer" if self.integer else "a finite number")

    # argparse shows ``type.__name__`` for %(type)s in help strings
    @property
    def __name__(self) -> str:  # type: ignore[override]
        return self.noun

    # ---------------------------------------------------------------- the range in words
    def bounds_text(self, sep: str = " ") -> str:
        """``"x >= 1"``, ``"0 <= x < 1"``, ``"x > 0"``, ``"any finite x"`` (``sep=""``: ``"x>=1"``)."""
        lo = None if self.low is None else f"{_num(self.low)}{sep}{'<' if self.low_open else '<='}{sep}"
        hi = None if self.high is None else f"{sep}{'<' if self.high_open else '<='}{sep}{_num(self.high)}"
        if lo is not None and hi is not None:
            return f"{lo}x{hi}"
        if lo is not None:
            return f"x{sep}{'>' if self.low_open else '>='}{sep}{_num(self.low)}"  # type: ignore[arg-type]
        if hi is not None:
            return f"x{hi}"
        return "any finite x"

    def describe(self) -> str:
        """What the error message expects: ``"an integer with x >= 1"``."""
        text = f"{self.noun} with {self.bounds_text()}"
        return text + (", or 'none'" if self.allow_none else "")

    def help_text(self) -> str:
        """The range as ``--help`` shows it (no spaces inside, so it never wraps apart):
        ``"integer x>=1"``, ``"0<=x<=1"``, ``"x>0 s"``."""
        text = ("integer " if self.integer else "") + self.bounds_text("") + (f" {self.unit}" if self.unit else "")
        return text + (", or none" if self.allow_none else "")

    # ---------------------------------------------------------------- checking
    def contains(self, value: Any) -> bool:
        """Whether ``value`` (a parsed value, ``None`` included) is inside the declared range."""
        if value is None:
            return self.allow_none
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not float(value).is_integer():
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return not (self.high is not None and (v > self.high or (self.high_open and v == self.high)))

    def _error(self, text: str) -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(f"invalid value {text!r}: expected {self.describe()}")

    def __call__(self, text: str) -> Any:
        s = str(text).strip()
        if self.allow_none and s.lower() == "none":
            return None
        try:
            value: float | int = int(s, 10) if self.integer else float(s)
        except ValueError:
            raise self._error(text) from None
        if not self.contains(value):
            raise self._error(text)
        return value

    def __repr__(self) -> str:
        return f"Range({self.help_text()})"

    def but(self, **changes: Any) -> "Range":
        """A copy with some fields changed, e.g. ``LEVEL_DBFS.but(noun=...)``."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, repr=False)
class RangeList(Range):
    """A comma-separated list of values of the range (``"16,32,64"`` -> ``(16, 32, 64)``), at
    least one; the declared range applies to every item."""

    def describe(self) -> str:
        return f"a comma-separated list of {self.noun.split(' ', 1)[-1]}s, each with {self.bounds_text()}"

    def help_text(self) -> str:
        return "each item " + super().help_text()

    def __call__(self, text: str) -> tuple[Any, ...]:
        items = [t.strip() for t in str(text).split(",") if t.strip()]
        if not items:
            raise self._error(text)
        out = []
        for item in items:
            try:
                out.append(Range.__call__(self, item))
            except argparse.ArgumentTypeError:
                raise self._error(text) from None
        return tuple(out)


# ----------------------------------------------------------------------------- factories
def int_range(low: int | None = None, high: int | None = None, *, noun: str = "", unit: str = "") -> Range:
    """An integer in ``[low, high]`` (either side may be ``None``: unbounded)."""
    return Range(integer=True, low=low, high=high, noun=noun, unit=unit)


def positive_int(high: int | None = None, *, noun: str = "", unit: str = "") -> Range:
    """An integer >= 1 (and <= ``high`` if given): counts, sizes, steps."""
    return int_range(1, high, noun=noun, unit=unit)


def nonneg_int(high: int | None = None, *, noun: str = "", unit: str = "") -> Range:
    """An integer >= 0 (and <= ``high``): counts where 0 means "none" / "off"."""
    return int_range(0, high, noun=noun, unit=unit)


def float_range(low: float | None = None, high: float | None = None, *, low_open: bool = False,
                high_open: bool = False, noun: str = "", unit: str = "") -> Range:
    """A finite number in the interval; ``float_range(0, 1, low_open=True)`` is ``(0, 1]``."""
    return Range(integer=False, low=low, high=high, low_open=low_open, high_open=high_open, noun=noun, unit=unit)


def seconds(high: float | None = None, *, low: float = 0.0, low_open: bool = True) -> Range:
    """A duration in seconds, ``> 0`` by default (``low_open=False``: ``>= low``)."""
    return float_range(low, high, low_open=low_open, noun="a duration in seconds", unit="s")


def optional(t: Range) -> Range:
    """``t`` that also accepts ``none`` (-> ``None``): for flags whose default ``None`` means
    "all" / "no cap", so the default can be given explicitly."""
    return t.but(allow_none=True)


def int_list(low: int | None = 1, high: int | None = None, *, noun: str = "an integer") -> RangeList:
    """Comma-separated integers, each in ``[low, high]`` (default: each >= 1)."""
    return RangeList(integer=True, low=low, high=high, noun=noun)


#: a probability / fraction in [0, 1]
PROBABILITY = float_range(0.0, 1.0, noun="a probability")
#: a mixing SNR in dB: -50 dB is noise 100 000 times the speech power, 80 dB inaudible noise;
#: beyond that a mixture is all noise or all speech (the research uses 0 / 5 / 10 dB)
SNR_DB = float_range(-50.0, 80.0, noun="an SNR in dB", unit="dB")
#: an audio sample rate in Hz (1 kHz .. 768 kHz)
SAMPLE_RATE_HZ = int_range(1000, 768_000, noun="a sample rate in Hz (integer)", unit="Hz")
#: a signal level in dBFS: at most full scale, at least -120 dBFS (below 24-bit resolution)
LEVEL_DBFS = float_range(-120.0, 0.0, noun="a level in dBFS", unit="dBFS")
#: a random seed: NumPy and torch both take 0 .. 2^32 - 1 everywhere
SEED = int_range(0, 2**32 - 1, noun="a seed (integer)")
#: torch CPU threads; 0 is the same as leaving the flag out (torch's choice / the tool's default)
THREADS = int_range(0, 1024, noun="a thread count (integer)")
#: worker processes (no upper bound: the default is the machine's core count)
WORKERS = int_range(1, None, noun="a worker count (integer)")
#: DataLoader worker processes of a trainer; 0 loads in the training process itself
LOADER_WORKERS = int_range(0, 256, noun="a worker count (integer)")
#: files per forward pass of an enhancement tool (--batch-size; 1: one at a time)
INFERENCE_BATCH = int_range(1, 1024, noun="a batch size (files per forward pass)")
#: an optimiser learning rate (no upper bound: a diverging rate is caught as a non-finite loss)
LEARNING_RATE = float_range(0.0, None, low_open=True, noun="a learning rate")
#: a classifier-free guidance scale w (s = s_u + w (s_c - s_u)): 0 unconditional, 1 conditional,
#: > 1 stronger conditioning (the research uses 1..7)
GUIDANCE_SCALE = float_range(0.0, 20.0, noun="a guidance scale")
#: a (non-integer) MIDI note number; 140 is about 26.6 kHz
MIDI_NOTE = float_range(0.0, 140.0, noun="a MIDI note number")
#: a frequency in Hz (> 0; below Nyquist is checked where the rate is known)
FREQUENCY_HZ = float_range(0.0, None, low_open=True, noun="a frequency in Hz", unit="Hz")


# ----------------------------------------------------------------------------- parsers
def range_actions(parser: argparse.ArgumentParser) -> list[tuple[argparse.ArgumentParser, argparse.Action]]:
    """``(parser, action)`` for every action of ``parser`` and of its sub-parsers (argument
    groups share their parser's actions)."""
    out: list[tuple[argparse.ArgumentParser, argparse.Action]] = []
    for a in parser._actions:
        out.append((parser, a))
        if isinstance(a, argparse._SubParsersAction):
            for sub in dict.fromkeys(a.choices.values()):  # aliases map to the same parser
                out += range_actions(sub)
    return out


def annotate_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Append ``[range: ...]`` to the help of every flag typed with a :class:`Range` (once)."""
    for _, a in range_actions(parser):
        if isinstance(a.type, Range) and a.help is not argparse.SUPPRESS and "[range:" not in (a.help or ""):
            a.help = f"{a.help or ''} [range: {a.type.help_text()}]".strip()
    return parser


def check_less(p: argparse.ArgumentParser, small: tuple[str, float | None], big: tuple[str, float | None], *,
               strict: bool = True, why: str = "") -> None:
    """``p.error`` unless ``small < big`` (``<=`` when not ``strict``); ``(flag, value)`` pairs,
    a ``None`` value skips the check."""
    (a, x), (b, y) = small, big
    if x is None or y is None:
        return
    if (x >= y) if strict else (x > y):
        p.error(f"{a} ({_num(x)}) must be {'less than' if strict else 'at most'} {b} ({_num(y)})"
                + (f": {why}" if why else ""))


def check_distinct(p: argparse.ArgumentParser, flag: str, values: Sequence[Any] | None) -> None:
    """``p.error`` if a list flag repeats a value."""
    if values is not None and len(set(values)) != len(values):
        p.error(f"{flag}: the values must be distinct, got {' '.join(_num(v) for v in values)}")
