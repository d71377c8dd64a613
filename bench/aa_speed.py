"""Speed of alias-free distillation (aa_distill) against the reference way of computing the same
things, on one device.

The workload, per batch of 40 tones of 1.2 s at 48 kHz:

- the bandlimiter (float64): ours (chirp-z resynthesis, no per-tone matrix) vs the reference's
  N x H matrices per tone (window-sum scalloping correction and cosine resynthesis; evaluated
  here in blocks of harmonics to bound memory - the same arithmetic);
- NMR forward + backward on 40 x 1 s: our float32 path (float64 STFT, float32 band and spreading
  work) against the reference's form (float64, PEAQ's spreading with Python loops over the 109
  bands) and against our own float64 path, with the largest per-item difference in dB between
  float32 and float64 on the same signals (must stay within 0.01 dB);
- a standard-WaveNet student training step (float32: forward over fs + rf - 1 samples, MSE,
  backward, Adam): ours vs NAM's own WaveNet (neural-amp-modeler 0.12.3, built from our .nam
  document) with the same weights; and ours with the student's forward under bf16 autocast
  (aa_distill.amp_forward: float32 weights, gradients and Adam state), with its output difference;
- the float64 teacher forward (the real standard capture when ../shared/data is present);
- a full-loss epoch of 1,600 tones (40 batches; ESR + NMR + DC after the 12/16 kHz lowpass):
  ours with the teacher targets computed once and cached vs the reference way (teacher forward
  and N x H bandlimiter every batch, float64 NMR); measured on a few batches and extrapolated;
  the one-off cost of our cached targets is shown separately; then ours with a bf16 student
  forward (every loss term still float32), with its loss difference from float32 on the same
  weights.

Then inference speed (samples per second, batch 1, 10 s) of our WaveNet, float32 and under bf16
autocast, against NAM's (float32) on the real standard and feather captures, with the output
differences, and the time of the 50-tone analysis sweep (tools/analyze_aa.py's computation,
teacher + student). Last, the bf16 quality check: the teacher fine-tuned for one short run
(default 40 steps of 40 tones) in float32 and with a bf16 forward, same start and batches, and
the per-band NMR-S difference against the 0.1 dB allowance, beside a float32 control run (batches
reversed) that shows how much training noise alone moves NMR-S.
The neural-amp-modeler package is the optional peer, in the workspace's ``nam-peer`` dependency
group (``uv sync --all-packages --group nam-peer``), never imported at run time; where it is not
installed a NAM-style rewrite of its layer code (nn.Conv1d layers, the input mixer over the whole
condition then cropped) stands in, and the table says so.

    uv run bench/aa_speed.py --quick           # < 3 min on an idle 2-core CPU (1 measured batch)
    uv run bench/aa_speed.py                   # CPU, 3 measured batches, full inference/sweep
    uv run bench/aa_speed.py --device cuda     # the GPU targets: full-loss epoch <= 1.5 s,
                                               # inference >= 1.5x NAM's, bf16 NMR-S within 0.1 dB
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from aa_distill import (
    ANALYSIS_BANDS_HZ,
    NMR,
    DistillationLoss,
    nam_document,
    NamWaveNet,
    amp_forward,
    analyse_outputs,
    analysis_tone_params,
    band_label,
    bandlimit,
    chebyshev_window,
    load_nam,
    mean_db,
    model_outputs,
    predict_last_second,
    sample_tone_params,
    student_from_teacher,
    student_wavenet,
    synthesize_tones,
)

REPO = Path(__file__).resolve().parents[1]
NAM_DIR = REPO.parent / "shared" / "data" / "nam"
FS = 48_000


# ----------------------------------------------------------------------------- baselines
def reference_bandlimit(x: torch.Tensor, f0: torch.Tensor, fs: int, block: int = 128) -> torch.Tensor:
    """The reference's bandlimiter: per tone, an ``N x H`` window-sum matrix for the scalloping
    correction and an ``N x H`` cosine matrix for the resynthesis (float64; harmonics taken in
    blocks of ``block`` so that a 27.5 Hz tone's 872 harmonics do not need 1 GB at once)."""
    n = fs
    w = chebyshev_window(n, device=x.device)
    spec = torch.fft.rfft(x[..., -n:].to(torch.float64) * w)
    t = torch.arange(n, dtype=torch.float64, device=x.device)
    out = []
    for i in range(x.shape[0]):  # the reference loops over the batch
        f = float(f0[i])
        h = int(math.floor(fs / (2 * f)))
        y = torch.full((n,), float(spec[i, 0].real / w.sum()), dtype=torch.float64, device=x.device)
        for start in range(1, h + 1, block):
            m = torch.arange(start, min(start + block, h + 1), dtype=torch.float64, device=x.device)
            b = m * f * n / fs
            k = torch.round(b)
            d = b - k
            win_sum = (w[:, None] * torch.exp(2j * math.pi * t[:, None] * d[None, :] / n)).sum(0)  # N x H
            c = spec[i, k.long()] / win_sum
            y = y + (2 * c.abs() * torch.cos(2 * math.pi * t[:, None] * (m * f / fs)[None, :]
                                             + torch.angle(c)[None, :])).sum(-1)  # N x H
        out.append(y)
    return torch.stack(out)


def reference_nmr(nmr: NMR, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The reference's NMR computation (float64), linear per item ``[B]``: magnitude spectra of
    each signal, ``(|X| - |R|)^2`` noise, and PEAQ's recursive ``PQ_SpreadCB`` written as the
    reference writes it, with Python loops over the 109 bands (a lower recursion, then an
    ``O(109^2)`` upper-spreading double loop of elementwise ops over ``[B, frames]``). Uses
    ``nmr``'s tables (ear weights, band matrix, slopes, normalisation), so it is the same
    function as ``NMR(dtype=float64)``; the bench prints the difference."""
    f64 = torch.float64
    g, win = nmr.calibration, nmr.window.to(f64)
    ear, u = nmr.ear.to(f64), nmr.band_matrix.to(f64)

    def mag(v: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(v.to(f64) * g, nmr.n_fft, nmr.hop, window=win, center=False, return_complex=True)
        return spec.abs().transpose(-1, -2) * ear                      # [B, frames, bins]

    mx, mr = mag(x), mag(ref)
    noise = ((mx - mr) ** 2 @ u).clamp_min(nmr.e_min)
    e = (mr ** 2 @ u).clamp_min(nmr.e_min) + nmr.internal_noise.to(f64)  # pitch pattern [B, frames, 109]
    nc, ex, dz = e.shape[-1], 0.4, 0.25
    a_l = 10.0 ** (-2.7 * dz)
    a_uc = nmr.log_a_uc.to(f64).exp()
    a_uce_e, ene = [], []
    for m in range(nc):  # energy-dependent slopes and normalised energies, band by band
        a_uce = a_uc[m] * e[..., m] ** (0.2 * dz)
        g_il = (1 - a_l ** (m + 1)) / (1 - a_l)
        g_iu = (1 - a_uce ** (nc - m)) / (1 - a_uce)
        a_uce_e.append(a_uce ** ex)
        ene.append((e[..., m] / (g_il + g_iu - 1)) ** ex)
    spread = [None] * nc
    spread[nc - 1] = ene[nc - 1]
    for m in range(nc - 2, -1, -1):  # lower spreading
        spread[m] = a_l ** ex * spread[m + 1] + ene[m]
    for m in range(nc - 1):  # upper spreading, i > m
        r = ene[m]
        for i in range(m + 1, nc):
            r = r * a_uce_e[m]
            spread[i] = spread[i] + r
    es = torch.stack(spread, -1) ** (1 / ex) / nmr.spread_norm.to(f64)
    return (noise / (nmr.mask_offset.to(f64) * es)).mean(dim=(-2, -1))


class _NamStyleLayer(nn.Module):
    def __init__(self, conv: nn.Conv1d, mixer: nn.Conv1d, conv1x1: nn.Conv1d) -> None:
        super().__init__()
        self.conv, self.input_mixer, self._1x1 = conv, mixer, conv1x1

    def forward(self, x: torch.Tensor, c: torch.Tensor, out_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        zconv = self.conv(x)
        z1 = zconv + self.input_mixer(c)[:, :, -zconv.shape[2]:]  # NAM mixes the whole condition
        post = torch.tanh(z1)
        return x[:, :, -post.shape[2]:] + self._1x1(post), post[:, :, -out_length:]


class NamStyleWaveNet(nn.Module):
    """NAM 0.12.3's WaveNet forward (``nam/models/wavenet.py``: per-layer ``nn.Conv1d`` modules,
    the input mixer over the whole condition, head accumulated after cropping) built from the
    weights of one of our (ungated, Tanh) :class:`NamWaveNet` models."""

    def __init__(self, model: NamWaveNet) -> None:
        super().__init__()
        m = copy.deepcopy(model)
        self.arrays = nn.ModuleList()
        for arr in m.arrays:
            if arr.cfg.gated or arr.cfg.activation != "Tanh":
                raise ValueError("the NAM-style baseline covers ungated Tanh WaveNets (every NAM preset)")
            layers = nn.ModuleList(_NamStyleLayer(la.conv, la.mixer, la.conv1x1) for la in arr.layers)
            self.arrays.append(nn.ModuleDict({"rechannel": arr.rechannel, "layers": layers,
                                              "head_rechannel": arr.head_rechannel}))
        self.rf = model.receptive_field
        self.rfs = [c.receptive_field for c in model.layer_configs]
        self.head_scale = model.head_scale

    def forward(self, x: torch.Tensor, pad_start: bool = True) -> torch.Tensor:
        if pad_start:
            x = F.pad(x, (self.rf - 1, 0))
        c = x[:, None, :]
        y, head = c, None
        for arr, rf in zip(self.arrays, self.rfs):
            out_length = y.shape[-1] - (rf - 1)
            z = arr["rechannel"](y)
            acc = head  # NAM passes the previous array's head output in as the accumulator
            for layer in arr["layers"]:
                z, term = layer(z, c, out_length)
                acc = term if acc is None else acc[:, :, -out_length:] + term
            head, y = arr["head_rechannel"](acc), z
        return self.head_scale * head[:, 0, :]


# ----------------------------------------------------------------------------- timing
def peer_model(module: nn.Module) -> nn.Module:
    """The baseline for one of our NAM WaveNets, same weights: NAM's own module
    (``neural-amp-modeler``, built from our ``.nam`` document with ``init_from_nam``) when that
    package is installed (``uv sync --all-packages --group nam-peer``), else the NAM-style
    rewrite above. Both take ``(x [B, T], pad_start=...)``."""
    if importlib.util.find_spec("nam") is None:
        return NamStyleWaveNet(module)
    from nam.models import init_from_nam

    p = next(module.parameters())
    return init_from_nam(nam_document(module)).to(device=p.device, dtype=p.dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time (s) of ``fn`` over ``repeats`` runs (run a warm-up before)."""
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def _out_diff(y: torch.Tensor, ref: torch.Tensor) -> str:
    """``"max |diff| A (rel rms B)"`` of an output against a reference output (float64 arithmetic)."""
    d = (y.double() - ref.double())
    return f"max |diff| {float(d.abs().max()):.1e} (rel rms {float(d.norm() / ref.double().norm()):.1e})"


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


# ----------------------------------------------------------------------------- bf16 quality
#: the allowance for bf16 training: per-band NMR-S within this of the float32 run's (dB)
BF16_NMR_S_ALLOWANCE_DB = 0.1


def amp_quality(teacher: NamWaveNet, dev: torch.device, *, steps: int, batch: int, num_tones: int,
                levels_db: tuple[float, ...], lr: float, seed: int) -> dict:
    """Fine-tune a float32 copy of ``teacher`` (Carson et al.'s method) for ``steps`` Adam steps of
    ``batch`` tones with the full loss (ESR + NMR + DC after the 12 / 16 kHz lowpass, float32), twice
    from the same start on the same batches: with a float32 student forward and under bf16 autocast;
    and, as the control that shows how far ordinary training noise alone moves the result, once more
    in float32 with the same batches in reverse order. Then the per-band NMR-S of every run and of
    the start (the teacher; aa_distill.analysis on the analysis grid of ``num_tones`` f0 at
    ``levels_db``, models run in float64, mean of per-tone dB), printed as a table with the
    bf16 - float32 difference against the 0.1 dB allowance."""
    tones = sample_tone_params(steps * batch, FS, generator=torch.Generator().manual_seed(seed + 13))
    with torch.no_grad():  # bandlimited float64 teacher targets, cached as in training
        targets = torch.cat([bandlimit(teacher(synthesize_tones(tones.subset(slice(i, i + batch)), torch.float64,
                                                                dev)), tones.f0[i:i + batch].to(dev), FS)
                             .bandlimited.float() for i in range(0, len(tones), batch)])
    loss_fn = DistillationLoss(FS, nmr_dtype=torch.float32).to(dev)
    models: dict[str, nn.Module] = {"teacher": teacher}
    for key, amp, order in (("float32", None, range(steps)), ("bf16", "bf16", range(steps)),
                            ("control", None, range(steps - 1, -1, -1))):
        model = student_from_teacher(teacher).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for i in order:
            sl = slice(i * batch, (i + 1) * batch)
            part = tones.subset(sl)
            pred = predict_last_second(model, synthesize_tones(part, torch.float32, dev), FS, model.receptive_field,
                                       amp=amp)
            loss, _ = loss_fn(pred, targets[sl], part.f0.to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        models[key] = model
    grid = analysis_tone_params(FS, num_tones=num_tones, levels_db=levels_db)
    outs = {k: model_outputs(copy.deepcopy(m), grid, device=dev) for k, m in models.items()}
    metrics = analyse_outputs(outs, grid.f0, FS, device=dev)
    nmr_s = {k: [mean_db(mm.per_band["nmr_s"][:, b]) for b in range(len(ANALYSIS_BANDS_HZ))]
             for k, mm in metrics.items()}
    rel = {name: [a - b for a, b in zip(nmr_s[k], nmr_s[ref])]
           for name, k, ref in (("moved", "float32", "teacher"), ("bf16", "bf16", "float32"),
                                ("control", "control", "float32"))}
    diff = rel["bf16"]
    ok = all(abs(d) <= BF16_NMR_S_ALLOWANCE_DB for d in diff if not math.isnan(d))
    rows = [[band_label(band), f"{t:.2f}", f"{f:.2f}", f"{m:+.2f}", f"{q:.2f}", f"{d:+.3f}", f"{c:+.3f}",
             "ok" if abs(d) <= BF16_NMR_S_ALLOWANCE_DB else ("-" if math.isnan(d) else "OVER")]
            for band, t, f, m, q, d, c in zip(ANALYSIS_BANDS_HZ, nmr_s["teacher"], nmr_s["float32"], rel["moved"],
                                              nmr_s["bf16"], diff, rel["control"])]
    print(f"\nbf16 training quality: the teacher fine-tuned {steps} steps x {batch} tones (lr {lr:g}, seed {seed}) "
          f"in float32 and with a bf16 forward; NMR-S per band (dB, mean over {len(grid)} analysis tones at "
          f"{', '.join(f'{v:g}' for v in levels_db)} dBFS; models run in float64)")
    print(_table(rows, ["band (Hz)", "start", "float32", "moved", "bf16", "bf16 - f32", "control - f32",
                        "<= 0.1 dB"]))
    print(f"bf16 quality: |NMR-S(bf16) - NMR-S(float32)| <= {BF16_NMR_S_ALLOWANCE_DB} dB in every band: "
          f"{'met' if ok else 'NOT met'} (max {max(abs(d) for d in diff if not math.isnan(d)):.3f} dB). 'moved': the "
          f"float32 run's change from the start (a run too short to move NMR-S says little); 'control': float32 "
          f"with the batches reversed, the spread that training noise alone gives")
    return {"steps": steps, "batch": batch, "lr": lr, "analysis_tones": len(grid),
            "bands": [band_label(b) for b in ANALYSIS_BANDS_HZ], "nmr_s_db": nmr_s, "bf16_minus_float32_db": diff,
            "control_minus_float32_db": rel["control"], "allowance_db": BF16_NMR_S_ALLOWANCE_DB, "met": ok}


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="aa_speed.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, or auto (cuda when available)")
    p.add_argument("--quick", action="store_true",
                   help="measure on 8 tones and scale to the batch, one timed run per item, inference on 2 s, "
                        "the analysis sweep on 10 tones (extrapolated to 50) and a 2-step bf16 quality check: "
                        "< 3 min on an idle 2-core CPU")
    p.add_argument("--batch", type=int, default=40, help="tones per batch (default 40, the target workload)")
    p.add_argument("--measure-tones", type=int, default=None,
                   help="tones actually run per measured batch; times are scaled by batch / this (default: "
                        "the batch; 8 with --quick; every cost here is linear in the tone count)")
    p.add_argument("--epoch-tones", type=int, default=1600, help="tones per epoch (default 1600)")
    p.add_argument("--batches", type=int, default=None,
                   help="measured batches per epoch estimate (default 3; 1 with --quick)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per component (median; default 3; 1 with --quick)")
    p.add_argument("--teacher", default=None, metavar="T.nam",
                   help="float64 teacher (default: ../shared/data/nam/core_wavenet_standard.nam when present, "
                        "else a random standard WaveNet)")
    p.add_argument("--no-inference", action="store_true", help="skip the inference and analysis-sweep section")
    p.add_argument("--quality-steps", type=int, default=None,
                   help="bf16 quality check: Adam steps of the fixed short fine-tuning run, made in float32, with a "
                        "bf16 student forward, and in float32 with the batches reversed (the control) (default 40, "
                        "one epoch of 1,600 tones at batch 40; 2 with --quick)")
    p.add_argument("--quality-batch", type=int, default=None,
                   help="tones per step of that run (default 40; 2 with --quick)")
    p.add_argument("--quality-tones", type=int, default=None,
                   help="analysis-grid f0 per level for its per-band NMR-S (default 50 at -36 / -18 / -6 dBFS; "
                        "4 at -6 dBFS with --quick)")
    p.add_argument("--no-quality", action="store_true", help="skip the bf16 quality check")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed for the tones and the student's weights")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    args.batches = args.batches or (1 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.measure_tones = min(args.measure_tones or (8 if args.quick else args.batch), args.batch)
    args.quality_steps = args.quality_steps or (2 if args.quick else 40)
    args.quality_batch = args.quality_batch or (2 if args.quick else 40)
    args.quality_tones = args.quality_tones or (4 if args.quick else 50)
    args.quality_levels = (-6.0,) if args.quick else (-36.0, -18.0, -6.0)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if args.device == "auto" else args.device))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    m_tones = args.measure_tones
    scale = args.batch / m_tones
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch} tones x 1.2 s at {FS} Hz"
          + (f" (measured on {m_tones} tones, times scaled x{scale:g})" if scale != 1 else ""))
    nam_peer = importlib.util.find_spec("nam") is not None
    peer = "neural-amp-modeler" if nam_peer else "NAM-style module (neural-amp-modeler not installed)"

    teacher_path = Path(args.teacher) if args.teacher else NAM_DIR / "core_wavenet_standard.nam"
    if teacher_path.is_file():
        teacher = load_nam(teacher_path, dtype=torch.float64, device=dev)
        tname = teacher_path.name
    else:
        teacher = student_wavenet("standard", sample_rate=FS, seed=args.seed + 1).to(dev, torch.float64)
        tname = "random standard WaveNet (no capture found)"
    if teacher.sample_rate != FS:
        raise SystemExit(f"error: the bench runs at {FS} Hz; {tname} is at {teacher.sample_rate} Hz")
    print(f"teacher: {tname} (float64); student: standard WaveNet (float32)")

    gen = torch.Generator().manual_seed(args.seed)
    tones = sample_tone_params(m_tones, FS, generator=gen)
    f0 = tones.f0.to(dev)
    x64 = synthesize_tones(tones, torch.float64, dev)
    x32 = x64.float()
    rows: list[list[str]] = []
    res: dict[str, dict] = {}

    def record(key: str, label: str, ours: float | None, base: float | None, note: str,
               scaled: bool = True) -> None:
        if scaled:
            ours, base = (None if v is None else v * scale for v in (ours, base))
        ratio = f"{base / ours:.1f}x" if ours and base else "-"
        rows.append([label, _fmt_s(ours), _fmt_s(base), ratio, note])
        res[key] = {"ours_s": ours, "baseline_s": base, "note": note}
        print(f"  {label}: ours {_fmt_s(ours)}, baseline {_fmt_s(base)} ({ratio})", flush=True)

    # --- teacher forward (float64) and bandlimiter -------------------------------------------
    with torch.no_grad():
        teacher(x64[:2])  # warm-up
        t_teacher = timed(lambda: teacher(x64), dev, args.repeats)
        y_teacher = teacher(x64)
    record("teacher_forward", f"teacher forward (float64, {args.batch} tones)", None, t_teacher,
           "ours: cached, computed once per run")
    bandlimit(y_teacher[:2], f0[:2], FS)
    t_bl = timed(lambda: bandlimit(y_teacher, f0, FS), dev, args.repeats)
    t_bl_ref = timed(lambda: reference_bandlimit(y_teacher, f0, FS), dev, 1)
    diff = float((bandlimit(y_teacher, f0, FS).bandlimited - reference_bandlimit(y_teacher, f0, FS)).abs().max())
    target = bandlimit(y_teacher, f0, FS).bandlimited
    record("bandlimiter", f"bandlimiter (float64, {args.batch} tones)", t_bl, t_bl_ref,
           f"ref: N x H matrices per tone; max |diff| {diff:.1e}")

    # --- NMR forward + backward -------------------------------------------------------------
    from aa_distill import KaiserLowpass

    lp = KaiserLowpass(FS).to(dev)
    with torch.no_grad():
        p_lp, t_lp = lp(y_teacher[:, -FS:]), lp(target)
    nmr32 = NMR(FS, dtype=torch.float32).to(dev)  # per-item NMR [B]
    nmr64 = NMR(FS, dtype=torch.float64).to(dev)

    def nmr_step(loss: nn.Module, dtype: torch.dtype) -> Callable[[], None]:
        p = p_lp.to(dtype).clone().requires_grad_(True)
        t = t_lp.to(dtype)
        def run() -> None:  # noqa: E306
            p.grad = None
            torch.log(loss(p, t)).mean().backward()
        return run

    class _RefNMR(nn.Module):  # the reference's loop form, float64
        def forward(self, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return reference_nmr(nmr64, p, t)

    ref_nmr = _RefNMR()
    nmr_step(nmr32, torch.float32)()
    nmr_step(nmr64, torch.float64)()
    nmr_step(ref_nmr, torch.float64)()
    t_n32 = timed(nmr_step(nmr32, torch.float32), dev, args.repeats)
    t_n64 = timed(nmr_step(nmr64, torch.float64), dev, args.repeats)
    t_nref = timed(nmr_step(ref_nmr, torch.float64), dev, 1)
    with torch.no_grad():
        # both precisions see the same (float32-rounded) signals: the error is the compute's
        p32, q32 = p_lp.float(), t_lp.float()
        d32 = 10 * torch.log10(nmr32(p32, q32).double())
        d64 = 10 * torch.log10(nmr64(p32.double(), q32.double()))
        dref = 10 * torch.log10(ref_nmr(p32.double(), q32.double()))
    nmr_err = float((d32 - d64).abs().max())
    ref_err = float((dref - d64).abs().max())
    record("nmr_ref", f"NMR fwd+bwd ({args.batch} x 1 s) vs reference", t_n32, t_nref,
           f"ours float32 vs the reference form (float64, per-band loops); ours64 = ref within {ref_err:.1e} dB")
    record("nmr", f"NMR fwd+bwd ({args.batch} x 1 s) vs our float64", t_n32, t_n64,
           f"max |dNMR| float32 vs float64 {nmr_err:.1e} dB over NMR-T values {float(d64.min()):.0f}.."
           f"{float(d64.max()):.0f} dB")

    # --- student training step ----------------------------------------------------------------
    student = student_wavenet("standard", sample_rate=FS, seed=args.seed).to(dev)
    rf = student.receptive_field
    seg32 = x32[:, -(FS + rf - 1):]
    t32 = target.float()

    def student_step(model: nn.Module, amp: str | None = None) -> Callable[[], None]:
        opt = torch.optim.Adam(model.parameters(), lr=1e-9)
        def run() -> None:  # noqa: E306
            opt.zero_grad(set_to_none=True)
            F.mse_loss(amp_forward(model, seg32, amp=amp, pad_start=False), t32).backward()
            opt.step()
        return run

    ours_model, bf16_model = copy.deepcopy(student), copy.deepcopy(student)
    base_model = peer_model(copy.deepcopy(student))
    with torch.no_grad():
        y32 = ours_model(seg32[:2], pad_start=False)
        same = float((y32 - base_model(seg32[:2], pad_start=False)).abs().max())
        d_bf = _out_diff(amp_forward(ours_model, seg32[:2], amp="bf16", pad_start=False), y32)
    s_ours, s_base, s_bf = student_step(ours_model), student_step(base_model), student_step(bf16_model, "bf16")
    s_ours(), s_base(), s_bf()  # warm-up (one full step each)
    t_s = timed(s_ours, dev, args.repeats)
    t_s_base = timed(s_base, dev, args.repeats)
    t_s_bf = timed(s_bf, dev, args.repeats)
    record("student_step", "student step (standard WaveNet, float32)", t_s, t_s_base,
           f"baseline: {peer}; max |out diff| {same:.1e}")
    record("student_step_bf16", "student step, bf16 autocast (vs NAM float32)", t_s_bf, t_s_base,
           f"{t_s / t_s_bf:.2f}x our float32 step; output vs float32: {d_bf}")

    # --- full-loss epoch --------------------------------------------------------------------
    n_batches = math.ceil(args.epoch_tones / args.batch)
    mb = m_tones  # tones per measured epoch batch
    ep_tones = sample_tone_params(mb * args.batches, FS, generator=torch.Generator().manual_seed(args.seed + 7))
    with torch.no_grad():  # our cached targets (one-off, timed below)
        cache = torch.cat([bandlimit(teacher(synthesize_tones(ep_tones.subset(slice(i, i + args.batch)),
                                                              torch.float64, dev)),
                                     ep_tones.f0[i:i + args.batch].to(dev), FS).bandlimited.float()
                           for i in range(0, len(ep_tones), mb)])
    loss_ours = DistillationLoss(FS, nmr_dtype=torch.float32).to(dev)
    loss_ref = DistillationLoss(FS, nmr_dtype=torch.float64).to(dev)
    m_ours, m_ref, m_bf = copy.deepcopy(student), peer_model(copy.deepcopy(student)), copy.deepcopy(student)
    o_ours = torch.optim.Adam(m_ours.parameters(), lr=5e-4)
    o_ref = torch.optim.Adam(m_ref.parameters(), lr=5e-4)
    o_bf = torch.optim.Adam(m_bf.parameters(), lr=5e-4)

    def epoch_loss(model: nn.Module, i: int, amp: str | None) -> torch.Tensor:
        part = ep_tones.subset(slice(i * mb, (i + 1) * mb))
        x = synthesize_tones(part, torch.float32, dev)
        pred = predict_last_second(model, x, FS, rf, amp=amp)  # float32 for every amp: the loss is float32
        return loss_ours(pred, cache[i * mb:(i + 1) * mb], part.f0.to(dev))[0]

    def batch_ours(i: int, model: nn.Module = m_ours, opt: torch.optim.Optimizer = o_ours,
                   amp: str | None = None) -> None:
        loss = epoch_loss(model, i, amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def batch_ref(i: int) -> None:
        part = ep_tones.subset(slice(i * mb, (i + 1) * mb))
        x = synthesize_tones(part, torch.float64, dev)
        with torch.no_grad():
            tgt = reference_bandlimit(teacher(x), part.f0.to(dev), FS).float()
        loss, _ = loss_ref(m_ref(x.float()[:, -(FS + rf - 1):], pad_start=False), tgt, part.f0.to(dev))
        o_ref.zero_grad(set_to_none=True)
        loss.backward()
        o_ref.step()

    with torch.no_grad():  # the same weights, both precisions: the loss's own bf16 error
        l32, l16 = (float(epoch_loss(student, 0, amp)) for amp in (None, "bf16"))
    t_ep = timed(lambda: [batch_ours(i) for i in range(args.batches)], dev, 1) / args.batches * n_batches * scale
    t_ep_bf = timed(lambda: [batch_ours(i, m_bf, o_bf, "bf16") for i in range(args.batches)], dev, 1) \
        / args.batches * n_batches * scale
    t_ep_ref = timed(lambda: [batch_ref(i) for i in range(args.batches)], dev, 1) / args.batches * n_batches * scale
    one_off = (t_teacher + t_bl) * n_batches * scale
    record("epoch", f"full-loss epoch, {args.epoch_tones} tones ({n_batches} batches)", t_ep, t_ep_ref,
           f"extrapolated from {args.batches} batch(es) of {mb} tones; ours uses cached targets", scaled=False)
    record("epoch_bf16", "full-loss epoch, bf16 student forward", t_ep_bf, t_ep_ref,
           f"{t_ep / t_ep_bf:.2f}x our float32 epoch; losses float32; loss vs float32 (same weights) "
           f"{abs(l16 - l32) / abs(l32):.1e} relative", scaled=False)
    res["epoch_bf16"]["loss_rel_diff"] = abs(l16 - l32) / abs(l32)
    rows.append([f"  one-off cached targets, {args.epoch_tones} tones", _fmt_s(one_off), "-", "-",
                 "teacher float64 + our bandlimiter, once per run"])
    res["targets_one_off"] = {"ours_s": one_off}

    # --- inference and the analysis sweep -----------------------------------------------------
    inf_rows: list[list[str]] = []
    if not args.no_inference:
        seconds = 2.0 if args.quick else 10.0
        for fname in ("core_wavenet_standard.nam", "boss_sd1_feather.nam"):
            path = NAM_DIR / fname
            if not path.is_file():
                inf_rows.append([fname, "-", "-", "-", "not found (../shared/data absent)"])
                continue
            ours_m = load_nam(path, device=dev)
            base_m = peer_model(ours_m)
            audio = torch.randn(1, int(seconds * FS), generator=torch.Generator().manual_seed(1)).to(dev) * 0.3
            with torch.no_grad():
                ours_m(audio[:, :4800]), base_m(audio[:, :4800])
                amp_forward(ours_m, audio[:, :4800], amp="bf16")
                reps = max(3, args.repeats)  # cheap; one run is too noisy on a busy machine
                t_o = timed(lambda: ours_m(audio), dev, reps)
                t_b = timed(lambda: base_m(audio), dev, reps)
                t_bf = timed(lambda: amp_forward(ours_m, audio, amp="bf16"), dev, reps)
                y_b = base_m(audio)
                d = float((ours_m(audio) - y_b).abs().max())
                d_bf = _out_diff(amp_forward(ours_m, audio, amp="bf16"), y_b)
            n = audio.shape[-1]
            inf_rows.append([fname, f"{n / t_o / 1e6:.2f} M/s", f"{n / t_b / 1e6:.2f} M/s", f"{t_b / t_o:.2f}x",
                             f"max |diff| {d:.1e}"])
            inf_rows.append([f"{fname}, ours bf16", f"{n / t_bf / 1e6:.2f} M/s", f"{n / t_b / 1e6:.2f} M/s",
                             f"{t_b / t_bf:.2f}x", f"vs NAM float32: {d_bf}"])
            res[f"inference_{fname}"] = {"ours_samples_per_s": n / t_o, "baseline_samples_per_s": n / t_b,
                                         "max_abs_diff": d, "ours_bf16_samples_per_s": n / t_bf,
                                         "bf16_diff": d_bf}
        from aa_distill import analyse_outputs, analysis_tone_params, model_outputs, student_from_teacher

        k = 10 if args.quick else 50
        params = analysis_tone_params(FS, num_tones=k, levels_db=(-6.0,))
        pair = {"teacher": teacher, "student": student_from_teacher(teacher)}
        t0 = time.perf_counter()
        outs = {m: model_outputs(mod, params, device=dev) for m, mod in pair.items()}
        analyse_outputs(outs, params.f0, FS, device=dev)
        _sync(dev)
        sweep = (time.perf_counter() - t0) * 50 / k
        res["analysis_sweep_50"] = {"seconds": sweep, "measured_tones": k}

    print("\n" + _table(rows, ["per batch / epoch", "ours", "baseline", "ratio", "note"]))
    if inf_rows:
        print(f"\ninference, batch 1, {seconds:g} s of audio (samples per second; ours float32, then ours under bf16 "
              f"autocast; baseline: {peer}, float32)")
        print(_table(inf_rows, ["capture", "ours", "baseline", "ratio", "note"]))
        print(f"\n50-tone analysis sweep (1 level, teacher + student, float64): {_fmt_s(sweep)}"
              + (f" (extrapolated from {k} tones)" if k != 50 else ""))
    print("\nratio = baseline / ours (> 1: ours is faster)")
    if not args.no_quality:
        res["bf16_quality"] = amp_quality(teacher, dev, steps=args.quality_steps, batch=args.quality_batch,
                                          num_tones=args.quality_tones, levels_db=args.quality_levels, lr=5e-4,
                                          seed=args.seed)
    if dev.type == "cuda":
        for label, t in (("float32", t_ep), ("bf16", t_ep_bf)):
            print(f"target: full-loss epoch <= 1.5 s on one GPU, {label}: {'met' if t <= 1.5 else 'NOT met'} "
                  f"({t:.2f} s)")
        for k, v in res.items():
            if k.startswith("inference_"):
                r = v["ours_bf16_samples_per_s"] / v["baseline_samples_per_s"]
                print(f"target: student inference >= 1.5x NAM's module, {k[10:]}: float32 "
                      f"{v['ours_samples_per_s'] / v['baseline_samples_per_s']:.2f}x, bf16 {r:.2f}x "
                      f"({'met' if r >= 1.5 else 'NOT met'} with bf16)")
    ok_nmr = t_nref / t_n32 >= 3 and nmr_err <= 0.01
    print(f"NMR fwd+bwd: ours float32 {t_nref / t_n32:.1f}x faster than the float64 reference form "
          f"({t_n64 / t_n32:.1f}x faster than our own float64), max error {nmr_err:.1e} dB vs float64 "
          f"(target: >= 3x, <= 0.01 dB: {'met' if ok_nmr else 'NOT met'} on this device)")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, **res}, indent=2))
    return res


if __name__ == "__main__":
    main()
