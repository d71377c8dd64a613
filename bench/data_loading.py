"""Training steps per second with the batches read in-process vs in DataLoader workers, on a
48 kHz VoiceBank-like folder resampled on the fly (``--resample``).

1. The folder: ``--pairs`` clean/noisy pairs of 3-7 s at 48 kHz in a temporary folder (removed at
   exit), VoiceBank's rate and lengths: the real VoiceBank utterances of ``../shared/data/speech``
   (p286_011 at 48 kHz, the six 16 kHz pairs upsampled) at varying offsets and gains, mixed with
   the real noises of ``../shared/data/noise`` (resampled to 48 kHz) at 0-15 dB; synthetic
   speech-like signals and noise where that folder is absent.
2. The data: ``se_data.PairedFolders(..., sample_rate=16000, segment=2.0, resample=True)``, the
   training split as ``tools/train_bsdt.py --resample`` opens it: each item reads only its 2 s crop
   (plus the filter's support) of both files and resamples it to 16 kHz
   (``se_data.load_segment``), batched by ``se_data.iterate_batches``.
3. Rows: "data only" (batches per second, no model), the same with whole-file reads (each item
   loads and resamples both whole files, then crops: the loading before partial reads), and
   "train step" (a BSDT, ``--size``, with the recipe's loss, Adam and clipping, on ``--device``),
   each with ``num_workers`` 0 and ``--workers``; the settings alternate ``--repeats`` times and
   the best rate of each is kept (the machine is shared: compare within one run). Before timing,
   the first batches of both settings are checked equal bit for bit.

    uv run bench/data_loading.py                    # ~10 min on the shared 2-core VM (most of it the CPU steps)
    uv run bench/data_loading.py --device cuda      # the model on a GPU, data on the CPU
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import bandsplit
import se_data

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RATE, TARGET = 48000, 16000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=48, help="clean/noisy pairs in the folder (default 48)")
    p.add_argument("--batch-size", type=int, default=6, help="items per batch (default 6, train_bsdt's)")
    p.add_argument("--segment", type=float, default=2.0, help="crop in seconds (default 2.0, train_bsdt's)")
    p.add_argument("--steps", type=int, default=8, help="batches timed per round and setting (default 8)")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the second column (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training process (default 2)")
    p.add_argument("--device", default="cpu", help="device of the training step (default cpu)")
    p.add_argument("--size", choices=["tiny", "demo"], default="tiny",
                   help="the BSDT trained: tiny (N=8, L=1, 2 heads: a step as short as a GPU's, where loading "
                        "matters) or demo (train_bsdt's demo size; on a 2-core CPU its step dwarfs loading) "
                        "(default tiny)")
    return p.parse_args()


def sources() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Speech and noise signals at 48 kHz (float64): the shared real recordings, or synthetic ones."""
    speech, noise = [], []
    if (SHARED / "speech").is_dir():
        x, sr = sf.read(SHARED / "speech" / "p286_011_48k.wav")
        speech.append(x)
        for f in sorted((SHARED / "speech" / "voicebank16k" / "clean").glob("*.wav")):
            x, sr = sf.read(f)
            speech.append(se_data.resample(torch.from_numpy(x), sr, RATE).numpy())
        for f in sorted((SHARED / "noise").glob("noise*.wav")):
            x, sr = sf.read(f)
            noise.append(se_data.resample(torch.from_numpy(x if x.ndim == 1 else x.mean(1)), sr, RATE).numpy())
    if not speech:
        print(f"note: {SHARED} not found: synthetic speech-like signals and noise", file=sys.stderr)
        rng = np.random.default_rng(0)
        speech = [se_data.synth_speech(8.0, seed=i, sample_rate=RATE).numpy() for i in range(4)]
        noise = [se_data.pink_noise(int(10 * RATE), seed=rng, sample_rate=RATE).numpy() for _ in range(3)]
    return [np.asarray(s, dtype=np.float64) for s in speech], [np.asarray(n, dtype=np.float64) for n in noise]


def make_folder(root: Path, n: int) -> Path:
    """``n`` pairs of 3-7 s at 48 kHz in ``root/{clean,noisy}`` (PCM 16, as VoiceBank ships)."""
    speech, noise = sources()
    rng = np.random.default_rng(1)
    for kind in ("clean", "noisy"):
        (root / kind).mkdir(parents=True)
    for i in range(n):
        s = speech[i % len(speech)]
        length = min(int(rng.uniform(3.0, 7.0) * RATE), s.size)
        off = int(rng.integers(0, s.size - length + 1))
        clean = s[off:off + length] * rng.uniform(0.3, 0.9) / max(np.abs(s).max(), 1e-9)
        nz = np.resize(noise[i % len(noise)], length)
        snr = rng.uniform(0.0, 15.0)
        nz = nz * np.sqrt(np.mean(clean**2) / max(np.mean(nz**2), 1e-12) / 10 ** (snr / 10))
        noisy = clean + nz
        peak = max(np.abs(noisy).max(), 1.0)
        sf.write(root / "clean" / f"p{300 + i % 20}_{i:03d}.wav", clean / peak, RATE, subtype="PCM_16")
        sf.write(root / "noisy" / f"p{300 + i % 20}_{i:03d}.wav", noisy / peak, RATE, subtype="PCM_16")
    return root


