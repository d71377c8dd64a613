"""report.html of a study (not a public API): one self-contained page -- no scripts, no network,
only relative links to ``report/figures/*.png`` and ``report/audio/*.wav`` beside it -- holding
the table, the figures across runs (:mod:`_study_figures`) and audio players for a few test
utterances (noisy, each model's output, clean, side by side).
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

from _study_figures import aa_band_bars, aa_tradeoff, bars, bsdt_analysis, first_point_dir, loss_curves, ood_plots, \
    spectrograms
from _study_markdown import fmt, fmt_cost, fmt_p
from _study_rows import slug
from _study_run import Run
from _study_schema import Study
from _study_table import COST_COLUMNS, LABELS, TableRow


def _audio(out: Path, rows: list[TableRow], testset: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Copy noisy / each model's output / clean of the first ``n`` test files to report/audio."""
    utts = []
    for name in testset.get("files", [])[:n]:
        d = out / "report" / "audio" / slug(Path(name).stem)
        players = [("noisy", Path(testset["noisy"]) / name)]
        for r in rows:
            p = first_point_dir(r)
            if p is not None and (p / "enhanced" / name).exists():
                players.append((r.name, p / "enhanced" / name))
        if len(players) == 1:
            continue  # nothing enhanced to listen to (analyze_aa, eval_ood rows)
        d.mkdir(parents=True, exist_ok=True)
        players.append(("clean", Path(testset["clean"]) / name))
        items = []
        for label, src in players:
            dst = d / f"{slug(label)}.wav"
            shutil.copyfile(src, dst)
            items.append({"label": label, "src": dst.relative_to(out).as_posix()})
        utts.append({"file": name, "players": items})
    return utts


def _html_table(rows: list[TableRow], metrics: list[str], baseline: str | None) -> str:
    h = ["configuration", *(LABELS.get(m, m) for m in metrics), "params", "MACs/s", "RTF", "seeds", "status"]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in h) + "</tr>"]
    for r in rows:
        if r.kind == "quoted":
            continue
        tds = [html.escape(r.name + (" (baseline)" if r.is_baseline else ""))]
        for m in metrics:
            c = r.cells.get(m, {})
            txt = fmt(c.get("mean")) + (f" ± {fmt(c.get('ci'))}" if c.get("ci") is not None else "")
            if c.get("delta") is not None:
                txt += f"<br><small>Δ {c['delta']:+.3f}, p {fmt_p(c.get('p'))}</small>"
            tds.append(f"<b>{txt}</b>" if m in r.best else txt)
        tds += [fmt_cost(c, r.cost.get(c)) for c in COST_COLUMNS]
        status = html.escape(r.status)
        for f in r.failed:
            if f.get("log"):
                status += f' <a href="{html.escape(Path(f["log"]).as_posix())}">log</a>'
        tds += [str(len(r.runs)), status]
        out.append("<tr>" + "".join(f"<td>{x}</td>" for x in tds) + "</tr>")
    out.append("</table>")
    quoted = [r for r in rows if r.kind == "quoted"]
    if quoted:
        out.append("<p>Quoted from papers (not measured here; other test sets; never ranked):</p><table><tr>"
                   + "".join(f"<th>{html.escape(x)}</th>" for x in
                             ["configuration", *(LABELS.get(m, m) for m in metrics), "test set", "source"]) + "</tr>")
        for r in quoted:
            out.append("<tr>" + "".join(f"<td>{x}</td>" for x in [
                html.escape(r.name) + " †", *(fmt(r.quoted.get(m), 2) for m in metrics), html.escape(r.test_set),
                html.escape(r.citation)]) + "</tr>")
        out.append("</table>")
    return "\n".join(out)


CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}
.utt{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px}.utt div{font-size:12px}img{max-width:100%}
.quick{background:#fff3c4;padding:6px;border:1px solid #e0c060}"""


def write_report(out: Path, study: Study, rows: list[TableRow], metrics: list[str], runs: list[Run],
                 testset: dict[str, Any], *, quick: bool, table_md: str, utterances: int) -> Path:
    """Write the figures, the audio copies and ``out/report.html``; returns the page's path."""
    figdir = out / "report" / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figs = [(t, f) for t, f in (
        ("Ablation bars", bars(rows, metrics, figdir / "bars.png", study.baseline)),
        ("Spectrograms of one test utterance", spectrograms(rows, testset, figdir / "spectrograms.png")),
        ("Loss curves", loss_curves(rows, figdir / "loss_curves.png")),
        ("BSDT: fusion weights per band and inter-band graphs", bsdt_analysis(rows, figdir / "bsdt_analysis.png")),
        ("Anti-aliasing: per-band metrics and targets", aa_band_bars(rows, metrics, figdir / "aa_bands.png")),
        ("Anti-aliasing: ESR against NMR over λ", aa_tradeoff(rows, study, figdir / "aa_tradeoff.png")),
    ) if f is not None] + ood_plots(rows, figdir)
    utts = _audio(out, rows, testset, utterances)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(study.title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(study.title)}</h1>"]
    if quick:
        parts.append("<p class='quick'>QUICK run: demo corpus, 1 seed, at most 10 training steps, tiny models. The "
                     "numbers check the pipeline; they say nothing about the models.</p>")
    if study.description:
        parts.append(f"<p>{html.escape(study.description)}</p>")
    parts.append(f"<p>Test set: {len(testset.get('files', []))} files. Mean ± 95 % CI over seeds; bold: best "
                 f"measured value per column; Δ and p (Wilcoxon signed-rank over test files) against "
                 f"{html.escape(study.baseline or '-')}.</p>")
    parts.append(_html_table(rows, metrics, study.baseline))
    for title, f in figs:
        parts.append(f"<h2>{html.escape(title)}</h2>"
                     f"<img src='{f.relative_to(out).as_posix()}' alt='{html.escape(title)}'>")
    if utts:
        parts.append("<h2>Listen</h2>")
        for u in utts:
            parts.append(f"<h3>{html.escape(u['file'])}</h3><div class='utt'>")
            for p in u["players"]:
                parts.append(f"<div>{html.escape(p['label'])}<br><audio controls preload='none' "
                             f"src='{p['src']}'></audio></div>")
            parts.append("</div>")
    if study.full_run or study.gpu_time:
        parts.append(f"<h2>Full run</h2><pre>{html.escape(study.full_run)}</pre><p>{html.escape(study.gpu_time)}</p>")
    parts.append("</body></html>\n")
    page = out / "report.html"
    page.write_text("\n".join(parts))
    return page
