"""In-distribution vs out-of-distribution analysis of an enhancement evaluation.

* :func:`auroc` -- how well a per-utterance score separates OOD from in-distribution
  utterances: the area under the ROC curve in its Mann-Whitney form (Hanley & McNeil 1982),
  ``P(s_ood > s_id) + 1/2 P(s_ood = s_id)`` over all ID x OOD pairs;
* :func:`breakdown` -- per-file rows grouped by some of their fields (e.g. the SNR or noise
  class of a test-set manifest), with the mean of each metric and the count of files;
* :func:`read_condition_manifest` -- the SNR and noise class of each file of a test set from
  a manifest CSV (``se_data``'s OOD and non-stationary builders write one);
* :func:`auroc_by_group` -- the AUROC of each per-utterance score over a whole ID / OOD
  evaluation and per group of OOD files (SNR, noise class);
* :func:`correlation` -- Pearson and Spearman correlation of two per-utterance series (e.g.
  an uncertainty score against the quality gain), undefined values left out.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .report import mean_scores

__all__ = ["auroc", "auroc_by_group", "breakdown", "correlation", "read_condition_manifest"]


def auroc(id_scores: Iterable[float], ood_scores: Iterable[float]) -> float:
    """Area under the ROC curve of a score meant to be higher on OOD utterances.

    ``(#{(i, j): ood_j > id_i} + 0.5 #{(i, j): ood_j == id_i}) / (n_id n_ood)``, computed
    from average ranks: ``U = R_ood - n_ood (n_ood + 1) / 2`` (Mann-Whitney U of the OOD
    sample), ``AUROC = U / (n_id n_ood)``. 1: every OOD score above every ID score, 0.5:
    chance (or a constant score), 0: the score ranks the other way. ``ValueError`` for an
    empty side or a non-finite score (drop undefined scores first).
    """
    a = np.asarray(list(id_scores), dtype=np.float64).ravel()
    b = np.asarray(list(ood_scores), dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"AUROC needs at least one score on each side, got {a.size} ID and {b.size} OOD")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("AUROC scores must be finite (drop NaN / inf first)")
    ranks = rankdata(np.concatenate([a, b]), method="average")  # ties share their mean rank
    u = float(ranks[a.size:].sum()) - b.size * (b.size + 1) / 2.0
    return u / (a.size * b.size)


def _finite(v: Any) -> float:
    """``v`` as a float; NaN for a missing value (None or an empty CSV cell)."""
    return math.nan if v is None or v == "" else float(v)


def auroc_by_group(rows: Sequence[Mapping[str, Any]], scores: Mapping[str, str], *,
                   set_key: str = "set", by: Sequence[str] = ("snr_db", "noise_class")) -> dict[str, Any]:
    """Per score column: the AUROC of all ID rows vs all OOD rows (``row[set_key]`` ``"ID"`` /
    ``"OOD"``), and of all ID rows vs the OOD rows of each value of each ``by`` field.

    ``scores`` maps a score column of the rows to its label. Rows without a finite score are
    left out (per column); a column with no scored ID or OOD row is left out of the result.
    Returns ``{column: {"label", "auroc", "n_id", "n_ood", "by_<field>": {value: {"auroc",
    "n_ood"}}}}`` with the values as text (``f"{v:g}"`` for numbers), sorted numbers first.
    """
    res: dict[str, Any] = {}
    for col, label in scores.items():
        id_s = [_finite(r.get(col)) for r in rows if r.get(set_key) == "ID"]
        id_s = [v for v in id_s if math.isfinite(v)]
        ood = [r for r in rows if r.get(set_key) == "OOD" and math.isfinite(_finite(r.get(col)))]
        if not id_s or not ood:
            continue
        entry: dict[str, Any] = {"label": label, "auroc": auroc(id_s, [float(r[col]) for r in ood]),
                                 "n_id": len(id_s), "n_ood": len(ood)}
        for field in by:
            values = sorted({r[field] for r in ood if r.get(field) not in (None, "")}, key=_sort_key)
            if values:
                entry[f"by_{field}"] = {}
                for v in values:
                    sub = [float(r[col]) for r in ood if r.get(field) == v]
                    name = f"{v:g}" if isinstance(v, float) else str(v)
                    entry[f"by_{field}"][name] = {"auroc": auroc(id_s, sub), "n_ood": len(sub)}
        res[col] = entry
    return res


def correlation(x: Iterable[float], y: Iterable[float]) -> dict[str, float]:
    """``{"pearson", "spearman", "n"}`` of two equally long per-utterance series; pairs with a
    non-finite value are left out, and both coefficients are NaN where fewer than 3 pairs are
    left or either side is constant."""
    from scipy.stats import pearsonr, spearmanr  # noqa: PLC0415

    a = np.asarray(list(x), dtype=np.float64)
    b = np.asarray(list(y), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"correlation needs equally long series, got {a.size} and {b.size} values")
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return {"pearson": math.nan, "spearman": math.nan, "n": n}
    return {"pearson": float(pearsonr(a[ok], b[ok])[0]), "spearman": float(spearmanr(a[ok], b[ok])[0]), "n": n}


def _sort_key(v: Any) -> tuple[int, Any]:
    """Numbers first in numeric order, then strings, then missing values."""
    if v is None:
        return (2, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v))
    return (1, str(v))


def breakdown(rows: Iterable[Mapping[str, Any]], by: Sequence[str], columns: Sequence[str], *,
              count_key: str = "files", skip_missing: bool = True) -> list[dict[str, Any]]:
    """Group ``rows`` by the values of the fields ``by`` and give, per group, those values,
    ``count_key``: the number of rows, and the mean of each of ``columns`` over the group's
    rows (NaN skipped as :func:`mean_rows` does; None where no row has a value).

    Groups come sorted by their values (numbers numerically, then strings). With
    ``skip_missing`` a row whose ``by`` field is missing, None or empty is left out (e.g. a
    file the manifest does not describe); ``by=()`` gives one group of all rows.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        key = tuple(r.get(k) for k in by)
        if skip_missing and any(v is None or v == "" for v in key):
            continue
        groups.setdefault(key, []).append(r)
    out = []
    for key in sorted(groups, key=lambda k: tuple(_sort_key(v) for v in k)):
        members = groups[key]
        stats = mean_scores(members, columns)
        out.append({**dict(zip(by, key)), count_key: len(members), **{c: stats[c]["mean"] for c in columns}})
    return out


def read_condition_manifest(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The mixing condition of each file of a test set, from a manifest CSV.

    Reads the columns ``file`` (or ``name``): the file's path relative to the set's
    ``noisy/`` folder (or just its name), ``snr_db`` (a number in dB) and ``noise_class``
    (text); at least one of the last two must be there, other columns are ignored, an empty
    cell is a missing value. Returns ``{file: {"snr_db", "noise_class"}}``, where each entry is
    also found under the file's base name and its stem when those are unique, so a lookup
    by the path relative to ``noisy/``, the name or the stem finds it. ``ValueError`` names
    the file and line of a malformed manifest (no such columns, an SNR that is not a finite
    number, a file listed twice).
    """
    p = Path(path)
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        key = "file" if "file" in fields else "name" if "name" in fields else None
        if key is None or not ({"snr_db", "noise_class"} & set(fields)):
            raise ValueError(f"{p}: a condition manifest needs a 'file' (or 'name') column and 'snr_db' and/or "
                             f"'noise_class' columns; it has {fields}")
        entries: dict[str, dict[str, Any]] = {}
        for lineno, r in enumerate(reader, 2):
            name = (r.get(key) or "").strip().replace("\\", "/")
            if not name:
                raise ValueError(f"{p}:{lineno}: empty {key!r}")
            if name in entries:
                raise ValueError(f"{p}:{lineno}: {name!r} is listed twice")
            snr_text = (r.get("snr_db") or "").strip()
            snr = None
            if snr_text:
                try:
                    snr = float(snr_text)
                except ValueError:
                    snr = math.nan
                if not math.isfinite(snr):
                    raise ValueError(f"{p}:{lineno}: snr_db {snr_text!r} is not a finite number")
            cls = (r.get("noise_class") or "").strip() or None
            entries[name] = {"snr_db": snr, "noise_class": cls}
    out = dict(entries)
    for alias in (lambda n: n.rsplit("/", 1)[-1], lambda n: Path(n).stem):
        seen: dict[str, list[str]] = {}
        for name in entries:
            seen.setdefault(alias(name), []).append(name)
        for a, names in seen.items():
            if len(names) == 1 and a not in out:
                out[a] = entries[names[0]]
    return out