class WholeFileReads(torch.utils.data.Dataset):
    """``ds``'s items as they were loaded before partial reads: both whole files read and
    resampled, then cropped (the same crop: crop_pair's start from the same generator)."""

    def __init__(self, ds: se_data.PairedFolders) -> None:
        self.ds = ds

    def set_epoch(self, epoch: int) -> None:
        self.ds.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        e, ds = self.ds.entries[i], self.ds
        clean, _ = se_data.load_audio(e.clean, ds.sample_rate, resample=True)
        noisy, _ = se_data.load_audio(e.noisy, ds.sample_rate, resample=True)
        c, n, _ = se_data.crop_pair(clean, noisy, ds.segment_samples,
                                    generator=se_data.item_generator(ds.seed, ds.epoch, i))
        return {"clean": c, "noisy": n, "name": e.name}


def batches(ds: torch.utils.data.Dataset, epoch: int, args: argparse.Namespace, workers: int):
    return se_data.iterate_batches(ds, epoch=epoch, seed=0, batch_size=args.batch_size, num_workers=workers,
                                   max_batches=args.steps)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_loading_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    t0 = time.perf_counter()
    root = make_folder(tmp / "vb48k", args.pairs)
    print(f"{args.pairs} pairs at 48 kHz written in {time.perf_counter() - t0:.1f} s ({tmp})")
    ds = se_data.PairedFolders(root / "clean", root / "noisy", TARGET, segment=args.segment, resample=True)
    a, b = next(batches(ds, 0, args, 0)), next(batches(ds, 0, args, args.workers))
    assert all(torch.equal(x, y) for x, y in zip(a, b)), "batches differ between worker counts"
    c = next(batches(WholeFileReads(ds), 0, args, 0))
    print(f"partial vs whole-file reads, largest difference: {float((a[0] - c[0]).abs().max()):.2e} "
          f"(float32 rounding of the same resampling filter)")

    device = torch.device(args.device)
    cfg = dict(bandsplit.preset_config("bsdt-demo"))
    if args.size == "tiny":
        cfg.update(num_channel=8, num_layer=1, num_heads=2)
    model = bandsplit.build_model(cfg).to(device)
    stft, loss_fn = model.stft, bandsplit.BSRNNLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_epoch(epoch: int, workers: int) -> int:
        n = 0
        for noisy, clean, _ in batches(ds, epoch, args, workers):
            noisy, clean = noisy.to(device), clean.to(device)
            loss, _ = loss_fn(model(stft.stft(noisy)), stft.stft(clean))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            n += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        return n

    def data_epoch(epoch: int, workers: int) -> int:
        return sum(1 for _ in batches(ds, epoch, args, workers))

    whole = WholeFileReads(ds)

    def whole_epoch(epoch: int, workers: int) -> int:
        return sum(1 for _ in batches(whole, epoch, args, workers))

    train_epoch(0, 0)  # warm-up (allocator, kernels)
    settings = (0, args.workers)
    best: dict[tuple[str, int], float] = {}
    epoch = 1
    for _ in range(args.repeats):
        for name, fn in (("data only", data_epoch), ("whole files", whole_epoch), ("train step", train_epoch)):
            for w in settings:
                t = time.perf_counter()
                n = fn(epoch, w)
                rate = n / (time.perf_counter() - t)
                best[name, w] = max(best.get((name, w), 0.0), rate)
                epoch += 1
    print(f"\nbatches of {args.batch_size} x {args.segment:g} s crops at {TARGET} Hz read from 48 kHz files "
          f"(--resample); BSDT {args.size} on {device}; {args.threads} torch threads; best of {args.repeats} "
          f"rounds of {args.steps} batches")
    print("(whole files: each item reads and resamples both whole files, then crops; the other rows read the crop)")
    print(f"{'':12s} {'workers 0':>14s} {f'workers {args.workers}':>14s} {'ratio':>7s}")
    for name in ("data only", "whole files", "train step"):
        r0, r1 = best[name, 0], best[name, args.workers]
        print(f"{name:12s} {r0:10.2f} /s {r1:10.2f} /s {r1 / r0:6.2f}x")


if __name__ == "__main__":
    main()
