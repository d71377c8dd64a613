#!/usr/bin/env python
"""Render audio through NAM models (a teacher and its students) for listening tests.

    uv run tools/render_nam.py --model teacher.nam --model student.nam            # built-in signals
    uv run tools/render_nam.py guitar_di.wav --model teacher.nam --model student.nam --out DIR

Without an input it synthesises two signals at the models' rate (aa_distill's
``exponential_sweep``, 20 Hz to 0.45 fs, and ``plucked_string``, the six open guitar strings).
Every input goes through every model (from zero history, as NAM plays a file). Writes into
``--out``:

* ``inputs/NAME.wav`` — the inputs as rendered (synthesised, or loaded and, with ``--resample``,
  resampled), float WAV;
* ``MODEL/NAME.wav`` — each model's output, computed in float64 and written as float WAV (amp
  outputs may exceed full scale: never clipped);
* ``spectrograms/NAME.png`` — input and outputs side by side (aliases: lines that fold down from
  Nyquist); ``render.json`` — models (path, SHA-256, architecture, rate), inputs and output levels.

All models must share one sample rate; inputs at another rate are an error unless ``--resample``.
Exit status 0, 1 when an input failed (``--allow-failures`` to exit 0), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402

TOOL = "render_nam"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="render_nam.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="IN.wav",
                   help="input recordings (a guitar DI, ...); none: a sine sweep and a plucked-string DI")
    p.add_argument("--model", action="append", required=True, metavar="M.nam",
                   help="a .nam model; repeat for a teacher and its students (rendered in this order)")
    p.add_argument("--resample", action="store_true",
                   help="resample inputs at another rate to the models' rate (without it they fail, named)")
    p.add_argument("--downmix", action="store_true",
                   help="average the channels of multi-channel inputs (without it they fail, named)")
    p.add_argument("--level-db", type=T.LEVEL_DBFS, default=-6.0,
                   help="peak level of the synthesised signals in dBFS (default -6); loaded inputs are kept as they are")
    p.add_argument("--sweep-seconds", type=T.seconds(600.0), default=5.0,
                   help="length of the synthesised sweep in seconds (default 5)")
    p.add_argument("--note-seconds", type=T.seconds(60.0), default=1.5,
                   help="length of each synthesised plucked note in seconds (default 1.5)")
    p.add_argument("--no-plots", action="store_true", help="skip the spectrogram PNGs")
    _cli.add_allow_failures(p)
    _cli.add_common_args(p)
    return T.annotate_help(p)


def _unique_names(paths: list[Path]) -> list[str]:
    """Folder names for the models: the file stem, numbered where two share it."""
    stems = [p.stem for p in paths]
    return [s if stems.count(s) == 1 else f"{i + 1}-{s}" for i, s in enumerate(stems)]


def _render(model: Any, x: Any) -> Any:
    import torch  # noqa: PLC0415

    with torch.no_grad():  # float64: the quiet aliases stay above the arithmetic's noise floor
        return model(x[None].to(torch.float64))[0]


def _spectrogram_png(path: Path, title: str, signals: dict[str, Any], sample_rate: int) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from scipy.signal import spectrogram  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(signals), figsize=(4 * len(signals), 3.6), sharey=True, squeeze=False)
    for ax, (name, y) in zip(axes[0], signals.items()):
        f, t, s = spectrogram(np.asarray(y, dtype=np.float64), fs=sample_rate, nperseg=2048, noverlap=1536,
                              window="blackmanharris")
        db = 10 * np.log10(s / max(float(s.max()), 1e-30) + 1e-14)
        ax.pcolormesh(t, f / 1000, db, vmin=-120, vmax=0, cmap="magma", shading="auto")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("kHz")
    fig.suptitle(f"{title}: dB re each signal's peak (aliases fold down from {sample_rate / 2000:g} kHz)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@_cli.phrased(resample="--resample", mono="--downmix")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import aa_distill  # noqa: PLC0415 - after parsing: --help stays fast
    import torch  # noqa: PLC0415
    from se_data import AudioFileError, SampleRateError, load_audio, save_audio  # noqa: PLC0415

    model_paths = [Path(m) for m in args.model]
    if args.out is not None:  # an input inside --out would be an output read back
        for f in args.inputs:
            if Path(args.out).resolve() in Path(f).resolve().parents:
                sys.exit(f"error: --out {args.out} contains the input {f}; choose an output folder elsewhere")
    models = {}
    for name, path in zip(_unique_names(model_paths), model_paths):
        try:
            models[name] = (path, aa_distill.load_nam(path, dtype=torch.float64))
        except (OSError, aa_distill.NamFormatError) as e:
            sys.exit(f"error: --model {path}: {e}")
    rates = {n: m.sample_rate for n, (_, m) in models.items()}
    if len({float(r) for r in rates.values()}) != 1:
        sys.exit(f"error: --model: the models run at different sample rates {rates}; render each rate separately")
    sr = int(next(iter(rates.values())))
    out = _cli.prepare_out_dir(args.out, TOOL)

    inputs: dict[str, Any] = {}
    failed: list[tuple[str, str]] = []
    if not args.inputs:
        inputs["sweep"] = aa_distill.exponential_sweep(sr, args.sweep_seconds, level_db=args.level_db)
        inputs["pluck"] = aa_distill.plucked_string(sr, seconds_per_note=args.note_seconds, level_db=args.level_db)
    for f in args.inputs:
        name = Path(f).stem if sum(Path(g).stem == Path(f).stem for g in args.inputs) == 1 else Path(f).name
        try:
            inputs[name], _ = load_audio(f, sr, resample=args.resample, mono=args.downmix)
        except (AudioFileError, SampleRateError, ValueError) as e:
            failed.append((str(f), str(e)))
            print(f"failed: {f}: {e}", file=sys.stderr)

    record: dict[str, Any] = {
        "sample_rate": sr,
        "models": {n: {"path": str(p), "sha256": aa_distill.nam_sha256(p), "architecture": type(m).__name__,
                       "sample_rate_assumed": bool(getattr(m, "sample_rate_assumed", False))}
                   for n, (p, m) in models.items()},
        "inputs": {}, "failed": [{"input": f, "reason": r} for f, r in failed]}
    for name, x in inputs.items():
        save_audio(out / "inputs" / f"{name}.wav", x, sr, subtype="FLOAT")
        outputs = {}
        for mname, (_, model) in models.items():
            y = _render(model, x)
            if not bool(torch.isfinite(y).all()):
                failed.append((f"{name} through {mname}", "the model's output holds NaN/Inf"))
                continue
            save_audio(out / mname / f"{name}.wav", y, sr, subtype="FLOAT")
            outputs[mname] = y
        levels = {m: {"peak_dbfs": float(20 * torch.log10(y.abs().max().clamp_min(1e-12))),
                      "rms_dbfs": float(10 * torch.log10(y.pow(2).mean().clamp_min(1e-24)))}
                  for m, y in outputs.items()}
        record["inputs"][name] = {"seconds": x.shape[-1] / sr, "levels": levels}
        if not args.no_plots and outputs:
            (out / "spectrograms").mkdir(exist_ok=True)
            _spectrogram_png(out / "spectrograms" / f"{name}.png", name, {"input": x, **outputs}, sr)
        print(f"{name}: " + ", ".join(f"{m} peak {v['peak_dbfs']:.1f} dBFS" for m, v in levels.items()))
    (out / "render.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"rendered {len(inputs)} input(s) through {len(models)} model(s) at {sr} Hz into {out}")
    return _cli.failure_status(len(failed), len(inputs) + len(failed), args, "input(s)")


if __name__ == "__main__":
    raise SystemExit(main())
