"""Sine-tone training data and cached, bandlimited teacher targets.

A training tone (Carson et al. Eqs. 4-5) is ``A sin(2 pi f0 n / fs + phi)`` for
``duration`` seconds (1.2 s) at the teacher's rate, with

* a non-integer MIDI note ``l ~ U(21, 127)``, ``f0 = 440 * 2^((l - 69) / 12)`` (27.5 Hz to
  12.5 kHz; ``f0_sampling="midi"``, the paper), or f0 uniform in Hz, ``f0 ~ U(f0_range_hz)``
  (``f0_sampling="linear_hz"``; e.g. 27.5 Hz - 18 kHz to cover the band above the paper's
  tones, where most tones then lie in the upper octaves);
* an amplitude uniform on a linear scale, ``A ~ U(0, 1)`` (the paper; the reference's
  ``dB_min`` setting was never used), or uniform in dB between ``db_range`` (an option that
  gives many more quiet tones);
* a phase ``phi ~ U(0, 2 pi)``.

The last second is the analysis / loss window; everything before it is warm-up, which must
cover the teacher's receptive field (``warmup >= receptive_field - 1`` samples) so that the
target window holds no onset transient. Teacher targets are computed once, in float64,
bandlimited (:func:`aa_distill.bandlimit`) and cached.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch

from .bandlimit import bandlimit
from .nam_base import NamModel

MIDI_RANGE: tuple[float, float] = (21.0, 127.0)
#: How f0 is drawn: uniform in (non-integer) MIDI note, i.e. log-frequency (the paper), or
#: uniform in Hz.
F0_SAMPLINGS: tuple[str, ...] = ("midi", "linear_hz")
#: The default f0 bounds (Hz) for ``f0_sampling="linear_hz"``: MIDI 21 (27.5 Hz) to 18 kHz.
LINEAR_F0_RANGE_HZ: tuple[float, float] = (27.5, 18_000.0)


def midi_to_hz(midi: torch.Tensor | float) -> torch.Tensor:
    """``440 * 2^((midi - 69) / 12)`` Hz (float64)."""
    m = torch.as_tensor(midi, dtype=torch.float64)
    return 440.0 * torch.pow(2.0, (m - 69.0) / 12.0)


@dataclass
class ToneParams:
    """Parameters of ``n`` tones (all ``[n]`` float64): MIDI note, f0 (Hz), peak amplitude
    (linear) and phase (rad), plus the sample rate and duration (s) they are made for."""

    midi: torch.Tensor
    f0: torch.Tensor
    amplitude: torch.Tensor
    phase: torch.Tensor
    sample_rate: int
    duration: float

    def __len__(self) -> int:
        return int(self.f0.numel())

    @property
    def num_samples(self) -> int:
        """Samples per tone, ``round(duration * sample_rate)``."""
        return int(round(self.duration * self.sample_rate))

    @property
    def warmup(self) -> int:
        """Samples before the one-second analysis window."""
        return self.num_samples - int(self.sample_rate)

    def subset(self, idx: torch.Tensor | slice) -> ToneParams:
        return ToneParams(self.midi[idx], self.f0[idx], self.amplitude[idx], self.phase[idx],
                          self.sample_rate, self.duration)

    def to_dict(self) -> dict:
        """``{"midi", "f0", "amplitude", "phase"}`` (the ``[n]`` float64 tensors) with
        ``"sample_rate"`` (Hz) and ``"duration"`` (s): storable with ``torch.save`` and
        loadable with ``torch.load(..., weights_only=True)``."""
        return {"midi": self.midi, "f0": self.f0, "amplitude": self.amplitude, "phase": self.phase,
                "sample_rate": self.sample_rate, "duration": self.duration}

    @classmethod
    def from_dict(cls, d: dict) -> ToneParams:
        """The inverse of :meth:`to_dict` (extra keys are ignored)."""
        return cls(d["midi"], d["f0"], d["amplitude"], d["phase"], int(d["sample_rate"]),
                   float(d["duration"]))


def _check_rate_and_duration(sample_rate: int, duration: float) -> int:
    if isinstance(sample_rate, bool) or not float(sample_rate).is_integer() or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer number of Hz, got "
                         f"{sample_rate!r}")
    if not duration > 1.0:
        raise ValueError(f"duration must exceed 1 s (the last second is the analysis window; "
                         f"the rest is warm-up), got {duration}")
    return int(sample_rate)


def sample_tone_params(num_tones: int, sample_rate: int, *, duration: float = 1.2,
                       midi_range: tuple[float, float] = MIDI_RANGE, amplitude: str = "linear",
                       db_range: tuple[float, float] = (-60.0, 0.0),
                       f0_sampling: str = "midi",
                       f0_range_hz: tuple[float, float] = LINEAR_F0_RANGE_HZ,
                       generator: torch.Generator | None = None) -> ToneParams:
    """Random tones: f0 from a MIDI note ``U(midi_range)`` (``f0_sampling="midi"``, the paper)
    or ``U(f0_range_hz)`` Hz (``"linear_hz"``; ``midi`` then holds the matching non-integer
    note), amplitude ``U(0, 1)`` (``amplitude="linear"``, the paper) or ``10^(U(db_range)/20)``
    (``"db"``), phase ``U(0, 2 pi)``; seeded by ``generator`` (CPU ``torch.Generator``; pass
    one for reproducible data). Only the range of the chosen ``f0_sampling`` is used (and
    checked); both kinds draw the same uniform numbers, so amplitudes and phases do not depend
    on it."""
    fs = _check_rate_and_duration(sample_rate, duration)
    if amplitude not in ("linear", "db"):
        raise ValueError(f"amplitude must be 'linear' or 'db', got {amplitude!r}")
    if f0_sampling not in F0_SAMPLINGS:
        raise ValueError(f"f0_sampling must be one of {F0_SAMPLINGS}, got {f0_sampling!r}")
    if f0_sampling == "midi":
        lo, hi = midi_range
        if not lo < hi:
            raise ValueError(f"midi_range must be increasing, got {midi_range}")
        if midi_to_hz(hi) >= fs / 2:
            raise ValueError(f"MIDI {hi} ({float(midi_to_hz(hi)):.0f} Hz) is not below Nyquist at "
                             f"{fs} Hz")
    else:
        lo, hi = (float(v) for v in f0_range_hz)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo < hi):
            raise ValueError(f"f0_range_hz must be increasing positive frequencies in Hz, got "
                             f"{f0_range_hz}")
        if hi >= fs / 2:
            raise ValueError(f"f0 {hi:g} Hz is not below Nyquist at {fs} Hz")
    if num_tones < 1:
        raise ValueError(f"num_tones must be >= 1, got {num_tones}")
    u = torch.rand(3, num_tones, generator=generator, dtype=torch.float64)
    if f0_sampling == "midi":
        midi = lo + (hi - lo) * u[0]
        f0 = midi_to_hz(midi)
    else:
        f0 = lo + (hi - lo) * u[0]
        midi = 69.0 + 12.0 * torch.log2(f0 / 440.0)
    if amplitude == "linear":
        amp = u[1]
    else:
        amp = 10.0 ** ((db_range[0] + (db_range[1] - db_range[0]) * u[1]) / 20.0)
    phase = 2.0 * math.pi * u[2]
    return ToneParams(midi, f0, amp, phase, fs, float(duration))


def validation_tone_params(sample_rate: int, *, duration: float = 1.2,
                           midi: tuple[int, int] = (21, 108),
                           levels_db: tuple[float, ...] = (-36.0, -18.0, -6.0),
                           num_notes: int | None = None) -> ToneParams:
    """The paper's validation grid: integer MIDI notes (21-108: the 88 piano keys) at each
    level in ``levels_db`` (dBFS peak), zero phase; ordered level-major (every note at the
    first level, then the next level), notes ascending.

    ``num_notes`` thins the grid: ``None`` keeps every integer note in ``midi``; ``n > 1``
    keeps ``round(linspace(lo, hi, n))`` (duplicates dropped, so at most ``n``); ``1`` keeps
    A4 (MIDI 69, 440 Hz), which must lie in ``midi``. ``len(result) == notes x levels``."""
    fs = _check_rate_and_duration(sample_rate, duration)
    notes = torch.arange(midi[0], midi[1] + 1, dtype=torch.float64)
    if num_notes is not None:
        if num_notes < 1:
            raise ValueError(f"num_notes must be >= 1 (or None for every note), got {num_notes}")
        if num_notes > 1:
            keep = torch.linspace(midi[0], midi[1], num_notes).round().to(torch.int64).unique()
        elif midi[0] <= 69 <= midi[1]:
            keep = torch.tensor([69])
        else:
            raise ValueError(f"num_notes=1 keeps A4 (MIDI 69), which is outside midi={midi}")
        notes = notes[torch.isin(notes.to(torch.int64), keep)]
    levels = torch.as_tensor(levels_db, dtype=torch.float64)
    m = notes.repeat(levels.numel())
    amp = (10.0 ** (levels / 20.0)).repeat_interleave(notes.numel())
    return ToneParams(m, midi_to_hz(m), amp, torch.zeros_like(m), fs, float(duration))


def synthesize_tones(params: ToneParams, dtype: torch.dtype = torch.float64,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """The tones as ``[n, round(duration * fs)]`` (phases computed in float64)."""
    n = torch.arange(params.num_samples, dtype=torch.float64, device=device)
    f0 = params.f0.to(device)[:, None]
    cycles = torch.remainder(f0 * n / params.sample_rate, 1.0)
    x = params.amplitude.to(device)[:, None] * torch.sin(
        2.0 * math.pi * cycles + params.phase.to(device)[:, None])
    return x.to(dtype)


def check_warmup(params: ToneParams, receptive_field: int, source: str = "the teacher") -> None:
    """Raise ``ValueError`` unless the warm-up covers ``receptive_field - 1`` samples."""
    need = int(receptive_field) - 1
    if params.warmup < need:
        raise ValueError(f"a warm-up of {params.warmup} samples ({params.duration} s tones at "
                         f"{params.sample_rate} Hz) does not cover the receptive field of "
                         f"{source} ({receptive_field} samples): use duration >= "
                         f"{1 + need / params.sample_rate:.4f} s")


@torch.no_grad()
def teacher_targets(teacher: torch.nn.Module, params: ToneParams, *, batch_size: int = 16,
                    device: torch.device | str | None = None,
                    progress: Callable[[int], None] | None = None,
                    receptive_field: int | None = None) -> torch.Tensor:
    """Bandlimited teacher responses to the tones: ``[n, fs]`` float64 (last second).

    The teacher runs in float64 on ``device`` (a copy is made where its dtype or device
    differ; the caller's module is never moved or converted) from zero history (WaveNet) or
    its stored state (LSTM). ``progress`` is called with the number of tones finished after
    every batch (e.g. ``tqdm.update``). A
    :class:`NamModel` teacher must be at ``params.sample_rate`` and its receptive field must
    fit in the warm-up; other modules may give ``receptive_field``.
    """
    rf = receptive_field
    if isinstance(teacher, NamModel):
        if teacher.sample_rate != params.sample_rate:
            raise ValueError(f"the teacher runs at {teacher.sample_rate} Hz but the tones are "
                             f"at {params.sample_rate} Hz; make the tones at the teacher's rate")
        rf = teacher.receptive_field if rf is None else rf
    if rf is not None:
        check_warmup(params, rf)
    dev = torch.device(device) if device is not None else None
    model = teacher
    if any(p.dtype != torch.float64 or (dev is not None and p.device != dev)
           for p in teacher.parameters()):
        model = copy.deepcopy(teacher).to(device=dev, dtype=torch.float64)
    was_training = model.training
    model.eval()
    fs = params.sample_rate
    out = []
    for start in range(0, len(params), batch_size):
        part = params.subset(slice(start, start + batch_size))
        x = synthesize_tones(part, torch.float64, device)
        y = model(x)
        if y.shape != x.shape:
            raise ValueError(f"the teacher must map [B, T] to [B, T], got {tuple(x.shape)} -> "
                             f"{tuple(y.shape)}")
        out.append(bandlimit(y, part.f0.to(y.device), fs).bandlimited.cpu())
        if progress is not None:
            progress(len(part))
    if model is teacher and was_training:
        teacher.train()
    return torch.cat(out)


class SineToneDataset(torch.utils.data.Dataset):
    """Tones with cached bandlimited teacher targets.

    ``dataset[i] -> (input [T], target [fs], f0)``: the full tone (float64, warm-up first),
    the bandlimited teacher response over its last second and f0 (Hz, float64 scalar).
    The student's prediction to compare with ``target`` is ``student(input)[..., -fs:]``.

    Build with :meth:`from_teacher` (random training tones, or any :class:`ToneParams`), or
    directly from precomputed targets. ``targets`` can be stored as float32 to halve memory
    (``store_dtype``); they are always computed in float64.
    """

    def __init__(self, params: ToneParams, targets: torch.Tensor) -> None:
        if targets.shape != (len(params), params.sample_rate):
            raise ValueError(f"targets must be [{len(params)}, {params.sample_rate}], got "
                             f"{tuple(targets.shape)}")
        self.params, self.targets = params, targets

    @classmethod
    def from_teacher(cls, teacher: torch.nn.Module, params: ToneParams, *,
                     batch_size: int = 16, device: torch.device | str | None = None,
                     store_dtype: torch.dtype = torch.float64,
                     progress: Callable[[int], None] | None = None) -> SineToneDataset:
        t = teacher_targets(teacher, params, batch_size=batch_size, device=device,
                            progress=progress)
        return cls(params, t.to(store_dtype))

    def to_dict(self) -> dict:
        """:meth:`ToneParams.to_dict` of the tones plus ``"targets"`` (``[n, fs]``), for
        ``torch.save`` (loads with ``weights_only=True``); :meth:`from_dict` restores it."""
        return {**self.params.to_dict(), "targets": self.targets}

    @classmethod
    def from_dict(cls, d: dict) -> SineToneDataset:
        """The dataset :meth:`to_dict` stored (same tones, same target tensor)."""
        return cls(ToneParams.from_dict(d), d["targets"])

    @property
    def sample_rate(self) -> int:
        return self.params.sample_rate

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.params.subset(slice(i, i + 1))
        return synthesize_tones(p)[0], self.targets[i], self.params.f0[i]

    def batch(self, idx: torch.Tensor, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float64
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(inputs [b, T], targets [b, fs], f0 [b])`` for the indices ``idx``, synthesised
        directly on ``device`` (faster than a DataLoader for GPU training)."""
        p = self.params.subset(idx)
        return (synthesize_tones(p, dtype, device), self.targets[idx].to(device),
                p.f0.to(device))


@dataclass(frozen=True)
class ToneDataSpec:
    """What a distillation run's data are made of: ``num_tones`` training tones drawn once
    by :func:`sample_tone_params` (seeded by ``seed``), the validation grid of
    :func:`validation_tone_params` (``valid_notes`` notes at each of ``valid_levels_db``
    dBFS), all ``duration`` s long, and whether the float64 teacher targets are stored in
    float64 (``float64=True``) or float32.

    ``f0_sampling`` picks the f0 distribution: ``"midi"`` (``midi_range``, MIDI notes; the
    paper) or ``"linear_hz"`` (``f0_range_hz``, Hz); ``db_range`` is in dBFS (for
    ``amplitude="db"``). Sequences are stored as tuples. :meth:`tone_params` builds the tones for a sample rate;
    :meth:`fingerprint` names everything the cached targets depend on.
    """

    num_tones: int = 32
    duration: float = 1.2
    midi_range: tuple[float, float] = MIDI_RANGE
    amplitude: str = "linear"
    db_range: tuple[float, float] = (-60.0, 0.0)
    valid_notes: int = 6
    valid_levels_db: tuple[float, ...] = (-36.0, -18.0, -6.0)
    seed: int = 0
    float64: bool = False
    f0_sampling: str = "midi"
    f0_range_hz: tuple[float, float] = LINEAR_F0_RANGE_HZ

    def __post_init__(self) -> None:
        for name in ("midi_range", "db_range", "valid_levels_db", "f0_range_hz"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.f0_sampling not in F0_SAMPLINGS:
            raise ValueError(f"f0_sampling must be one of {F0_SAMPLINGS}, got {self.f0_sampling!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The constructor's keyword names (e.g. to pick them from parsed arguments)."""
        return tuple(f.name for f in fields(cls))

    @property
    def store_dtype(self) -> torch.dtype:
        """The dtype the targets are kept in (they are computed in float64 either way)."""
        return torch.float64 if self.float64 else torch.float32

    def tone_params(self, sample_rate: int) -> tuple[ToneParams, ToneParams]:
        """``(training, validation)`` tones at ``sample_rate`` Hz (the teacher's). The same
        spec and rate give the same tones in every process. Raises ``ValueError`` for an odd
        rate (the bandlimiter that makes the targets needs an even one) and for settings the
        tone functions refuse."""
        if float(sample_rate).is_integer() and int(sample_rate) % 2:
            raise ValueError(f"the teacher runs at {sample_rate} Hz; the bandlimiter needs an even rate")
        train = sample_tone_params(self.num_tones, sample_rate, duration=self.duration,
                                   midi_range=self.midi_range, amplitude=self.amplitude,
                                   db_range=self.db_range, f0_sampling=self.f0_sampling,
                                   f0_range_hz=self.f0_range_hz,
                                   generator=torch.Generator().manual_seed(self.seed))
        valid = validation_tone_params(sample_rate, duration=self.duration,
                                       levels_db=self.valid_levels_db, num_notes=self.valid_notes)
        return train, valid

    def fingerprint(self, teacher_record: dict) -> dict:
        """``{"teacher": teacher_record, <every field>}`` with sequences as lists: equal for
        two runs exactly when their cached teacher targets are interchangeable. Every field is
        named, ``f0_sampling`` and both f0 ranges included, so tones drawn one way never reuse
        targets cached for the other (a cache written before ``f0_sampling`` existed lacks
        the key and is refused rather than reused)."""
        return {"teacher": teacher_record,
                **{k: list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
                   for k, v in ((f, getattr(self, f)) for f in self.field_names())}}
