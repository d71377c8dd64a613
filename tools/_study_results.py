"""Reading a study's finished runs back as table rows (not a public API): per evaluator, the
per-item scores of each run and the evaluator's own means (for the check).

* eval_dir: ``metrics/per_file.csv`` (items: test files; an empty cell is an undefined metric,
  a row with an ``error`` has no scores) and ``metrics/summary.json``'s means;
* eval_ood: ``metrics/per_file.csv`` columns ``"<condition>|<heading>"`` per set, one table row
  per set and condition (and per set, SNR and condition where the manifest gives SNRs), with
  ``results.json``'s / ``breakdown.csv``'s means and the condition's mean RTF;
* analyze_aa: ``metrics/per_tone.csv`` rows of the student (items: tone and level), and for
  ``METRIC@BAND`` columns ``per_tone_band.csv`` with ``summary.json``'s per-band means.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from _study_job import RUN_JSON, read_json
from _study_run import Run
from _study_schema import Study
from _study_table import AA_BAND_METRICS, AA_METRICS, LABELS, OOD_METRICS, RunScores, TableRow


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


def _snr_set(s: str, snr: float) -> str:
    return f"{s} {snr:g} dB"


def _set_order(key: tuple[str, str], groups: dict[tuple[str, str], RunScores]) -> tuple:
    """Table order of eval_ood's (set, condition) groups: each set, then its SNRs in ascending order,
    the conditions in eval_ood's order."""
    sets = list(dict.fromkeys(s for s, _ in groups if not s.endswith(" dB")))
    conds = list(dict.fromkeys(c for _, c in groups))
    s, cond = key
    base, _, snr = s.partition(" ") if s.endswith(" dB") else (s, "", "")
    return (sets.index(base) if base in sets else len(sets), float(snr[:-3]) if snr else -math.inf,
            conds.index(cond))


