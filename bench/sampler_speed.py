"""Per-utterance enhancement time, NFE and real-time factor of every sampler and N, with and
without classifier-free guidance; batched guidance (one forward of batch 2) against two
forwards (same outputs); and our PC sampler against SGMSE+'s (``sgmse`` 0.1.2) on the same
NCSN++ weights when that package is importable.

    uv run bench/sampler_speed.py                                  # SmallUNet, CPU
    uv run bench/sampler_speed.py --backbone ncsnpp --N 5          # SGMSE+'s 65.6 M NCSN++
    uv run bench/sampler_speed.py --backbone ncsnpp --device cuda --amp
    uv run bench/sampler_speed.py --backbone ncsnpp --device cuda --amp --samplers pc --N 30 --compile
    CUDA_VISIBLE_DEVICES= uv run --isolated --with sgmse==0.1.2 --with 'torch==2.11.0' \\
        --with 'torchaudio==2.11.0' python bench/sampler_speed.py --backbone ncsnpp --N 5 --peer

The model is a NoiseCondScoreModel (CNN noise encoder, FiLM injection, NC head, a fitted k-NN
bank) with random weights moved off their init, so the conditional and unconditional scores
differ; timings do not depend on the weights. Time = ``model.enhance`` of one utterance of
``--seconds`` (normalisation, STFT, noise embedding once, padding, sampler, iSTFT), after one
one-step warm-up run; on CUDA with ``torch.cuda.synchronize`` around it. RTF = time / audio length.
``fwd`` = backbone forwards x batch per utterance. CPU by default, GPU when present.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packages" / "sgmse_cfg" / "src"))

from sgmse_cfg import (  # noqa: E402
    NCSNPP_PRESETS,
    SBVESDE,
    CNNNoiseEncoder,
    GuidedCond,
    NCSNpp,
    NoiseCondScoreModel,
    SmallUNet,
    pc_sampler,
)


def build(backbone: str, sde: str, device: torch.device, seed: int) -> NoiseCondScoreModel:
    torch.manual_seed(seed)
    if backbone == "smallunet":
        bb = SmallUNet()
    else:
        preset = backbone.split(":", 1)[1] if ":" in backbone else "sgmse"
        bb = NCSNpp.preset(preset)
    kw = {"sde": SBVESDE(), "output_scaling": "data"} if sde == "sbve" else {}
    m = NoiseCondScoreModel(bb, CNNNoiseEncoder(channels=(16, 32, 64, 64), dim=128), inject="film",
                            n_classes=10, p_uncond=0.1, **kw)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    m.fit_bank(torch.randn(256, 128, generator=g))
    return m.to(device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_enhance(model: NoiseCondScoreModel, wave: torch.Tensor, kind: str, sampler: str, N: int, w: float,
                 amp: bool, seed: int, device: torch.device) -> tuple[float, torch.Tensor, GuidedCond]:
    def run(n_steps: int = N) -> tuple[torch.Tensor, GuidedCond]:
        gen = torch.Generator(device=device).manual_seed(seed)
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp else torch.autocast(device.type, enabled=False)
        with torch.no_grad(), ctx:
            gc, _ = model.prepare(wave, 16000, guidance="cond" if kind == "cond" else "static", w=w)
            if kind == "cfg-2fwd":
                gc = GuidedCond(gc.cond, gc.null, gc.w, "cfg", batched=False)
            return model.enhance(wave, 16000, cond=gc, sampler=sampler, N=n_steps, generator=gen,
                                 max_chunk_seconds=60.0), gc

    run(1)  # warm-up (kernel selection, allocator) with the same shapes
    _sync(device)
    t0 = time.perf_counter()
    out, gc = run()
    _sync(device)
    return time.perf_counter() - t0, out, gc


def nfe_of(sampler: str, N: int) -> int:
    return {"pc": 2 * N, "ode": 2 * N + 1, "sb_ode": N, "sb_sde": N}[sampler]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="smallunet",
                   help=f"smallunet, ncsnpp (SGMSE+'s 65.6 M) or ncsnpp:PRESET ({', '.join(NCSNPP_PRESETS)}) "
                        f"(default smallunet)")
    p.add_argument("--samplers", nargs="+", default=["pc", "ode", "sb_ode"],
                   choices=["pc", "ode", "sb_ode", "sb_sde"], help="samplers (default: pc ode sb_ode)")
    p.add_argument("--N", type=int, nargs="+", default=[5, 10, 30], help="step counts (default 5 10 30)")
    p.add_argument("--w", type=float, default=2.0, help="static guidance scale for the CFG rows (default 2)")
    p.add_argument("--seconds", type=float, default=2.0, help="utterance length in s at 16 kHz (default 2)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda (default auto)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (complex parts stay float32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-two-forwards", action="store_true", help="skip the two-forward CFG rows")
    p.add_argument("--peer", action="store_true",
                   help="also time SGMSE+'s own PC sampler (sgmse 0.1.2, isolated env) on the same NCSN++ weights")
    p.add_argument("--check-sync", action="store_true",
                   help="CUDA only: run each sampler (CFG, batched) under torch.cuda.set_sync_debug_mode('error'), "
                        "so any host synchronisation inside the sampler loop raises, and report the result")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 in float32 convolutions and matmuls on CUDA (default: off, so float32 rows "
                        "are float32 and the batched / two-forward outputs are comparable)")
    p.add_argument("--compile", action="store_true",
                   help="also time the backbone compiled in place (nn.Module.compile; on CUDA mode "
                        "'reduce-overhead', which captures a CUDA graph per input shape, i.e. per length "
                        "bucket): one table row per sampler and N, eager vs compiled, with the output "
                        "difference (guidance 'cond')")
    p.add_argument("--compile-seconds", type=float, nargs="+", default=None,
                   help="with --compile: also time these other utterance lengths (s) after the first, so the "
                        "per-shape capture is visible (each new padded length compiles / captures once)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    wave = 0.1 * torch.randn(int(args.seconds * 16000), generator=torch.Generator().manual_seed(args.seed))
    wave = wave.to(device)
    models = {"ouve": build(args.backbone, "ouve", device, args.seed)}
    if any(s.startswith("sb_") for s in args.samplers):
        models["sbve"] = build(args.backbone, "sbve", device, args.seed)
    n_par = sum(p.numel() for p in models["ouve"].backbone.parameters())
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"backbone {args.backbone} ({n_par:,} params), {args.seconds} s utterance, device {dev_name}"
          f"{', bf16 autocast' if args.amp else ''}{', TF32 allowed' if args.tf32 and device.type == 'cuda' else ''}")
    head = f"{'sampler':8s} {'N':>4s} {'guidance':16s} {'NFE':>5s} {'fwd x batch':>12s} {'s/utt':>9s} {'RTF':>8s}  note"
    print(head + "\n" + "-" * len(head))
    kinds = ["cond", "cfg"] + ([] if args.no_two_forwards else ["cfg-2fwd"])
    for sampler in args.samplers:
        model = models["sbve" if sampler.startswith("sb_") else "ouve"]
        for N in args.N:
            ref = None
            for kind in kinds:
                sec, out, gc = time_enhance(model, wave, kind, sampler, N, args.w, args.amp, args.seed, device)
                nfe = nfe_of(sampler, N)
                fwd = f"{nfe} x 1" if kind == "cond" else (f"{nfe} x 2" if kind == "cfg" else f"{2 * nfe} x 1")
                note = ""
                if kind == "cfg":
                    ref = out
                elif kind == "cfg-2fwd" and ref is not None:
                    d = float((out - ref).abs().max()) / max(float(ref.abs().max()), 1e-12)
                    note = f"same output as batched: max rel. diff {d:.1e}"
                label = {"cond": "none (cond)", "cfg": f"CFG w={args.w:g} batched", "cfg-2fwd": f"CFG w={args.w:g} 2 fwd"}[kind]
                print(f"{sampler:8s} {N:4d} {label:16s} {nfe:5d} {fwd:>12s} {sec:9.3f} {sec / args.seconds:8.3f}  {note}",
                      flush=True)
    if args.compile:
        _compiled(args, models, wave, device)
    if args.check_sync:
        _check_sync(args, models, wave, device)
    if args.peer:
        _peer(args, models["ouve"], wave, device)
    return 0


def _compiled(args: argparse.Namespace, models: dict[str, NoiseCondScoreModel], wave: torch.Tensor,
              device: torch.device) -> None:
    """Eager vs ``backbone.compile()`` on the same weights and generator seed: seconds per
    utterance (after two warm-up runs that compile and, on CUDA, record the graph), the ratio and
    the largest output difference relative to the eager output's peak."""
    mode = "reduce-overhead" if device.type == "cuda" else "default"
    print(f"\ncompiled backbone (nn.Module.compile, mode {mode!r}, dynamic=False) vs eager, guidance 'cond'"
          f"{', bf16 autocast' if args.amp else ''}:")
    head = f"{'sampler':8s} {'N':>4s} {'len s':>6s} {'eager s/utt':>12s} {'compiled':>10s} {'ratio':>7s} {'RTF comp.':>10s}  max rel. diff"
    print(head + "\n" + "-" * len(head))
    lengths = [args.seconds] + list(args.compile_seconds or [])
    for sampler in args.samplers:
        model = models["sbve" if sampler.startswith("sb_") else "ouve"]
        for N in args.N:
            for sec_len in lengths:
                w = wave if sec_len == args.seconds else 0.1 * torch.randn(
                    int(sec_len * 16000), generator=torch.Generator().manual_seed(args.seed + 7)).to(device)
                model.backbone._compiled_call_impl = None  # eager reference
                t_e, out_e, _ = time_enhance(model, w, "cond", sampler, N, args.w, args.amp, args.seed, device)
                model.backbone.compile(mode=mode, dynamic=False)
                time_enhance(model, w, "cond", sampler, N, args.w, args.amp, args.seed, device)  # compile + record
                t_c, out_c, _ = time_enhance(model, w, "cond", sampler, N, args.w, args.amp, args.seed, device)
                d = float((out_c.float() - out_e.float()).abs().max()) / max(float(out_e.abs().max()), 1e-12)
                print(f"{sampler:8s} {N:4d} {sec_len:6.2f} {t_e:12.3f} {t_c:10.3f} {t_e / t_c:6.2f}x "
                      f"{t_c / sec_len:10.3f}  {d:.1e}", flush=True)
            model.backbone._compiled_call_impl = None


