"""Files per second of batched inference against one file at a time, for both enhancement tools'
paths, on the same files in the same run, with the largest output difference.

Files: ``--files`` (16) crops of 1-4 s of the real VoiceBank+DEMAND noisy speech in
``shared/data/speech/voicebank16k/noisy`` (lengths drawn with a fixed seed; a crop longer than
its file tiles it), at 16 kHz.

- bandsplit (tools/enhance.py): a BSRNN and a BSDT at small CPU sizes (random weights: speed and
  equality do not depend on training). One at a time is ``bandsplit.enhance(model, wave)`` per
  file; batched sorts the files by length and cuts them into groups of ``--batch-size`` with
  tools/_buckets.py's ``length_buckets`` (as ``enhance.py --batch-size``), each group one
  ``bandsplit.enhance(model, [waves])`` call (a padded batch with per-item masks).
- SGMSE+ (tools/enhance_sgmse.py): by default the small official-format NCSN++ / OUVE checkpoint
  the tests use, written to a temporary folder by ``packages/sgmse_cfg/tests/sgmse_ckpt_recipe.py``
  from ``data/sgmse_ckpt.json``; ``--backbone ncsnpp`` is SGMSE+'s full-size 65.6 M NCSN++
  (``NCSNpp.preset``, ``ncsnpp:PRESET`` for another) with SGMSE+'s STFT and OUVE SDE and random
  weights moved off their init (speed does not depend on training). PC sampler, ``--N`` steps;
  ``--amp``: bf16 autocast around both forms (the spectrogram and sampler state stay float32). One at a time is
  ``sgmse_cfg.enhance(model, wave, generator=seeded)``; batched groups files of one padded frame
  count (``equal_key_buckets`` on ``model.padded_frames``, as ``enhance_sgmse.py
  --batch-size``) into ``sgmse_cfg.enhance_batch`` calls with the same per-file generators.

Each form runs ``--rounds`` times alternately after a warm-up; the best round counts (the
machine is shared). Printed per model: files/s one at a time, files/s batched, their ratio, the
real-time factor of each (compute time / seconds of audio), the largest absolute difference
between the two outputs over all files, and the largest relative to each file's peak where that
peak is above 1 (``/ peak``: an untrained model's output can peak far above full scale).

    uv run bench/batched_inference.py                  # ~15 min on the loaded 2-core CPU
    uv run bench/batched_inference.py --device cuda    # on a GPU
    uv run bench/batched_inference.py --device cuda --models sgmse --backbone ncsnpp --amp --N 30
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import bandsplit
import se_data
import sgmse_cfg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from _buckets import equal_key_buckets, length_buckets  # noqa: E402

SR = 16000
SPEECH = REPO.parent / "shared" / "data" / "speech" / "voicebank16k" / "noisy"
SGMSE_TESTS = REPO / "packages" / "sgmse_cfg" / "tests"
sys.path.insert(0, str(SGMSE_TESTS))
from sgmse_ckpt_recipe import write_checkpoint  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=16, help="number of files (default 16)")
    p.add_argument("--batch-size", type=int, default=8, help="files per batch (default 8)")
    p.add_argument("--N", type=int, default=2, help="SGMSE+ PC sampler steps (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds per form (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (default 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--models", default="bsrnn,bsdt,sgmse", help="which of bsrnn, bsdt, sgmse (default all)")
    p.add_argument("--speech-dir", type=Path, default=SPEECH, help="folder of 16 kHz wav files to crop")
    p.add_argument("--backbone", default="tiny",
                   help=f"SGMSE+ model: tiny (the small test checkpoint), ncsnpp (SGMSE+'s full-size 65.6 M NCSN++, "
                        f"random weights) or ncsnpp:PRESET ({', '.join(sgmse_cfg.NCSNPP_PRESETS)}) (default tiny)")
    p.add_argument("--amp", action="store_true",
                   help="bf16 autocast for the SGMSE+ rows, one at a time and batched (complex parts stay float32)")
    return p.parse_args()


def crops(folder: Path, n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` crops of 1-4 s (lengths drawn with ``seed``) of the wav files in ``folder``."""
    sources = [se_data.load_audio(f, SR)[0] for f in sorted(folder.glob("*.wav"))]
    if not sources:
        raise SystemExit(f"error: no wav files in {folder} (pass --speech-dir)")
    g = torch.Generator().manual_seed(seed)
    lengths = (SR * (1.0 + 3.0 * torch.rand(n, generator=g))).long().tolist()
    out = []
    for i, length in enumerate(lengths):
        src = sources[i % len(sources)]
        out.append(src.repeat(length // src.shape[0] + 1)[:length].contiguous())
    return out


def best_time(fn: Callable[[], list[torch.Tensor]], rounds: int, sync: Callable[[], None]) -> tuple[float, list]:
    """Best wall time of ``rounds`` calls (after the caller's warm-up) and the last outputs."""
    best, outs = float("inf"), []
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        outs = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, outs


def report(name: str, n: int, audio_s: float, t_one: float, t_batch: float, one: list[torch.Tensor],
           batch: list[torch.Tensor], note: str) -> None:
    """One table row; ``audio_s``: seconds of audio in the ``n`` files (RTF = time / audio_s)."""
    diffs = [float((a.float().cpu() - b.float().cpu()).abs().max()) for a, b in zip(one, batch)]
    # relative to each file's peak where that is above 1 (an untrained model's output can peak
    # far above full scale, where 1e-5 absolute is a few float32 steps)
    rel = max(d / max(1.0, float(a.float().abs().max())) for d, a in zip(diffs, one))
    print(f"{name:<44s} {n / t_one:9.2f} {n / t_batch:9.2f} {t_one / t_batch:7.2f}x {t_one / audio_s:9.4f} "
          f"{t_batch / audio_s:9.4f} {max(diffs):11.2e} {rel:11.2e}   {note}", flush=True)


def sgmse_model(backbone: str, device: torch.device) -> tuple[sgmse_cfg.ScoreModel, str]:
    """``(model in eval mode on device, its label)`` for ``--backbone``: the small test checkpoint,
    or a full-size NCSN++ preset (SGMSE+'s STFT and OUVE SDE) with seeded random weights moved off
    their init (its output layers start at zero), as ``bench/sampler_speed.py`` builds it."""
    if backbone == "tiny":
        config = json.loads((SGMSE_TESTS / "data" / "sgmse_ckpt.json").read_text())["configs"]["ncsnpp_ouve"]
        with tempfile.TemporaryDirectory(prefix="batched_inference_") as tmp:
            ckpt = write_checkpoint(Path(tmp) / "sgmse_ncsnpp_ouve.ckpt", config)
            return sgmse_cfg.load_model(ckpt, map_location=device).eval(), "SGMSE+ NCSN++ (tiny)"
    name, _, preset = backbone.partition(":")
    if name != "ncsnpp":
        raise SystemExit(f"error: --backbone {backbone!r}: use tiny, ncsnpp or ncsnpp:PRESET")
    try:
        net = sgmse_cfg.NCSNpp.preset(preset or "sgmse")
    except ValueError as e:
        raise SystemExit(f"error: --backbone {backbone!r}: {e}") from None
    model = sgmse_cfg.ScoreModel(net)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    n_par = sum(p.numel() for p in net.parameters())
    return model.to(device).eval(), f"SGMSE+ NCSN++ {preset or 'sgmse'} ({n_par / 1e6:.1f} M)"


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    waves = [w.to(device) for w in crops(args.speech_dir, args.files)]
    secs = [w.shape[-1] / SR for w in waves]
    print(f"{len(waves)} files, {min(secs):.2f}-{max(secs):.2f} s ({sum(secs):.1f} s of audio), batch size "
          f"{args.batch_size}, device {device}" + (f", {args.threads} threads" if device.type == "cpu" else ""))
    print(f"{'model':<44s} {'one f/s':>9s} {'batch f/s':>9s} {'ratio':>8s} {'RTF one':>9s} {'RTF batch':>9s} "
          f"{'max |diff|':>11s} {'/ peak':>11s}")

    torch.manual_seed(0)
    chosen = set(args.models.split(","))
    for key, label, model in (("bsrnn", "BSRNN N=32 L=3", bandsplit.BSRNN(32, 3)),
                              ("bsdt", "BSDT N=32 L=2 (v2)", bandsplit.BSDT(32, 2, 2))):
        if key not in chosen:
            continue
        model = model.to(device).eval()
        groups = length_buckets([w.shape[-1] for w in waves], args.batch_size)

        def one_at_a_time(model=model) -> list[torch.Tensor]:
            return [bandsplit.enhance(model, w, SR) for w in waves]

        def batched(model=model, groups=groups) -> list[torch.Tensor]:
            out: list[torch.Tensor | None] = [None] * len(waves)
            for g in groups:
                for i, y in zip(g, bandsplit.enhance(model, [waves[i] for i in g], SR)):
                    out[i] = y
            return out  # type: ignore[return-value]

        one_at_a_time(), batched()  # warm-up
        t1, o1 = best_time(one_at_a_time, args.rounds, sync)
        tb, ob = best_time(batched, args.rounds, sync)
        report(label, len(waves), sum(secs), t1, tb, o1, ob, f"{len(groups)} batches")

    if "sgmse" not in chosen:
        return
    model, label = sgmse_model(args.backbone, device)
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp else contextlib.nullcontext
    # SGMSE+'s own STFT and NCSN++ (hop 128, frames padded to 64) pad to a grid of 8192 samples
    # (0.512 s at 16 kHz); the test checkpoint's grid is 64 samples, where no two crops would
    # share a length. Crops cut down to the 8192-sample grid bucket as they would with SGMSE+.
    grid = 128 * 64
    waves = [w[: grid * max(1, w.shape[-1] // grid)] for w in waves]
    keys = [model.padded_frames(w.shape[-1]) for w in waves]
    groups = equal_key_buckets(keys, args.batch_size)
    kw = {"sampler": "pc", "N": args.N}

    def gens() -> list[torch.Generator]:
        return [torch.Generator(device=device).manual_seed(i) for i in range(len(waves))]

    def sg_one() -> list[torch.Tensor]:
        with amp():
            return [sgmse_cfg.enhance(model, w, SR, generator=g, **kw) for w, g in zip(waves, gens())]

    def sg_batched() -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(waves)
        gs = gens()
        with amp():
            for grp in groups:
                ys = sgmse_cfg.enhance_batch(model, [waves[i] for i in grp], SR, generators=[gs[i] for i in grp], **kw)
                for i, y in zip(grp, ys):
                    out[i] = y
        return out  # type: ignore[return-value]

    grp0 = groups[0]  # warm-up: one file alone, one batch
    with amp():
        sgmse_cfg.enhance(model, waves[grp0[0]], SR, generator=gens()[0], **kw)
        sgmse_cfg.enhance_batch(model, [waves[i] for i in grp0], SR, generators=[gens()[i] for i in grp0], **kw)
    t1, o1 = best_time(sg_one, args.rounds, sync)
    tb, ob = best_time(sg_batched, args.rounds, sync)
    report(f"{label} PC N={args.N}{' bf16' if args.amp else ''}", len(waves), sum(w.shape[-1] for w in waves) / SR,
           t1, tb, o1, ob, f"{len(groups)} batches (padded frames {sorted(set(keys))})")


if __name__ == "__main__":
    main()
