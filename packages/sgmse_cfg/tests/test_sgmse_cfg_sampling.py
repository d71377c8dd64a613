"""Every sampler end to end with an analytic score: Gaussian data x0 ~ CN(mu0, s^2) per element
with y fixed, where the marginal of the OUVE / SB-VE perturbation is Gaussian and its score and
posterior mean are known in closed form. The samplers must return the data's mean and
standard deviation (Monte-Carlo tolerances from the 20,000 samples), and run on the `meta`
device, which proves that no step reads a tensor value on the host (.item(), if tensor: ...).
"""

from __future__ import annotations

import math

import pytest
import torch

from sgmse_cfg import OUVESDE, SBVESDE, batch_view, ode_sampler, pc_sampler, sb_sampler

B = 20000  # samples per element
S = 0.5  # data std: E|x0 - mu0|^2 = S^2
MU0 = torch.tensor([0.5 + 0.2j, -0.3 + 0.1j, 0.0 + 0.0j, 0.8 - 0.4j],
                   dtype=torch.complex64).reshape(1, 1, 2, 2)
Y = torch.tensor([0.2 - 0.1j, 0.1 + 0.3j, -0.4 + 0.0j, 0.5 + 0.5j],
                 dtype=torch.complex64).reshape(1, 1, 2, 2)
MEAN_TOL = 4.5 * S / math.sqrt(B)  # |mean_hat - mu0|: 4.5 standard errors
STD_TOL = 4.5 * 0.5 / math.sqrt(B)  # |std_hat / S - 1|: 4.5 standard errors



def _y() -> torch.Tensor:
    return Y.expand(B, 1, 2, 2).clone()


def _ouve_score(sde: OUVESDE):
    def score(x, y, t):
        a, b = sde.mean_coeffs(t)
        std = sde.std(t)
        a, b, std = batch_view(a, x), batch_view(b, x), batch_view(std, x)
        return -(x - (a * MU0 + b * y)) / (a ** 2 * S ** 2 + std ** 2)
    return score


