"""The teacher/student analysis: aliasing and fidelity per tone and band.

For every tone, with ``y`` a model's output over the last second, ``~y`` its bandlimited
(alias-free) version and ``~y_T`` the bandlimited teacher:

=========  ====================================  =========================================
metric     definition                            per band: grouped parts
=========  ====================================  =========================================
NMR-S      NMR(y, ~y)     aliasing audibility    masking-model bands by centre frequency
NMR-T      NMR(y, ~y_T)                          masking-model bands by centre frequency
ESR-T      ESR(y, ~y_T)                          error energy by frequency / total ~y_T energy
HESR-T     ESR of harmonic magnitudes |~Y|, |~Y_T|  harmonics m f0 by frequency
ASR        sum (y - ~y)^2 / sum ~y^2  (ESR-S)    alias energy by frequency / total ~y energy
=========  ====================================  =========================================

The teacher is its own reference (there is no analog reference), so HESR-T here is the
research notes' HESR-R, the teacher's HESR-T is exactly 0 (-inf dB) and its NMR-T / ESR-T
equal its NMR-S / ASR. Tone-level values are 10 log10 of the linear ratios; aggregates over
tones are the mean of the per-tone dB values (the paper's Table 1 convention), skipping tones
for which a band holds nothing (nan).

Typical use (``tools/analyze_aa.py`` does this and writes the rows as CSV)::

    params = analysis_tone_params(fs, levels_db=(-6.0,))
    outs = {"teacher": model_outputs(teacher, params), "student": model_outputs(student, params)}
    metrics = analyse_outputs(outs, params.f0, fs)
    overall_rows(metrics)   # [{"model": "teacher", "nmr_s_db": ..., ...}, ...]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from .band_metrics import (
    ANALYSIS_BANDS_HZ,
    band_label,
    esr_per_band,
    group_nmr_band_ratios,
    hesr_per_band,
    spectral_band_shares,
)
from .bandlimit import bandlimit, harmonic_analysis
from .losses import asr, esr, hesr_parts
from .nmr import NMR
from .tones import ToneParams, synthesize_tones

#: The analysis metrics: row-key stem -> display name (rows hold ``f"{key}_db"``).
ANALYSIS_METRICS: dict[str, str] = {"nmr_s": "NMR-S", "nmr_t": "NMR-T", "esr_t": "ESR-T",
                                    "hesr_t": "HESR-T", "asr": "ASR"}
#: Success criteria of the research notes, in dB, for every band: NMR-S < -10 (aliases
#: inaudible) and HESR-T (= HESR-R) < -15 (harmonics kept).
ANALYSIS_TARGETS_DB: dict[str, float] = {"nmr_s": -10.0, "hesr_t": -15.0}


@dataclass
class ModelMetrics:
    """Linear metrics of one model: ``per_tone[name]`` ``[n]`` and ``per_band[name]``
    ``[n, num_bands]`` (float64, keys of :data:`ANALYSIS_METRICS`)."""

    per_tone: dict[str, torch.Tensor]
    per_band: dict[str, torch.Tensor]


@torch.no_grad()
def model_outputs(model: torch.nn.Module, params: ToneParams, *, batch_size: int = 16,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
                  progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """The model's response to every tone of ``params`` from zero history, last second only:
    ``[n, fs]`` float64 on the CPU (the model is moved to ``device`` / ``dtype`` and run in
    batches of ``batch_size``; ``progress(k)`` is called after each batch of ``k`` tones)."""
    fs = params.sample_rate
    model = model.to(device=device, dtype=dtype).eval()
    out = []
    for start in range(0, len(params), batch_size):
        part = params.subset(slice(start, start + batch_size))
        y = model(synthesize_tones(part, dtype, device))
        out.append(y[:, -fs:].to("cpu", torch.float64))
        if progress is not None:
            progress(len(part))
    return torch.cat(out)


def _db(v: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(v.to(torch.float64))


def analyse_outputs(outputs: dict[str, torch.Tensor], f0: torch.Tensor, sample_rate: int, *,
                    teacher_key: str = "teacher",
                    bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ, batch_size: int = 16,
                    device: torch.device | str = "cpu",
                    progress: Callable[[int], None] | None = None) -> dict[str, ModelMetrics]:
    """Metrics of every model in ``outputs`` (name -> ``[n, fs]`` last seconds, float64, as
    :func:`model_outputs` returns) against the bandlimited ``outputs[teacher_key]``; ``f0``
    ``[n]`` float64 Hz; ``sample_rate`` in Hz. Returns name -> :class:`ModelMetrics` with
    ``per_band`` over ``bands`` (Hz)."""
    fs = int(sample_rate)
    if teacher_key not in outputs:
        raise ValueError(f"outputs has no {teacher_key!r} entry (the reference model); got {list(outputs)}")
    nmr = NMR(fs, dtype=torch.float64).to(device)
    centres = nmr.band_centres_hz
    parts: dict[str, dict[str, list[torch.Tensor]]] = {k: {} for k in outputs}
    n = f0.numel()
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        f = f0[sl].to(device)
        yt = outputs[teacher_key][sl].to(device)
        rt = bandlimit(yt, f, fs)
        for key, y_all in outputs.items():
            y = y_all[sl].to(device)
            r = rt if key == teacher_key else bandlimit(y, f, fs)
            an = rt.analysis if key == teacher_key else harmonic_analysis(y, f, fs)
            ratios_s = nmr.band_ratios(y, r.bandlimited)
            ratios_t = ratios_s if key == teacher_key else nmr.band_ratios(y, rt.bandlimited)
            err, ref, _ = hesr_parts(an, rt.analysis)
            asr_total = asr(r)
            vals = {
                "nmr_s": (ratios_s.mean(dim=(-2, -1)), group_nmr_band_ratios(ratios_s, centres, bands)),
                "nmr_t": (ratios_t.mean(dim=(-2, -1)), group_nmr_band_ratios(ratios_t, centres, bands)),
                "esr_t": (esr(y, rt.bandlimited, "none"), esr_per_band(y, rt.bandlimited, fs, bands)),
                "hesr_t": (err.sum(-1) / ref.sum(-1), hesr_per_band(an, rt.analysis, bands)),
                "asr": (asr_total, spectral_band_shares(r.aliases, fs, bands) * asr_total[:, None]),
            }
            for name, (tone, band) in vals.items():
                parts[key].setdefault(name, []).append(tone.cpu())
                parts[key].setdefault(name + "/band", []).append(band.cpu())
        if progress is not None:
            progress(yt.shape[0])
    return {k: ModelMetrics({m: torch.cat(p[m]) for m in ANALYSIS_METRICS},
                            {m: torch.cat(p[m + "/band"]) for m in ANALYSIS_METRICS})
            for k, p in parts.items()}


def mean_db(values: torch.Tensor) -> float:
    """Mean of the per-tone dB values of linear ``values`` ``[n]``, ignoring nan (a band that
    holds nothing for that tone); ``-inf`` if any value is exactly 0; nan if none is defined."""
    d = _db(values)
    d = d[~torch.isnan(d)]
    if d.numel() == 0:
        return math.nan
    return float(d.mean())


def per_tone_rows(params: ToneParams, levels_db: torch.Tensor, metrics: dict[str, ModelMetrics]
                  ) -> list[dict[str, object]]:
    """One row per model and tone: ``model``, ``f0_hz``, ``level_db`` (dBFS, from
    ``levels_db`` ``[n]``) and ``f"{key}_db"`` for every key of :data:`ANALYSIS_METRICS`."""
    rows = []
    for model, mm in metrics.items():
        db = {m: _db(mm.per_tone[m]) for m in ANALYSIS_METRICS}
        for i in range(len(params)):
            rows.append({"model": model, "f0_hz": float(params.f0[i]), "level_db": float(levels_db[i]),
                         **{f"{m}_db": float(db[m][i]) for m in ANALYSIS_METRICS}})
    return rows


def target_verdicts(row: Mapping[str, object],
                    targets: Mapping[str, float] = ANALYSIS_TARGETS_DB) -> dict[str, bool | None]:
    """The research notes' success test on one row holding ``f"{key}_db"`` values (dB):
    ``f"{key}_pass"`` = value < target for every key of ``targets`` (``None`` where the value
    is nan: the band holds nothing for that metric), and ``"meets_targets"`` = every defined
    verdict passes (``None`` when none is defined)."""
    out: dict[str, bool | None] = {}
    for key, limit in targets.items():
        v = float(row[f"{key}_db"])  # type: ignore[arg-type]
        out[f"{key}_pass"] = None if math.isnan(v) else bool(v < limit)
    defined = [v for v in out.values() if v is not None]
    out["meets_targets"] = all(defined) if defined else None
    return out


def per_band_rows(levels_db: torch.Tensor, metrics: dict[str, ModelMetrics],
                  bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ,
                  targets: Mapping[str, float] = ANALYSIS_TARGETS_DB) -> list[dict[str, object]]:
    """One row per model, band and level (``level_db`` = the level, or ``"all"`` for every
    tone): ``model``, ``band`` (label), ``band_lo_hz``, ``band_hi_hz``, ``level_db``,
    ``num_tones``, the :func:`mean_db` of every metric (``f"{key}_db"``) and the
    :func:`target_verdicts` of those means (``f"{key}_pass"`` per target, ``meets_targets``)."""
    rows = []
    groups: list[tuple[object, torch.Tensor]] = [("all", torch.ones_like(levels_db, dtype=torch.bool))]
    if levels_db.unique().numel() > 1:
        groups += [(float(v), levels_db == v) for v in levels_db.unique()]
    for model, mm in metrics.items():
        for level, mask in groups:
            for b, band in enumerate(bands):
                row: dict[str, object] = {
                    "model": model, "band": band_label(band), "band_lo_hz": band[0], "band_hi_hz": band[1],
                    "level_db": level, "num_tones": int(mask.sum()),
                    **{f"{m}_db": mean_db(mm.per_band[m][mask, b]) for m in ANALYSIS_METRICS}}
                rows.append({**row, **target_verdicts(row, targets)})
    return rows


def per_tone_band_rows(params: ToneParams, levels_db: torch.Tensor, metrics: dict[str, ModelMetrics],
                       bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ,
                       targets: Mapping[str, float] = ANALYSIS_TARGETS_DB) -> list[dict[str, object]]:
    """One row per model, tone and band (the values :func:`per_band_rows` averages): ``model``,
    ``f0_hz``, ``level_db``, ``band``, ``band_lo_hz``, ``band_hi_hz``, ``f"{key}_db"`` for every
    metric (nan where the band holds nothing for that tone) and the tone's
    :func:`target_verdicts`. Means and confidence intervals over tones (and over runs) start
    from these."""
    rows = []
    for model, mm in metrics.items():
        db = {m: _db(mm.per_band[m]) for m in ANALYSIS_METRICS}  # [n, num_bands]
        for i in range(len(params)):
            for b, band in enumerate(bands):
                row: dict[str, object] = {
                    "model": model, "f0_hz": float(params.f0[i]), "level_db": float(levels_db[i]),
                    "band": band_label(band), "band_lo_hz": band[0], "band_hi_hz": band[1],
                    **{f"{m}_db": float(db[m][i, b]) for m in ANALYSIS_METRICS}}
                rows.append({**row, **target_verdicts(row, targets)})
    return rows


def target_summary(band_rows: Sequence[Mapping[str, object]],
                   targets: Mapping[str, float] = ANALYSIS_TARGETS_DB) -> dict[str, object]:
    """The success test over every band, from :func:`per_band_rows` (its ``level_db == "all"``
    rows): ``{"targets_db": {key: limit}, "per_band": {model: {band: {"band_hz": [lo, hi],
    "num_tones", f"{key}_db" for every metric, f"{key}_pass", "meets_targets"}}},
    "meets_targets": {model: verdict}}``; a model's verdict is ``True`` when every band with
    a defined verdict passes, ``False`` when any fails, ``None`` when none is defined."""
    per_band: dict[str, dict[str, dict[str, object]]] = {}
    for r in band_rows:
        if r["level_db"] != "all":
            continue
        v = target_verdicts(r, targets)
        per_band.setdefault(str(r["model"]), {})[str(r["band"])] = {
            "band_hz": [r["band_lo_hz"], r["band_hi_hz"]], "num_tones": r["num_tones"],
            **{f"{m}_db": r[f"{m}_db"] for m in ANALYSIS_METRICS}, **v}
    meets: dict[str, bool | None] = {}
    for model, bands in per_band.items():
        defined = [b["meets_targets"] for b in bands.values() if b["meets_targets"] is not None]
        meets[model] = all(defined) if defined else None
    return {"targets_db": dict(targets), "per_band": per_band, "meets_targets": meets}


def overall_rows(metrics: dict[str, ModelMetrics]) -> list[dict[str, object]]:
    """Broadband metrics per model, the mean of per-tone dB over every tone (Table 1 style)."""
    return [{"model": k, **{f"{m}_db": mean_db(mm.per_tone[m]) for m in ANALYSIS_METRICS}}
            for k, mm in metrics.items()]
