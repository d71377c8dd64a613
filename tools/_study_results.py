"""Reading a study's finished runs back as table rows (not a public API): per evaluator, the
per-item scores of each run and the evaluator's own means (for the check).

* eval_dir: ``metrics/per_file.csv`` (items: test files; an empty cell is an undefined metric,
  a row with an ``error`` has no scores) and ``metrics/summary.json``'s means;
* eval_ood: ``metrics/per_file.csv`` columns ``"<condition>|<heading>"`` per set, one table row
  per set and condition, and ``results.json``'s table means;
* analyze_aa: ``metrics/per_tone.csv`` rows of the student (items: tone and level).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from _study_job import RUN_JSON, read_json
from _study_run import Run
from _study_schema import Study
from _study_table import AA_METRICS, LABELS, OOD_METRICS, RunScores, TableRow


def _float(s: str | None) -> float:
    try:
        return float(s) if s not in (None, "") else math.nan
    except ValueError:
        return math.nan


def eval_dir_scores(metrics_dir: Path, metrics: list[str], seed: int = 0) -> RunScores:
    """A run's scores from se_metrics' evaluator folder (extra CSV columns are ignored)."""
    per_item: dict[str, dict[str, float]] = {m: {} for m in metrics}
    with open(metrics_dir / "per_file.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("error"):
                continue
            for m in metrics:
                per_item[m][r["file"]] = _float(r.get(m))
    summary = read_json(metrics_dir / "summary.json") or {}
    section = summary.get("enhanced", {}).get("metrics", {})
    means = {m: (section.get(m) or {}).get("mean") for m in metrics}
    return RunScores(seed, per_item, summary_means=means)


def eval_ood_scores(metrics_dir: Path, metrics: list[str], seed: int) -> dict[tuple[str, str], RunScores]:
    """``{(set, condition): scores}`` from eval_ood's per_file.csv and results.json."""
    out: dict[tuple[str, str], RunScores] = {}
    res = read_json(metrics_dir / "results.json") or {}
    with open(metrics_dir / "per_file.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            for col, v in r.items():
                if "|" not in col:
                    continue
                cond, heading = col.split("|", 1)
                m = next((k for k in metrics if LABELS.get(k) == heading), None)
                if m is None:
                    continue
                key = (r["set"], cond)
                rs = out.setdefault(key, RunScores(seed, {k: {} for k in metrics}))
                rs.per_item[m][r["file"]] = _float(v)
    for (s, cond), rs in out.items():
        row = (res.get("table") or {}).get(f"{s} {cond}", {})
        rs.summary_means = {m: row.get(LABELS[m]) for m in metrics}
    return out


def analyze_aa_scores(metrics_dir: Path, metrics: list[str], seed: int) -> RunScores:
    per_item: dict[str, dict[str, float]] = {m: {} for m in metrics}
    with open(metrics_dir / "per_tone.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("model") != "student":
                continue
            item = f"{r['f0_hz']}@{r['level_db']}"
            for m in metrics:
                per_item[m][item] = _float(r.get(f"{m}_db"))
    rs = RunScores(seed, per_item)
    rs.summary_means = {m: rs.mean(m) for m in metrics}
    return rs


def collect(study: Study, runs: list[Run], metrics: list[str], noisy_dir: Path | None,
            expected: dict[str, int]) -> list[TableRow]:
    """Every table row of the study in file order, with the scores of the runs complete now."""
    rows: list[TableRow] = []
    by_row: dict[str, list[Run]] = {}
    for r in runs:
        by_row.setdefault(r.row.name, []).append(r)
    for row in study.rows:
        if row.kind == "quoted":
            rows.append(TableRow(row.name, "quoted", quoted=row.values, citation=row.citation,
                                 test_set=row.test_set, note=row.note))
            continue
        if row.kind == "noisy":
            t = TableRow(row.name, "noisy", expected_seeds=1, note=row.note)
            if noisy_dir is not None and (noisy_dir / "summary.json").exists():
                rs = eval_dir_scores(noisy_dir, metrics)
                rs.run_dir = str(noisy_dir)
                t.runs.append(rs)
            rows.append(t)
            continue
        tables: dict[str, TableRow] = {}
        for run in by_row.get(row.name, []):
            state = run.state()
            rec = read_json(run.dir / RUN_JSON) or {}
            for p in run.job["points"]:
                pdir = run.dir / "eval" / p["slug"]
                base = f"{row.name} / {p['label']}" if p["label"] else row.name
                stats = read_json(pdir / "stats.json") or {}
                if row.eval_tool == "eval_ood":
                    groups = eval_ood_scores(pdir / "metrics", metrics, run.seed) if state == "complete" else {}
                    for (s, cond), rs in groups.items():
                        name = f"{base} / {s} / {cond}"
                        t = tables.setdefault(name, TableRow(name, "noisy" if cond == "noisy" else "model",
                                                             expected_seeds=expected[row.name]))
                        rs.stats = {} if cond == "noisy" else stats  # the input has no model costs
                        rs.run_dir, rs.point_dir = str(run.dir), str(pdir)
                        t.runs.append(rs)
                    continue
                t = tables.setdefault(base, TableRow(base, "model", expected_seeds=expected[row.name], note=row.note))
                if state == "complete":
                    rs = (eval_dir_scores(pdir / "metrics", metrics, run.seed) if row.eval_tool == "eval_dir"
                          else analyze_aa_scores(pdir / "metrics", metrics, run.seed))
                    rs.stats, rs.run_dir, rs.point_dir = stats, str(run.dir), str(pdir)
                    t.runs.append(rs)
                elif state == "failed":
                    t.failed.append({"seed": run.seed, "log": rec.get("log"), "error": rec.get("error")})
        if not tables:
            tables = {n: TableRow(n, "model", expected_seeds=expected.get(row.name, 1)) for n in row.table_names()}
        rows.extend(tables.values())
    return rows


def default_metrics(study: Study) -> list[str]:
    """The study's metrics, or its evaluators' defaults."""
    if study.metrics:
        return list(study.metrics)
    evals = {r.eval_tool for r in study.rows if r.kind == "model"}
    if evals == {"analyze_aa"}:
        return list(AA_METRICS)
    if evals == {"eval_ood"}:
        return list(OOD_METRICS)
    from _study_table import DEFAULT_METRICS

    return list(DEFAULT_METRICS)


def metric_names() -> set[str]:
    from se_metrics import METRICS

    return set(METRICS) | set(AA_METRICS)

