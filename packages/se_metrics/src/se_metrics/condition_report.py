"""Tables of an evaluation that scores every file of one or more sets under several conditions.

The rows are per (run, set, file) dicts, as ``tools/eval_ood.py`` writes them: ``"checkpoint"``
(the run: a model, a method), ``"set"`` (e.g. ``"ID"``, ``"OOD"``), ``"file"``, optional tag
fields (``"snr_db"``, ``"noise_class"``) and, per condition label, ``"<label>|<column>"``
metric cells (e.g. ``"cond|PESQ-WB"``) and ``"<label>|w"``, the guidance scale the condition
used (absent for the unprocessed input, e.g. ``"noisy"``). From them:
:func:`condition_means` (the table: per run, set and condition the mean of each column),
:func:`condition_breakdown` (the same per tag value), :func:`condition_tags` (the tags from a
set's manifest), :func:`write_dict_rows` (any such rows as CSV) and :func:`condition_markdown`
(the report); :func:`set_file_pairs` lists a set's files. Means skip NaN (a missing score) and
are None where no file has a value.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from se_data import find_vbdemand_log, read_vbdemand_log

from .ood_analysis import breakdown, read_condition_manifest
from .tables import mean_rows

__all__ = ["condition_breakdown", "condition_markdown", "condition_means", "condition_tags", "set_file_pairs",
           "write_dict_rows"]

#: the table column of the mean guidance scale, from each row's ``"<label>|w"``
SCALE = "mean w"


def _cells(r: Mapping[str, Any], label: str, columns: Sequence[str]) -> dict[str, Any]:
    return {**{c: r[f"{label}|{c}"] for c in columns}, SCALE: r.get(f"{label}|w", math.nan)}


def condition_means(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, Sequence[str]], sets: Sequence[str],
                    columns: Sequence[str], *, prefix: bool, unguided: Sequence[str] = ("noisy",)
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str, str]]]:
    """The table: per run (``labels``' keys, in order), set and condition label (``labels[run]``,
    in order) the mean of each of ``columns`` and of the guidance scale (``"mean w"``, left out
    for the ``unguided`` labels) over the run's scored ``rows`` of that set, and ``"files"``,
    their number. Returns ``(table, keys)``: the table keyed ``"[run ]set label"`` (the run
    named only with ``prefix``) and each key's ``(run, set, label)``."""
    groups: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, tuple[str, str, str]] = {}
    for name, names in labels.items():
        for s in sets:
            for label in names:
                key = f"{name} {s} {label}" if prefix else f"{s} {label}"
                keys[key] = (name, s, label)
                groups[key] = [_cells(r, label, columns) for r in rows if r["checkpoint"] == name and r["set"] == s]
    table: dict[str, dict[str, Any]] = mean_rows(groups, tuple(columns) + (SCALE,))
    for key, vals in table.items():
        if keys[key][2] in unguided:
            del vals[SCALE]  # the input: no guidance scale
        vals["files"] = len(groups[key])
    return table, keys


