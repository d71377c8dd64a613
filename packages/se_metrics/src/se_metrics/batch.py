"""Batch evaluation of a folder of enhanced files against their clean references.

``evaluate_dir(enhanced_dir, clean_dir, out_dir)`` pairs every ``*.wav`` below ENHANCED_DIR
with the clean file at the same relative path (or, failing that, the only clean file with the
same name), scores each pair with :func:`evaluate_pair_defined` in a process pool (each utterance
unpadded: padding would change PESQ; consecutive files go to a worker in chunks), and writes
into ``out_dir``:

* ``per_file.csv``, one row per file, columns:

  - ``file``: path relative to ENHANCED_DIR (the row key);
  - the eleven metrics of :data:`METRICS` (or the subset chosen with ``metrics=``); a cell is empty where the metric is undefined for
    that pair or the file failed;
  - ``undefined``: why each empty metric of a scored file is undefined, ``"metric, ...:
    reason; ..."`` (e.g. ``"pesq_wb, pesq_nb, stoi, estoi, si_sdr, lsd: silent estimate
    (every sample is 0); csig, cbak, covl: needs pesq_wb, which is undefined (...)"``). An
    undefined metric is not a failure: the file's other metrics are recorded;
  - ``note``: ``"clipped: N sample(s) at |x| >= 1"`` for a scored file with samples at full
    scale (every metric is defined for it: it is scored, and counted in the summary);
  - ``error``: empty unless the file failed (missing or ambiguous partner, unreadable, empty,
    multi-channel, length mismatch, NaN/Inf, silent reference); a failed file has no numbers;
  - ``input_path, input_size, input_mtime_ns, input_sha256, clean_path, clean_size,
    clean_mtime_ns, clean_sha256``: the scored file (relative to its folder) and its clean
    reference (relative to CLEAN_DIR) as they were when read: size in bytes, mtime in ns,
    SHA-256 of the bytes (:func:`se_data.file_fingerprint`, taken before reading);
* ``per_file_noisy.csv``: the same for NOISY_DIR vs clean, when ``noisy_dir`` is given;
* ``summary.json``: per section (``enhanced``; with ``noisy_dir`` also ``noisy`` and
  ``delta``, per-file enhanced - noisy over files scored in both): per metric mean / std
  (population) / count over the files where it is defined and ``n_undefined``; ``undefined``
  (per metric the files and reasons), ``clipped`` (files and notes), the ``failures`` with
  their reasons and ``recomputed`` (rows redone because an input changed, counted per
  reason); then the resampled files and ``n_computed_this_run``;
* ``eval_config.json``: the settings, checked when resuming.

DNSMOS (``dnsmos=True``, or a DNSMOS name in ``metrics=``; needs the ``dnsmos`` extra): the
four columns of :data:`~se_metrics.DNSMOS_METRICS` (or those chosen) follow the eleven metrics, scored on each enhanced
(and noisy) file alone with :func:`se_metrics.dnsmos`; ``config`` records the ONNX
models (file and SHA-256). Non-intrusive mode (``clean_dir=None``): DNSMOS only, no clean
reference, the CSV has ``file``, the four DNSMOS columns, ``undefined, note, error`` and the
``input_*`` fingerprint columns; NOISY_DIR, if given, is scored the same way and ``delta`` is
enhanced - noisy. Files at another rate than 16 kHz are resampled to it (DNSMOS needs 16 kHz)
and listed under ``resampled``.

Rows are appended as results arrive, so an interrupted run resumes. On resume a row is kept
only when it was scored without error and both its inputs are unchanged: the same partner
paths and, per :func:`se_data.fingerprint_change`, the same size and content hash. Failed
rows are retried; a row whose scored file, clean partner or clean reference changed, and
every row of a ``per_file.csv`` written before fingerprints were recorded, is recomputed and
reported under ``recomputed`` with its reason. The fingerprints live in the CSV rows
themselves, so a row and the record of what it scored are written in one line and cannot
disagree after a crash.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import multiprocessing
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soundfile as sf
from se_data import file_fingerprint, fingerprint_change
from tqdm import tqdm

from ._audio import read_wav
from ._per_file import COLUMNS, LEGACY_COLUMNS, columns, csv_cells, fingerprint_cells, read_rows, recorded, write_rows
from ._validate import MetricInputError, MetricSampleRateError, MetricUndefinedError, sample_rate_alias
from .evaluate import METRICS, check_metrics, evaluate_pair_defined, join_undefined, split_undefined
from .non_intrusive import DNSMOS_METRICS

__all__ = ["COLUMNS", "LEGACY_COLUMNS", "evaluate_dir", "is_evaluation_dir", "list_wavs"]

PER_FILE = "per_file.csv"
PER_FILE_NOISY = "per_file_noisy.csv"
SUMMARY = "summary.json"
CONFIG = "eval_config.json"


@dataclass(frozen=True)
class _Task:
    kind: str                # "enhanced" or "noisy"
    file: str                # path relative to ENHANCED_DIR (the row key)
    clean: str | None        # clean partner path, None if missing
    other: str | None        # the enhanced or noisy file, None if missing
    missing: str = ""        # why a partner is missing
    clean_rel: str | None = None  # ``clean`` relative to CLEAN_DIR
    other_rel: str | None = None  # ``other`` relative to ENHANCED_DIR / NOISY_DIR


@dataclass(frozen=True)
class _Spec:
    """What an evaluation scores: intrusive metrics against a clean reference, DNSMOS, or both."""
    intrusive: bool = True           # the metrics of ``chosen`` against CLEAN_DIR
    dnsmos: bool = False             # the four DNSMOS scores of the file alone
    dnsmos_threads: int | None = None  # onnxruntime threads (1 in worker processes)
    chosen: tuple[str, ...] = METRICS  # the intrusive metrics (METRICS order)
    chosen_dnsmos: tuple[str, ...] = DNSMOS_METRICS  # the DNSMOS scores kept (DNSMOS_METRICS order)

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.chosen if self.intrusive else ()) + (self.chosen_dnsmos if self.dnsmos else ())

    @property
    def columns(self) -> tuple[str, ...]:
        return columns(self.metrics, self.intrusive)


_INTRUSIVE = _Spec()


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
    """Partner of ``rel`` below ``root``, relative to ``root``: the same relative path, else the
    unique same-named file; None and the reason when there is none."""
    rels, by_name = index
    if rel in rels:
        return rel, ""
    cands = by_name.get(rel.rsplit("/", 1)[-1], [])
    if len(cands) == 1:
        return cands[0], ""
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
    torch or CUDA state): a fork server that has imported se_metrics and the caller's main
    module once where available (Linux, macOS), else spawn. Preloading ``__main__`` (the fork
    server's default, kept) spares each worker importing the main script again (a trainer's:
    torch and the models, tens of seconds on a loaded machine)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["__main__", "se_metrics.batch"])
        return ctx
    return multiprocessing.get_context("spawn")


def _dnsmos(other: Any, sr: int, spec: _Spec, what: str) -> tuple[dict[str, float], dict[str, str]]:
    """DNSMOS of one file's samples: ``(values, undefined)`` as evaluate_pair_defined."""
    from .non_intrusive import _model  # noqa: PLC0415 - onnxruntime loads in the workers, once each

    try:  # the models score all four at once; the chosen ones are kept
        values = _model(spec.dnsmos_threads)(other.samples, sr)
        return {m: values[m] for m in spec.chosen_dnsmos}, {}
    except MetricUndefinedError as err:
        return {}, {m: err.reason for m in spec.chosen_dnsmos}
    except MetricInputError as err:
        raise MetricInputError(f"{what}: {err}") from err


