"""Teacher loading and teacher/student pairing shared by tools/train_aa.py and
tools/analyze_aa.py (not a public API).

A teacher is either a ``.nam`` file (WaveNet or LSTM) or the built-in analytic teacher
(``--teacher builtin``, or no ``--teacher`` in train_aa): an oversampled waveshaper
(:class:`aa_distill.OversampledWaveshaper`), so the tools run without any capture file.
A student records its teacher in its ``.nam`` metadata (``metadata["aa_distill"]``): the
file's SHA-256 and sample rate, or the built-in teacher's settings.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import _argtypes as T
from aa_distill import (
    NamFormatError,
    NamModel,
    OversampledWaveshaper,
    builtin_teacher_record,
    check_teacher_student_pair,
    load_nam,
    teacher_record,
)

BUILTIN = "builtin"


@dataclass
class Teacher:
    """A loaded teacher: the module (float64, eval mode), where it came from and what a
    student distilled from it records."""

    module: torch.nn.Module
    path: Path | None  # None for the built-in teacher
    sample_rate: int
    receptive_field: int
    record: dict[str, Any]
    name: str

    @property
    def is_builtin(self) -> bool:
        return self.path is None


def add_teacher_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_argument_group("teacher")
    g.add_argument("--teacher", default=None, required=required,
                   metavar="T.nam",
                   help="the teacher: a .nam file (WaveNet or LSTM, format 0.5.x), or 'builtin' for "
                        "the analytic teacher below" + ("" if required else
                                                         " (default: builtin)"))
    g.add_argument("--builtin-shape", choices=["hardclip", "tanh"], default="hardclip",
                   help="built-in teacher's nonlinearity: hardclip = clamp(g x, -1, 1), tanh = tanh(g x) "
                        "(default hardclip: at 8x oversampling tanh is nearly alias-free, leaving nothing "
                        "to distil)")
    g.add_argument("--builtin-gain", type=T.float_range(0.0, None, low_open=True), default=10.0,
                   help="built-in teacher's pre-gain g (default 10)")
    g.add_argument("--builtin-oversample", type=T.positive_int(), default=8,
                   help="built-in teacher's oversampling factor, polyphase Kaiser up/down-sampling "
                        "(default 8; 1 = the naive waveshaper at the base rate)")
    g.add_argument("--builtin-rate", type=T.SAMPLE_RATE_HZ, default=48_000,
                   help="built-in teacher's sample rate in Hz, even (default 48000)")


def builtin_nyquist(args: argparse.Namespace) -> float | None:
    """Nyquist of the built-in teacher when it is the teacher (known at parse time), else None."""
    return args.builtin_rate / 2 if args.teacher in (None, BUILTIN) else None


def check_teacher_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks of the teacher flags right after parsing (``p.error``)."""
    if args.teacher in (None, BUILTIN) and args.builtin_rate % 2:
        p.error(f"--builtin-rate {args.builtin_rate} must be even (the 1 Hz-bin bandlimiter needs an even rate)")


def _fail(msg: str) -> SystemExit:
    return SystemExit(f"error: {msg}")


def load_teacher(args: argparse.Namespace) -> Teacher:
    """The teacher named by ``args.teacher`` (``None``/``"builtin"``: the analytic teacher), in
    float64; exits with a clear message for a missing or malformed file."""
    if args.teacher in (None, BUILTIN):
        try:
            mod = OversampledWaveshaper(args.builtin_rate, gain=args.builtin_gain,
                                        factor=args.builtin_oversample, shape=args.builtin_shape)
        except ValueError as e:
            raise _fail(f"built-in teacher: {e}") from None
        mod = mod.to(torch.float64).eval()
        return Teacher(mod, None, mod.sample_rate, mod.receptive_field, builtin_teacher_record(mod),
                       f"built-in {mod.describe()}")
    path = Path(args.teacher)
    if not path.is_file():
        raise _fail(f"--teacher {path}: no such file (give a .nam file, or 'builtin')")
    try:
        mod = load_nam(path, dtype=torch.float64)
    except NamFormatError as e:
        raise _fail(f"--teacher: {e}") from None
    fs = mod.sample_rate
    if not float(fs).is_integer():
        raise _fail(f"--teacher {path}: sample rate {fs} Hz is not an integer; the 1 Hz-bin "
                    f"bandlimiter needs an integer (even) rate")
    note = " (no sample_rate in the file: NAM's standard 48 kHz assumed)" if mod.sample_rate_assumed else ""
    return Teacher(mod, path, int(fs), mod.receptive_field, teacher_record(path, mod),
                   f"{path.name} ({mod.architecture}, {int(fs)} Hz{note})")


def load_student(path: str | Path, dtype: torch.dtype = torch.float64) -> NamModel:
    path = Path(path)
    if not path.is_file():
        raise _fail(f"--student {path}: no such file")
    try:
        return load_nam(path, dtype=dtype)
    except NamFormatError as e:
        raise _fail(f"--student: {e}") from None


def check_pair(teacher: Teacher, student: NamModel, student_path: str | Path) -> str:
    """``"verified"`` or ``"unverified"`` (warn then); exits with an error for a pair that is
    certainly wrong (other sample rate, another teacher's hash or built-in settings), see
    :func:`aa_distill.check_teacher_student_pair`."""
    try:
        return check_teacher_student_pair(teacher.module, student, teacher.path)
    except ValueError as e:
        hint = "; give its teacher, or the --builtin-* flags it was trained with" if teacher.is_builtin else ""
        raise _fail(f"refusing the pair {teacher.name} / {Path(student_path).name}: {e}{hint}") from None


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)
