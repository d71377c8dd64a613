"""WaveNet-style student TCNs that are valid ``.nam`` WaveNets, and the teacher record they
carry.

A student is a :class:`NamWaveNet`: ``save_nam(student, path)`` writes a file that
:func:`load_nam` and NAM players read, and the reloaded model gives identical outputs. Its
``metadata["aa_distill"]`` records the teacher it was distilled from (SHA-256 of the
teacher file, sample rate, name; or the built-in :class:`OversampledWaveshaper`'s
settings), so an analysis can refuse a mismatched pair.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .nam_base import NamModel
from .nam_io import nam_sha256
from .nam_wavenet import LayerArrayConfig, NamWaveNet
from .waveshaper import OversampledWaveshaper

_DILATIONS = tuple(2 ** i for i in range(10))  # 1 .. 512
_LITE_FIRST = tuple(2 ** i for i in range(7))  # 1 .. 64
_LITE_SECOND = (128, 256, 512) + _DILATIONS

#: NAM's WaveNet presets (neural-amp-modeler ``get_wavenet_config``): channels of the two
#: layer arrays and their dilations. All: kernel 3, Tanh, ungated, head_bias False/True,
#: head_scale 0.02, receptive field 4093 samples.
WAVENET_PRESETS: dict[str, tuple[int, int, tuple[int, ...], tuple[int, ...]]] = {
    "standard": (16, 8, _DILATIONS, _DILATIONS),
    "lite": (12, 6, _LITE_FIRST, _LITE_SECOND),
    "feather": (8, 4, _LITE_FIRST, _LITE_SECOND),
    "nano": (4, 2, _LITE_FIRST, _LITE_SECOND),
}

METADATA_KEY = "aa_distill"


def student_wavenet(preset: str = "standard", *, sample_rate: int,
                    channels: tuple[int, int] | None = None,
                    dilations: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
                    kernel_size: int = 3, activation: str = "Tanh", gated: bool = False,
                    head_scale: float = 0.02, seed: int | None = None,
                    metadata: dict | None = None) -> NamWaveNet:
    """A fresh two-array NAM WaveNet student (float32, PyTorch default init).

    ``preset`` is one of :data:`WAVENET_PRESETS`; ``channels`` / ``dilations`` override it.
    ``sample_rate`` is required (the teacher's). ``seed`` makes the initialisation
    reproducible without touching the global RNG.
    """
    if preset not in WAVENET_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(WAVENET_PRESETS)}")
    c1, c2, d1, d2 = WAVENET_PRESETS[preset]
    if channels is not None:
        c1, c2 = channels
    if dilations is not None:
        d1, d2 = dilations
    layers = [LayerArrayConfig(1, 1, c2, c1, kernel_size, tuple(d1), activation, gated, False),
              LayerArrayConfig(c1, 1, 1, c2, kernel_size, tuple(d2), activation, gated, True)]
    if seed is None:
        return NamWaveNet(layers, head_scale, sample_rate=sample_rate, metadata=metadata)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NamWaveNet(layers, head_scale, sample_rate=sample_rate, metadata=metadata)


def student_from_teacher(teacher: NamWaveNet, dtype: torch.dtype = torch.float32) -> NamWaveNet:
    """A student initialised as a copy of a WaveNet teacher (Carson et al. fine-tune the
    teacher itself). Metadata other than the teacher's name is dropped (its loudness no
    longer describes the student)."""
    if not isinstance(teacher, NamWaveNet):
        raise TypeError(f"student_from_teacher needs a NamWaveNet teacher, got "
                        f"{type(teacher).__name__}")
    student = copy.deepcopy(teacher).to(dtype)
    student.metadata = None
    student.extra = {}
    return student


def make_student(teacher: torch.nn.Module, kind: str = "auto", *, sample_rate: int,
                 channels: tuple[int, int] | None = None,
                 dilations1: Sequence[int] | None = None, dilations2: Sequence[int] | None = None,
                 kernel_size: int = 3, activation: str = "Tanh", gated: bool = False,
                 head_scale: float = 0.02, seed: int | None = None) -> tuple[NamWaveNet, str]:
    """The student to distil ``teacher`` into, and its kind: ``(student, kind)``, float32.

    ``kind``: ``"teacher"`` fine-tunes a copy of a :class:`NamWaveNet` teacher (Carson et
    al.'s method, :func:`student_from_teacher`); a :data:`WAVENET_PRESETS` name builds a
    fresh WaveNet of that size at ``sample_rate`` Hz (:func:`student_wavenet`, initialised
    from ``seed``), with ``channels`` (the two layer arrays'), ``dilations1`` /
    ``dilations2`` (each replaces one array's preset dilations) and the other arguments
    overriding the preset; ``"auto"`` is ``"teacher"`` for a WaveNet teacher and ``"nano"``
    otherwise. The returned kind is the resolved one. Raises ``ValueError`` for a
    non-WaveNet teacher with ``"teacher"``, for overrides of a fine-tuned teacher, and for
    settings :func:`student_wavenet` refuses.
    """
    if kind == "auto":
        kind = "teacher" if isinstance(teacher, NamWaveNet) else "nano"
    if kind == "teacher":
        if not isinstance(teacher, NamWaveNet):
            raise ValueError(f"fine-tuning the teacher needs a WaveNet teacher, but this "
                             f"{type(teacher).__name__} is not one; choose a preset "
                             f"({', '.join(WAVENET_PRESETS)})")
        if any(v is not None for v in (channels, dilations1, dilations2)):
            raise ValueError("channels / dilations shape a fresh student; they do not apply "
                             "when fine-tuning the teacher")
        return student_from_teacher(teacher, torch.float32), "teacher"
    if kind not in WAVENET_PRESETS:
        raise ValueError(f"unknown student kind {kind!r}; choose auto, teacher or a preset "
                         f"({', '.join(WAVENET_PRESETS)})")
    dil = None
    if dilations1 is not None or dilations2 is not None:
        d1, d2 = WAVENET_PRESETS[kind][2:]
        dil = (tuple(dilations1 or d1), tuple(dilations2 or d2))
    student = student_wavenet(kind, sample_rate=sample_rate,
                              channels=tuple(channels) if channels else None, dilations=dil,
                              kernel_size=kernel_size, activation=activation, gated=gated,
                              head_scale=head_scale, seed=seed)
    return student, kind


def student_config(student: NamWaveNet, kind: str) -> dict:
    """What identifies a student's architecture in a checkpoint: ``{"kind", "config" (its
    ``.nam`` config), "sample_rate" (Hz), "receptive_field" (samples), "num_weights"}``.
    Two students with equal records load each other's weights."""
    return {"kind": kind, "config": student.nam_config(), "sample_rate": student.sample_rate,
            "receptive_field": student.receptive_field, "num_weights": student.num_weights}


def builtin_teacher_record(teacher: OversampledWaveshaper) -> dict:
    """The record a student of the built-in analytic teacher stores (no file, so no hash):
    ``{"teacher_builtin": teacher.spec(), "teacher_file": None, "teacher_description",
    "teacher_sample_rate" (Hz), "teacher_architecture": "OversampledWaveshaper"}``."""
    return {"teacher_builtin": teacher.spec(), "teacher_file": None,
            "teacher_description": teacher.describe(), "teacher_sample_rate": teacher.sample_rate,
            "teacher_architecture": "OversampledWaveshaper"}


def distillation_metadata(teacher_record: dict, *, epoch: int, valid_loss: float | None,
                          lam: float | None, curriculum: Sequence[float] | None,
                          harmonic_weight: float, lowpass_hz: Sequence[float] | None,
                          num_tones: int, seed: int, tool: str = "train_aa",
                          f0_sampling: str = "midi",
                          f0_range_hz: Sequence[float] | None = None) -> dict:
    """``{"aa_distill": record}`` for :func:`save_nam`'s ``metadata``: the teacher's record
    (:func:`teacher_record` or :func:`builtin_teacher_record`) followed by how the student
    was trained: ``"tool"``, ``"epoch"`` (0-based, the exported one), ``"valid_loss"``,
    ``"lambda"`` (the fixed λ; ``None`` with a curriculum), ``"curriculum"`` (``[start,
    end]`` λ or ``None``), ``"harmonic_weight"``, ``"lowpass_hz"`` (``[pass, stop]`` Hz, or
    ``None`` without the lowpass), ``"num_tones"``, ``"seed"``, ``"f0_sampling"`` (``"midi"``
    or ``"linear_hz"``, see :func:`sample_tone_params`) and ``"f0_range_hz"`` (``[lo, hi]``
    Hz of the training f0, or ``None`` when not given)."""
    rec = {**teacher_record, "tool": tool, "epoch": int(epoch), "valid_loss": valid_loss,
           "lambda": lam, "curriculum": list(curriculum) if curriculum is not None else None,
           "harmonic_weight": harmonic_weight,
           "lowpass_hz": list(lowpass_hz) if lowpass_hz is not None else None,
           "num_tones": int(num_tones), "seed": int(seed), "f0_sampling": f0_sampling,
           "f0_range_hz": [float(v) for v in f0_range_hz] if f0_range_hz is not None else None}
    return {METADATA_KEY: rec}


def teacher_record(teacher_path: str | os.PathLike, teacher: NamModel | None = None) -> dict:
    """The metadata a student stores about its teacher: ``{"teacher_sha256",
    "teacher_file", "teacher_sample_rate", "teacher_architecture"}``."""
    path = Path(teacher_path)
    rec = {"teacher_sha256": nam_sha256(path), "teacher_file": path.name}
    if teacher is not None:
        rec["teacher_sample_rate"] = teacher.sample_rate
        rec["teacher_architecture"] = teacher.architecture
    return rec


def student_metadata(teacher_path: str | os.PathLike, teacher: NamModel | None = None,
                     **extra: object) -> dict:
    """``{"aa_distill": teacher_record(...) | extra}`` for :func:`save_nam`'s ``metadata``."""
    return {METADATA_KEY: {**teacher_record(teacher_path, teacher), **extra}}


def check_teacher_student_pair(teacher: NamModel | OversampledWaveshaper, student: NamModel,
                               teacher_path: str | os.PathLike | None = None) -> str:
    """Check that ``student`` was distilled from ``teacher``.

    Raises ``ValueError`` when the sample rates differ, when the student's recorded teacher
    SHA-256 names another file than ``teacher_path``, or when it records a teacher of the
    other kind (a file vs the built-in :class:`OversampledWaveshaper`) or a built-in teacher
    with other settings. Returns ``"verified"`` when the hash (or the built-in settings)
    match, or ``"unverified"`` when it cannot be checked (the student records no teacher,
    or no ``teacher_path`` is given) - callers should warn then.
    """
    if teacher.sample_rate != student.sample_rate:
        raise ValueError(f"teacher and student sample rates differ ({teacher.sample_rate} vs "
                         f"{student.sample_rate} Hz): they cannot be a teacher/student pair")
    rec = (student.metadata or {}).get(METADATA_KEY) or {}
    builtin = rec.get("teacher_builtin")
    if isinstance(teacher, OversampledWaveshaper):
        if rec.get("teacher_sha256"):
            raise ValueError(f"the student was distilled from the file "
                             f"{rec.get('teacher_file', '?')} (sha256 "
                             f"{rec['teacher_sha256'][:12]}...), not from the built-in teacher")
        if builtin is None:
            return "unverified"
        if builtin != teacher.spec():
            raise ValueError(f"the student was distilled from the built-in teacher {builtin}, "
                             f"not {teacher.spec()}")
        return "verified"
    if builtin is not None:
        where = f" {Path(teacher_path).name}" if teacher_path is not None else ""
        raise ValueError(f"the student was distilled from the built-in teacher {builtin}, not "
                         f"from the file{where}")
    recorded = rec.get("teacher_sha256")
    rec_rate = rec.get("teacher_sample_rate")
    if rec_rate is not None and rec_rate != teacher.sample_rate:
        raise ValueError(f"the student records a teacher at {rec_rate} Hz but this teacher "
                         f"runs at {teacher.sample_rate} Hz")
    if recorded is None or teacher_path is None:
        return "unverified"
    actual = nam_sha256(teacher_path)
    if recorded != actual:
        name = rec.get("teacher_file", "another file")
        raise ValueError(f"the student was distilled from {name} (sha256 {recorded[:12]}...), "
                         f"not from {Path(teacher_path).name} (sha256 {actual[:12]}...)")
    return "verified"
