"""Speed and memory of the vectorised band-split models against their per-band-loop form.

For each model configuration in ``MODEL_FACTORIES`` it builds the vectorised model and the
straightforward per-band-loop form of the same model (the reference's computation), loads the
same weights into both, checks they give the same output, and measures

- forward + backward time of one training batch (default 6 x 2 s at 16 kHz; STFT 512/128,
  T = 251 frames) and of the band layers alone (BandSplit + MaskDecoder);
- the inference real-time factor (STFT + model + iSTFT on one 10 s utterance, no grad);
- peak memory of inference on a 60 s utterance (T = 7,501 frames): on CPU the peak resident
  set size during the forward pass above the resident size before it, measured in a fresh
  subprocess per model (Linux: VmHWM reset through /proc/self/clear_refs; elsewhere the
  growth of ``ru_maxrss``, a lower bound); on CUDA ``torch.cuda.max_memory_allocated`` above the
  pre-forward level.

BSRNN has two loop forms (``--loop-form``, default both): "loop" collects the bands' outputs
and joins them once; "loop-ref" also makes the reference's copies (it grows the band features
and the mask one ``cat`` per band, and uses its transposes and ``contiguous`` calls). Both loop
forms are first checked against the reference parity fixture
(``../shared/data/reference/bsrnn_reference_parity_N16_L2.pt``) when it is there, so the
baseline is the reference's computation.

    uv run bench/bandsplit_speed.py               # CPU (or --device cuda), BSRNN N=64 L=5
    uv run bench/bandsplit_speed.py --quick       # < 1 min on a 2-core CPU
    uv run bench/bandsplit_speed.py --batch 32 --device cuda

On a shared (oversubscribed) CPU machine, multi-threaded timings collapse (OpenMP threads
spin-wait on each other, worst for the larger vectorised kernels): use ``--threads 1`` or run
with ``OMP_WAIT_POLICY=PASSIVE`` there, and compare forms only within one run.

To add a configuration (e.g. BSDT), add a factory to ``MODEL_FACTORIES``: it takes the parsed
arguments and returns ``(vectorised_model, {loop_form: loop_model}, band_layers)`` where
``band_layers`` maps "vectorised" and each loop form to ``(split, decoder)`` module pairs or is
``None``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import copy

from bandsplit import BSDT, BSRNN
from bandsplit._loop_reference import LoopBandSplit, LoopBSRNN, LoopMaskDecoder

SAMPLE_RATE = 16_000
N_FFT, HOP = 512, 128
REPO = Path(__file__).resolve().parents[1]
PARITY = REPO.parent / "shared" / "data" / "reference" / "bsrnn_reference_parity_N16_L2.pt"

#: (vectorised model, {loop form name: loop model with the same weights},
#:  {"vectorised" / loop form name: (BandSplit, MaskDecoder)} or None)
Built = tuple[nn.Module, dict[str, nn.Module], dict | None]
Factory = Callable[[argparse.Namespace], Built]

#: the loop forms of BSRNN (``--loop-form``): "loop" joins the bands' outputs once, "loop-ref"
#: also copies the way the reference does (one ``cat`` per band, its transposes)
LOOP_FORMS = {"lean": ["loop"], "reference": ["loop-ref"], "both": ["loop", "loop-ref"]}


def _bsrnn(args: argparse.Namespace) -> Built:
    kw = dict(num_channel=args.num_channel, num_layer=args.num_layer,
              interleaved=args.interleaved, causal=args.causal)
    fast = BSRNN(**kw)
    loops = {}
    for form in LOOP_FORMS[args.loop_form]:
        loops[form] = LoopBSRNN(**kw, reference_ops=form == "loop-ref")
        loops[form].load_state_dict(fast.state_dict(), strict=True)
    layers = {"vectorised": (fast.band_split, fast.mask_decoder)}
    layers.update({form: (m.band_split, m.mask_decoder) for form, m in loops.items()})
    return fast, loops, layers


def _bsdt_factory(**overrides: object) -> Factory:
    """BSDT at the bench's N and L; its loop form swaps in the per-band-loop BandSplit/MaskDecoder
    (the lean form: BSDT has no reference implementation whose copies could be followed)."""

    def make(args: argparse.Namespace) -> Built:
        fast = BSDT(num_channel=args.num_channel, num_layer=args.num_layer, num_heads=args.num_heads,
                    **overrides)
        loop = copy.deepcopy(fast)
        loop.band_split = LoopBandSplit(fast.band_widths, fast.num_channel)
        loop.mask_decoder = LoopMaskDecoder(fast.band_widths, fast.num_channel)
        loop.load_state_dict(fast.state_dict(), strict=True)
        layers = {"vectorised": (fast.band_split, fast.mask_decoder),
                  "loop": (loop.band_split, loop.mask_decoder)}
        return fast, {"loop": loop}, layers

    return make


#: name -> factory
MODEL_FACTORIES: dict[str, Factory] = {
    "bsrnn": _bsrnn,
    "bsdt": _bsdt_factory(graph="learned"),
    "bsdt-v1": _bsdt_factory(graph="fixed"),
    "bsdt-dense": _bsdt_factory(graph="dense"),
    "bsdt-no-interband": _bsdt_factory(use_inter_band=False),
    "bsdt-no-multiscale": _bsdt_factory(use_multiscale=False),
}


# ---------------------------------------------------------------------------------------------
def stft(wave: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` 16 kHz waveform -> complex ``[B, 257, T]`` (n_fft 512, hop 128, Hann, centred)."""
    window = torch.hann_window(N_FFT, device=wave.device)
    return torch.stft(wave, N_FFT, HOP, window=window, onesided=True, return_complex=True)


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    window = torch.hann_window(N_FFT, device=spec.device)
    return torch.istft(spec, N_FFT, HOP, window=window, onesided=True, length=length)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int,
           repeats: int) -> dict[str, float]:
    """Median wall time (s) of each function. Runs alternate between the functions (the order
    flips every round), so a machine whose load changes during the bench favours none."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: sorted(v)[len(v) // 2] for name, v in times.items()}


def check_loop_against_fixture() -> str:
    """The loop form must reproduce the reference's stored output (the baseline is the reference)."""
    if not PARITY.is_file():
        return f"parity fixture not found at {PARITY}: loop form checked against the vectorised model only"
    ref = torch.load(PARITY, weights_only=True)
    for reference_ops in (False, True):
        loop = LoopBSRNN(**ref["config"], reference_ops=reference_ops).eval()
        loop.load_state_dict(ref["state_dict"], strict=True)
        with torch.no_grad():
            y = loop(ref["input"])
        torch.testing.assert_close(y, ref["output"], rtol=1e-5, atol=1e-5)
    fast = BSRNN(**ref["config"]).eval()
    fast.load_state_dict(ref["state_dict"], strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fast(ref["input"]), ref["output"], rtol=1e-5, atol=1e-5)
    return "both loop forms and vectorised BSRNN reproduce the reference parity fixture (rtol 1e-5, atol 1e-5)"


