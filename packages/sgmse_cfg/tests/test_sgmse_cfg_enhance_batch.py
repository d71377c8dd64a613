"""sgmse_cfg.enhance_batch: files of one padded frame count in one sampler run, a generator per
file, each output equal to the file enhanced alone with its generator."""

from __future__ import annotations

import pytest
import torch

import sgmse_cfg

SR = 16000


@pytest.fixture(scope="module")
def models() -> dict[str, sgmse_cfg.ScoreModel]:
    torch.manual_seed(0)
    return {sde: sgmse_cfg.build_model(encoder="none", sde=sde, unet_channels=(4, 8)).eval()
            for sde in ("ouve", "sbve")}


def _waves(lengths: tuple[int, ...]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return [0.1 * torch.randn(n, generator=g) for n in lengths]


@pytest.mark.parametrize(("sde", "sampler"), [("ouve", "pc"), ("ouve", "ode"), ("sbve", "sb_sde")])
def test_batch_equals_one_at_a_time(models: dict[str, sgmse_cfg.ScoreModel], sde: str, sampler: str) -> None:
    model = models[sde]
    waves = _waves((8000, 7960, 7940))  # different lengths, one padded frame count
    assert len({model.padded_frames(w.shape[0]) for w in waves}) == 1
    gens = [torch.Generator().manual_seed(100 + i) for i in range(len(waves))]
    outs = sgmse_cfg.enhance_batch(model, waves, SR, sampler=sampler, N=4, generators=gens)
    for i, (w, o) in enumerate(zip(waves, outs)):
        alone = sgmse_cfg.enhance(model, w, SR, sampler=sampler, N=4, generator=torch.Generator().manual_seed(100 + i))
        assert o.shape == w.shape
        assert (o - alone).abs().max().item() <= 1e-5 * max(1.0, alone.abs().max().item())
    # the noise really is per file: another seed for one file changes that file only
    if sampler == "pc":  # (an untrained bridge model barely reads its noisy state)
        gens = [torch.Generator().manual_seed(s) for s in (100, 999, 102)]
        other = sgmse_cfg.enhance_batch(model, waves, SR, sampler=sampler, N=4, generators=gens)
        assert (other[1] - outs[1]).abs().max().item() > 1e-3
        assert (other[0] - outs[0]).abs().max().item() <= 1e-5 and (other[2] - outs[2]).abs().max().item() <= 1e-5


def test_padded_frames_and_refusals(models: dict[str, sgmse_cfg.ScoreModel]) -> None:
    model = models["ouve"]
    f = model.backbone.downsampling_factor
    hop = model.transform.hop_length
    assert model.padded_frames(8000) == -(-(8000 // hop + 1) // f) * f
    with pytest.raises(ValueError, match="one padded frame count"):
        sgmse_cfg.enhance_batch(model, _waves((8000, 4000)), SR, N=2)
    with pytest.raises(ValueError, match="one per waveform"):
        sgmse_cfg.enhance_batch(model, _waves((8000, 8000)), SR, N=2, generators=[torch.Generator()])
    torch.manual_seed(0)
    nc = sgmse_cfg.build_model(encoder="cnn", unet_channels=(4, 8), encoder_channels=(4, 8), embed_dim=8)
    with pytest.raises(ValueError, match="one at a time"):
        sgmse_cfg.enhance_batch(nc.eval(), _waves((8000, 8000)), SR, N=2)