def _score(task: _Task, sr: int, spec: _Spec = _INTRUSIVE) -> dict[str, Any]:
    """Worker: one row for one task. Never raises; a failure fills ``error`` and no numbers.

    Both inputs are fingerprinted before they are read, so a file that changes meanwhile is
    seen as changed on the next resume (the record holds the older state)."""
    row: dict[str, Any] = {c: "" for c in spec.columns}
    row.update(fingerprint_cells("input", task.other_rel, None), file=task.file)
    if spec.intrusive:
        row.update(fingerprint_cells("clean", task.clean_rel, None))
    what = f"{task.kind} {task.other}" + (f" vs clean {task.clean}" if spec.intrusive else "")
    try:
        if task.other is None or (spec.intrusive and task.clean is None):
            raise MetricInputError(task.missing)
        inputs = ((("clean", task.clean_rel, task.clean),) if spec.intrusive else ()) \
            + (("input", task.other_rel, task.other),)
        for prefix, rel, path in inputs:
            with contextlib.suppress(OSError):  # an unreadable file fails below, named
                row.update(fingerprint_cells(prefix, rel, file_fingerprint(path)))
        values: dict[str, float] = {}
        undefined: dict[str, str] = {}
        if spec.intrusive:
            clean = read_wav(Path(task.clean), sr, "clean")
        other = read_wav(Path(task.other), sr, task.kind)
        if spec.intrusive:
            try:
                values, undefined = evaluate_pair_defined(clean.samples, other.samples, sr, metrics=spec.chosen)
            except MetricInputError as err:
                raise MetricInputError(f"{what}: {err}") from err
        if spec.dnsmos:
            more, why = _dnsmos(other, sr, spec, what)
            values.update(more)
            undefined.update(why)
        bad = [m for m, v in values.items() if not np.isfinite(v)]
        if bad:
            raise MetricInputError(f"{what}: non-finite {', '.join(bad)}; not recorded")
        row.update({m: values.get(m, "") for m in spec.metrics}, undefined=join_undefined(undefined))
        if other.n_clipped:
            row["note"] = f"clipped: {other.n_clipped} sample(s) at |x| >= 1"
    except Exception as err:  # noqa: BLE001 - a failed file must never stop the batch
        msg = str(err) if isinstance(err, MetricInputError) else f"{type(err).__name__}: {err}"
        row.update({m: "" for m in spec.metrics}, undefined="", note="", error=msg.replace("\n", " "))
    return row