def _noisy_spec(model: NoiseCondScoreModel, wave: torch.Tensor) -> torch.Tensor:
    """``wave [L]`` normalised by ``max|wave|`` -> compressed spectrogram ``[1, 1, F, T]``, frames
    padded to the backbone's multiple (what ``model.enhance`` samples on)."""
    Y = model.transform.wave_to_spec(wave / wave.abs().max(), 16000)[None, None]
    return model.transform.pad_frames(Y, int(getattr(model.backbone, "downsampling_factor", 1)))[0]


def _check_sync(args: argparse.Namespace, models: dict[str, NoiseCondScoreModel], wave: torch.Tensor,
                device: torch.device) -> None:
    """Each sampler's loop, CFG batched, under sync-debug mode 'error': a host synchronisation
    (``.item()``, ``float(tensor)``, a value-dependent branch, a pageable copy) raises."""
    if device.type != "cuda":
        print("\n--check-sync needs a CUDA device; skipped")
        return
    print("\nhost synchronisation inside the sampler loop (torch.cuda.set_sync_debug_mode('error')):")
    for sampler in args.samplers:
        model = models["sbve" if sampler.startswith("sb_") else "ouve"]
        with torch.no_grad():
            gc, _ = model.prepare(wave, 16000, guidance="static", w=args.w)
            Y = _noisy_spec(model, wave)
            gen = torch.Generator(device=device).manual_seed(args.seed)
            model.sample(Y, sampler=sampler, N=1, cond=gc, generator=gen)  # warm-up: one-off caches
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                model.sample(Y, sampler=sampler, N=min(args.N), cond=gc, generator=gen)
                verdict = "none (passed under 'error' mode)"
            except RuntimeError as e:
                import traceback
                frames = [f for f in traceback.extract_tb(e.__traceback__) if "sgmse_cfg" in f.filename]
                where = (f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} `{frames[-1].line}`"
                         if frames else "")
                verdict = f"SYNC FOUND{where}: {str(e).splitlines()[0][:120]}"
            finally:
                torch.cuda.set_sync_debug_mode("default")
        print(f"  {sampler:8s} N={min(args.N):3d} CFG batched: {verdict}", flush=True)


