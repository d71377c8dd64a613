"""``table.md`` of a study (not a public API): the table of :mod:`_study_table`'s computed cells
as Markdown -- mean ± 95 % CI per configuration with the best value per column in bold, Δ and
p against the baseline, the first-epoch PESQ gate, the anti-aliasing targets per band, the
success criteria, eval_ood's uncertainty scores and the quoted rows apart -- and the cell
formats report.html shares (``fmt``, ``fmt_p``, ``fmt_cost``).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from _study_table import AA_BANDS, AA_TARGETS_DB, COST_COLUMNS, LABELS, PESQ_GATE, TableRow, aa_verdicts


def fmt(v: float | None, digits: int = 3) -> str:
    """A cell: ``digits`` decimals, "–" where undefined."""
    return "–" if v is None else f"{v:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value: 3 decimals, "< 0.001" below, "–" where undefined."""
    if p is None:
        return "–"
    return "< 0.001" if p < 1e-3 else f"{p:.3f}"


def fmt_cost(c: str, v: float | None) -> str:
    if v is None:
        return "–"
    if c == "parameters":
        return f"{v / 1e6:.3f} M"
    if c == "macs_per_second":
        return f"{v / 1e9:.3f} G"
    return f"{v:.3f}"


def markdown(rows: list[TableRow], metrics: list[str], *, baseline: str | None, quick: bool, title: str,
             test_desc: str, seeds_desc: str, criteria: list[dict[str, Any]] | None = None,
             uncertainty: list[dict[str, Any]] | None = None) -> str:
    """``table.md``: the main table (mean ± CI, best in bold), the Δ / p table, quoted rows apart."""
    head = ["configuration", *(LABELS.get(m, m) for m in metrics), "params", "MACs/s", "RTF", "seeds", "status"]
    out = io.StringIO()
    mark = " (quick: demo corpus, 1 seed, 10 training steps, tiny models; numbers test the pipeline, not the models)" \
        if quick else ""
    out.write(f"# {title}{mark}\n\n")
    out.write(f"Test set: {test_desc}. Mean ± 95 % CI (Student t) over {seeds_desc}; **bold**: best measured value "
              f"per column (quoted rows are never ranked)."
              + (f" Baseline for Δ: {baseline}." if baseline else "") + "\n\n")
    out.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
    measured = [r for r in rows if r.kind != "quoted"]
    for r in measured:
        cells = []
        for m in metrics:
            c = r.cells.get(m, {})
            txt = fmt(c.get("mean")) + (f" ± {fmt(c.get('ci'))}" if c.get("ci") is not None else "")
            cells.append(f"**{txt}**" if m in r.best else txt)
        status = r.status
        if r.failed:
            status += ": " + ", ".join(f"[log]({f['log']})" for f in r.failed if f.get("log"))
        name = r.name + (" (baseline)" if r.is_baseline else "")
        out.write("| " + " | ".join([name, *cells, *(fmt_cost(c, r.cost.get(c)) for c in COST_COLUMNS),
                                     str(len(r.runs)), status]) + " |\n")
    if baseline:
        per_set = any(r.group for r in measured)
        out.write(f"\nΔ against {baseline}{' on the same test set' if per_set else ''} (mean difference; p: two-sided "
                  f"Wilcoxon signed-rank test over the test items, each item's score averaged over seeds):\n\n")
        dh = ["configuration", *(LABELS.get(m, m) for m in metrics)]
        out.write("| " + " | ".join(dh) + " |\n|" + "---|" * len(dh) + "\n")
        for r in measured:
            if r.is_baseline or not r.runs:
                continue
            cells = [f"{c['delta']:+.3f} (p {fmt_p(c['p'])})" if c.get("delta") is not None else "–"
                     for c in (r.cells.get(m, {}) for m in metrics)]
            out.write("| " + " | ".join([r.name, *cells]) + " |\n")
    gate = [(r.name, [run.stats.get("first_epoch_valid_pesq") for run in r.runs]) for r in measured
            if r.kind == "model"]
    gate = [(name, [v for v in vals if v is not None]) for name, vals in gate]
    if any(vals for _, vals in gate):
        out.write(f"\nFirst-epoch validation PESQ-WB (the ERB-UNet notes' early gate: > {PESQ_GATE} on "
                  f"VoiceBank-DEMAND; other corpora are not comparable):\n\n| configuration | epoch-1 PESQ-WB "
                  f"(mean over seeds) | gate |\n|---|---|---|\n")
        for name, vals in gate:
            if vals:
                m = float(np.mean(vals))
                out.write(f"| {name} | {m:.3f} | {'pass' if m > PESQ_GATE else 'FAIL'} |\n")
    out.write(aa_targets_markdown(measured, metrics))
    out.write(criteria_markdown(criteria or []))
    out.write(uncertainty_markdown(uncertainty or []))
    quoted = [r for r in rows if r.kind == "quoted"]
    if quoted:
        out.write("\nQuoted from papers (not measured here, other test sets; never ranked):\n\n")
        out.write("| configuration | " + " | ".join(LABELS.get(m, m) for m in metrics) + " | test set | source |\n")
        out.write("|" + "---|" * (len(metrics) + 3) + "\n")
        for r in quoted:
            out.write("| " + " | ".join([f"{r.name} †", *(fmt(r.quoted.get(m), 2) for m in metrics), r.test_set,
                                         r.citation]) + " |\n")
    return out.getvalue()


