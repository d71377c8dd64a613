"""Batch evaluation of a folder of enhanced files against their clean references.

``evaluate_dir(enhanced_dir, clean_dir, out_dir)`` pairs every ``*.wav`` below ENHANCED_DIR
with the clean file at the same relative path (or, failing that, the only clean file with the
same name), scores each pair with :func:`evaluate_pair` in a process pool (one unpadded
utterance per task: padding would change PESQ), and writes into ``out_dir``:

* ``per_file.csv``: columns ``file`` (path relative to ENHANCED_DIR), the eleven metrics of
  :data:`METRICS`, ``error`` (empty unless that file failed; a failed file has no numbers);
* ``per_file_noisy.csv``: the same for NOISY_DIR vs clean, when ``noisy_dir`` is given;
* ``summary.json``: per metric mean / std (population) / count, the failures with their
  reasons, which files were resampled, and with ``noisy_dir`` an ``enhanced``, a ``noisy`` and
  a ``delta`` (per-file enhanced - noisy, over files that succeeded in both) section;
* ``eval_config.json``: the settings, checked when resuming.

Rows are appended as results arrive, so an interrupted run resumes: files already scored
successfully are kept, failed and missing files are (re)computed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ._audio import read_wav
from ._validate import MetricInputError, MetricSampleRateError, sample_rate_alias
from .evaluate import METRICS, evaluate_pair

COLUMNS: tuple[str, ...] = ("file",) + METRICS + ("error",)
PER_FILE = "per_file.csv"
PER_FILE_NOISY = "per_file_noisy.csv"
SUMMARY = "summary.json"
CONFIG = "eval_config.json"


@dataclass(frozen=True)
class _Task:
    kind: str           # "enhanced" or "noisy"
    file: str           # path relative to ENHANCED_DIR (the row key)
    clean: str | None   # clean partner path, None if missing
    other: str | None   # the enhanced or noisy file, None if missing
    missing: str = ""   # why a partner is missing


def list_wavs(root: Path) -> list[str]:
    """Relative POSIX paths of every ``*.wav`` (any case) below ``root``, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() == ".wav")


def _partner_index(root: Path) -> tuple[set[str], dict[str, list[str]]]:
    rels = list_wavs(root)
    by_name: dict[str, list[str]] = {}
    for r in rels:
        by_name.setdefault(r.rsplit("/", 1)[-1], []).append(r)
    return set(rels), by_name


def _find_partner(rel: str, root: Path, index: tuple[set[str], dict[str, list[str]]], role: str
                  ) -> tuple[str | None, str]:
    """Partner of ``rel`` below ``root``: same relative path, else the unique same-named file."""
    rels, by_name = index
    if rel in rels:
        return str(root / rel), ""
    cands = by_name.get(rel.rsplit("/", 1)[-1], [])
    if len(cands) == 1:
        return str(root / cands[0]), ""
    if not cands:
        return None, (f"missing {role} partner for {rel}: neither {root / rel} nor any file named "
                      f"{rel.rsplit('/', 1)[-1]!r} below {root} exists")
    return None, (f"ambiguous {role} partner for {rel}: {len(cands)} files named "
                  f"{rel.rsplit('/', 1)[-1]!r} below {root} ({', '.join(cands[:3])}...) and none "
                  f"at the same relative path; mirror ENHANCED_DIR's layout")