def _score_chunk(tasks: list[_Task], sr: int, spec: _Spec = _INTRUSIVE) -> list[dict[str, Any]]:
    """Worker: :func:`_score` of several tasks (one round trip to the pool for them all)."""
    return [_score(t, sr, spec) for t in tasks]


def _chunks(tasks: list[_Task], n_workers: int) -> list[list[_Task]]:
    """``tasks`` in consecutive chunks: about eight per worker (the load stays balanced when
    utterance lengths differ) and at most 16 tasks each (rows reach the CSV, and the progress
    bar, while the run goes on)."""
    size = max(1, min(16, len(tasks) // (8 * n_workers)))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


class _Fingerprints:
    """Current fingerprints of the input files, each hashed at most once per run (a clean
    reference is shared by the enhanced and the noisy row); None for a file that is gone."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, Any] | None] = {}

    def __call__(self, path: str) -> dict[str, Any] | None:
        if path not in self._cache:
            try:
                self._cache[path] = file_fingerprint(path)
            except OSError:
                self._cache[path] = None
        return self._cache[path]


def _changes(row: dict[str, Any], task: _Task, current: _Fingerprints, intrusive: bool = True) -> list[str]:
    """Why a row scored without error no longer matches its inputs, as ``"category: detail"``
    strings; empty when it still matches. Categories: ``"{kind} file changed"``, ``"{kind}
    partner changed"``, ``"clean partner changed"``, ``"clean reference changed"``, ``"partner
    missing"``, ``"no fingerprint recorded"`` (the clean ones only when ``intrusive``)."""
    if task.other is None or (intrusive and task.clean is None):
        return [f"partner missing: {task.missing}"]
    if recorded(row, "input") is None or (intrusive and recorded(row, "clean") is None):
        return ["no fingerprint recorded: the row has no input fingerprints"]
    why: list[str] = []
    checks = [("input", task.kind, "file", task.other_rel, task.other)]
    if intrusive:
        checks.append(("clean", "clean", "reference", task.clean_rel, task.clean))
    for prefix, role, what, rel, path in checks:
        if row[f"{prefix}_path"] != rel:
            why.append(f"{role} partner changed: {row[f'{prefix}_path']} -> {rel}")
            continue
        change = fingerprint_change(recorded(row, prefix), path, current(path))
        if change is not None:
            why.append(f"{role} {what} changed: {change}")
    return why


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "std": None, "count": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "count": int(a.size)}


def _recomputed(redo: dict[str, list[str]]) -> dict[str, Any]:
    """``{file: ["category: detail", ...]}`` as the summary's ``recomputed`` entry: the number
    of files, how many had each category (a file counts once per category) and every file
    with its reasons."""
    by_reason: Counter[str] = Counter()
    for reasons in redo.values():
        by_reason.update({r.split(": ", 1)[0] for r in reasons})
    return {"n_files": len(redo), "by_reason": dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
            "files": [{"file": f, "reasons": redo[f]} for f in sorted(redo)]}


def _section(rows: dict[str, dict[str, Any]], redo: dict[str, list[str]],
             names: tuple[str, ...] = METRICS) -> dict[str, Any]:
    ordered = [rows[f] for f in sorted(rows)]
    ok = [r for r in ordered if not r["error"]]
    why = {r["file"]: split_undefined(r["undefined"]) for r in ok}
    metrics = {}
    for m in names:
        metrics[m] = _stats([r[m] for r in ok if r[m] != ""])
        metrics[m]["n_undefined"] = sum(m in why[r["file"]] for r in ok)
    return {
        "n_files": len(rows),
        "n_ok": len(ok),
        "metrics": metrics,
        "undefined": {m: [{"file": f, "reason": w[m]} for f, w in why.items() if m in w]
                      for m in names if metrics[m]["n_undefined"]},
        "n_clipped": sum(bool(r["note"]) for r in ok),
        "clipped": [{"file": r["file"], "note": r["note"]} for r in ok if r["note"]],
        "failures": [{"file": r["file"], "reason": r["error"]} for r in ordered if r["error"]],
        "recomputed": _recomputed(redo),
    }


def _delta(enh: dict[str, dict[str, Any]], noisy: dict[str, dict[str, Any]],
           names: tuple[str, ...] = METRICS) -> dict[str, Any]:
    """Per metric statistics of enhanced - noisy over the files scored in both where the metric
    is defined in both."""
    both = [f for f in enh if f in noisy and not enh[f]["error"] and not noisy[f]["error"]]
    return {"n_files": len(both),
            "metrics": {m: _stats([enh[f][m] - noisy[f][m] for f in both if enh[f][m] != "" and noisy[f][m] != ""])
                        for m in names}}


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


def _config_metrics(config: dict[str, Any]) -> list[str]:
    """The metrics an evaluation's config scores: its ``metrics`` entry, else (a default
    selection, recorded without one) every metric of :data:`METRICS` with a clean reference
    plus the four DNSMOS scores with ``dnsmos``."""
    if "metrics" in config:
        return list(config["metrics"])
    return (list(METRICS) if config.get("clean_dir") is not None else []) \
        + (list(DNSMOS_METRICS) if config.get("dnsmos") else [])


def _check_config(out_dir: Path, config: dict[str, Any]) -> None:
    path = out_dir / CONFIG
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in config.items() if k != "metrics" and old.get(k) != v}
        before, now = _config_metrics(old), _config_metrics(config)
        if not diff and before != now:
            raise MetricInputError(
                f"{out_dir} holds an evaluation of the metrics {','.join(before)}; this run chooses "
                f"{','.join(now)}. It cannot be resumed with another metric set (its per-file CSV has the "
                f"first run's columns): choose the same metrics (metrics= / --metrics "
                f"{','.join(before)}) or use a new output folder.")
        if diff:
            if before != now:
                diff["metrics"] = (before, now)
            raise MetricInputError(
                f"{out_dir} holds an evaluation with other settings ({diff}, as (old, new)); "
                f"resuming would mix them. Use a new output folder.")
    else:
        path.write_text(json.dumps(config, indent=1) + "\n")


