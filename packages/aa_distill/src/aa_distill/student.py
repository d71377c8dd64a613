"""WaveNet-style student TCNs that are valid ``.nam`` WaveNets, and the teacher record they
carry.

A student is a :class:`NamWaveNet`: ``save_nam(student, path)`` writes a file that
:func:`load_nam` and NAM players read, and the reloaded model gives identical outputs. Its
``metadata["aa_distill"]`` records the teacher it was distilled from (SHA-256 of the
teacher file, sample rate, name), so an analysis can refuse a mismatched pair.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from .nam_base import NamModel
from .nam_io import nam_sha256
from .nam_wavenet import LayerArrayConfig, NamWaveNet

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


def check_teacher_student_pair(teacher: NamModel, student: NamModel,
                               teacher_path: str | os.PathLike | None = None) -> str:
    """Check that ``student`` was distilled from ``teacher``.

    Raises ``ValueError`` when the sample rates differ or when the student's recorded teacher
    SHA-256 names another file than ``teacher_path``. Returns ``"verified"`` when the hash
    matches, or ``"unverified"`` when it cannot be checked (the student records no teacher,
    or no ``teacher_path`` is given) - callers should warn then.
    """
    if teacher.sample_rate != student.sample_rate:
        raise ValueError(f"teacher and student sample rates differ ({teacher.sample_rate} vs "
                         f"{student.sample_rate} Hz): they cannot be a teacher/student pair")
    rec = (student.metadata or {}).get(METADATA_KEY) or {}
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