def condition_breakdown(rows: Iterable[Mapping[str, Any]], labels: Mapping[str, Sequence[str]],
                        columns: Sequence[str], by: Sequence[str], order: Sequence[tuple[str, str, str]], *,
                        unguided: Sequence[str] = ("noisy",)) -> list[dict[str, Any]]:
    """Per run, set and condition the file count and the means of ``columns`` and ``"mean w"``
    (None for the ``unguided`` labels) over all files (``"by": "all", "value": "all"``) and per
    value of each tag field of ``by`` (rows without the tag are left out of that field's
    groups). Sorted by ``order`` (the ``(run, set, label)`` of :func:`condition_means`'
    keys), then ``"all"`` before the fields in ``by``'s order, values in
    :func:`~se_metrics.breakdown`'s order."""
    flat = [{"checkpoint": r["checkpoint"], "set": r["set"], "condition": label,
             **{k: r[k] for k in by if k in r}, **_cells(r, label, columns)}
            for r in rows for label in labels[r["checkpoint"]]]
    cols = tuple(columns) + (SCALE,)
    out = []
    for field in ((),) + tuple((k,) for k in by):
        for g in breakdown(flat, ("checkpoint", "set", "condition") + field, cols):
            value = g.pop(field[0]) if field else "all"
            if g["condition"] in unguided:
                g[SCALE] = None
            out.append({"checkpoint": g["checkpoint"], "set": g["set"], "condition": g["condition"],
                        "by": field[0] if field else "all", "value": value, "files": g["files"],
                        **{c: g[c] for c in cols}})
    rank = {key: i for i, key in enumerate(order)}
    by_rank = {"all": 0, **{k: i + 1 for i, k in enumerate(by)}}
    out.sort(key=lambda g: (rank[(g["checkpoint"], g["set"], g["condition"])], by_rank[g["by"]]))  # stable
    return out


def set_file_pairs(root: Path, limit: int | None = None) -> list[tuple[str, Path, Path]]:
    """``(rel, noisy, clean)`` of every ``.wav`` / ``.flac`` file (suffix in any case) below a
    set's noisy folder, sorted by ``rel`` (its POSIX path relative to that folder), at most
    ``limit``: ``root/noisy`` and ``root/clean``, else a VoiceBank-DEMAND root's
    ``noisy_testset_wav`` and ``clean_testset_wav``. ValueError naming the file or folder for
    another layout, a noisy file without its clean one (same relative path) or no files."""
    if (root / "clean").is_dir() and (root / "noisy").is_dir():
        cdir, ndir = root / "clean", root / "noisy"
    elif (root / "clean_testset_wav").is_dir():
        cdir, ndir = root / "clean_testset_wav", root / "noisy_testset_wav"
    else:
        raise ValueError(f"{root} has neither clean/ + noisy/ nor a VoiceBank-DEMAND test set")
    noisy = {p.relative_to(ndir).as_posix(): p for p in ndir.rglob("*")
             if p.is_file() and p.suffix.lower() in (".wav", ".flac")}
    pairs = []
    for rel, n in sorted(noisy.items()):
        c = cdir / rel
        if not c.is_file():
            raise ValueError(f"{n} has no clean reference {c}")
        pairs.append((rel, n, c))
    if not pairs:
        raise ValueError(f"no audio files in {ndir}")
    return pairs[:limit]


def condition_tags(root: Path, files: Sequence[str], manifest: str | None = None, *, flag: str = "manifest"
                   ) -> tuple[dict[str, dict[str, Any]], str | None, list[str]]:
    """``({file: {"snr_db", "noise_class"}}, source, notes)`` of a set's ``files`` (paths
    relative to its noisy folder) from its manifest: ``manifest`` (a CSV path; ``"none"``: no
    tags), else ``root/manifest.csv``, else a VoiceBank-DEMAND root's ``log_testset.txt``. A
    manifest's row matches a file by its path, name or stem (:func:`~se_metrics.read_condition_manifest`).
    ``notes`` say what was left out: an unreadable default manifest (no tags), files it does
    not list. ValueError, naming ``flag``, for a given manifest that cannot be read or a log
    that cannot be parsed."""
    if manifest is not None and manifest.lower() == "none":
        return {}, None, []
    path = Path(manifest) if manifest is not None else root / "manifest.csv" if (root / "manifest.csv").is_file() \
        else None
    if path is None:
        log = find_vbdemand_log(root, "test") if (root / "noisy_testset_wav").is_dir() else None
        if log is None:
            return {}, None, []
        entries = {name: {"snr_db": snr, "noise_class": noise} for name, (noise, snr) in read_vbdemand_log(log).items()}
        path = log
    else:
        try:
            entries = read_condition_manifest(path)
        except (OSError, ValueError) as e:
            if manifest is not None:
                raise ValueError(f"{flag} {path}: {e}") from e
            return {}, None, [f"{path} is not read for the breakdown ({e})"]
    tags = {}
    for rel in files:
        hit = next((entries[k] for k in (rel, Path(rel).name, Path(rel).stem) if k in entries), None)
        if hit is not None:
            tags[rel] = hit
    missing = len(files) - len(tags)
    notes = [f"{path} describes {len(tags)} of {len(files)} files; the other {missing} are left out of the "
             f"SNR / noise-class breakdown"] if missing else []
    return tags, str(path), notes


