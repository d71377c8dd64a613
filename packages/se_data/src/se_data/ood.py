"""Out-of-distribution test sets: clean speech + unseen noise at fixed SNRs, rebuildable bit-exactly.

:func:`build_ood_set` mixes every clean file with a randomly chosen noise clip (ESC-50,
UrbanSound8K or any folder, see :func:`se_data.open_noise_set`) at each requested SNR and
writes::

    OUT/noisy/NAME.wav  OUT/clean/NAME.wav   (PCM_16 by default, at sample_rate Hz)
    OUT/manifest.csv    file, clean_source, noise_source, noise_class, noise_offset,
                        snr_db, clean_gain, noise_gain
    OUT/manifest.json   seed, tool version, sample rate, settings, source roots,
                        SHA-256 of every source and output file, library versions, rows

``NAME`` is ``<clean path without suffix, '/' -> '__'>_<noise class>_snr<snr>dB``. Sources
are stored relative to their roots. ``noise_offset`` is the start sample (at the output
rate, in the noise clip after trimming its leading/trailing near-silence unless
``trim_silence=False``) of the noise segment (looped when the noise is shorter than the speech);
``noise_gain`` is the gain on that segment in the written noisy file and ``clean_gain`` the
gain on the clean speech in both written files (< 1 only when the mixture would otherwise
peak above ``peak``; it never changes the SNR).

:func:`rebuild_ood_set` reads a manifest, refuses if any source's SHA-256 differs, and
writes byte-identical files (it checks the output hashes too). Nothing is ever
overwritten: an existing non-empty output folder is refused.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ._rng import as_rng, check_sample_rate
from ._setbuild import NoiseCache as _NoiseCache
from ._setbuild import changed_sources, list_audio_tree, refuse_changed, write_manifests
from ._setbuild import library_versions as _library_versions
from ._setbuild import progress as _progress
from ._setbuild import require_empty_out as _require_empty_out
from ._setbuild import safe_name as _safe
from .audio_io import load_audio, save_audio
from .fingerprint import sha256_file
from .mixing import mix_at_snr
from .noise import NoiseSet, open_noise_set

OOD_TOOL_VERSION = "1.0"
MANIFEST_COLUMNS = ("file", "clean_source", "noise_source", "noise_class", "noise_offset", "snr_db",
                    "clean_gain", "noise_gain")


@dataclass(frozen=True)
class OODRow:
    """One mixture of the set (one line of ``manifest.csv``)."""

    file: str
    clean_source: str
    noise_source: str
    noise_class: str
    noise_offset: int
    snr_db: float
    clean_gain: float
    noise_gain: float


def _snr_tag(snr: float) -> str:
    return f"snr{snr:g}dB"


#: an offset is accepted when its segment is at most this many dB below the clip's active level
QUIET_SEGMENT_DB = 20.0


def pick_noise_offset(noise: np.ndarray, length: int, rng: np.random.Generator) -> int:
    """A seeded noise offset whose segment is not (near-)silent.

    Candidates are the offsets :func:`se_data.fit_to_length` could draw (``[0, N − length]``,
    or ``[0, N)`` when the noise must loop). Acceptable ones have a ``length``-sample segment
    RMS no more than :data:`QUIET_SEGMENT_DB` below the clip's active RMS (over 20 ms frames
    within 50 dB of the loudest); one is drawn uniformly. If none is acceptable, the loudest
    segment's offset is returned.
    """
    n = noise.size
    x2 = noise.astype(np.float64) ** 2
    hop = 320
    e = np.mean(x2[: n // hop * hop].reshape(-1, hop), axis=1) if n >= hop else x2.mean(keepdims=True)
    active = float(np.mean(e[e >= e.max() * 1e-5]))
    cand = np.arange(n - length + 1) if n >= length else np.arange(n)
    reps = -(-(n + length) // n)
    cs = np.concatenate([[0.0], np.cumsum(np.tile(x2, reps))])
    seg = (cs[cand + length] - cs[cand]) / length  # mean power of each candidate segment (looped if needed)
    ok = cand[seg >= active * 10 ** (-QUIET_SEGMENT_DB / 10)]
    if ok.size == 0:
        return int(cand[int(np.argmax(seg))])
    return int(ok[int(rng.integers(ok.size))])


def _render(clean: torch.Tensor, noise: torch.Tensor, snr_db: float, *, peak: float, seed=None,
            offset: int | None = None) -> tuple[np.ndarray, np.ndarray, float, float, dict]:
    """Mix in float64; returns (clean_out, noisy_out, clean_gain, noise_gain, mix info)."""
    c = clean.numpy().astype(np.float64)
    noisy, info = mix_at_snr(c, noise.numpy().astype(np.float64), snr_db, seed=seed, offset=offset)
    y = noisy.numpy()
    m = float(np.max(np.abs(y)))
    clean_gain = 1.0 if m <= peak else peak / m
    return (c * clean_gain, y * clean_gain, clean_gain,
            info.noise_gain * clean_gain, info.as_dict())


def _list_clean(clean_dir: Path) -> list[Path]:
    return list_audio_tree(clean_dir)


def _write_manifests(out_dir: Path, rows: list[OODRow], meta: dict) -> None:
    write_manifests(out_dir, MANIFEST_COLUMNS,
                    ([r.file, r.clean_source, r.noise_source, r.noise_class, r.noise_offset, repr(r.snr_db),
                      repr(r.clean_gain), repr(r.noise_gain)] for r in rows),
                    {**meta, "rows": [asdict(r) for r in rows]})


def _summary(rows: list[OODRow], stats: list[dict], out_dir: Path) -> dict:
    by_snr: dict[float, list[float]] = {}
    for r, s in zip(rows, stats):
        by_snr.setdefault(r.snr_db, []).append(s["si_sdr_db"])
    return {"out_dir": str(out_dir), "n_files": len(rows),
            "n_clean": len({r.clean_source for r in rows}), "n_noise": len({r.noise_source for r in rows}),
            "noise_classes": sorted({r.noise_class for r in rows}),
            "n_limited": sum(r.clean_gain < 1.0 for r in rows),
            "per_snr": {snr: {"count": len(v), "mean_si_sdr_db": float(np.mean(v))}
                        for snr, v in sorted(by_snr.items())}}


def build_ood_set(clean_dir: str | os.PathLike, noise: str | os.PathLike | NoiseSet, out_dir: str | os.PathLike, *,
                  snrs: Sequence[float] = (0.0, 5.0, 10.0), seed: int = 0, sample_rate: int = 16000,
                  noise_filters: dict | None = None, trim_silence: bool = True, subtype: str = "PCM_16",
                  peak: float = 0.99, progress: bool = True) -> dict:
    """Build an OOD test set in ``out_dir`` (must be new or empty); returns a summary dict.

    ``clean_dir``: folder of clean speech (searched recursively, sorted by path; files at
    another rate are resampled to ``sample_rate``; multi-channel files are an error).
    ``noise``: an ESC-50 / UrbanSound8K root or a folder (``noise_filters`` such as
    ``{"categories": [...], "folds": [...], "missing": "skip"}`` go to
    :func:`open_noise_set`), or a :class:`NoiseSet` with a ``root``.
    For every clean file and every SNR (dB) in ``snrs`` one noise clip is drawn uniformly
    and an offset whose segment is not near-silent (:func:`pick_noise_offset`), seeded by
    ``seed``, then mixed with :func:`se_data.mix_at_snr`. ``trim_silence`` strips each noise
    clip's leading/trailing near-silence first (ESC-50 pads short clips with zeros to 5 s);
    offsets refer to the trimmed clip. A passed :class:`NoiseSet` keeps its own setting.
    """
    sr = check_sample_rate("sample_rate", sample_rate)
    snr_list = [float(s) for s in snrs]
    if not snr_list or len(set(snr_list)) != len(snr_list) or not all(map(math.isfinite, snr_list)):
        raise ValueError(f"snrs must be distinct finite numbers (dB), got {list(snrs)}")
    if subtype.upper() not in ("PCM_16", "PCM_24"):
        raise ValueError(f"subtype must be PCM_16 or PCM_24 (bit-exact and header-stable), got {subtype!r}")
    clean_dir, out_dir = Path(clean_dir), Path(out_dir)
    clean_files = _list_clean(clean_dir)
    nset = noise if isinstance(noise, NoiseSet) else open_noise_set(
        noise, sr, **{**(noise_filters or {}), "trim_silence": trim_silence})
    if nset.root is None:
        raise ValueError("the NoiseSet needs a root folder so the manifest can store relative paths")
    if nset.sample_rate != sr:
        raise ValueError(f"the NoiseSet delivers {nset.sample_rate} Hz but sample_rate={sr}; open it at {sr} Hz")
    _require_empty_out(out_dir)
    rng = as_rng(int(seed))
    cache = _NoiseCache(sr, nset.trim_silence)
    rows, stats, names = [], [], set()
    src_clean: dict[str, str] = {}
    src_noise: dict[str, str] = {}
    outputs: dict[str, str] = {}
    total = len(clean_files) * len(snr_list)
    jobs = ((c, snr) for c in clean_files for snr in snr_list)
    for cpath, snr in _progress(jobs, total, "mixing", progress):
        rel_c = cpath.relative_to(clean_dir).as_posix()
        clean, _ = load_audio(cpath, sr, resample=True)
        k = int(rng.integers(len(nset)))
        entry = nset.entries[k]
        noise_audio = cache.get(entry.path)
        off = pick_noise_offset(noise_audio.numpy(), clean.numel(), rng)
        clean_out, noisy_out, cg, ng, info = _render(clean, noise_audio, snr, peak=peak, offset=off)
        name = f"{_safe(rel_c.rsplit('.', 1)[0].replace('/', '__'))}_{_safe(entry.label)}_{_snr_tag(snr)}.wav"
        if name in names:
            raise ValueError(f"two mixtures would both be called {name}; rename the clean files")
        names.add(name)
        for sub, x in (("noisy", noisy_out), ("clean", clean_out)):
            p = save_audio(out_dir / sub / name, x, sr, subtype=subtype)
            outputs[f"{sub}/{name}"] = sha256_file(p)
        if rel_c not in src_clean:
            src_clean[rel_c] = sha256_file(cpath)
        rel_n = nset.relpath(k)
        if rel_n not in src_noise:
            src_noise[rel_n] = sha256_file(entry.path)
        rows.append(OODRow(name, rel_c, rel_n, entry.label, int(info["noise_offset"]), snr, cg, ng))
        stats.append(info)
    meta = {"tool": "make_ood_testset", "tool_version": OOD_TOOL_VERSION, "seed": int(seed), "sample_rate": sr,
            "settings": {"snrs": snr_list, "subtype": subtype.upper(), "peak": peak,
                         "noise_layout": nset.layout, "noise_filters": noise_filters or {},
                         "trim_silence": nset.trim_silence},
            "clean_root": str(clean_dir.resolve()), "noise_root": str(nset.root.resolve()),
            "sources": {"clean": src_clean, "noise": src_noise}, "outputs": outputs,
            "library_versions": _library_versions(), "columns": list(MANIFEST_COLUMNS)}
    _write_manifests(out_dir, rows, meta)
    return _summary(rows, stats, out_dir)


def rebuild_ood_set(manifest: str | os.PathLike, out_dir: str | os.PathLike, *, clean_dir: str | os.PathLike | None = None,
                    noise_dir: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Rebuild the set described by ``manifest`` (a ``manifest.json``) into ``out_dir``.

    Sources are looked up under the manifest's roots, or under ``clean_dir`` / ``noise_dir``
    if the sources moved. Every source's SHA-256 is checked before anything is written; a
    missing or changed source raises. The outputs' SHA-256 are compared with the manifest's:
    the summary's ``"mismatched_outputs"`` lists any that differ (empty when the rebuild is
    byte-identical).
    """
    mpath = Path(manifest)
    meta = json.loads(mpath.read_text(encoding="utf-8"))
    for key in ("tool_version", "sample_rate", "settings", "sources", "rows", "clean_root", "noise_root"):
        if key not in meta:
            raise ValueError(f"{mpath}: not an OOD manifest (missing key {key!r})")
    if meta["tool_version"] != OOD_TOOL_VERSION:
        raise ValueError(f"{mpath}: written by tool version {meta['tool_version']}, this is {OOD_TOOL_VERSION}; "
                         f"rebuild with the matching se_data version")
    sr = int(meta["sample_rate"])
    out_dir = Path(out_dir)
    _require_empty_out(out_dir, create=False)
    croot = Path(clean_dir) if clean_dir is not None else Path(meta["clean_root"])
    nroot = Path(noise_dir) if noise_dir is not None else Path(meta["noise_root"])
    refuse_changed(mpath, changed_sources({"clean": croot, "noise": nroot}, meta["sources"]))
    _require_empty_out(out_dir)
    settings = meta["settings"]
    cache = _NoiseCache(sr, bool(settings["trim_silence"]))
    rows = [OODRow(**r) for r in meta["rows"]]
    stats = []
    for r in _progress(rows, len(rows), "rebuilding", progress):
        clean, _ = load_audio(croot / r.clean_source, sr, resample=True)
        clean_out, noisy_out, cg, ng, info = _render(clean, cache.get(nroot / r.noise_source), r.snr_db,
                                                     peak=settings["peak"], offset=r.noise_offset)
        if not (math.isclose(cg, r.clean_gain, rel_tol=1e-12) and math.isclose(ng, r.noise_gain, rel_tol=1e-12)):
            raise ValueError(f"{r.file}: recomputed gains ({cg!r}, {ng!r}) differ from the manifest "
                             f"({r.clean_gain!r}, {r.noise_gain!r}); the libraries differ from "
                             f"{meta.get('library_versions')}")
        for sub, x in (("noisy", noisy_out), ("clean", clean_out)):
            save_audio(out_dir / sub / r.file, x, sr, subtype=settings["subtype"])
        stats.append(info)
    mismatched = [k for k, digest in meta.get("outputs", {}).items() if sha256_file(out_dir / k) != digest]
    new_meta = {k: v for k, v in meta.items() if k != "rows"}
    new_meta["rebuilt_from"] = str(mpath.resolve())
    new_meta["clean_root"], new_meta["noise_root"] = str(croot.resolve()), str(nroot.resolve())
    _write_manifests(out_dir, rows, new_meta)
    return {**_summary(rows, stats, out_dir), "mismatched_outputs": mismatched}


def read_ood_manifest(path: str | os.PathLike) -> list[OODRow]:
    """Rows of an OOD ``manifest.csv`` (or of the ``rows`` in a ``manifest.json``)."""
    p = Path(path)
    if p.suffix == ".json":
        return [OODRow(**r) for r in json.loads(p.read_text(encoding="utf-8"))["rows"]]
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
            raise ValueError(f"{p}: columns {reader.fieldnames} are not {list(MANIFEST_COLUMNS)}")
        return [OODRow(r["file"], r["clean_source"], r["noise_source"], r["noise_class"], int(r["noise_offset"]),
                       float(r["snr_db"]), float(r["clean_gain"]), float(r["noise_gain"])) for r in reader]
