"""Parity of sgmse_cfg with SGMSE+'s own code (the ``sgmse`` package 0.1.2, MIT).

Loads a randomly initialised NCSN++ state dict from ``sgmse`` into ours and prints the largest
output difference; compares the OUVE SDE (marginal mean weight and std, drift, diffusion),
one reverse-diffusion predictor step, one Euler-Maruyama step (theirs uses dt = 1/N whatever
the grid: ours is called with that step), one annealed-Langevin corrector step and a whole
PC sampler run, all with the same backbone weights and the same global random stream.

``sgmse`` pins numpy<2 and would pull a torch that does not match torchaudio, so it is never
a workspace dependency: run this in an isolated environment with the pins,

    CUDA_VISIBLE_DEVICES= uv run --isolated --with sgmse==0.1.2 --with 'torch==2.11.0' \\
        --with 'torchaudio==2.11.0' python bench/sgmse_parity.py [--quick]

(its wheel lacks the CUDA sources it compiles at import when a GPU is visible; its CPU path is
pure PyTorch, so this script hides GPUs itself before importing torch). ``--quick`` skips the
65.6 M-parameter configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch / sgmse are imported

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packages" / "sgmse_cfg" / "src"))  # the workspace source, whatever is installed

from sgmse_cfg import NCSNPP_PRESETS, NCSNpp, OUVESDE, ald_step, euler_maruyama_step, pc_sampler  # noqa: E402
from sgmse_cfg import reverse_diffusion_step  # noqa: E402

try:
    import sgmse  # noqa: F401
    from sgmse.backbones.ncsnpp import NCSNpp as PeerNCSNpp
    from sgmse.sampling import get_pc_sampler
    from sgmse.sampling.correctors import AnnealedLangevinDynamics
    from sgmse.sampling.predictors import EulerMaruyamaPredictor, ReverseDiffusionPredictor
    from sgmse.sdes import OUVESDE as PeerOUVESDE
except ImportError as e:  # pragma: no cover - depends on the environment
    sys.exit(f"error: cannot import sgmse ({e}). Run in an isolated environment:\n  CUDA_VISIBLE_DEVICES= uv run "
             f"--isolated --with sgmse==0.1.2 --with 'torch==2.11.0' --with 'torchaudio==2.11.0' "
             f"python bench/sgmse_parity.py")


def _rel(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = float((a - b).abs().max())
    return d, d / max(float(b.abs().max()), 1e-30)


def _row(name: str, a: torch.Tensor, b: torch.Tensor, rows: list) -> None:
    d, r = _rel(a, b)
    rows.append((name, d, r))


def backbone_parity(cfg_name: str, T: int, seed: int) -> tuple[tuple, PeerNCSNpp, NCSNpp, int]:
    cfg = dict(NCSNPP_PRESETS[cfg_name])
    torch.manual_seed(seed)
    peer = PeerNCSNpp(**cfg).eval()
    with torch.no_grad():  # move every weight off its (partly zero) init so all paths matter
        for p in peer.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ours = NCSNpp(**cfg).eval()
    ours.load_state_dict(peer.state_dict(), strict=True)
    F = cfg.get("image_size", 256)
    x = torch.randn(2, 2, F, T, dtype=torch.complex64)
    t = torch.tensor([0.9, 0.2])
    with torch.no_grad():
        t0 = time.perf_counter()
        ref = peer(x, t)
        t1 = time.perf_counter()
        out = ours(x, t)
        t2 = time.perf_counter()
    n = sum(p.numel() for p in ours.parameters())
    d, r = _rel(out, ref)
    return (f"NCSN++ '{cfg_name}' ({n:,} params, x {tuple(x.shape)})", d, r, t1 - t0, t2 - t1), peer, ours, F


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="skip the full 65.6 M-parameter configuration")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    print(f"sgmse {getattr(sgmse, '__version__', '0.1.2')} from {Path(sgmse.__file__).parent}; torch {torch.__version__}")
    print("\n1. NCSN++: SGMSE+'s randomly initialised state dict loaded (strict) into ours, same input")
    print(f"   {'configuration':58s} {'max |diff|':>11s} {'relative':>10s} {'theirs s':>9s} {'ours s':>8s}")
    configs = [("tiny", 64)] + ([] if args.quick else [("sgmse", 64)])
    peer = ours = None
    F = 64
    for name, T in configs:
        row, pe, ou, f = backbone_parity(name, T, args.seed)
        print(f"   {row[0]:58s} {row[1]:11.3e} {row[2]:10.3e} {row[3]:9.3f} {row[4]:8.3f}")
        if name == "tiny":
            peer, ours, F = pe, ou, f

    # ---- SDE
    rows: list = []
    their_sde = PeerOUVESDE(theta=1.5, sigma_min=0.05, sigma_max=0.5, N=30)
    our_sde = OUVESDE()
    t = torch.tensor([0.03, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    ones, zeros = torch.ones(7, 1, 1, 1), torch.zeros(7, 1, 1, 1)
    mean_w, std = their_sde.marginal_prob(ones, zeros, t)
    a, _ = our_sde.mean_coeffs(t)
    _row("OUVE mean weight of x0, e^{-theta t}", a, mean_w.reshape(-1), rows)
    _row("OUVE marginal std", our_sde.std(t), std, rows)
    x = torch.randn(7, 1, 4, 4, dtype=torch.complex64)
    y = torch.randn(7, 1, 4, 4, dtype=torch.complex64)
    drift, diff = their_sde.sde(x, y, t)
    _row("OUVE drift theta (y - x)", our_sde.drift(x, y, t), drift, rows)
    _row("OUVE diffusion g(t)", our_sde.diffusion(t), diff, rows)

    # ---- one step of each predictor / corrector, same network, same random stream
    def score_fn(xx, yy, tt):  # SGMSE+'s score = -NCSN++(x_t, y)
        return -peer(torch.cat([xx, yy], dim=1), tt)

    def our_score(xx, yy, tt):
        return -ours(torch.cat([xx, yy], dim=1), tt)

    B = 2
    x = 0.5 * torch.randn(B, 1, F, 64, dtype=torch.complex64)
    y = 0.5 * torch.randn(B, 1, F, 64, dtype=torch.complex64)
    tt = torch.full((B,), 0.6)
    dt = torch.tensor(1.0 / 29)
    with torch.no_grad():
        torch.manual_seed(1)
        xs, xms = ReverseDiffusionPredictor(their_sde, score_fn).update_fn(x, y, tt, dt)
        torch.manual_seed(1)
        xo, xmo = reverse_diffusion_step(our_sde, our_score, x, y, tt, dt, our_sde.diffusion(tt[0]), None)
        _row("reverse-diffusion predictor step: x", xo, xs, rows)
        _row("reverse-diffusion predictor step: x_mean", xmo, xms, rows)
        torch.manual_seed(2)
        xs, xms = EulerMaruyamaPredictor(their_sde, score_fn).update_fn(x, y, tt)
        torch.manual_seed(2)
        xo, xmo = euler_maruyama_step(our_sde, our_score, x, y, tt, torch.tensor(1.0 / 30), our_sde.diffusion(tt[0]),
                                      None)
        _row("Euler-Maruyama predictor step (dt = 1/N): x", xo, xs, rows)
        torch.manual_seed(3)
        xs, xms = AnnealedLangevinDynamics(their_sde, score_fn, snr=0.5, n_steps=1).update_fn(x, y, tt)
        torch.manual_seed(3)
        xo, xmo = ald_step(our_score, x, y, tt, our_sde.std(tt[0]), 0.5, None)
        _row("annealed-Langevin corrector step (snr 0.5): x", xo, xs, rows)
        _row("annealed-Langevin corrector step: x_mean", xmo, xms, rows)
        # ---- a whole PC sampler run
        N = 5
        their_sde.N = N
        torch.manual_seed(4)
        ref, nfe_t = get_pc_sampler("reverse_diffusion", "ald", their_sde, score_fn, y, snr=0.5, eps=0.03,
                                    corrector_steps=1)()
        torch.manual_seed(4)
        out, nfe_o = pc_sampler(our_sde, our_score, y, N=N, snr=0.5, eps=0.03)
        _row(f"PC sampler, N={N} (NFE {nfe_o} ours / {nfe_t} theirs)", out, ref, rows)

    print("\n2. SDE, sampler steps and a whole sampler (same weights, same torch.manual_seed)")
    print(f"   {'quantity':58s} {'max |diff|':>11s} {'relative':>10s}")
    for name, d, r in rows:
        print(f"   {name:58s} {d:11.3e} {r:10.3e}")
    worst = max(r for _, _, r in rows)
    print(f"\nworst relative difference of the steps: {worst:.2e} (float32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