def _peer(args: argparse.Namespace, model: NoiseCondScoreModel, wave: torch.Tensor, device: torch.device) -> None:
    """Our pc_sampler vs sgmse's get_pc_sampler on the same NCSN++ (no conditioning)."""
    try:
        from sgmse.backbones.ncsnpp import NCSNpp as PeerNCSNpp
        from sgmse.sampling import get_pc_sampler
        from sgmse.sdes import OUVESDE as PeerOUVESDE
    except ImportError as e:
        print(f"\n--peer: cannot import sgmse ({e}); run in the isolated environment shown in --help")
        return
    if not isinstance(model.backbone, NCSNpp):
        print("\n--peer needs --backbone ncsnpp[:PRESET]")
        return
    peer = PeerNCSNpp(**{k: v for k, v in model.backbone.config.items() if k != "context_dim"}).to(device).eval()
    peer.load_state_dict({k: v for k, v in model.backbone.state_dict().items()})
    Y = _noisy_spec(model, wave)

    def their_score(x, y, t):
        return -peer(torch.cat([x, y], 1), t)

    def our_score(x, y, t):
        return -model.backbone(torch.cat([x, y], 1), t)

    print(f"\nours vs SGMSE+'s PC sampler (reverse diffusion + ALD, snr 0.5) on the same NCSN++ weights, "
          f"{tuple(Y.shape)} spectrogram, same torch.manual_seed:")
    for N in args.N:
        sde = PeerOUVESDE(theta=1.5, sigma_min=0.05, sigma_max=0.5, N=N)
        res = {}
        for name, fn in (("sgmse", lambda: get_pc_sampler("reverse_diffusion", "ald", sde, their_score, Y, snr=0.5,
                                                           eps=0.03)()),
                         ("ours", lambda: pc_sampler(model.sde, our_score, Y, N=N, snr=0.5, eps=0.03))):
            with torch.no_grad():
                torch.manual_seed(args.seed)
                _sync(device)
                t0 = time.perf_counter()
                out, nfe = fn()
                _sync(device)
                res[name] = (time.perf_counter() - t0, out, nfe)
        d = float((res["ours"][1] - res["sgmse"][1]).abs().max()) / float(res["sgmse"][1].abs().max())
        print(f"  N={N:3d}: sgmse {res['sgmse'][0]:8.3f} s ({res['sgmse'][2]} NFE), ours {res['ours'][0]:8.3f} s "
              f"({res['ours'][2]} NFE); max rel. diff {d:.1e}")


if __name__ == "__main__":
    sys.exit(main())