def aa_targets_markdown(rows: list[TableRow], metrics: list[str]) -> str:
    """The anti-aliasing targets per band (pass / FAIL of each row's means), or "" without band columns."""
    bands = [b for b in AA_BANDS if f"nmr_s@{b}" in metrics and f"hesr_t@{b}" in metrics]
    if not bands:
        return ""
    out = io.StringIO()
    out.write(f"\nTargets per band (NMR-S < {AA_TARGETS_DB['nmr_s']:g} dB and HESR-R = analyze_aa's HESR-T < "
              f"{AA_TARGETS_DB['hesr_t']:g} dB; cells: verdict (NMR-S / HESR-R means in dB)):\n\n")
    out.write("| configuration | " + " | ".join(bands) + " | every band |\n|" + "---|" * (len(bands) + 2) + "\n")
    for r in rows:
        if r.kind != "model" or not r.runs:
            continue
        v = aa_verdicts(r, metrics)
        cells = ["–" if v[b] is None else f"{'pass' if v[b][2] else 'FAIL'} ({v[b][0]:.1f} / {v[b][1]:.1f})"
                 for b in bands]
        every = "–" if any(v[b] is None for b in bands) else ("pass" if all(v[b][2] for b in bands) else "FAIL")
        out.write("| " + " | ".join([r.name, *cells, every]) + " |\n")
    return out.getvalue()


def criteria_markdown(results: list[dict[str, Any]]) -> str:
    """The success criteria of ``_study_table.criteria_results`` (pass / FAIL per criterion), or ""."""
    if not results:
        return ""
    out = io.StringIO()
    out.write("\nSuccess criteria (from the measured means above):\n\n| criterion | row | against | metric | gain | "
              "needed | verdict |\n|---|---|---|---|---|---|---|\n")
    for c in results:
        out.write(f"| {c['name']} | {c['row']} | {c['baseline']} | {LABELS.get(c['metric'], c['metric'])} | "
                  f"{'–' if c['gain'] is None else format(c['gain'], '+.3f')} | {c['need']} | {c['verdict']} |\n")
    return out.getvalue()


def uncertainty_markdown(items: list[dict[str, Any]]) -> str:
    """eval_ood's uncertainty scores per row: AUROC (ID vs OOD) and Spearman ρ with the quality gain."""
    if not items:
        return ""
    out = io.StringIO()
    out.write("\nUncertainty scores (eval_ood; mean over seeds): AUROC of ID vs OOD, and Spearman ρ with the "
              "reference condition's PESQ-WB and SI-SDR gain over the noisy input (ID and OOD files together):\n\n"
              "| row | score | AUROC | ρ ΔPESQ | ρ ΔSI-SDR | seeds |\n|---|---|---|---|---|---|\n")
    for it in items:
        name = it["row"] + (f" / {it['point']}" if it["point"] else "")
        out.write(f"| {name} | {it['score']} | {fmt(it.get('auroc'))} | {fmt(it.get('rho_pesq'), 2)} | "
                  f"{fmt(it.get('rho_si_sdr'), 2)} | {it['seeds']} |\n")
    return out.getvalue()
