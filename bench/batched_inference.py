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
- SGMSE+ (tools/enhance_sgmse.py): the small official-format NCSN++ / OUVE checkpoint the
  tests use, written to a temporary folder by ``packages/sgmse_cfg/tests/sgmse_ckpt_recipe.py``
  from ``data/sgmse_ckpt.json`` (PC sampler, ``--N`` steps). One at a time is
  ``sgmse_cfg.enhance(model, wave, generator=seeded)``; batched groups files of one padded frame
  count (``equal_key_buckets`` on ``model.padded_frames``, as ``enhance_sgmse.py
  --batch-size``) into ``sgmse_cfg.enhance_batch`` calls with the same per-file generators.

Each form runs ``--rounds`` times alternately after a warm-up; the best round counts (the
machine is shared). Printed per model: files/s one at a time, files/s batched, their ratio, and
the largest absolute difference between the two outputs over all files (float32).

    uv run bench/batched_inference.py                  # ~15 min on the loaded 2-core CPU
    uv run bench/batched_inference.py --device cuda    # on a GPU
"""

from __future__ import annotations

import argparse
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


def report(name: str, n: int, t_one: float, t_batch: float, one: list[torch.Tensor], batch: list[torch.Tensor],
           note: str) -> None:
    diff = max(float((a.float().cpu() - b.float().cpu()).abs().max()) for a, b in zip(one, batch))
    print(f"{name:<28s} {n / t_one:9.2f} {n / t_batch:9.2f} {t_one / t_batch:7.2f}x {diff:11.2e}   {note}", flush=True)


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
    print(f"{'model':<28s} {'one f/s':>9s} {'batch f/s':>9s} {'ratio':>8s} {'max |diff|':>11s}")

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
        report(label, len(waves), t1, tb, o1, ob, f"{len(groups)} batches")

    if "sgmse" not in chosen:
        return
    config = json.loads((SGMSE_TESTS / "data" / "sgmse_ckpt.json").read_text())["configs"]["ncsnpp_ouve"]
    with tempfile.TemporaryDirectory(prefix="batched_inference_") as tmp:
        ckpt = write_checkpoint(Path(tmp) / "sgmse_ncsnpp_ouve.ckpt", config)
        model = sgmse_cfg.load_model(ckpt, map_location=device).eval()
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
        return [sgmse_cfg.enhance(model, w, SR, generator=g, **kw) for w, g in zip(waves, gens())]

    def sg_batched() -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(waves)
        gs = gens()
        for grp in groups:
            ys = sgmse_cfg.enhance_batch(model, [waves[i] for i in grp], SR, generators=[gs[i] for i in grp], **kw)
            for i, y in zip(grp, ys):
                out[i] = y
        return out  # type: ignore[return-value]

    grp0 = groups[0]  # warm-up: one file alone, one batch
    sgmse_cfg.enhance(model, waves[grp0[0]], SR, generator=gens()[0], **kw)
    sgmse_cfg.enhance_batch(model, [waves[i] for i in grp0], SR, generators=[gens()[i] for i in grp0], **kw)
    t1, o1 = best_time(sg_one, args.rounds, sync)
    tb, ob = best_time(sg_batched, args.rounds, sync)
    report(f"SGMSE+ NCSN++ (tiny) PC N={args.N}", len(waves), t1, tb, o1, ob,
           f"{len(groups)} batches (padded frames {sorted(set(keys))})")


if __name__ == "__main__":
    main()
