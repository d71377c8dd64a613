#!/usr/bin/env python
"""Cost of a MetricGAN training step (train_bsdt --gan) against a plain step, on the CPU.

Three step kinds of train_bsdt's loop, on the same batch of real speech (2 s crops of the
shared VoiceBank-DEMAND pairs in ../shared/data, the demo BSDT by default, the trainer's
batch of 6):

* plain: forward, the recipe loss, backward, clipping, Adam step;
* GAN, PESQ here: plus the generator's adversarial term, the inverse STFT, the wide-band
  PESQ targets scored item by item in this process (bandsplit.score_batch), the
  discriminator update;
* GAN, PESQ pool: the same, the targets started on se_metrics.metric_pool(--workers) right
  after the forward (bandsplit.submit_score_batch) and awaited before the discriminator
  update, so PESQ runs while the generator's backward and step do (train_bsdt's order).

The kinds alternate step by step (so a load from others falls on all three alike) and each
is timed over --steps steps after a warm-up; medians and the ratios to the plain step are
printed with the machine's parallel headroom (bench/metrics_throughput.py's probe), then a
profile of one GAN step (forward + backward, discriminator, inverse STFT,
PESQ per item, and how long the pooled step waited for its targets).

    uv run bench/gan_step.py [--steps 8] [--workers 2] [--threads 2] [--model-preset bsdt-demo]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import bandsplit
import se_metrics
from bandsplit import (BSRNNLoss, MetricDiscriminator, metric_discriminator_step, metric_generator_loss,
                       pesq_to_target, score_batch, submit_score_batch)

REPO = Path(__file__).resolve().parent.parent
SR = 16000
PESQ_WB = functools.partial(se_metrics.pesq, sample_rate=SR, mode="wb")


def real_batch(data: Path, batch: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noisy, clean)`` [batch, seconds * SR]: the first crop of each shared VoiceBank pair (cycled)."""
    vb = data / "speech" / "voicebank16k"
    n = int(seconds * SR)
    noisy, clean = [], []
    for i in range(batch):
        name = f"p287_00{i % 6 + 1}.wav"
        c, sr_c = sf.read(vb / "clean" / name, dtype="float32")
        x, sr_x = sf.read(vb / "noisy" / name, dtype="float32")
        assert sr_c == sr_x == SR
        start = (i // 6) * SR // 4
        clean.append(np.resize(c[start:], n))
        noisy.append(np.resize(x[start:], n))
    return torch.from_numpy(np.stack(noisy)), torch.from_numpy(np.stack(clean))


class Trainer:
    """One model + discriminator and the step kinds of train_bsdt's loop."""

    def __init__(self, preset: str, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = bandsplit.build_model(bandsplit.preset_config(preset))
        self.stft = self.model.stft
        self.crit = BSRNNLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.disc = MetricDiscriminator()
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=1e-3)
        self.parts: dict[str, float] = {}
        self.rng = torch.get_rng_state()  # each trainer its own random stream (dropout), as in its own run

    def _tick(self, name: str, t0: float) -> float:
        t = time.perf_counter()
        self.parts[name] = self.parts.get(name, 0.0) + t - t0
        return t

    def step(self, noisy: torch.Tensor, clean: torch.Tensor, gan: bool, pool=None) -> None:
        self.parts = {}
        torch.set_rng_state(self.rng)
        try:
            self._step(noisy, clean, gan, pool)
        finally:
            self.rng = torch.get_rng_state()

    def _step(self, noisy: torch.Tensor, clean: torch.Tensor, gan: bool, pool=None) -> None:
        t = time.perf_counter()
        noisy_spec, clean_spec = self.stft.stft(noisy), self.stft.stft(clean)
        est_spec = self.model(noisy_spec)
        t = self._tick("generator forward", t)
        targets = None
        if gan:
            est_audio = self.stft.istft(est_spec.detach(), length=clean.shape[-1])
            t = self._tick("inverse STFT", t)
            if pool is None:
                targets = score_batch(PESQ_WB, clean, est_audio)
                t = self._tick("PESQ targets, item by item here", t)
            else:
                targets = submit_score_batch(PESQ_WB, clean, est_audio, pool)
                t = self._tick("PESQ targets, submitted to the pool", t)
        loss, _ = self.crit(est_spec, clean_spec)
        if gan:
            loss = loss + metric_generator_loss(self.disc, clean_spec, est_spec)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        t = self._tick("generator loss (+ adversarial term), backward, step", t)
        if gan:
            if pool is not None:
                targets = targets.result()
                t = self._tick("waiting for the pool's targets", t)
            metric_discriminator_step(self.disc, self.opt_d, clean_spec, est_spec.detach(), pesq_to_target(targets))
            self._tick("discriminator update", t)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=8, help="timed steps per kind (default 8)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per kind first (default 2)")
    p.add_argument("--batch", type=int, default=6, help="utterances per batch (default 6, train_bsdt's)")
    p.add_argument("--seconds", type=float, default=2.0, help="crop length in s (default 2.0, train_bsdt's)")
    p.add_argument("--model-preset", default="bsdt-demo", help="bandsplit preset (default bsdt-demo)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="PESQ worker processes (default: the cores, at most 4, train_bsdt's default)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help=f"torch threads of the training process (default {torch.get_num_threads()})")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("SE_SHARED_DATA", REPO.parent / "shared" / "data")),
                   help="the shared real-data folder (default ../shared/data or $SE_SHARED_DATA)")
    args = p.parse_args()
    if not (args.data / "speech" / "voicebank16k").is_dir():
        sys.exit(f"error: real data not found under {args.data}; pass --data or set SE_SHARED_DATA")
    torch.set_num_threads(args.threads)
    noisy, clean = real_batch(args.data, args.batch, args.seconds)
    kinds = {"plain step": (False, False), "GAN step, PESQ here": (True, False), "GAN step, PESQ pool": (True, True)}
    trainers = {k: Trainer(args.model_preset, seed=0) for k in kinds}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    parts: dict[str, dict[str, list[float]]] = {k: {} for k in kinds}
    from metrics_throughput import parallel_headroom  # noqa: PLC0415 - the sibling bench's probe

    vb = args.data / "speech" / "voicebank16k"
    probe = ("p287_001.wav", vb / "clean" / "p287_001.wav", vb / "noisy" / "p287_001.wav")
    headroom = [parallel_headroom(probe, max(args.workers, 2))]
    t_pool = time.perf_counter()
    with se_metrics.metric_pool(args.workers) as pool:
        pool.submit(int).result()  # the workers are up before anything is timed
        t_pool = time.perf_counter() - t_pool
        for i in range(args.warmup + args.steps):
            for k, (gan, pooled) in kinds.items():
                t0 = time.perf_counter()
                trainers[k].step(noisy, clean, gan, pool if pooled else None)
                if i >= args.warmup:
                    times[k].append(time.perf_counter() - t0)
                    for name, v in trainers[k].parts.items():
                        parts[k].setdefault(name, []).append(v)
    headroom.append(parallel_headroom(probe, max(args.workers, 2)))
    # the same algorithm: both GAN trainers hold the same weights after the same steps
    same = all(torch.equal(a, b) for a, b in zip(trainers["GAN step, PESQ here"].model.state_dict().values(),
                                                 trainers["GAN step, PESQ pool"].model.state_dict().values()))
    base = statistics.median(times["plain step"])
    print(f"{args.model_preset}, batch {args.batch} x {args.seconds:g} s, {args.threads} torch thread(s), "
          f"{args.workers} PESQ worker(s), {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; "
          f"median of {args.steps} steps (pool start-up {t_pool:.1f} s, once per run, not in the steps)")
    for k in kinds:
        m = statistics.median(times[k])
        print(f"  {k:24s} {m * 1e3:7.0f} ms   {m / base:5.2f}x the plain step")
    print(f"  GAN weights with the pool equal those without: {same}")
    print(f"parallel headroom for {max(args.workers, 2)} processes, before / after: {headroom[0]:.2f} / "
          f"{headroom[1]:.2f} (2 on two free cores; near 1: others hold them, and PESQ in workers competes with "
          f"the training process for the same core)")
    # What bounds the pooled step on a CPU: the GAN's own torch work (adversarial term and
    # discriminator update: the in-process GAN step less its PESQ and the plain step) cannot
    # overlap anything, and PESQ's CPU time can at best be shared evenly across the cores that
    # the training step already keeps busy.
    here = statistics.median(times["GAN step, PESQ here"])
    pesq_here = statistics.median(parts["GAN step, PESQ here"]["PESQ targets, item by item here"])
    cores = os.cpu_count() or 1
    floor = here - pesq_here + pesq_here / cores
    print(f"  CPU floor of a pooled GAN step on {cores} busy core(s): plain + GAN torch work "
          f"({(here - pesq_here - base) * 1e3:.0f} ms) + PESQ ({pesq_here * 1e3:.0f} ms) / {cores} = "
          f"{floor * 1e3:.0f} ms, {floor / base:.2f}x the plain step")
    print("profile (median ms per step):")
    for k in ("GAN step, PESQ here", "GAN step, PESQ pool"):
        print(f"  {k}:")
        for name, v in parts[k].items():
            print(f"    {name:55s} {statistics.median(v) * 1e3:7.0f}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
