"""sgmse_cfg.enhance_batch: files of one padded frame count in one sampler run, a generator per
file, each output equal to the file enhanced alone with its generator."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

import se_data
import sgmse_cfg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nc_model_recipe import small_noise_conditioned_model  # noqa: E402
from sgmse_ckpt_recipe import write_checkpoint  # noqa: E402

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


def test_ncsnpp_checkpoint_batch_equals_one_at_a_time_on_speech(shared_data: Path, tmp_path: Path) -> None:
    """SGMSE+'s NCSN++ (the small official-format checkpoint) on real noisy speech, float32: each
    batched output is within 1e-5 of the file alone, relative to its peak (1e-5 absolute for an
    output at full scale). Some low-resolution convolutions and the time embedding's Linear layers
    round differently at batch 2 than at batch 1 on the CPU (see the README); this untrained
    model's outputs peak far above 1, where 1e-5 absolute would be a few float32 steps."""
    config = json.loads((Path(__file__).resolve().parent / "data" / "sgmse_ckpt.json").read_text())
    model = sgmse_cfg.load_model(write_checkpoint(tmp_path / "m.ckpt", config["configs"]["ncsnpp_ouve"])).eval()
    folder = shared_data / "speech" / "voicebank16k" / "noisy"
    waves = [se_data.load_audio(folder / f"p287_00{i}.wav", SR)[0][:n] for i, n in ((1, 9000), (2, 9010), (3, 8990))]
    assert len({model.padded_frames(w.shape[-1]) for w in waves}) == 1
    gens = [torch.Generator().manual_seed(100 + i) for i in range(len(waves))]
    outs = sgmse_cfg.enhance_batch(model, waves, SR, N=2, generators=gens)
    for i, (w, o) in enumerate(zip(waves, outs)):
        alone = sgmse_cfg.enhance(model, w, SR, N=2, generator=torch.Generator().manual_seed(100 + i))
        assert o.shape == w.shape and o.dtype == torch.float32
        assert (o - alone).abs().max().item() <= 1e-5 * max(1.0, alone.abs().max().item())


def test_padded_frames_and_refusals(models: dict[str, sgmse_cfg.ScoreModel]) -> None:
    model = models["ouve"]
    f = model.backbone.downsampling_factor
    hop = model.transform.hop_length
    assert model.padded_frames(8000) == -(-(8000 // hop + 1) // f) * f
    with pytest.raises(ValueError, match="one padded frame count"):
        sgmse_cfg.enhance_batch(model, _waves((8000, 4000)), SR, N=2)
    with pytest.raises(ValueError, match="one per waveform"):
        sgmse_cfg.enhance_batch(model, _waves((8000, 8000)), SR, N=2, generators=[torch.Generator()])
    with pytest.raises(ValueError, match="noise-conditioned model"):
        sgmse_cfg.enhance_batch(model, _waves((8000, 8000)), SR, N=2, noise_refs=[None, _waves((4000,))[0]])
    with pytest.raises(ValueError, match="noise-conditioned model"):
        sgmse_cfg.enhance_batch(model, _waves((8000, 8000)), SR, N=2, guidance="static", w=2.0)


# ---- noise-conditioned models: a condition per file, guidance per item ---------------------------
@pytest.fixture(scope="module")
def nc_model() -> sgmse_cfg.NoiseCondScoreModel:
    return small_noise_conditioned_model()


@pytest.mark.parametrize(("guidance", "w", "batched_cfg"),
                         [("cond", 1.0, True), ("mix", 2.0, True), ("static", 1.5, False)])
def test_noise_conditioned_batch_equals_one_at_a_time(nc_model: sgmse_cfg.NoiseCondScoreModel, guidance: str,
                                                      w: float, batched_cfg: bool) -> None:
    waves = _waves((8000, 7960, 7940))
    refs = [None, 0.05 * torch.randn(6000, generator=torch.Generator().manual_seed(9)), None]
    kw = {"sampler": "pc", "N": 3, "guidance": guidance, "w": w, "batched_cfg": batched_cfg}
    gens = [torch.Generator().manual_seed(100 + i) for i in range(len(waves))]
    diags: list[dict] = []
    outs = sgmse_cfg.enhance_batch(nc_model, waves, SR, generators=gens, noise_refs=refs, diagnostics=diags, **kw)
    ws = []
    for i, (wave, o) in enumerate(zip(waves, outs)):
        d: dict = {}
        alone = sgmse_cfg.enhance(nc_model, wave, SR, generator=torch.Generator().manual_seed(100 + i),
                                  noise_ref=refs[i], diagnostics=d, **kw)
        assert (o - alone).abs().max().item() <= 1e-5 * max(1.0, alone.abs().max().item())
        assert diags[i] == pytest.approx(d)  # the file's own scale and uncertainty measures
        ws.append(d["w"])
    if guidance == "mix":  # adaptive: the scales really differ per file, so guidance is per item
        assert max(ws) - min(ws) > 1e-3
    # the noise reference is per file: another one changes that file only
    other = sgmse_cfg.enhance_batch(nc_model, waves, SR, noise_refs=[None, None, None],
                                    generators=[torch.Generator().manual_seed(100 + i) for i in range(3)], **kw)
    assert (other[1] - outs[1]).abs().max().item() > 1e-4
    assert (other[0] - outs[0]).abs().max().item() <= 1e-5 and (other[2] - outs[2]).abs().max().item() <= 1e-5


@torch.no_grad()
def test_stacked_guided_score_is_per_item_in_float64(nc_model: sgmse_cfg.NoiseCondScoreModel) -> None:
    """One score evaluation with the stacked condition (CFG of per-item scales, one forward of batch
    2B) equals each item's own evaluation (batch 2) in float64."""
    waves = _waves((8000, 7960, 7940))
    gc, encs = nc_model.prepare_batch(waves, SR, guidance="mix", w=2.0)
    assert gc.w.shape == (3,) and len(encs) == 3
    alone = [nc_model.prepare(wave, SR, guidance="mix", w=2.0)[0] for wave in waves]
    for b, a in enumerate(alone):  # each row is the file's own condition, bit for bit
        assert torch.equal(gc.cond.temb_scale[b], a.cond.temb_scale[0]) and torch.equal(gc.w[b], a.w[0])
    model = copy.deepcopy(nc_model).double()

    def f64(c: sgmse_cfg.GuidedCond) -> sgmse_cfg.GuidedCond:
        to = {k: (v.double() if v is not None else None) for k, v in vars(c.cond).items()}
        nu = {k: (v.double() if v is not None else None) for k, v in vars(c.null).items()}
        return sgmse_cfg.GuidedCond(sgmse_cfg.BackboneCond(**to), sgmse_cfg.BackboneCond(**nu), c.w.double(), c.mode)

    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 1, 256, 64, dtype=torch.complex128, generator=g)
    y = torch.randn(3, 1, 256, 64, dtype=torch.complex128, generator=g)
    t = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    batch = f64(gc).score(model.forward, x, y, t)
    for b, a in enumerate(alone):
        one = f64(a).score(model.forward, x[b:b + 1], y[b:b + 1], t[b:b + 1])
        assert (batch[b] - one[0]).abs().max().item() <= 1e-10 * max(1.0, one.abs().max().item())
