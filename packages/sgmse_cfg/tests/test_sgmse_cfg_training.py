"""The training pieces tools/train_sgmse.py composes (sgmse_cfg.training) and the final
model.pt payload: each checked against the computation it replaces, with shapes and known
values. Comparisons are within one process (same thread count) or use tolerances, so they
hold at any thread count."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sgmse_cfg import (
    CHECKPOINT_FORMAT,
    FINAL_CHECKPOINT_KEYS,
    NCSNPP_PRESETS,
    OUVESDE,
    SBVESDE,
    CNNNoiseEncoder,
    NCSNpp,
    NoiseCondScoreModel,
    PretrainedNoiseEncoder,
    ScoreModel,
    SeededLoss,
    SequenceNoiseEncoder,
    SmallUNet,
    SpecTransform,
    TransformerAudioEncoder,
    build_model,
    crops_to_specs,
    ema_decay,
    ema_update,
    final_checkpoint,
    fit_bank_on_files,
    load_model,
    save_audio_encoder,
    step_seed,
    validate,
)

SR = 16000
CLASSES = ["babble", "brown", "nonstationary", "pink", "white"]
TINY = dict(unet_channels=(4, 8), encoder_channels=(4, 8), embed_dim=8)


def _crops(B: int, frames: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    L = SpecTransform(sample_rate=SR).segment_length(frames)
    clean = 0.1 * torch.randn(B, L, generator=g)
    return clean + 0.05 * torch.randn(B, L, generator=g), clean


def _tiny(seed: int = 0, **kw) -> NoiseCondScoreModel:
    torch.manual_seed(seed)
    return build_model(**{**TINY, "n_classes": 5, "class_names": CLASSES, **kw})  # type: ignore[return-value]


# ---- build_model ---------------------------------------------------------------------------
def test_build_model_equals_the_hand_built_model() -> None:
    """The default options (train_sgmse's): SmallUNet + CNN encoder with input addition, OUVE,
    NC head, p_uncond 0.1, a k-NN bank of 4096 / k 10 -- the same model, weight for weight, as
    building it by hand from the same global seed."""
    torch.manual_seed(3)
    got = build_model(n_classes=5, class_names=CLASSES)
    torch.manual_seed(3)
    tr = SpecTransform(sample_rate=SR)
    want = NoiseCondScoreModel(SmallUNet(channels=(16, 32, 64, 64)),
                               CNNNoiseEncoder("reim_logmag", (16, 32, 64, 64), 128), inject="input_add",
                               n_classes=5, class_names=CLASSES, nc_weight=0.3, p_uncond=0.1,
                               bank={"max_size": 4096, "k": 10}, sde=OUVESDE(), transform=tr)
    assert type(got) is NoiseCondScoreModel and isinstance(got.sde, OUVESDE) and isinstance(got.backbone, SmallUNet)
    assert got.to_config() == want.to_config()
    sd_got, sd_want = got.state_dict(), want.state_dict()
    assert list(sd_got) == list(sd_want)
    for k in sd_want:
        assert torch.equal(sd_got[k], sd_want[k]) or (k == "bank.tau" and sd_got[k].isnan()), k
    nc = got.to_config()["noise_cond"]
    assert (nc["inject"], nc["p_uncond"], nc["nc_weight"], nc["n_classes"]) == ("input_add", 0.1, 0.3, 5)
    assert got.bank.max_size == 4096 and got.bank.k == 10 and got.sample_rate == SR
    assert got.null_embedding.requires_grad


def test_build_model_variants() -> None:
    plain = build_model(encoder="none", **TINY)
    assert type(plain) is ScoreModel and isinstance(plain.sde, OUVESDE) and plain.output_scaling == "sigma"
    bridge = build_model(sde="sbve", encoder="none", **TINY)
    assert isinstance(bridge.sde, SBVESDE) and bridge.output_scaling == "data"
    seq = build_model(encoder="seq", inject="film", num_tokens=3, encoder_features="reim", p_uncond=0.0, **TINY)
    assert isinstance(seq.encoder, SequenceNoiseEncoder) and seq.encoder.num_tokens == 3
    assert seq.nc_head is None and not seq.null_embedding.requires_grad  # p_uncond 0: never used in training
    xattn = build_model(backbone="ncsnpp", ncsnpp_preset="tiny", encoder="seq", inject="xattn", **TINY)
    assert isinstance(xattn.backbone, NCSNpp) and xattn.to_config()["backbone_config"]["context_dim"] == 8
    plain_ncsn = build_model(backbone="ncsnpp", ncsnpp_preset="tiny", encoder="none", inject="xattn")
    cfg = plain_ncsn.to_config()["backbone_config"]
    assert cfg["context_dim"] is None and cfg["nf"] == NCSNPP_PRESETS["tiny"]["nf"]  # no encoder: no context


def test_build_model_with_a_pretrained_encoder_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_audio_encoder(TransformerAudioEncoder(n_mels=32, embed_dim=16, depth=1, heads=2), tmp_path / "enc.pt")
    m = build_model(encoder="pretrained", encoder_ckpt=tmp_path / "enc.pt", num_tokens=4, **TINY)
    assert isinstance(m.encoder, PretrainedNoiseEncoder) and m.to_config()["noise_cond"]["encoder_config"]["freeze"]
    ref = torch.load(tmp_path / "enc.pt", weights_only=True)["model"]
    assert torch.equal(m.state_dict()["encoder.encoder.patch_embed.weight"], ref["patch_embed.weight"])
    assert not any(p.requires_grad for p in m.encoder.encoder.parameters())
    tuned = build_model(encoder="pretrained", encoder_ckpt=tmp_path / "enc.pt", finetune_encoder=True, **TINY)
    assert all(p.requires_grad for p in tuned.encoder.encoder.parameters())
    with pytest.raises(FileNotFoundError):
        build_model(encoder="pretrained", encoder_ckpt=tmp_path / "missing.pt", **TINY)


@pytest.mark.parametrize("kw, match", [
    ({"sde": "vp"}, "sde must be one of"), ({"backbone": "unet"}, "backbone must be one of"),
    ({"encoder": "beats"}, "encoder must be one of"), ({"inject": "xattn"}, "needs backbone='ncsnpp'"),
    ({"inject": "xattn", "backbone": "ncsnpp", "ncsnpp_preset": "tiny"}, "token"),
    ({"encoder": "pretrained"}, "encoder_ckpt")])
def test_build_model_refuses_impossible_options(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_model(**{**TINY, **kw})


# ---- crops, loss, seeds, EMA ---------------------------------------------------------------
def test_crops_to_specs_normalises_by_the_noisy_peak_per_crop() -> None:
    m = _tiny()
    noisy, clean = _crops(3, frames=32)
    noisy[1] *= 4.0
    noisy[2] = 0.0  # a silent crop stays 0 (divided by 1e-8), no NaN
    x0, y = crops_to_specs(m, noisy, clean, SR)
    assert x0.shape == y.shape == (3, 1, 256, 32) and x0.is_complex()
    tr = m.transform
    for b in range(2):
        peak = noisy[b].abs().max()
        torch.testing.assert_close(y[b, 0], tr.wave_to_spec(noisy[b] / peak, SR), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(x0[b, 0], tr.wave_to_spec(clean[b] / peak, SR), rtol=1e-6, atol=1e-7)
    assert torch.equal(y[2], torch.zeros_like(y[2])) and torch.isfinite(torch.view_as_real(x0[2])).all()
    # the pair's level does not matter: it is divided out
    for a, b in zip(crops_to_specs(m, noisy[:1], clean[:1], SR), crops_to_specs(m, 7 * noisy[:1], 7 * clean[:1], SR)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_seeded_loss_is_the_models_loss_with_a_seeded_generator() -> None:
    m = _tiny().train()
    x0, y = crops_to_specs(m, *_crops(4), SR)
    labels = torch.tensor([0, 3, -1, 2])
    total, terms = SeededLoss(m, with_labels=True)(x0, y, labels, 1234)
    ref_total, ref_terms = m.loss(x0, y, torch.Generator().manual_seed(1234), labels=labels)
    assert torch.equal(total, ref_total) and set(terms) == {"dsm", "nc", "nc_acc"} == set(ref_terms)
    no_labels, t2 = SeededLoss(m)(x0, y, labels, 1234)
    assert set(t2) == {"dsm"} and torch.equal(t2["dsm"], terms["dsm"])  # the same draws, no NC term
    torch.testing.assert_close(total, terms["dsm"] + 0.3 * terms["nc"])
    # two ranks with half the batch each draw what one process with the whole batch draws
    g_dsm = [SeededLoss(m)(x0[r::2], y[r::2], labels[r::2], 99, (r, 2))[1]["dsm"] for r in range(2)]
    whole = SeededLoss(m)(x0, y, labels, 99)[1]["dsm"]
    torch.testing.assert_close((g_dsm[0] + g_dsm[1]) / 2, whole, rtol=1e-5, atol=0)


def test_step_seed_known_values() -> None:
    assert step_seed(0, 0) == 0 and step_seed(0, 5, 1) == 5 * 1009 + 1
    assert step_seed(1, 2, 3) == 1_009_005_048  # (1 * 1_000_003 + 2) * 1009 + 3
    assert step_seed(7, -1 - 2, 1) == (7 * 1_000_003 - 3) * 1009 + 1  # validation batch 2
    assert len({step_seed(0, s, r) for s in range(100) for r in range(8)}) == 800


def test_ema_decay_warm_up() -> None:
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.999, 0, warmup=False) == 0.999
    assert ema_decay(0.999, 8989) < 0.999 and ema_decay(0.999, 8990) == 0.999 == ema_decay(0.999, 10**6)


def test_ema_update_is_an_in_place_lerp_of_float_parameters() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    ema_update(ema, model, 0.9)
    for e, b, m in zip(ema.parameters(), before, model.parameters()):
        torch.testing.assert_close(e, 0.9 * b + 0.1 * m, rtol=0, atol=1e-6)
        torch.testing.assert_close(e, b + 0.1, rtol=0, atol=1e-6)
    assert torch.equal(ema[1].num_batches_tracked, torch.tensor(0))  # buffers untouched
    ema_update(ema, model, 0.0)
    assert all(torch.equal(e, m) for e, m in zip(ema.parameters(), model.parameters()))


# ---- validation ----------------------------------------------------------------------------
def test_validate_is_the_crop_weighted_dsm_with_fixed_noise_and_nc_accuracy() -> None:
    m = _tiny().train()
    batches = [(*_crops(3, seed=1), torch.tensor([0, 4, -1])), (*_crops(2, seed=2), torch.tensor([1, 1]))]
    row = validate(m, batches, sample_rate=SR, seed=5, with_labels=True)
    assert not m.training and set(row) == {"valid_dsm", "valid_nc_acc"}
    # the previous computation, by hand
    dsm_sum, correct = 0.0, 0
    for b, (noisy, clean, labels) in enumerate(batches):
        x0, y = crops_to_specs(m, noisy, clean, SR)
        _, terms = m.loss(x0, y, torch.Generator().manual_seed(step_seed(5, -1 - b)), labels=labels)
        dsm_sum += float(terms["dsm"]) * len(noisy)
        correct += round(float(terms["nc_acc"]) * int((labels >= 0).sum()))
    assert row["valid_dsm"] == dsm_sum / 5 and row["valid_nc_acc"] == correct / 4
    assert validate(m, batches, sample_rate=SR, seed=5, with_labels=True) == row  # fixed noise
    assert validate(m, batches, sample_rate=SR, seed=6, with_labels=True)["valid_dsm"] != row["valid_dsm"]
    assert set(validate(m, batches, sample_rate=SR, seed=5)) == {"valid_dsm"}
    seen = []
    doubled = validate(m, batches, sample_rate=SR, seed=5, with_labels=True,
                       reduce=lambda t: (seen.append(t.clone()), t.mul_(2)))
    assert seen[0].dtype == torch.float64 and seen[0].tolist() == [dsm_sum, 5.0, float(correct), 4.0]
    assert doubled == row  # the means of doubled totals
    assert validate(m, [], sample_rate=SR, seed=5) == {"valid_dsm": 0.0}


# ---- the k-NN bank and the final model.pt ------------------------------------------------
def _write(folder: Path, n: int, seconds: float = 0.6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"n{i}.wav"
        sf.write(p, (0.05 * (i + 1) * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)
        paths.append(p)
    return paths


def test_fit_bank_on_files_embeds_whole_files_as_enhancement_does(tmp_path: Path) -> None:
    m = _tiny().eval()
    paths = _write(tmp_path, 6)
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(tmp_path / "short.wav", 0.1 * np.ones(100, np.float32), SR)
    files = [*paths[:3], tmp_path / "silent.wav", *paths[3:], tmp_path / "short.wav"]
    seen: list[int] = []
    bank = fit_bank_on_files(m, files, sample_rate=SR, max_files=5, seed=2,
                             progress=lambda it: (seen.append(i) or i for i in it))
    # the files drawn: torch.randperm(8) seeded 2, the first 5, in list order
    drawn = torch.randperm(8, generator=torch.Generator().manual_seed(2))[:5].sort().values.tolist()
    assert seen == drawn
    usable = [i for i in drawn if files[i].name.startswith("n")]
    assert bank is m.bank and len(bank) == len(usable) and torch.isfinite(bank.tau)
    ref = copy.deepcopy(m)
    import se_data

    embs = [ref.prepare(se_data.load_audio(files[i], SR)[0], SR)[1].pooled for i in usable]
    ref.fit_bank(torch.cat(embs), generator=torch.Generator().manual_seed(2))
    assert torch.equal(bank.embeddings, ref.bank.embeddings) and torch.equal(bank.tau, ref.bank.tau)
    assert bank.embeddings.shape == (len(usable), 8)
    with pytest.raises(ValueError, match="no|none of the 1"):
        fit_bank_on_files(m, [tmp_path / "silent.wav"], sample_rate=SR)


def test_final_checkpoint_keeps_the_descriptive_entries_and_the_weights(tmp_path: Path) -> None:
    live, ema = _tiny(0), _tiny(1)
    payload = {"format": CHECKPOINT_FORMAT, "tool": "train_sgmse", "config": {"seed": 0},
               "model_config": ema.to_config(), "sample_rate": SR, "frames": 32, "class_names": CLASSES,
               "versions": {"torch": "x"}, "epoch": 1, "step": 4, "best": {"epoch": 1, "key": "valid_dsm"},
               "history": [{"epoch": 0}],
               "model": live.state_dict(), "ema": ema.state_dict(), "optimizer": {"state": {}}, "rng": {}}
    torch.save(payload, tmp_path / "best.pt")
    m = load_model(tmp_path / "best.pt")
    m.fit_bank(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)))
    final = final_checkpoint(m)
    assert list(final) == [*FINAL_CHECKPOINT_KEYS, "ema"]
    assert all(final[k] == payload[k] for k in FINAL_CHECKPOINT_KEYS)
    assert all(torch.equal(final["ema"][k], v) for k, v in m.state_dict().items()) and len(final["ema"]) == len(
        m.state_dict())
    torch.save({"format": CHECKPOINT_FORMAT, **final}, tmp_path / "model.pt")
    back = load_model(tmp_path / "model.pt")
    assert len(back.bank) == 6 and torch.equal(back.bank.tau, m.bank.tau)
    with pytest.raises(ValueError, match="load_model"):
        final_checkpoint(_tiny())