def write_dict_rows(path: Path, rows: Sequence[Mapping[str, Any]], front: Sequence[str] = ()) -> None:
    """Rows as CSV: the ``front`` columns that occur, then the others in first-seen order, an
    ``error`` column last; a missing value (or None) is empty."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    cols = [k for k in front if k in keys] + [k for k in keys if k not in front and k != "error"]
    cols += ["error"] if "error" in keys else []
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in cols} for r in rows)


def _md_cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _fmt_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def condition_markdown(table: Mapping[str, Mapping[str, Any]], keys: Mapping[str, tuple[str, str, str]],
                       breakdown_rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *,
                       by: Sequence[str] = (), auroc: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
                       score_labels: Mapping[str, str] | None = None,
                       correlations: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
                       title: str = "eval_ood") -> str:
    """The report as Markdown: the table of :func:`condition_means` (``columns``, ``"mean w"``,
    ``"files"``; a run named on its first line only); with ``auroc`` (``{run: {score key:
    {"auroc": ...}}}``) a table per score (rows in ``score_labels``' order, named by its
    values); with ``correlations`` (``{run: {pair: {"pearson", "spearman", "n"}}}``) one row
    per run and pair; then per tag field of ``by`` the rows of :func:`condition_breakdown`
    for it. Numbers ``.3f``, ints as they are, ``-`` for None and NaN."""
    cols = tuple(columns) + (SCALE, "files")
    lines = [f"# {title}", "", "| checkpoint | set | condition | " + " | ".join(cols) + " |",
             "|---|---|---|" + "---:|" * len(cols)]
    last = None
    for key, vals in table.items():
        name, s, label = keys[key]
        shown = name if name != last else ""
        last = name
        lines.append(f"| {shown} | {s} | {label} | " + " | ".join(_md_cell(vals.get(c)) for c in cols) + " |")
    if auroc:
        names = list(auroc)
        lines += ["", "## AUROC, ID vs OOD (higher uncertainty score = OOD; 0.5 chance)", "",
                  "| score | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for k, label in (score_labels or {}).items():
            if any(k in auroc[n] for n in names):
                lines.append(f"| {label} | " + " | ".join(
                    _md_cell(auroc[n][k]["auroc"]) if k in auroc[n] else "-" for n in names) + " |")
    corr = [(n, k, v) for n, d in (correlations or {}).items() for k, v in d.items()]
    if corr:
        lines += ["", "## Uncertainty vs quality", "", "| checkpoint | pair | Pearson | Spearman | n |",
                  "|---|---|---:|---:|---:|"]
        lines += [f"| {n} | {k} | {_md_cell(v['pearson'])} | {_md_cell(v['spearman'])} | {v['n']} |"
                  for n, k, v in corr]
    for field in by:
        sel = [g for g in breakdown_rows if g["by"] == field]
        if sel:
            lines += ["", f"## By {field}", "", f"| checkpoint | set | condition | {field} | files | "
                      + " | ".join(columns) + " |", "|---|---|---|---|---:|" + "---:|" * len(columns)]
            lines += [f"| {g['checkpoint']} | {g['set']} | {g['condition']} | {_fmt_value(g['value'])} | "
                      f"{g['files']} | " + " | ".join(_md_cell(g[c]) for c in columns) + " |" for g in sel]
    return "\n".join(lines) + "\n"
