"""OUVE and SB-VE SDEs: closed-form marginals against SGMSE+'s own values and against a fine
Euler-Maruyama simulation of the SDE (Monte-Carlo tolerances from the number of paths)."""

from __future__ import annotations

import math

import pytest
import torch

from sgmse_cfg import OUVESDE, SBVESDE, sde_from_dict




PATHS = 20000
# |mean_hat - mean| of P circular-complex paths has E|.|^2 = std^2 / P: allow 4.5 standard errors.
MEAN_SE = 4.5
# mean |x - mean_hat|^2 of P complex Gaussians is std^2 * Gamma(P, 1/P): relative SE of the
# std estimate is 0.5 / sqrt(P); allow 5 standard errors (plus the O(dt) Euler bias, ~1e-3).
STD_SE = 5.0


def _em_simulate(sde, x0: complex, y: complex, t_end: float, steps: int, checkpoints, seed: int):
    """Vectorised Euler-Maruyama over PATHS complex paths; returns {t: samples}."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((PATHS,), x0, dtype=torch.complex128)
    yy = torch.full((PATHS,), y, dtype=torch.complex128)
    dt = t_end / steps
    out = {}
    marks = {round(c / dt): c for c in checkpoints}
    for n in range(steps):
        t = torch.tensor(n * dt, dtype=torch.float64)  # one time for all paths
        f, gt = sde.sde(x, yy, t)
        z = torch.randn(PATHS, dtype=torch.complex128, generator=g)
        x = x + f * dt + gt * math.sqrt(dt) * z
        if n + 1 in marks:
            out[marks[n + 1]] = x.clone()
    return out


def _check_marginals(sde, sims, x0, y):
    for t, xs in sims.items():
        tt = torch.tensor([t], dtype=torch.float64)
        mean, std = sde.marginal_prob(torch.tensor([x0], dtype=torch.complex128),
                                      torch.tensor([y], dtype=torch.complex128), tt)
        mean, std = mean.item(), std.item()
        m_hat = xs.mean().item()
        s_hat = math.sqrt((xs - m_hat).abs().pow(2).mean().item())
        assert abs(m_hat - mean) < MEAN_SE * std / math.sqrt(PATHS), (t, m_hat, mean)
        assert abs(s_hat / std - 1) < STD_SE * 0.5 / math.sqrt(PATHS) + 2e-3, (t, s_hat, std)


def test_ouve_matches_sgmse_reference_marginals(shared_data):
    ref = torch.load(shared_data / "reference" / "ncsnpp_reference_parity_tiny.pt",
                     weights_only=True)["ouve_marginals"]
    sde = OUVESDE()
    assert len(ref) == 5
    for t, vals in ref.items():
        tt = torch.tensor([t], dtype=torch.float32)
        a, b = sde.mean_coeffs(tt)
        assert abs(sde.std(tt).item() - vals["std"]) < 1e-6, t
        assert abs(a.item() - vals["mean_weight_on_x0"]) < 1e-6, t
        assert abs(a.item() + b.item() - 1.0) < 1e-7


def test_ouve_known_values():
    sde = OUVESDE()
    t = torch.tensor([0.0, 0.03, 0.5, 1.0], dtype=torch.float64)
    std = sde.std(t)
    assert std[0].item() == 0.0
    assert std[1:].tolist() == pytest.approx([0.0188, 0.1217, 0.3890], abs=1e-4)
    g = sde.diffusion(t)
    assert g[0].item() == pytest.approx(0.05 * math.sqrt(2 * math.log(10)), rel=1e-12)  # 0.107
    assert g[3].item() == pytest.approx(0.5 * math.sqrt(2 * math.log(10)), rel=1e-12)  # 1.073
    # mean weight on x0 at T = e^{-1.5} = 0.2231 (SGMSE+'s prior mismatch)
    assert sde.mean_coeffs(t)[0][3].item() == pytest.approx(math.exp(-1.5), rel=1e-12)


def test_ouve_marginals_match_euler_maruyama_simulation():
    sde = OUVESDE()
    x0, y = 0.8 - 0.3j, -0.2 + 0.5j
    sims = _em_simulate(sde, x0, y, 1.0, 2000, (0.25, 0.5, 1.0), seed=1)
    _check_marginals(sde, sims, x0, y)


def test_sbve_bridge_marginals_match_euler_maruyama_simulation():
    sde = SBVESDE()
    x0, y = 0.6 + 0.4j, -0.5 - 0.1j
    # the bridge drift g^2 (y - x) / sigma_bar^2 is singular at T = 1: stop at 0.9
    sims = _em_simulate(sde, x0, y, 0.9, 3000, (0.25, 0.5, 0.9), seed=2)
    _check_marginals(sde, sims, x0, y)


def test_sbve_endpoints_and_defaults():
    sde = SBVESDE()
    assert sde.sigma_T == pytest.approx(1.098, abs=5e-4)  # sgmse notes: sigma_T = 1.098
    t = torch.tensor([0.0, 1.0])
    a, b = sde.mean_coeffs(t)
    assert a.tolist() == [1.0, 0.0] and b.tolist() == [0.0, 1.0]
    assert sde.std(t).tolist() == [0.0, 0.0]
    y = torch.randn(2, 1, 4, 3, dtype=torch.complex64)
    assert torch.equal(sde.prior_sampling(y), y)


def test_ouve_prior_sampling_is_seeded_and_has_std_at_T():
    sde = OUVESDE()
    y = torch.full((4, 1, 64, 128), 0.3 - 0.1j, dtype=torch.complex64)
    a = sde.prior_sampling(y, torch.Generator().manual_seed(5))
    b = sde.prior_sampling(y, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    n = a.numel()
    assert abs((a - y).mean().item()) < 4.5 * 0.389 / math.sqrt(n)
    s_hat = (a - y).abs().pow(2).mean().sqrt().item()
    assert abs(s_hat / 0.3889826536178589 - 1) < 2.5 / math.sqrt(n)


def test_perturb_and_config_round_trip():
    sde = OUVESDE(theta=2.0, sigma_min=0.1, sigma_max=1.0)
    assert sde_from_dict(sde.to_dict()).to_dict() == sde.to_dict()
    assert sde_from_dict(SBVESDE(k=3.0).to_dict()).k == 3.0
    x0 = torch.randn(3, 1, 8, 8, dtype=torch.complex64)
    y = torch.randn(3, 1, 8, 8, dtype=torch.complex64)
    t = torch.tensor([0.1, 0.5, 0.9])
    xt, z, std = sde.perturb(x0, y, t, torch.Generator().manual_seed(0))
    assert torch.allclose(xt, sde.mean(x0, y, t) + std[:, None, None, None] * z)
    with pytest.raises(ValueError):
        sde_from_dict({"name": "vpsde"})