def check_same_output(fast: nn.Module, loop: nn.Module, device: torch.device) -> float:
    gen = torch.Generator().manual_seed(0)
    x = stft(torch.randn(2, SAMPLE_RATE // 2, generator=gen)).to(device)
    with torch.no_grad():
        a, b = fast.eval()(x), loop.eval()(x)
    err = ((a - b).abs().max() / b.abs().max()).item()
    if err > 1e-4:
        raise SystemExit(f"vectorised and loop models disagree: max relative error {err:.2e}")
    return err


def _autocast(x: torch.Tensor, amp: bool) -> torch.autocast:
    """bf16 autocast on ``x``'s device when ``amp`` (the complex STFT and mask stay float32)."""
    return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp)


def train_step_fn(model: nn.Module, x: torch.Tensor, target: torch.Tensor, amp: bool = False
                  ) -> Callable[[], None]:
    """One training step's forward + backward (L1 on the complex output)."""
    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        with _autocast(x, amp):
            out = model(x)
        loss = (out - target).abs().mean()
        loss.backward()

    return step


def band_layers_fn(split: nn.Module, decoder: nn.Module, x: torch.Tensor, amp: bool = False
                   ) -> Callable[[], None]:
    """Forward + backward of BandSplit + MaskDecoder alone (the part the loops slow down)."""
    def step() -> None:
        split.zero_grad(set_to_none=True)
        decoder.zero_grad(set_to_none=True)
        with _autocast(x, amp):
            feats = split(x)                                 # [B, T, K, N]
            if getattr(split, "reference_ops", False):       # the reference's [B, T, N, K] -> [B, N, T, K]
                feats = feats.transpose(1, 2)
            mask = decoder(feats)                            # [B, F, T, 3]
        torch.view_as_real(mask).square().mean().backward()

    return step


def inference_fn(model: nn.Module, seconds: float, device: torch.device, amp: bool = False
                 ) -> Callable[[], None]:
    """STFT + no-grad model + iSTFT on one utterance of ``seconds`` at 16 kHz."""
    wave = torch.randn(1, int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(1)).to(device)

    def run() -> None:
        model.eval()
        with torch.no_grad():
            spec = stft(wave)
            with _autocast(spec, amp):
                out = model(spec)
            istft(out, wave.shape[-1])

    return run


def peak_memory_mib(model: nn.Module, seconds: float, device: torch.device) -> float:
    """Peak memory above the pre-forward level of one no-grad forward on ``seconds`` of audio."""
    model.eval()
    wave = torch.randn(1, int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(2)).to(device)
    spec = stft(wave)
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            model(spec)
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    if _reset_peak_rss():
        before = _proc_status_kib("VmRSS")
        with torch.no_grad():
            model(spec)
        return (_proc_status_kib("VmHWM") - before) / 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # fallback: high-water mark growth
    with torch.no_grad():
        model(spec)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024   # KiB -> MiB (Linux)


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) on Linux; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_kib("VmHWM") > 0
    except OSError:
        return False


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_memory_cpu_subprocess(args: argparse.Namespace, name: str, impl: str) -> float:
    """CPU peak RSS is a process-wide high-water mark: measure each model in a fresh process."""
    cmd = [sys.executable, __file__, "--_memory-child", f"{name}:{impl}", "--memory-seconds",
           str(args.memory_seconds), "--num-channel", str(args.num_channel), "--num-layer", str(args.num_layer)]
    cmd += ["--interleaved"] * args.interleaved + ["--causal"] * args.causal
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if getattr(args, "num_heads", None) is not None:
        cmd += ["--num-heads", str(args.num_heads)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if out.returncode != 0:
        raise SystemExit(f"memory measurement for {name}/{impl} failed:\n{out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


def _memory_child(args: argparse.Namespace) -> None:
    name, impl = args._memory_child.split(":")
    fast, loops, _ = MODEL_FACTORIES[name](args)
    model = fast if impl == "vectorised" else loops[impl]
    # warm up allocator and kernels on a short input so one-off costs do not count
    with torch.no_grad():
        model.eval()(stft(torch.randn(1, SAMPLE_RATE)))
    print(json.dumps({"peak_mib": peak_memory_mib(model, args.memory_seconds, torch.device("cpu"))}))


def _tune_glibc_malloc() -> None:
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        print("--malloc-tune: glibc not found; allocator left as it is")
        return
    m_trim_threshold, m_mmap_max = -1, -4
    ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**30) == 1
    print(f"--malloc-tune: glibc mallopt {'applied' if ok else 'refused'}")


# ---------------------------------------------------------------------------------------------
def _fmt_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
            for r in rows]
    return "\n".join([line, sep, *body])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto (cuda when available)")
    p.add_argument("--models", default=",".join(MODEL_FACTORIES),
                   help=f"comma-separated configurations from {sorted(MODEL_FACTORIES)}")
    p.add_argument("--loop-form", choices=sorted(LOOP_FORMS), default="both",
                   help="BSRNN's baseline: 'lean' (bands joined once: 'loop'), 'reference' (the reference's "
                        "copies: one cat per band and its transposes: 'loop-ref'), or both; same output")
    p.add_argument("--num-channel", type=int, default=64, help="N of BSRNN and BSDT (the published BSRNN: 64)")
    p.add_argument("--num-layer", type=int, default=5, help="L of BSRNN and BSDT (the published BSRNN: 5)")
    p.add_argument("--num-heads", type=int, default=4, help="BSDT differential heads")
    p.add_argument("--interleaved", action="store_true", help="BSRNN with interleaved time/band blocks")
    p.add_argument("--causal", action="store_true", help="BSRNN with per-frame (causal) norms")
    p.add_argument("--batch", type=int, default=6, help="training batch size (utterances)")
    p.add_argument("--crop-seconds", type=float, default=2.0, help="training crop length in seconds at 16 kHz")
    p.add_argument("--rtf-seconds", type=float, default=10.0, help="utterance length for the real-time factor")
    p.add_argument("--memory-seconds", type=float, default=60.0, help="utterance length for peak memory")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per measurement")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--malloc-tune", action="store_true",
                   help="Linux/glibc CPU runs: serve large tensors from the reused heap instead of fresh "
                        "mmap pages (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB). Without it every large "
                        "temporary page-faults each step (about a third of a BSRNN CPU step on a 2-core "
                        "VM); it speeds up both forms alike")
    p.add_argument("--quick", action="store_true",
                   help="small run (< 1 min on a 2-core CPU): batch 2 x 1 s, RTF on 4 s, memory on 10 s, "
                        "1 repeat, one CPU thread unless --threads is given (robust on a shared machine)")
    p.add_argument("--amp", action="store_true",
                   help="bf16 autocast for both forms' forward passes (training step, band layers, RTF); a GPU "
                        "option: the issue's ratios are float32 against float32, so compare runs with and without")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    p.add_argument("--_memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.crop_seconds, args.rtf_seconds = 2, 1.0, 4.0
        args.memory_seconds, args.warmup, args.repeats = 10.0, 1, 1
        if args.threads is None and args.device in ("cpu", "auto"):
            args.threads = 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.malloc_tune:
        _tune_glibc_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args._memory_child:
        _memory_child(args)
        return
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODEL_FACTORIES))
    if unknown:
        raise SystemExit(f"unknown --models {unknown}; choose from {sorted(MODEL_FACTORIES)}")

    print(check_loop_against_fixture())
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {dev_name}; torch {torch.__version__}; malloc-tune {'on' if args.malloc_tune else 'off'}"
          f"{'; bf16 autocast' if args.amp else ''}")
    gen = torch.Generator().manual_seed(args.seed)
    n_samples = int(args.crop_seconds * SAMPLE_RATE)
    x = stft(torch.randn(args.batch, n_samples, generator=gen)).to(device)
    target = stft(torch.randn(args.batch, n_samples, generator=gen)).to(device)
    print(f"train batch: {args.batch} x {args.crop_seconds:g} s -> STFT [{args.batch}, 257, {x.shape[-1]}]")

    rows = []
    for name in names:
        fast, loops, layers = MODEL_FACTORIES[name](args)
        fast, loops = fast.to(device), {form: m.to(device) for form, m in loops.items()}
        n_params = sum(p.numel() for p in fast.parameters())
        impls = [*loops.items(), ("vectorised", fast)]
        for form, loop in loops.items():
            err = check_same_output(fast, loop, device)
            print(f"{name}: {form} vs vectorised max relative difference {err:.1e}")
        res: dict[str, dict[str, float]] = {impl: {} for impl, _ in impls}
        t = _timed({impl: train_step_fn(m, x, target, args.amp) for impl, m in impls}, device, args.warmup, args.repeats)
        for impl, _ in impls:
            res[impl]["train_ms"] = 1e3 * t[impl]
        if layers is not None:
            t = _timed({impl: band_layers_fn(*layers[impl], x, args.amp) for impl, _ in impls}, device, args.warmup,
                       max(args.repeats, 3))
            for impl, _ in impls:
                res[impl]["layers_ms"] = 1e3 * t[impl]
        t = _timed({impl: inference_fn(m, args.rtf_seconds, device, args.amp) for impl, m in impls}, device,
                   args.warmup, args.repeats)
        for impl, model in impls:
            res[impl]["rtf"] = t[impl] / args.rtf_seconds
            if not args.no_memory:
                res[impl]["mem"] = (peak_memory_mib(model, args.memory_seconds, device) if device.type == "cuda"
                                    else peak_memory_cpu_subprocess(args, name, impl))
        for impl, _ in impls:
            r = res[impl]
            rows.append([name, impl, f"{n_params / 1e6:.3f}M", f"{r['train_ms']:.1f}",
                         f"{r['layers_ms']:.1f}" if "layers_ms" in r else "-", f"{r['rtf']:.4f}",
                         f"{r['mem']:.0f}" if "mem" in r else "-"])
        for form in loops:
            lo, ve = res[form], res["vectorised"]
            rows.append([name, f"{form} / vectorised", "", f"{lo['train_ms'] / ve['train_ms']:.2f}x",
                         f"{lo['layers_ms'] / ve['layers_ms']:.2f}x" if "layers_ms" in ve else "-",
                         f"{lo['rtf'] / ve['rtf']:.2f}x",
                         f"{lo['mem'] / ve['mem']:.2f}x" if "mem" in ve and ve["mem"] > 0 else "-"])
    header = ["model", "impl", "params", f"train step ms ({args.batch}x{args.crop_seconds:g}s)",
              "split+mask fwd+bwd ms", f"RTF ({args.rtf_seconds:g}s)",
              f"peak MiB ({args.memory_seconds:g}s)"]
    print()
    print(_fmt_table(rows, header))
    print("\nratios > 1x: the vectorised model is faster / uses less memory than the per-band-loop form")


if __name__ == "__main__":
    main()