def _ouve_exact_xT(sde: OUVESDE, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A sample of the true marginal at T = 1 (not SGMSE+'s mismatched prior)."""
    t = torch.ones(())
    a, b = sde.mean_coeffs(t)
    var = a ** 2 * S ** 2 + sde.std(t) ** 2
    return a * MU0 + b * y + var.sqrt() * torch.randn(y.shape, dtype=y.dtype, generator=g)


def _errors(x: torch.Tensor) -> tuple[float, float]:
    m = x.mean(0, keepdim=True)
    std = (x - m).abs().pow(2).mean(0).sqrt()
    return (m - MU0).abs().max().item(), (std / S - 1).abs().max().item()


@pytest.mark.parametrize("predictor", ["reverse_diffusion", "euler_maruyama"])
def test_pc_sampler_recovers_gaussian_data(predictor):
    sde = OUVESDE()
    g = torch.Generator().manual_seed(1)
    y = _y()
    x, nfe = pc_sampler(sde, _ouve_score(sde), y, N=100, predictor=predictor, corrector="ald",
                        snr=0.5, generator=g, x_T=_ouve_exact_xT(sde, y, g))
    assert nfe == 200
    mean_err, std_err = _errors(x)
    assert mean_err < MEAN_TOL and std_err < STD_TOL, (mean_err, std_err)


def test_pc_sampler_predictor_only_recovers_gaussian_data():
    sde = OUVESDE()
    g = torch.Generator().manual_seed(2)
    y = _y()
    # without a corrector the first-order predictor needs more steps (std bias ~ -0.5 % at 500)
    x, nfe = pc_sampler(sde, _ouve_score(sde), y, N=500, corrector="none", generator=g,
                        x_T=_ouve_exact_xT(sde, y, g))
    assert nfe == 500
    mean_err, std_err = _errors(x)
    assert mean_err < MEAN_TOL and std_err < STD_TOL, (mean_err, std_err)


def test_pc_sampler_sgmse_defaults_from_the_sgmse_prior():
    """SGMSE+'s settings (N=30, ALD snr 0.5, prior y + std(1) z): 60 evaluations, and the
    data's mean and std up to the 30-step discretisation bias (measured: mean <= 0.023,
    std <= 1.1 % for three seeds; the prior mismatch itself costs < 1e-3 here)."""
    sde = OUVESDE()
    x, nfe = pc_sampler(sde, _ouve_score(sde), _y(), generator=torch.Generator().manual_seed(3))
    assert nfe == 60
    mean_err, std_err = _errors(x)
    assert mean_err < 0.035 and std_err < 0.02, (mean_err, std_err)


@pytest.mark.parametrize(("method", "N"), [("heun", 30), ("euler", 500)])
def test_probability_flow_ode_recovers_gaussian_data(method, N):
    sde = OUVESDE()
    g = torch.Generator().manual_seed(4)
    y = _y()
    x, nfe = ode_sampler(sde, _ouve_score(sde), y, N=N, method=method, generator=g,
                         x_T=_ouve_exact_xT(sde, y, g))
    assert nfe == N * (2 if method == "heun" else 1) + 1
    mean_err, std_err = _errors(x)
    assert mean_err < MEAN_TOL and std_err < STD_TOL, (mean_err, std_err)


def _sb_denoiser(sde: SBVESDE):
    """Posterior mean E[x0 | x_t, y] for x_t = a x0 + b y + std z, written so that it stays
    finite at t = T (where a = std = 0): gain = S^2 / (sigma_bar^2 S^2 / sigma_T^2 + sigma^2)."""
    def denoise(x, y, t):
        a, b = sde.mean_coeffs(t)
        gain = S ** 2 / (sde.sigma_bar(t) ** 2 * S ** 2 / sde.sigma_T ** 2 + sde.sigma(t) ** 2)
        return MU0 + batch_view(gain, x) * (x - batch_view(a, x) * MU0 - batch_view(b, x) * y)
    return denoise


def test_sb_sde_sampler_recovers_gaussian_data():
    sde = SBVESDE()
    # first-order ancestral sampling: std bias -5.6 % at N=50, -1.4 % at 200, -0.4 % at 1000
    x, nfe = sb_sampler(sde, _sb_denoiser(sde), _y(), N=1000, kind="sde",
                        generator=torch.Generator().manual_seed(5))
    assert nfe == 1000
    mean_err, std_err = _errors(x)
    assert mean_err < MEAN_TOL and std_err < STD_TOL, (mean_err, std_err)


def test_sb_ode_sampler_returns_the_posterior_mean_deterministically():
    """The bridge starts at the point x_T = y, so its ODE maps y to one estimate: for Gaussian
    data it is exactly the posterior mean mu0 (every sample equal), not a sample of the data.
    The grid ends at eps = 1e-4, where the bridge mean still holds b(eps) = 3.3e-5 of y."""
    sde = SBVESDE()
    x, nfe = sb_sampler(sde, _sb_denoiser(sde), _y(), N=50, kind="ode", eps=1e-4)
    assert nfe == 50
    a, b = sde.mean_coeffs(torch.tensor(1e-4, dtype=torch.float64))
    expected = (a * MU0.to(torch.complex128) + b * Y.to(torch.complex128)).to(torch.complex64)
    assert b.item() == pytest.approx(3.3e-5, rel=0.02)
    assert (x - expected).abs().max().item() < 2e-6
    assert (x - MU0).abs().max().item() < 4e-5


def test_samplers_are_seeded():
    sde = OUVESDE()
    y = _y()[:64]
    a, _ = pc_sampler(sde, _ouve_score(sde), y, N=5, generator=torch.Generator().manual_seed(9))
    b, _ = pc_sampler(sde, _ouve_score(sde), y, N=5, generator=torch.Generator().manual_seed(9))
    c, _ = pc_sampler(sde, _ouve_score(sde), y, N=5, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_samplers_never_read_tensor_values_on_the_host():
    """On the meta device any .item(), bool(tensor) or data-dependent branch raises."""
    y = torch.empty(2, 1, 8, 16, dtype=torch.complex64, device="meta")
    ou, sb = OUVESDE(), SBVESDE()
    calls = []

    def fn(x, yy, t):
        assert t.shape == (2,) and t.device.type == "meta"
        calls.append(1)
        return -x

    x, nfe = pc_sampler(ou, fn, y, N=3)
    assert x.shape == y.shape and x.device.type == "meta" and nfe == len(calls) == 6
    calls.clear()
    _, nfe = pc_sampler(ou, fn, y, N=3, predictor="euler_maruyama")
    assert nfe == len(calls) == 6
    calls.clear()
    _, nfe = ode_sampler(ou, fn, y, N=3)
    assert nfe == len(calls) == 7
    for kind in ("ode", "sde"):
        calls.clear()
        _, nfe = sb_sampler(sb, fn, y, N=3, kind=kind)
        assert nfe == len(calls) == 3


def test_bad_arguments_are_errors():
    sde = OUVESDE()
    y = torch.zeros(2, 1, 4, 4, dtype=torch.complex64)
    with pytest.raises(ValueError, match="predictor"):
        pc_sampler(sde, lambda x, y, t: x, y, predictor="heun")
    with pytest.raises(ValueError, match="x_T"):
        pc_sampler(sde, lambda x, y, t: x, y, x_T=torch.zeros(1, 1, 4, 4, dtype=torch.complex64))
    with pytest.raises(TypeError):
        sb_sampler(sde, lambda x, y, t: x, y)  # type: ignore[arg-type]
