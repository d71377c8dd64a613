#!/usr/bin/env python
"""Export a BSRNN / BSDT / ERB-UNet to ONNX for CPU inference with onnxruntime, and check it.

The model comes from a checkpoint of tools/train_bsdt.py (``--ckpt best.pt``) or, untrained, from
a ``bandsplit`` preset (``--preset bsrnn-published``; for trying the export). OUT/model.onnx is
a graph on the real/imaginary spectrogram ``[B, 2, F, T]`` (dynamic batch and length; the STFT
and its inverse stay outside, their settings are in the file's metadata). With ``--int8``
OUT/model.int8.onnx is an int8 dynamically quantised copy too; with ``--streaming`` (a causal
BSRNN) OUT/model.onnx is one streaming step of ``--batch-size`` streams instead.

Every written graph is checked: onnxruntime and PyTorch enhance ``--check-seconds`` of seeded
noise at speech level (or ``--check-wav FILE``) and the largest difference of their spectrograms
is printed, relative to the output's peak; OUT/export.json records it with the metadata. Exit
status 1 when the float32 graph differs by more than ``--tolerance`` of the peak.

Load the result with the bandsplit package alone::

    model = bandsplit.load_onnx("OUT/model.onnx")          # complex [B, F, T] in and out, .stft
    clean = bandsplit.enhance(model, noisy, 16000)         # as with the PyTorch model
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="export_onnx.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", default=None, help="checkpoint of tools/train_bsdt.py (best.pt or last.pt)")
    src.add_argument("--preset", default=None,
                     help="an untrained bandsplit preset instead (bandsplit.PRESETS, e.g. bsrnn-published)")
    p.add_argument("--causal", action="store_true", help="with --preset: build the BSRNN preset with causal=True")
    p.add_argument("--weights", choices=["ema", "live"], default="ema",
                   help="with --ckpt: the EMA weights where the checkpoint has them, else the trained ones (ema), "
                        "or the trained ones (live); default ema")
    p.add_argument("--streaming", action="store_true",
                   help="export one streaming step of a causal BSRNN (bandsplit.load_onnx then returns an "
                        "OnnxStreamer with push/flush) instead of the offline graph")
    p.add_argument("--batch-size", type=T.positive_int(64), default=1,
                   help="with --streaming: streams per step (static in the graph; default 1)")
    p.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx, int8 dynamically quantised (onnxruntime's quantize_dynamic)")
    p.add_argument("--opset", type=T.int_range(17, 20, noun="an ONNX opset (integer)"), default=17,
                   help="ONNX opset (default 17: LayerNormalization; what torch 2.4 .. 2.11 all export)")
    p.add_argument("--example-frames", type=T.int_range(2, 100_000, noun="a frame count (integer)"), default=64,
                   help="frames of the example input traced (the graph takes any length; default 64)")
    p.add_argument("--check-seconds", type=T.seconds(600.0), default=2.0,
                   help="seconds of seeded noise at speech level enhanced by both runtimes for the check (default 2)")
    p.add_argument("--check-wav", default=None, metavar="FILE",
                   help="check on this wav file (at the model's rate) instead of noise")
    p.add_argument("--tolerance", type=T.float_range(0.0, 1.0, low_open=True, noun="a fraction"), default=1e-4,
                   help="largest float32 difference of onnxruntime from PyTorch accepted, as a fraction of the output's "
                        "peak magnitude (default 1e-4)")
    p.add_argument("--threads", type=T.THREADS, default=None,
                   help="torch and onnxruntime CPU threads for the check (default, or 0: their choice)")
    _cli.add_common_args(p, device=False)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.causal and not args.preset:
        p.error("--causal applies to --preset (a checkpoint's model is built as it was trained)")
    if args.batch_size != 1 and not args.streaming:
        p.error("--batch-size sets the static batch of a --streaming graph (the offline graph's batch is dynamic)")
    return args


def _model(args: argparse.Namespace):
    import bandsplit  # noqa: PLC0415
    import torch  # noqa: PLC0415

    if args.ckpt is not None:
        try:
            return bandsplit.load_model(args.ckpt, weights=args.weights)
        except (OSError, ValueError) as e:
            sys.exit(f"error: --ckpt: {e}")
    try:
        cfg = bandsplit.preset_config(args.preset)
    except ValueError as e:
        sys.exit(f"error: --preset: {e}")
    if args.causal:
        if cfg["name"] != "bsrnn":
            sys.exit(f"error: --causal: only BSRNN has a causal form; preset {args.preset} is a {cfg['name']}")
        cfg["causal"] = True
    torch.manual_seed(args.seed)
    return bandsplit.build_model(cfg).eval()


def _check_spec(model, args: argparse.Namespace):
    import torch  # noqa: PLC0415

    from bandsplit.inference import model_stft  # noqa: PLC0415

    stft = model_stft(model)
    if args.check_wav:
        import se_data  # noqa: PLC0415

        try:
            audio, _ = se_data.load_audio(args.check_wav, stft.sample_rate, mono=True)
        except (OSError, ValueError) as e:
            sys.exit(f"error: --check-wav: {e}")
    else:
        g = torch.Generator().manual_seed(args.seed)
        audio = 0.05 * torch.randn(max(stft.n_fft, int(args.check_seconds * stft.sample_rate)), generator=g)
    return stft.stft(audio[None].float())


def _compare(model, runner, spec, streaming: bool) -> dict[str, float]:
    import torch  # noqa: PLC0415

    with torch.no_grad():
        ref = model(spec)
        if streaming:
            y = torch.cat([runner.push(spec), runner.flush()], dim=-1)
        else:
            y = runner(spec)
    err, peak = (y - ref).abs().max().item(), ref.abs().max().item()
    return {"max_abs_diff": err, "peak": peak, "relative": err / max(peak, 1e-30), "frames": int(spec.shape[-1])}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch  # noqa: PLC0415

    import bandsplit  # noqa: PLC0415
    from bandsplit.onnx_export import read_metadata  # noqa: PLC0415

    try:
        import onnx  # noqa: F401, PLC0415
        import onnxruntime  # noqa: F401, PLC0415
    except ImportError as e:
        sys.exit(f"error: {e}; install bandsplit's ONNX extra: pip install 'bandsplit[onnx]'")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = _model(args)
    if args.streaming and not (isinstance(model, bandsplit.BSRNN) and model.causal):
        sys.exit("error: --streaming exports a causal BSRNN (train_bsdt.py --model bsrnn --causal, or --preset "
                 f"bsrnn-... --causal); this model is a {type(model).__name__}"
                 f"{' with causal=False' if isinstance(model, bandsplit.BSRNN) else ''}")
    out = _cli.prepare_out_dir(args.out, "export_onnx")
    model = model.float().eval()
    spec = _check_spec(model, args)
    if args.streaming:
        spec = spec.expand(args.batch_size, *spec.shape[1:]).contiguous()
    written, checks = {}, {}
    t0 = time.time()
    try:
        written["float32"] = bandsplit.export_onnx(model, out / "model.onnx", streaming=args.streaming,
                                                   opset=args.opset, example_frames=args.example_frames,
                                                   batch_size=args.batch_size)
    except (TypeError, ValueError) as e:
        sys.exit(f"error: cannot export this model: {e}")
    export_s = time.time() - t0
    if args.int8:
        written["int8"] = bandsplit.quantize_onnx(written["float32"], out / "model.int8.onnx")
    threads = args.threads or None
    for kind, path in written.items():
        runner = bandsplit.load_onnx(path, threads=threads if not args.streaming else (threads or 1))
        checks[kind] = _compare(model, runner, spec, args.streaming)
    meta = read_metadata(written["float32"])
    report = {"files": {k: str(v) for k, v in written.items()}, "source": args.ckpt or f"preset {args.preset}",
              "check": {"input": args.check_wav or f"{args.check_seconds} s of seeded noise (seed {args.seed})",
                        **checks}, "tolerance": args.tolerance, "export_seconds": export_s, "metadata": meta}
    (out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    stft = meta["stft"]
    print(f"\nexported {meta['model']['kind']} ({'streaming step' if args.streaming else 'offline'}) from "
          f"{report['source']} in {export_s:.1f} s; STFT n_fft {stft['n_fft']}, hop {stft['hop_length']}, "
          f"{stft['sample_rate']} Hz (outside the graph)")
    print(f"{'graph':<8s} {'size MiB':>9s} {'max |ORT - torch|':>18s} {'peak':>9s} {'relative':>10s}")
    for kind, path in written.items():
        c = checks[kind]
        print(f"{kind:<8s} {path.stat().st_size / 2**20:9.2f} {c['max_abs_diff']:18.3e} {c['peak']:9.3f} "
              f"{c['relative']:10.2e}")
    print(f"written to {out}/ (export.json: metadata and checks)")
    if checks["float32"]["relative"] > args.tolerance:
        print(f"error: the float32 graph differs from PyTorch by {checks['float32']['relative']:.2e} of the peak, "
              f"more than --tolerance {args.tolerance:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