def is_evaluation_dir(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir`` holds an evaluation :func:`evaluate_dir` resumes (its ``per_file.csv``)."""
    return (Path(out_dir) / PER_FILE).is_file()


def _tasks(files: list[str], enh_root: Path, clean_root: Path | None, noisy_root: Path | None) -> list[_Task]:
    """One task per file and kind (enhanced, and noisy with NOISY_DIR), partners resolved
    (without CLEAN_DIR: no clean partner, and a noisy file's missing partner is its own)."""
    clean_index = _partner_index(clean_root) if clean_root else None
    noisy_index = _partner_index(noisy_root) if noisy_root else None
    tasks: list[_Task] = []
    for rel in files:
        c, why = _find_partner(rel, clean_root, clean_index, "clean") if clean_root else (None, "")
        clean = str(clean_root / c) if c else None
        tasks.append(_Task("enhanced", rel, clean, str(enh_root / rel), why, c, rel))
        if noisy_root:
            n, why_n = _find_partner(rel, noisy_root, noisy_index, "noisy")
            tasks.append(_Task("noisy", rel, clean, str(noisy_root / n) if n else None,
                               why if clean_root and c is None else why_n, c, n))
    return tasks


def _resume(path: Path, tasks: dict[str, _Task], current: _Fingerprints, spec: _Spec = _INTRUSIVE
            ) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]], list[str]]:
    """Rows of an earlier run in ``path`` to keep, rows to recompute because an input changed
    (``{file: reasons}``) and row keys no longer below ENHANCED_DIR (dropped). Failed rows are
    neither kept nor listed: they are retried."""
    if not path.exists():
        return {}, {}, []
    done, must_redo = read_rows(path, spec.columns)
    kept: dict[str, dict[str, Any]] = {}
    redo: dict[str, list[str]] = {}
    for f, row in done.items():
        if f not in tasks:
            continue
        if f in must_redo:
            redo[f] = [must_redo[f]]
        elif not row["error"]:
            why = _changes(row, tasks[f], current, spec.intrusive)
            if why:
                redo[f] = why
            else:
                kept[f] = row
    return kept, redo, [f"{path.name}: {f}" for f in done if f not in tasks]


