"""Non-stationary noise test sets: clean speech + concatenated noise types, sudden events and a
time-varying SNR, rebuildable bit-exactly.

:func:`build_nonstationary_set` mixes every clean file with a noise made by
:func:`se_data.compose_nonstationary` (segments of ``n_noises`` different noise classes joined
with equal-power crossfades, each at a random level, plus synthetic knocks / beeps / clicks)
along an SNR trajectory from :func:`se_data.snr_trajectory`, mixed by
:func:`se_data.mix_with_snr_trajectory` (at sample t the noise gain makes the local noise
power, relative to the clip's long-term speech power, follow the curve). It writes::

    OUT/noisy/NAME.wav  OUT/clean/NAME.wav   (PCM_16 by default, at sample_rate Hz; same names,
                                              so eval_dir / eval_ood pair them)
    OUT/manifest.csv    one line per mixture (the columns of MANIFEST_COLUMNS)
    OUT/manifest.json   seed, tool version, sample rate, settings, source roots, SHA-256, native
                        rate and channels of every source, SHA-256 of every output, library
                        versions, and per mixture: its seeds, the noise sources and classes, the
                        segments (start, end, noise index, class, offset, level), the events
                        (start, end, kind, level), the trajectory (kind, range, knot values) and
                        the realised SNR per analysis window next to the trajectory's

``NAME`` is ``<clean path without suffix, '/' -> '__'>.wav`` (``..._v<k>.wav`` with several
variants per clean file). Sources are stored relative to their roots; ``noise=None`` (the
tool's ``--noise synthetic``) uses se_data's seeded white / pink / brown / babble noises, stored
as ``synthetic:<kind>`` with the SHA-256 of their float32 samples.

Per-window SNR: the clip is cut into windows of ``snr_window_s`` seconds (the tail shorter than
one window is left out). ``window_target_db`` is the trajectory's power mean over the window,
``-10·log10(mean(10^(-snr(t)/10)))``, i.e. the local SNR a stationary noise of the clip's
average power would give; ``window_realised_db`` is ``10·log10(Ps / mean((noisy - clean)²))``
over the window with Ps the clip's mean speech power (both before the written files' common
peak gain, which changes neither). The two differ by the noise's own non-stationarity: the
segment levels, the events, and the random fluctuation of a noise's power over a window.

:func:`rebuild_nonstationary_set` reads a manifest, refuses if any source's SHA-256 differs,
re-runs every mixture from its recorded seeds and sources, checks that the segments, events and
trajectory come out as recorded, and writes byte-identical files (it checks the output hashes
too). Nothing is ever overwritten: an existing non-empty output folder is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._rng import as_rng, check_sample_rate
from ._setbuild import (NoiseCache, changed_sources, library_versions, list_audio_tree, refuse_changed,
                        require_empty_out, safe_name, write_manifests)
from ._setbuild import progress as _progress
from .audio_io import audio_info, load_audio, save_audio
from .fingerprint import sha256_file
from .noise import NoiseEntry, NoiseSet, open_noise_set
from .nonstationary import compose_nonstationary, mix_with_snr_trajectory, snr_trajectory
from .synthetic_noise import synthetic_noise

__all__ = ["MANIFEST_COLUMNS", "NONSTATIONARY_TOOL_VERSION", "SYNTHETIC_KINDS", "TRAJECTORY_KINDS",
           "NonstationaryRow", "build_nonstationary_set", "read_nonstationary_manifest",
           "rebuild_nonstationary_set", "window_power_mean_db", "windowed_snr_db"]

NONSTATIONARY_TOOL_VERSION = "1.0"
TRAJECTORY_KINDS = ("random_walk", "linear", "steps", "sine")
SYNTHETIC_KINDS = ("white", "pink", "brown", "babble")
MANIFEST_COLUMNS = ("file", "clean_source", "noise_sources", "noise_classes", "n_segments", "n_events",
                    "trajectory", "snr_mean_db", "snr_min_db", "snr_max_db", "snr_clip_db", "output_gain",
                    "compose_seed", "trajectory_seed", "snr_db", "noise_class")
#: separates the noise sources / classes of one mixture in ``manifest.csv``
LIST_SEP = "|"


@dataclass(frozen=True)
class NonstationaryRow:
    """One mixture of the set: a ``manifest.json`` row (``manifest.csv`` holds the scalars).

    file: output name; clean_source: path under the clean root; variant: which of the clean
    file's mixtures; length: samples at the set's rate; noise_sources / noise_classes: the
    noises passed to the composer, in order (``segments[i]["index"]`` points into them);
    choice_seed / compose_seed / trajectory_seed: the seeds of the noise choice, of
    :func:`se_data.compose_nonstationary` and of :func:`se_data.snr_trajectory`;
    segments / events / crossfade: the composer's info (samples, dB); trajectory: its kind;
    trajectory_knots_db: the curve at every knot (sample ``k·knot``); snr_mean_db /
    snr_min_db / snr_max_db: statistics of the per-sample curve; snr_clip_db: the achieved
    clip-level SNR (Σs² / Σ(noisy - s)²); output_gain: the common gain (≤ 1) on the clean and
    noisy files that keeps the mixture's peak below ``peak``; window_target_db /
    window_realised_db: see the module docstring.
    """

    file: str
    clean_source: str
    variant: int
    length: int
    noise_sources: tuple[str, ...]
    noise_classes: tuple[str, ...]
    choice_seed: int
    compose_seed: int
    trajectory_seed: int
    segments: tuple[dict, ...]
    events: tuple[dict, ...]
    crossfade: int
    trajectory: str
    trajectory_knots_db: tuple[float, ...]
    snr_mean_db: float
    snr_min_db: float
    snr_max_db: float
    snr_clip_db: float
    output_gain: float
    window_target_db: tuple[float, ...] = field(default=())
    window_realised_db: tuple[float, ...] = field(default=())

    def csv_row(self) -> list:
        return [self.file, self.clean_source, LIST_SEP.join(self.noise_sources), LIST_SEP.join(self.noise_classes),
                len(self.segments), len(self.events), self.trajectory, repr(self.snr_mean_db),
                repr(self.snr_min_db), repr(self.snr_max_db), repr(self.snr_clip_db), repr(self.output_gain),
                self.compose_seed, self.trajectory_seed,
                # the columns an evaluator groups by (as in the OOD set's manifest): the trajectory's mean
                # SNR, and the noise classes of the mixture joined in order of appearance
                repr(self.snr_mean_db), LIST_SEP.join(self.noise_classes)]

    @classmethod
    def from_dict(cls, d: dict) -> "NonstationaryRow":
        tup = {"noise_sources", "noise_classes", "segments", "events", "trajectory_knots_db", "window_target_db",
               "window_realised_db"}
        return cls(**{k: (tuple(v) if k in tup else v) for k, v in d.items()})


# ----------------------------------------------------------------------------- window statistics
def _windows(x: np.ndarray, window: int) -> np.ndarray:
    n = x.size // window
    if n == 0:
        return np.zeros((0, window))
    return x[: n * window].reshape(n, window)


def window_power_mean_db(snr_db: np.ndarray | torch.Tensor, window: int) -> np.ndarray:
    """The power mean of an SNR curve [T] (dB) over consecutive windows of ``window`` samples:
    ``-10·log10(mean(10^(-snr/10)))`` per window -> [T // window] float64 (the local SNR a
    noise of constant power gives along the curve)."""
    c = np.asarray(snr_db, dtype=np.float64)
    return -10.0 * np.log10(np.mean(_windows(10.0 ** (-c / 10.0), window), axis=1))


def windowed_snr_db(speech: np.ndarray | torch.Tensor, noise: np.ndarray | torch.Tensor, window: int) -> np.ndarray:
    """Local SNR per window [T // window] (dB, float64): ``10·log10(Ps / mean(noise²))`` over
    each window of ``window`` samples, with ``Ps`` the mean power of ``speech`` [T] over the
    whole clip (the reference of :func:`se_data.mix_with_snr_trajectory`); ``noise`` [T] is the
    scaled noise actually added (``noisy - clean``)."""
    s = np.asarray(speech, dtype=np.float64)
    n = np.asarray(noise, dtype=np.float64)
    if s.shape != n.shape or s.ndim != 1:
        raise ValueError(f"speech and noise must be [T] of equal length, got {s.shape} and {n.shape}")
    ps = float(np.mean(s**2))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(ps / np.mean(_windows(n**2, window), axis=1))


# ----------------------------------------------------------------------------- noise sources
def _seed_words(*words: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence: nearby inputs give unrelated seeds)."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1)


def _float_sha(x: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(x.numpy(), dtype="<f4").tobytes()).hexdigest()


#: stream tags of the derived seeds (any fixed, distinct integers)
_SYNTH_TAG, _ITEM_TAG = 0x53594E, 0x4E5349


class _NoisePool:
    """The noises to draw from: a :class:`NoiseSet` (files) or seeded synthetic noises.

    ``ids[i]`` is the manifest name (path under the root, or ``synthetic:<kind>``),
    ``labels[i]`` its class; ``get(id)`` the clip [N] float32 at the set's rate."""

    def __init__(self, sr: int, *, nset: NoiseSet | None = None, synthetic: dict | None = None):
        self.sr = sr
        self.nset = nset
        self.synthetic = synthetic
        self._synth: dict[str, torch.Tensor] = {}
        if nset is not None:
            self.ids = [nset.relpath(i) for i in range(len(nset))]
            self.labels = [e.label for e in nset.entries]
            self._paths = {rid: e.path for rid, e in zip(self.ids, nset.entries)}
            self.cache = NoiseCache(sr, nset.trim_silence)
        else:
            if synthetic is None:
                raise ValueError("_NoisePool needs a NoiseSet or synthetic settings")
            n = int(round(synthetic["seconds"] * sr))
            for kind in synthetic["kinds"]:
                self._synth[f"synthetic:{kind}"] = synthetic_noise(kind, n, seed=int(synthetic["seeds"][kind]),
                                                                   sample_rate=sr)
            self.ids = list(self._synth)
            self.labels = list(synthetic["kinds"])
        self.classes = sorted(set(self.labels))

    def get(self, rid: str) -> torch.Tensor:
        if self.nset is None:
            return self._synth[rid]
        return self.cache.get(self._paths[rid])

    def source_records(self, used: set[str]) -> tuple[dict[str, str], dict[str, dict]]:
        """``({id: sha256}, {id: {"sample_rate", "channels"}})`` of the used sources."""
        sha, audio = {}, {}
        for rid in sorted(used):
            if self.nset is None:
                sha[rid] = _float_sha(self._synth[rid])
                audio[rid] = {"sample_rate": self.sr, "channels": 1}
            else:
                p = self._paths[rid]
                sha[rid] = sha256_file(p)
                info = audio_info(p)
                audio[rid] = {"sample_rate": info.sample_rate, "channels": info.channels}
        return sha, audio


def _synthetic_settings(seed: int, kinds: Sequence[str], seconds: float) -> dict:
    bad = [k for k in kinds if k not in SYNTHETIC_KINDS]
    if bad or not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"synthetic_kinds must be distinct names from {SYNTHETIC_KINDS}, got {list(kinds)}")
    if not (math.isfinite(seconds) and seconds >= 1.0):
        raise ValueError(f"synthetic_seconds must be >= 1 s, got {seconds}")
    return {"kinds": list(kinds), "seconds": float(seconds),
            "seeds": {k: _seed_words(seed, _SYNTH_TAG, SYNTHETIC_KINDS.index(k)) for k in kinds}}