#: BLAS / OpenMP thread counts forced to 1 in the worker processes (one worker per core).
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """While active, processes started from here load BLAS with one thread: a pool of one worker
    per core with multi-threaded BLAS in each oversubscribes the cores (measured: 2-3x slower)."""
    old = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update({k: "1" for k in _THREAD_ENV})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pool_context() -> multiprocessing.context.BaseContext:
    """Start workers from a clean process, never by forking the caller (which may hold threads,
    torch or CUDA state): a fork server that has imported se_metrics once where available
    (Linux, macOS), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["se_metrics.batch"])
        return ctx
    return multiprocessing.get_context("spawn")


def _score(task: _Task, sr: int) -> dict[str, Any]:
    """Worker: one row for one task. Never raises; a failure fills ``error`` and no numbers."""
    row: dict[str, Any] = {"file": task.file}
    try:
        if task.clean is None or task.other is None:
            raise MetricInputError(task.missing)
        clean, _ = read_wav(Path(task.clean), sr, "clean")
        other, _ = read_wav(Path(task.other), sr, task.kind)
        try:
            values = evaluate_pair(clean, other, sr)
        except MetricInputError as err:
            raise MetricInputError(f"{task.kind} {task.other} vs clean {task.clean}: {err}") from err
        bad = [m for m, v in values.items() if not np.isfinite(v)]
        if bad:
            raise MetricInputError(f"{task.kind} {task.other} vs clean {task.clean}: "
                                   f"non-finite {', '.join(bad)}; not recorded")
        row.update(values)
        row["error"] = ""
    except Exception as err:  # noqa: BLE001 - a failed file must never stop the batch
        msg = str(err) if isinstance(err, MetricInputError) else f"{type(err).__name__}: {err}"
        row = {"file": task.file, **{m: "" for m in METRICS}, "error": msg.replace("\n", " ")}
    return row


def _read_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of an existing per-file CSV keyed by ``file``; checks the header."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise MetricInputError(
                f"{path} does not have the evaluator's columns {list(COLUMNS)} "
                f"(found {reader.fieldnames}); it cannot be resumed. Use a new output folder.")
        rows = {}
        for r in reader:
            if r["error"]:
                rows[r["file"]] = {"file": r["file"], **{m: "" for m in METRICS}, "error": r["error"]}
            else:
                rows[r["file"]] = {"file": r["file"], **{m: float(r[m]) for m in METRICS}, "error": ""}
    return rows


def _write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write a complete CSV atomically (temp file + rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what open() would give
    with os.fdopen(fd, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    os.replace(tmp, path)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "std": None, "count": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "count": int(a.size)}


def _section(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows.values() if not r["error"]]
    return {
        "n_files": len(rows),
        "n_ok": len(ok),
        "metrics": {m: _stats([r[m] for r in ok]) for m in METRICS},
        "failures": [{"file": r["file"], "reason": r["error"]} for r in sorted(rows.values(), key=lambda r: r["file"])
                     if r["error"]],
    }


def _delta(enh: dict[str, dict[str, Any]], noisy: dict[str, dict[str, Any]]) -> dict[str, Any]:
    both = [f for f in enh if f in noisy and not enh[f]["error"] and not noisy[f]["error"]]
    return {"n_files": len(both),
            "metrics": {m: _stats([enh[f][m] - noisy[f][m] for f in both]) for m in METRICS}}


def _rate_report(tasks: list[_Task], sr: int) -> list[dict[str, Any]]:
    """Files whose rate differs from ``sr`` (resampled before scoring), from the headers."""
    seen: dict[str, dict[str, Any]] = {}
    for t in tasks:
        for role, p in (("clean", t.clean), (t.kind, t.other)):
            if p is None or p in seen:
                continue
            try:
                rate = sf.info(p).samplerate
            except Exception:  # noqa: BLE001 - unreadable files are reported as failures anyway
                continue
            if rate != sr:
                seen[p] = {"path": p, "role": role, "from_sr": int(rate), "to_sr": sr}
    return sorted(seen.values(), key=lambda d: d["path"])


def _check_config(out_dir: Path, config: dict[str, Any]) -> None:
    path = out_dir / CONFIG
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
        if diff:
            raise MetricInputError(
                f"{out_dir} holds an evaluation with other settings ({diff}, as (old, new)); "
                f"resuming would mix them. Use a new output folder.")
    else:
        path.write_text(json.dumps(config, indent=1) + "\n")


def is_evaluation_dir(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir`` holds an evaluation :func:`evaluate_dir` resumes (its ``per_file.csv``)."""
    return (Path(out_dir) / PER_FILE).is_file()