def _choose_metrics(metrics: tuple[str, ...] | list[str] | None, intrusive: bool
                    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``metrics=`` of :func:`evaluate_dir` as ``(intrusive, dnsmos)`` selections, each in its
    canonical order: None is every metric of :data:`METRICS` (with a clean reference) and no
    DNSMOS choice (``dnsmos`` decides). ValueError for an unknown or repeated name, a metric of
    :data:`METRICS` without a clean reference, or no metric of :data:`METRICS` with one."""
    if metrics is None:
        return (METRICS if intrusive else ()), ()
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    chosen_dnsmos = tuple(m for m in DNSMOS_METRICS if m in names)
    intrusive_names = [m for m in names if m not in DNSMOS_METRICS]
    valid = list(METRICS) + list(DNSMOS_METRICS)
    unknown = [m for m in intrusive_names if m not in METRICS]
    if unknown or not names or len(set(names)) != len(names):
        what = f"unknown metric(s) {unknown}" if unknown else "an empty or repeated selection"
        raise ValueError(f"metrics: {what} {names}; choose distinct names from {valid} "
                         f"(those of METRICS need a clean reference)")
    if not intrusive:
        if intrusive_names:
            raise ValueError(f"metrics: {intrusive_names} need a clean reference (clean_dir), and there is "
                             f"none; without one only {list(DNSMOS_METRICS)} can be scored")
        return (), chosen_dnsmos
    if not intrusive_names:
        raise ValueError(f"metrics: only DNSMOS scores {names} chosen, with a clean reference: choose at least "
                         f"one of {list(METRICS)} too, or leave clean_dir out to score DNSMOS alone")
    return check_metrics(intrusive_names), chosen_dnsmos


@sample_rate_alias
def evaluate_dir(enhanced_dir: str | os.PathLike, clean_dir: str | os.PathLike | None, out_dir: str | os.PathLike,
                 sample_rate: int = 16000, workers: int | None = None,
                 noisy_dir: str | os.PathLike | None = None, progress: bool = True, *,
                 dnsmos: bool = False, metrics: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
    """Score every ``*.wav`` below ``enhanced_dir`` against its clean partner; write the CSVs and
    ``summary.json`` into ``out_dir`` (see the module docstring) and return the summary dict.

    clean_dir: folder of clean references; None scores DNSMOS only (non-intrusive mode).
    sample_rate: rate the metrics run at, in Hz (16000: wide-band PESQ, the composite and
        DNSMOS need it; ``sr=`` is accepted too); files at another rate are resampled and
        listed under ``resampled``. Another value raises :class:`MetricSampleRateError`.
    workers: processes (default ``os.cpu_count()``); 1 scores in this process.
    noisy_dir: optional folder of the unprocessed noisy inputs, paired like the clean files.
    dnsmos: also score DNSMOS P.835 / P.808 (:func:`se_metrics.dnsmos`) of each file
        (implied without ``clean_dir``). Needs the ``dnsmos`` extra: without it
        :class:`~se_metrics.DnsmosUnavailableError` (an ``ImportError`` naming it) is
        raised before anything is written.
    metrics: the metrics to compute (default all): names of :data:`METRICS` (need
        ``clean_dir``; with it at least one) and of :data:`~se_metrics.DNSMOS_METRICS` (a
        DNSMOS name implies ``dnsmos``; with ``dnsmos`` and no DNSMOS name, all four). The
        CSV and summary then have those columns, :data:`METRICS` first, each in its canonical
        order; ``config`` records the selection under ``metrics`` (when not the default), and
        a resume that chooses another set raises :class:`MetricInputError`. Only what they
        need is computed (e.g. ``("pesq_wb", "pesq_nb", "stoi", "estoi")`` skips the
        composite's LLR and WSS). An unknown, repeated or impossible choice raises ValueError
        naming the valid ones.
    Resumes from an existing ``per_file.csv`` in ``out_dir``: rows scored without error whose
    inputs are unchanged are kept; the others are recomputed (see the module docstring).
    """
    if sample_rate != 16000:
        raise MetricSampleRateError(
            f"the evaluator computes wide-band PESQ, the composite measures and DNSMOS, defined at 16000 Hz; "
            f"got sample_rate={sample_rate}. Use sample_rate=16000: files at other rates are "
            f"resampled to it on reading (scipy.signal.resample_poly), or resample the folders "
            f"once beforehand with se_data.resample_tree.")
    sr = 16000
    intrusive = clean_dir is not None
    use_dnsmos = bool(dnsmos) or not intrusive
    enh_root = Path(enhanced_dir).resolve()
    clean_root = Path(clean_dir).resolve() if intrusive else None
    noisy_root = Path(noisy_dir).resolve() if noisy_dir is not None else None
    for name, root in (("enhanced", enh_root), ("clean", clean_root), ("noisy", noisy_root)):
        if root is not None and not root.is_dir():
            raise MetricInputError(f"{name} folder {root} does not exist or is not a folder.")
    files = list_wavs(enh_root)
    if not files:
        raise MetricInputError(f"no *.wav files below {enh_root}: check ENHANCED_DIR.")
    n_workers = max(1, int(workers or os.cpu_count() or 1))
    chosen, chosen_dnsmos = _choose_metrics(metrics, intrusive)
    use_dnsmos = use_dnsmos or bool(chosen_dnsmos)
    # one onnxruntime thread per worker process (one worker per core), as BLAS
    spec = _Spec(intrusive=intrusive, dnsmos=use_dnsmos, dnsmos_threads=1, chosen=chosen,
                 chosen_dnsmos=chosen_dnsmos or DNSMOS_METRICS)
    config: dict[str, Any] = {"enhanced_dir": str(enh_root), "clean_dir": str(clean_root) if clean_root else None,
                              "noisy_dir": str(noisy_root) if noisy_root else None, "sr": int(sr),
                              "resampler": "scipy.signal.resample_poly"}
    if list(spec.metrics) != _config_metrics({**config, "dnsmos": use_dnsmos}):
        config["metrics"] = list(spec.metrics)  # only then: default evaluations keep the config they always had
    if use_dnsmos:  # only then: evaluations without DNSMOS keep the config they always had
        from .non_intrusive import dnsmos_model_info  # noqa: PLC0415

        config["dnsmos"] = dnsmos_model_info()  # raises, naming the extra, before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, config)

    all_tasks = _tasks(files, enh_root, clean_root, noisy_root)
    kinds = {"enhanced": out / PER_FILE}
    if noisy_root:
        kinds["noisy"] = out / PER_FILE_NOISY
    cols = spec.columns
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    redo: dict[str, dict[str, list[str]]] = {}
    todo: list[_Task] = []
    stale: list[str] = []
    current = _Fingerprints()
    for kind, path in kinds.items():
        tasks = {t.file: t for t in all_tasks if t.kind == kind}
        rows[kind], redo[kind], dropped = _resume(path, tasks, current, spec)
        stale += dropped
        write_rows(path, rows[kind].values(), cols)  # failed, changed and stale rows are recomputed or dropped
        todo += [t for f, t in tasks.items() if f not in rows[kind]]

    handles = {kind: open(path, "a", newline="") for kind, path in kinds.items()}
    writers = {kind: csv.DictWriter(fh, fieldnames=cols) for kind, fh in handles.items()}
    try:
        bar = tqdm(total=len(todo), desc="evaluating", unit="file", disable=not progress, file=sys.stderr)

        def take(task: _Task, row: dict[str, Any]) -> None:
            rows[task.kind][task.file] = row
            writers[task.kind].writerow(csv_cells(row))
            handles[task.kind].flush()
            bar.update(1)

        if n_workers == 1 or len(todo) <= 1:
            here = dataclasses.replace(spec, dnsmos_threads=None)  # this process: onnxruntime's own threads
            for t in todo:
                take(t, _score(t, sr, here))
        elif todo:
            with ProcessPoolExecutor(max_workers=min(n_workers, len(todo)), mp_context=_pool_context()) as pool:
                with _single_threaded_children():  # the workers start at the first submit
                    futures = {pool.submit(_score_chunk, chunk, sr, spec): chunk
                               for chunk in _chunks(todo, n_workers)}
                for fut in as_completed(futures):
                    for t, row in zip(futures[fut], fut.result()):
                        take(t, row)
        bar.close()
    finally:
        for fh in handles.values():
            fh.close()

    for kind, path in kinds.items():  # final files sorted by name
        write_rows(path, (rows[kind][f] for f in sorted(rows[kind])), cols)
    summary: dict[str, Any] = {"config": config,
                               "enhanced": _section(rows["enhanced"], redo["enhanced"], spec.metrics)}
    if noisy_root:
        summary["noisy"] = _section(rows["noisy"], redo["noisy"], spec.metrics)
        summary["delta"] = _delta(rows["enhanced"], rows["noisy"], spec.metrics)
    summary["resampled"] = _rate_report(all_tasks, int(sr))
    summary["n_computed_this_run"] = len(todo)
    if stale:  # rows of files no longer below ENHANCED_DIR, left out of the CSVs
        summary["dropped_stale_rows"] = stale
    (out / SUMMARY).write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return summary