def _choose_noises(pool: _NoisePool, n_noises: int, seed: int) -> list[int]:
    """Indices of ``min(n_noises, classes)`` noises of distinct classes (classes drawn without
    replacement, then one file of each uniformly)."""
    rng = as_rng(seed)
    k = min(n_noises, len(pool.classes))
    picks = []
    for ci in rng.choice(len(pool.classes), size=k, replace=False):
        members = [i for i, lab in enumerate(pool.labels) if lab == pool.classes[int(ci)]]
        picks.append(members[int(rng.integers(len(members)))])
    return picks


# ----------------------------------------------------------------------------- one mixture
def _render(clean: torch.Tensor, noises: list[torch.Tensor], classes: list[str], *, sr: int, s: dict,
            compose_seed: int, trajectory_seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Compose, mix along the trajectory (float64), limit the peak; returns
    ``(clean_out [T], noisy_out [T], record)`` where ``record`` holds the row's computed fields."""
    c = clean.numpy().astype(np.float64)
    n = c.size
    noise, info = compose_nonstationary(noises, n, sr, seed=compose_seed, labels=classes,
                                        crossfade_s=s["crossfade_s"], event_rate_hz=s["event_rate_hz"],
                                        event_level_db=tuple(s["event_level_db"]),
                                        level_db=tuple(s["segment_level_db"]))
    curve = snr_trajectory(n, sr, seed=trajectory_seed, kind=s["trajectory"], snr_range=tuple(s["snr_range"]),
                           knot_s=s["knot_s"]).numpy()
    noisy, mix = mix_with_snr_trajectory(c, noise.numpy().astype(np.float64), curve, offset=0)
    y = noisy.numpy()
    peak = float(np.max(np.abs(y)))
    gain = 1.0 if peak <= s["peak"] else s["peak"] / peak
    win = max(1, int(round(s["snr_window_s"] * sr)))
    step = max(1, int(round(s["knot_s"] * sr)))
    record = {"length": n, "segments": tuple(info["segments"]), "events": tuple(info["events"]),
              "crossfade": int(info["crossfade"]), "trajectory": s["trajectory"],
              "trajectory_knots_db": tuple(float(v) for v in curve[::step]),
              "snr_mean_db": float(curve.mean()), "snr_min_db": float(curve.min()), "snr_max_db": float(curve.max()),
              "snr_clip_db": float(mix["snr_db"]), "output_gain": gain,
              "window_target_db": tuple(float(v) for v in window_power_mean_db(curve, win)),
              "window_realised_db": tuple(float(v) for v in windowed_snr_db(c, y - c, win))}
    return c * gain, y * gain, record


def _json_equal(a: Any, b: Any) -> bool:
    """Equality after a JSON round trip (tuples become lists, floats keep their repr)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def _summary(rows: list[NonstationaryRow], failures: list[dict], out_dir: Path, resampled: dict) -> dict:
    dev = [abs(a - b) for r in rows for a, b in zip(r.window_realised_db, r.window_target_db)]
    return {"out_dir": str(out_dir), "n_files": len(rows), "n_clean": len({r.clean_source for r in rows}),
            "n_noise": len({x for r in rows for x in r.noise_sources}),
            "noise_classes": sorted({x for r in rows for x in r.noise_classes}),
            "n_limited": sum(r.output_gain < 1.0 for r in rows),
            "n_segments": sum(len(r.segments) for r in rows), "n_events": sum(len(r.events) for r in rows),
            "mean_snr_clip_db": float(np.mean([r.snr_clip_db for r in rows])) if rows else float("nan"),
            "snr_range_db": [min((r.snr_min_db for r in rows), default=float("nan")),
                             max((r.snr_max_db for r in rows), default=float("nan"))],
            "median_window_deviation_db": float(np.median(dev)) if dev else float("nan"),
            "resampled": resampled, "n_failed": len(failures), "failures": failures}


def _check_settings(s: dict) -> None:
    lo, hi = s["snr_range"]
    if not (math.isfinite(lo) and math.isfinite(hi) and hi >= lo):
        raise ValueError(f"snr_range must be (low, high) in dB with high >= low, got {tuple(s['snr_range'])}")
    if s["trajectory"] not in TRAJECTORY_KINDS:
        raise ValueError(f"trajectory must be one of {TRAJECTORY_KINDS}, got {s['trajectory']!r}")
    for key in ("knot_s", "snr_window_s"):
        if not (math.isfinite(s[key]) and s[key] > 0):
            raise ValueError(f"{key} must be a positive number of seconds, got {s[key]}")
    if not (math.isfinite(s["crossfade_s"]) and s["crossfade_s"] >= 0):
        raise ValueError(f"crossfade_s must be >= 0 s, got {s['crossfade_s']}")
    if not (math.isfinite(s["event_rate_hz"]) and s["event_rate_hz"] >= 0):
        raise ValueError(f"event_rate_hz must be >= 0 (events per second), got {s['event_rate_hz']}")
    for key in ("event_level_db", "segment_level_db"):
        a, b = s[key]
        if not (math.isfinite(a) and math.isfinite(b) and b >= a):
            raise ValueError(f"{key} must be (low, high) in dB with high >= low, got {tuple(s[key])}")
    if s["n_noises"] < 1 or s["variants"] < 1:
        raise ValueError(f"n_noises and variants must be >= 1, got {s['n_noises']} and {s['variants']}")
    if not 0 < s["peak"] <= 1:
        raise ValueError(f"peak must be in (0, 1], got {s['peak']}")
    if s["subtype"] not in ("PCM_16", "PCM_24"):
        raise ValueError(f"subtype must be PCM_16 or PCM_24 (bit-exact and header-stable), got {s['subtype']!r}")


# ----------------------------------------------------------------------------- build / rebuild
def build_nonstationary_set(clean_dir: str | os.PathLike, noise: str | os.PathLike | NoiseSet | None,
                            out_dir: str | os.PathLike, *, seed: int = 0, sample_rate: int = 16000,
                            trajectory: str = "random_walk", snr_range: tuple[float, float] = (-5.0, 15.0),
                            knot_s: float = 0.5, n_noises: int = 3, crossfade_s: float = 0.1,
                            segment_level_db: tuple[float, float] = (-3.0, 3.0), event_rate_hz: float = 0.5,
                            event_level_db: tuple[float, float] = (0.0, 12.0), variants: int = 1,
                            snr_window_s: float = 0.25, noise_filters: dict | None = None,
                            trim_silence: bool = True, synthetic_kinds: Sequence[str] = SYNTHETIC_KINDS,
                            synthetic_seconds: float = 8.0, subtype: str = "PCM_16", peak: float = 0.99,
                            progress: bool = True) -> dict:
    """Build a non-stationary test set in ``out_dir`` (must be new or empty); returns a summary.

    ``clean_dir``: folder of clean speech (recursive, sorted by path; files at another rate
    are resampled to ``sample_rate`` Hz and their native rate recorded; a multi-channel file
    is a failed item). ``noise``: an ESC-50 / UrbanSound8K root or a folder of noise files
    (class = first sub-folder, or the file stem; ``noise_filters`` go to
    :func:`se_data.open_noise_set`; files are mean-downmixed, resampled and, with
    ``trim_silence``, stripped of leading/trailing near-silence), a :class:`NoiseSet` with a
    root, or ``None`` for seeded synthetic noises of ``synthetic_kinds`` (``synthetic_seconds``
    long each).

    For each clean file and each of ``variants`` mixtures: ``n_noises`` noises of distinct
    classes (fewer when the set has fewer classes), composed to the speech's length with
    ``crossfade_s`` equal-power crossfades, segment levels uniform in ``segment_level_db``
    and events at ``event_rate_hz`` (Poisson) with levels ``event_level_db`` above the
    background; an SNR curve of ``trajectory`` kind in ``snr_range`` dB (knots every
    ``knot_s`` s); mixed in float64, scaled down together with the clean copy only when the
    mixture would peak above ``peak``. All randomness derives from ``seed`` (per mixture
    seeds recorded). A mixture that fails (unreadable or silent clean file) is listed in the
    summary's ``failures`` and left out; the rest is written.
    """
    sr = check_sample_rate("sample_rate", sample_rate)
    s = {"trajectory": trajectory, "snr_range": [float(snr_range[0]), float(snr_range[1])],
         "knot_s": float(knot_s), "n_noises": int(n_noises), "crossfade_s": float(crossfade_s),
         "segment_level_db": [float(x) for x in segment_level_db], "event_rate_hz": float(event_rate_hz),
         "event_level_db": [float(x) for x in event_level_db], "variants": int(variants),
         "snr_window_s": float(snr_window_s), "subtype": subtype.upper(), "peak": float(peak)}
    _check_settings(s)
    clean_dir, out_dir = Path(clean_dir), Path(out_dir)
    clean_files = list_audio_tree(clean_dir)
    if noise is None:
        synthetic = _synthetic_settings(int(seed), synthetic_kinds, synthetic_seconds)
        pool = _NoisePool(sr, synthetic=synthetic)
        s.update(noise_layout="synthetic", noise_filters={}, trim_silence=False, synthetic=synthetic)
        noise_root = "synthetic"
    else:
        nset = noise if isinstance(noise, NoiseSet) else open_noise_set(
            noise, sr, **{**(noise_filters or {}), "trim_silence": trim_silence})
        if nset.root is None:
            raise ValueError("the NoiseSet needs a root folder so the manifest can store relative paths")
        if nset.sample_rate != sr:
            raise ValueError(f"the NoiseSet delivers {nset.sample_rate} Hz but sample_rate={sr}; open it at {sr} Hz")
        pool = _NoisePool(sr, nset=nset)
        s.update(noise_layout=nset.layout, noise_filters=noise_filters or {}, trim_silence=nset.trim_silence,
                 synthetic=None)
        noise_root = str(nset.root.resolve())
    require_empty_out(out_dir)

    rows: list[NonstationaryRow] = []
    failures: list[dict] = []
    src_clean: dict[str, str] = {}
    clean_audio: dict[str, dict] = {}
    used_noise: set[str] = set()
    outputs: dict[str, str] = {}
    jobs = [(i, c, v) for i, c in enumerate(clean_files) for v in range(s["variants"])]
    names: set[str] = set()
    for i, cpath, v in _progress(jobs, len(jobs), "mixing", progress):
        rel_c = cpath.relative_to(clean_dir).as_posix()
        stem = safe_name(rel_c.rsplit(".", 1)[0].replace("/", "__"))
        name = f"{stem}.wav" if s["variants"] == 1 else f"{stem}_v{v}.wav"
        seeds = [_seed_words(seed, _ITEM_TAG, i, v, k) for k in range(3)]
        try:
            info = audio_info(cpath)
            clean, _ = load_audio(cpath, sr, resample=True)
            picks = _choose_noises(pool, s["n_noises"], seeds[0])
            ids = [pool.ids[k] for k in picks]
            classes = [pool.labels[k] for k in picks]
            clean_out, noisy_out, rec = _render(clean, [pool.get(x) for x in ids], classes, sr=sr, s=s,
                                                compose_seed=seeds[1], trajectory_seed=seeds[2])
        except ValueError as e:  # AudioFileError / SampleRateError derive from it
            failures.append({"clean_source": rel_c, "variant": v, "error": str(e)})
            continue
        if name in names:
            raise ValueError(f"two mixtures would both be called {name}; rename the clean files")
        names.add(name)
        for sub, x in (("noisy", noisy_out), ("clean", clean_out)):
            p = save_audio(out_dir / sub / name, x, sr, subtype=s["subtype"])
            outputs[f"{sub}/{name}"] = sha256_file(p)
        if rel_c not in src_clean:
            src_clean[rel_c] = sha256_file(cpath)
            clean_audio[rel_c] = {"sample_rate": info.sample_rate, "channels": info.channels}
        used_noise.update(ids)
        rows.append(NonstationaryRow(file=name, clean_source=rel_c, variant=v, noise_sources=tuple(ids),
                                     noise_classes=tuple(classes), choice_seed=seeds[0], compose_seed=seeds[1],
                                     trajectory_seed=seeds[2], **rec))
    src_noise, noise_audio = pool.source_records(used_noise)
    resampled = {"clean": sorted(k for k, a in clean_audio.items() if a["sample_rate"] != sr),
                 "noise": sorted(k for k, a in noise_audio.items() if a["sample_rate"] != sr)}
    meta = {"tool": "make_nonstationary_testset", "tool_version": NONSTATIONARY_TOOL_VERSION, "seed": int(seed),
            "sample_rate": sr, "settings": s, "clean_root": str(clean_dir.resolve()), "noise_root": noise_root,
            "sources": {"clean": src_clean, "noise": src_noise},
            "source_audio": {"clean": clean_audio, "noise": noise_audio}, "resampled": resampled,
            "outputs": outputs, "failures": failures, "library_versions": library_versions(),
            "columns": list(MANIFEST_COLUMNS), "rows": [asdict(r) for r in rows]}
    write_manifests(out_dir, MANIFEST_COLUMNS, (r.csv_row() for r in rows), meta)
    return _summary(rows, failures, out_dir, resampled)


def rebuild_nonstationary_set(manifest: str | os.PathLike, out_dir: str | os.PathLike, *,
                              clean_dir: str | os.PathLike | None = None, noise_dir: str | os.PathLike | None = None,
                              progress: bool = True) -> dict:
    """Rebuild the set described by ``manifest`` (a ``manifest.json``) into ``out_dir``.

    Sources are looked up under the manifest's roots, or under ``clean_dir`` / ``noise_dir``
    if they moved (synthetic noises are regenerated). Every source's SHA-256 is checked before
    anything is written; a missing or changed source raises ``ValueError``, and so does a
    mixture whose recomputed segments, events, trajectory or gains differ from the manifest
    (other library versions). The summary's ``"mismatched_outputs"`` lists outputs whose
    SHA-256 differs from the manifest's (empty when the rebuild is byte-identical).
    """
    mpath = Path(manifest)
    meta = json.loads(mpath.read_text(encoding="utf-8"))
    for key in ("tool_version", "sample_rate", "settings", "sources", "rows", "clean_root", "noise_root", "seed"):
        if key not in meta:
            raise ValueError(f"{mpath}: not a non-stationary set manifest (missing key {key!r})")
    if meta.get("tool") != "make_nonstationary_testset":
        raise ValueError(f"{mpath}: written by {meta.get('tool')!r}, not make_nonstationary_testset")
    if meta["tool_version"] != NONSTATIONARY_TOOL_VERSION:
        raise ValueError(f"{mpath}: written by tool version {meta['tool_version']}, this is "
                         f"{NONSTATIONARY_TOOL_VERSION}; rebuild with the matching se_data version")
    sr = int(meta["sample_rate"])
    s = meta["settings"]
    out_dir = Path(out_dir)
    require_empty_out(out_dir, create=False)
    croot = Path(clean_dir) if clean_dir is not None else Path(meta["clean_root"])
    if s.get("synthetic"):
        pool = _NoisePool(sr, synthetic=s["synthetic"])
        sha, _ = pool.source_records(set(meta["sources"]["noise"]))
        bad = [f"{k}: the regenerated synthetic noise differs from the manifest" for k, d in sha.items()
               if d != meta["sources"]["noise"][k]]
        bad += changed_sources({"clean": croot}, meta["sources"])
    else:
        nroot = Path(noise_dir) if noise_dir is not None else Path(meta["noise_root"])
        bad = changed_sources({"clean": croot, "noise": nroot}, meta["sources"])
    refuse_changed(mpath, bad)
    if not s.get("synthetic") and meta["sources"]["noise"]:
        pool = _NoisePool(sr, nset=_listed_set(nroot, meta["sources"]["noise"], sr, bool(s["trim_silence"])))
    require_empty_out(out_dir)
    rows = [NonstationaryRow.from_dict(r) for r in meta["rows"]]
    for r in _progress(rows, len(rows), "rebuilding", progress):
        clean, _ = load_audio(croot / r.clean_source, sr, resample=True)
        clean_out, noisy_out, rec = _render(clean, [pool.get(x) for x in r.noise_sources], list(r.noise_classes),
                                            sr=sr, s=s, compose_seed=r.compose_seed, trajectory_seed=r.trajectory_seed)
        differ = [k for k, v in rec.items() if not _json_equal(v, getattr(r, k))]
        if differ:
            raise ValueError(f"{r.file}: recomputed {', '.join(differ)} differ from the manifest; the libraries "
                             f"differ from {meta.get('library_versions')}")
        for sub, x in (("noisy", noisy_out), ("clean", clean_out)):
            save_audio(out_dir / sub / r.file, x, sr, subtype=s["subtype"])
    mismatched = [k for k, digest in meta.get("outputs", {}).items() if sha256_file(out_dir / k) != digest]
    new_meta = {k: v for k, v in meta.items() if k != "rows"}
    new_meta["rebuilt_from"] = str(mpath.resolve())
    new_meta["clean_root"] = str(croot.resolve())
    if not s.get("synthetic"):
        new_meta["noise_root"] = str(Path(noise_dir if noise_dir is not None else meta["noise_root"]).resolve())
    new_meta["rows"] = [asdict(r) for r in rows]
    write_manifests(out_dir, MANIFEST_COLUMNS, (r.csv_row() for r in rows), new_meta)
    return {**_summary(rows, meta.get("failures", []), out_dir, meta.get("resampled", {})),
            "mismatched_outputs": mismatched}


def _listed_set(root: Path, sources: dict[str, str], sr: int, trim: bool) -> NoiseSet:
    """A :class:`NoiseSet` of exactly the manifest's noise files (labels are not needed: the
    rows record each noise's class)."""
    return NoiseSet([NoiseEntry(root / rel, "") for rel in sorted(sources)], sr, root, trim_silence=trim)


def read_nonstationary_manifest(path: str | os.PathLike) -> list[NonstationaryRow]:
    """The rows of a non-stationary set's ``manifest.json`` (the CSV holds only the scalars)."""
    p = Path(path)
    if p.suffix != ".json":
        raise ValueError(f"{p}: pass the manifest.json (manifest.csv holds only the per-file scalars)")
    return [NonstationaryRow.from_dict(r) for r in json.loads(p.read_text(encoding="utf-8"))["rows"]]