@sample_rate_alias
def evaluate_dir(enhanced_dir: str | os.PathLike, clean_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 sample_rate: int = 16000, workers: int | None = None,
                 noisy_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Score every ``*.wav`` below ``enhanced_dir`` against its clean partner; write the CSVs and
    ``summary.json`` into ``out_dir`` (see the module docstring) and return the summary dict.

    sample_rate: rate the metrics run at, in Hz (16000: wide-band PESQ and the composite need
        it; ``sr=`` is accepted too); files at another rate are resampled and listed under
        ``resampled``. Another value raises :class:`MetricSampleRateError`.
    workers: processes (default ``os.cpu_count()``); 1 scores in this process.
    noisy_dir: optional folder of the unprocessed noisy inputs, paired like the clean files.
    Resumes from an existing ``per_file.csv`` in ``out_dir``: rows scored without error are kept.
    """
    if sample_rate != 16000:
        raise MetricSampleRateError(
            f"the evaluator computes wide-band PESQ and the composite measures, defined at 16000 Hz; "
            f"got sample_rate={sample_rate}. Use sample_rate=16000: files at other rates are "
            f"resampled to it on reading (scipy.signal.resample_poly), or resample the folders "
            f"once beforehand with se_data.resample_tree.")
    sr = 16000
    enh_root, clean_root = Path(enhanced_dir).resolve(), Path(clean_dir).resolve()
    noisy_root = Path(noisy_dir).resolve() if noisy_dir is not None else None
    for name, root in (("enhanced", enh_root), ("clean", clean_root), ("noisy", noisy_root)):
        if root is not None and not root.is_dir():
            raise MetricInputError(f"{name} folder {root} does not exist or is not a folder.")
    files = list_wavs(enh_root)
    if not files:
        raise MetricInputError(f"no *.wav files below {enh_root}: check ENHANCED_DIR.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"enhanced_dir": str(enh_root), "clean_dir": str(clean_root),
              "noisy_dir": str(noisy_root) if noisy_root else None, "sr": int(sr),
              "resampler": "scipy.signal.resample_poly"}
    _check_config(out, config)

    clean_index = _partner_index(clean_root)
    noisy_index = _partner_index(noisy_root) if noisy_root else None
    kinds = {"enhanced": out / PER_FILE}
    if noisy_root:
        kinds["noisy"] = out / PER_FILE_NOISY
    all_tasks: list[_Task] = []
    for rel in files:
        c, why = _find_partner(rel, clean_root, clean_index, "clean")
        all_tasks.append(_Task("enhanced", rel, c, str(enh_root / rel), why))
        if noisy_root:
            n, why_n = _find_partner(rel, noisy_root, noisy_index, "noisy")
            all_tasks.append(_Task("noisy", rel, c, n, why if c is None else why_n))

    rows: dict[str, dict[str, dict[str, Any]]] = {}
    todo: list[_Task] = []
    current = set(files)
    stale: list[str] = []
    for kind, path in kinds.items():
        done = _read_rows(path) if path.exists() else {}
        kept = {f: r for f, r in done.items() if not r["error"] and f in current}
        stale += [f"{path.name}: {f}" for f in done if f not in current]
        rows[kind] = kept
        _write_rows(path, kept.values())  # failed / stale rows are recomputed or dropped
        todo += [t for t in all_tasks if t.kind == kind and t.file not in kept]

    handles = {kind: open(path, "a", newline="") for kind, path in kinds.items()}
    writers = {kind: csv.DictWriter(fh, fieldnames=COLUMNS) for kind, fh in handles.items()}
    try:
        bar = tqdm(total=len(todo), desc="evaluating", unit="file", disable=not progress, file=sys.stderr)
        n_workers = max(1, int(workers or os.cpu_count() or 1))

        def take(task: _Task, row: dict[str, Any]) -> None:
            rows[task.kind][task.file] = row
            writers[task.kind].writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
            handles[task.kind].flush()
            bar.update(1)

        if n_workers == 1 or len(todo) <= 1:
            for t in todo:
                take(t, _score(t, sr))
        elif todo:
            with ProcessPoolExecutor(max_workers=min(n_workers, len(todo)), mp_context=_pool_context()) as pool:
                with _single_threaded_children():  # the workers start at the first submit
                    futures = {pool.submit(_score, t, sr): t for t in todo}
                for fut in as_completed(futures):
                    take(futures[fut], fut.result())
        bar.close()
    finally:
        for fh in handles.values():
            fh.close()

    for kind, path in kinds.items():  # final files sorted by name
        _write_rows(path, (rows[kind][f] for f in sorted(rows[kind])))
    summary: dict[str, Any] = {"config": config, "enhanced": _section(rows["enhanced"])}
    if noisy_root:
        summary["noisy"] = _section(rows["noisy"])
        summary["delta"] = _delta(rows["enhanced"], rows["noisy"])
    summary["resampled"] = _rate_report(all_tasks, int(sr))
    summary["n_computed_this_run"] = len(todo)
    if stale:  # rows of files no longer below ENHANCED_DIR, left out of the CSVs
        summary["dropped_stale_rows"] = stale
    (out / SUMMARY).write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return summary
