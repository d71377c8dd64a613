"""The evaluator's per-file CSV: its columns, and reading / writing its rows.

One row per scored file (see :mod:`se_metrics.batch` for what the columns mean). In memory a
row is a dict over the evaluation's columns (:data:`COLUMNS` by default; :func:`columns` for
another metric set, e.g. with DNSMOS, or without a clean reference): metric values are
floats, or ``""`` where the metric is undefined or the file failed; fingerprint sizes and
mtimes are ints (``None`` where not recorded); everything else is a string.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._validate import MetricInputError
from .evaluate import METRICS, split_undefined

#: Where each scored row's inputs were and what they held when they were read: the file
#: scored (enhanced or noisy; path relative to its folder) and its clean reference (relative
#: to CLEAN_DIR), each with size (bytes), mtime (ns) and SHA-256, as se_data.file_fingerprint.
FINGERPRINT_COLUMNS: tuple[str, ...] = (
    "input_path", "input_size", "input_mtime_ns", "input_sha256",
    "clean_path", "clean_size", "clean_mtime_ns", "clean_sha256")
COLUMNS: tuple[str, ...] = ("file",) + METRICS + ("undefined", "note", "error") + FINGERPRINT_COLUMNS
#: The columns of per_file.csv before fingerprints and undefined metrics were recorded: such a
#: file is resumed, but every row in it is recomputed.
LEGACY_COLUMNS: tuple[str, ...] = ("file",) + METRICS + ("error",)
_INT_COLUMNS = ("input_size", "input_mtime_ns", "clean_size", "clean_mtime_ns")


def columns(metrics: tuple[str, ...] = METRICS, intrusive: bool = True) -> tuple[str, ...]:
    """The per-file CSV's columns for ``metrics``; without a clean reference (``intrusive``
    False) the four ``clean_*`` fingerprint columns are left out. ``columns()`` is
    :data:`COLUMNS`."""
    fp = FINGERPRINT_COLUMNS if intrusive else FINGERPRINT_COLUMNS[:4]
    return ("file",) + tuple(metrics) + ("undefined", "note", "error") + fp


def fingerprint_cells(prefix: str, rel: str | None, fp: Mapping[str, Any] | None) -> dict[str, Any]:
    """The four cells ``{prefix}_path / _size / _mtime_ns / _sha256`` of one input (``prefix``
    ``"input"`` or ``"clean"``); empty where the path or fingerprint is unknown."""
    fp = fp or {}
    return {f"{prefix}_path": rel or "", f"{prefix}_size": fp.get("size"),
            f"{prefix}_mtime_ns": fp.get("mtime_ns"), f"{prefix}_sha256": fp.get("sha256", "")}


def recorded(row: Mapping[str, Any], prefix: str) -> dict[str, Any] | None:
    """The fingerprint a row recorded for input ``prefix``, or None if it has none."""
    fp = {"size": row.get(f"{prefix}_size"), "mtime_ns": row.get(f"{prefix}_mtime_ns"),
          "sha256": row.get(f"{prefix}_sha256") or None}
    return fp if all(v is not None for v in fp.values()) else None


def _parse(raw: Mapping[str, str], legacy: bool, cols: tuple[str, ...], metrics: tuple[str, ...]
           ) -> dict[str, Any]:
    """One CSV row as an in-memory row; ValueError for cells that are not what they should be."""
    row: dict[str, Any] = {c: "" for c in cols}
    ints = [c for c in _INT_COLUMNS if c in row]
    row.update({c: None for c in ints})
    row.update({k: raw[k] or "" for k in raw if k in row})
    for m in metrics:
        row[m] = float(raw[m]) if raw[m] and not row["error"] else ""
    if legacy:
        return row
    for c in ints:
        row[c] = int(raw[c]) if raw[c] else None
    if not row["error"]:  # every empty metric cell has its reason, and only those
        empty = {m for m in metrics if row[m] == ""}
        if empty != set(split_undefined(row["undefined"])):
            raise ValueError(f"empty metric cells {sorted(empty)} do not match the 'undefined' column")
    return row


def read_rows(path: Path, cols: tuple[str, ...] = COLUMNS
              ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Rows of an existing per-file CSV with columns ``cols`` (:func:`columns`) keyed by
    ``file``, and ``{file: "category: detail"}`` for rows that must be recomputed whatever
    their inputs: the scored rows of a file in the older format (:data:`LEGACY_COLUMNS`, no
    fingerprints; only where ``cols`` is :data:`COLUMNS`) and rows whose cells cannot be
    parsed. A CSV with other columns raises :class:`MetricInputError` (it is not this
    evaluation's)."""
    cols = tuple(cols)
    metrics = cols[1:cols.index("undefined")]
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = tuple(reader.fieldnames or ())
        if header != cols and not (cols == COLUMNS and header == LEGACY_COLUMNS):
            raise MetricInputError(
                f"{path} does not have the evaluator's columns {list(cols)} "
                f"(found {reader.fieldnames}); it cannot be resumed. Use a new output folder.")
        legacy = header == LEGACY_COLUMNS
        rows: dict[str, dict[str, Any]] = {}
        redo: dict[str, str] = {}
        for raw in reader:
            f = raw["file"]
            try:
                rows[f] = _parse(raw, legacy, cols, metrics)
            except (ValueError, TypeError) as err:
                rows[f] = {**{c: "" for c in cols}, "file": f, "error": "unreadable row"}
                redo[f] = f"unreadable row: {path.name} ({err})"
                continue
            if legacy and not rows[f]["error"]:
                redo[f] = f"no fingerprint recorded: {path.name} has the older columns, without fingerprints"
    return rows, redo


def csv_cells(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as CSV cells: floats as ``repr`` (round-trips exactly), None as empty."""
    return {k: (repr(v) if isinstance(v, float) else "" if v is None else v) for k, v in row.items()}


def write_rows(path: Path, rows: Iterable[Mapping[str, Any]], cols: tuple[str, ...] = COLUMNS) -> None:
    """Write a complete CSV with columns ``cols`` atomically (temp file + rename), with the
    mode ``open()`` would give."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what open() would give
    with os.fdopen(fd, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(csv_cells(r))
    os.replace(tmp, path)