def eval_ood_scores(metrics_dir: Path, metrics: list[str], seed: int) -> dict[tuple[str, str], RunScores]:
    """``{(set, condition): scores}`` from eval_ood's per_file.csv and results.json; a set whose
    manifest gives SNRs also as ``("OOD 5 dB", condition)`` per SNR (means from breakdown.csv)."""
    out: dict[tuple[str, str], RunScores] = {}
    rtf: dict[tuple[str, str], list[float]] = {}
    res = read_json(metrics_dir / "results.json") or {}
    with open(metrics_dir / "per_file.csv", newline="") as fh:
        lines = list(csv.DictReader(fh))
    # a fixed-SNR set (every file at a multiple of 0.5 dB: make_ood_testset's, VoiceBank-DEMAND's test
    # set) is also split by SNR; a set of measured, continuous SNRs (the non-stationary set) is not
    fixed = {s: all(math.isfinite(x := _float(r.get("snr_db"))) and (2 * x).is_integer()
                    for r in lines if r["set"] == s) for s in {r["set"] for r in lines}}
    for r in lines:
        snr = _float(r.get("snr_db"))
        sets = [r["set"]] + ([_snr_set(r["set"], snr)] if fixed[r["set"]] else [])
        for col, v in r.items():
            if "|" not in col:
                continue
            cond, heading = col.split("|", 1)
            if heading == "rtf" and math.isfinite(_float(v)):
                for s in sets:
                    rtf.setdefault((s, cond), []).append(_float(v))
            m = next((k for k in metrics if LABELS.get(k) == heading), None)
            if m is None:
                continue
            for s in sets:
                rs = out.setdefault((s, cond), RunScores(seed, {k: {} for k in metrics}))
                rs.per_item[m][r["file"]] = _float(v)
    by_snr: dict[tuple[str, str], dict[str, str]] = {}
    if (metrics_dir / "breakdown.csv").exists():
        with open(metrics_dir / "breakdown.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                if r.get("by") == "snr_db" and math.isfinite(_float(r.get("value"))):
                    by_snr[(_snr_set(r["set"], _float(r["value"])), r["condition"])] = r
    for (s, cond), rs in out.items():
        row = (res.get("table") or {}).get(f"{s} {cond}") or by_snr.get((s, cond), {})
        rs.summary_means = {m: None if row.get(LABELS[m]) in (None, "") else float(row[LABELS[m]]) for m in metrics}
        if rtf.get((s, cond)):
            rs.stats = {"rtf": sum(rtf[(s, cond)]) / len(rtf[(s, cond)])}
    return out


def analyze_aa_scores(metrics_dir: Path, metrics: list[str], seed: int) -> RunScores:
    """The student's scores per tone (items ``f0@level``): broadband from per_tone.csv, ``METRIC@BAND``
    from per_tone_band.csv; the band columns' summary means are summary.json's per-band means."""
    per_item: dict[str, dict[str, float]] = {m: {} for m in metrics}
    with open(metrics_dir / "per_tone.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("model") != "student":
                continue
            item = f"{r['f0_hz']}@{r['level_db']}"
            for m in metrics:
                if "@" not in m:
                    per_item[m][item] = _float(r.get(f"{m}_db"))
    banded = [m for m in metrics if "@" in m]
    if banded:
        with open(metrics_dir / "per_tone_band.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                if r.get("model") != "student":
                    continue
                for m in banded:
                    base, band = m.split("@", 1)
                    if r["band"] == band:
                        per_item[m][f"{r['f0_hz']}@{r['level_db']}"] = _float(r.get(f"{base}_db"))
    rs = RunScores(seed, per_item)
    rs.summary_means = {m: rs.mean(m) for m in metrics if "@" not in m}
    bands = ((read_json(metrics_dir / "summary.json") or {}).get("per_band") or {}).get("student") or {}
    for m in banded:
        base, band = m.split("@", 1)
        v = (bands.get(band) or {}).get(f"{base}_db")
        rs.summary_means[m] = _float(str(v)) if v is not None and math.isfinite(_float(str(v))) else None
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
                    for (s, cond), rs in sorted(groups.items(), key=lambda kv: _set_order(kv[0], groups)):
                        name = f"{base} / {s} / {cond}"
                        t = tables.setdefault(name, TableRow(name, "noisy" if cond == "noisy" else "model",
                                                             expected_seeds=expected[row.name],
                                                             group=f"{p['label']}|{s}" if p["label"] else s))
                        # the input has no model costs; a condition's RTF is eval_ood's
                        rs.stats = {} if cond == "noisy" else {**stats, **rs.stats}
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


def ood_uncertainty(runs: list[Run]) -> list[dict]:
    """Per eval_ood row and evaluation setting, per uncertainty score: the AUROC of ID vs OOD and
    the Spearman correlation with the reference condition's PESQ / SI-SDR gain over the noisy
    input, each the mean over the complete seeds (from eval_ood's auroc.json and results.json)."""
    acc: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for run in runs:
        if run.row.eval_tool != "eval_ood" or run.state() != "complete":
            continue
        for p in run.job["points"]:
            d = run.dir / "eval" / p["slug"] / "metrics"
            res, au = read_json(d / "results.json") or {}, read_json(d / "auroc.json") or {}
            corr = res.get("correlations") or {}
            for ck in (au.get("checkpoints") or {}).values():
                for sc in ck.values():
                    label = sc.get("label", "")
                    a = acc.setdefault((run.row.name, p["label"], label), {})
                    if isinstance(sc.get("auroc"), (int, float)):
                        a.setdefault("auroc", []).append(float(sc["auroc"]))
                    for key, name in (("dPESQ", "rho_pesq"), ("dSI-SDR", "rho_si_sdr")):
                        hit = next((v for k, v in corr.items() if k.startswith(f"{label} vs {key} (")
                                    and k.endswith("- noisy)")), None)
                        if hit and isinstance(hit.get("spearman"), (int, float)) and math.isfinite(hit["spearman"]):
                            a.setdefault(name, []).append(float(hit["spearman"]))
    return [{"row": r, "point": p, "score": sc, "seeds": len(v.get("auroc", [])),
             **{k: sum(x) / len(x) for k, x in v.items() if x}} for (r, p, sc), v in acc.items()]


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

    return set(METRICS) | set(AA_METRICS) | set(AA_BAND_METRICS)

