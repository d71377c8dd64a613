"""The pretrained-encoder adapter: a tiny randomly initialised stand-in saved to a local file
(BEATs' cfg + model layout) loads back exactly, bad files get clear errors, a frozen encoder
gets no gradients and stays in eval mode, the resampler matches torchaudio, and the adapter
works inside NoiseCondScoreModel (waveform recovered from the spectrogram). Nothing is
downloaded."""

from __future__ import annotations

import math

import pytest
import torch

from sgmse_cfg import (
    AudioEncoder,
    NoiseCondScoreModel,
    PretrainedNoiseEncoder,
    SmallUNet,
    TransformerAudioEncoder,
    load_audio_encoder,
    log_mel_filterbank,
    resample_sinc,
    save_audio_encoder,
    score_model_from_config,
)

TINY = dict(sample_rate=32000, n_mels=32, patch=16, embed_dim=24, depth=2, heads=2, mlp_ratio=2.0)



def _wave(B: int, L: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(B, L, generator=torch.Generator().manual_seed(seed))


def test_standin_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    enc = TransformerAudioEncoder(**TINY).eval()
    assert isinstance(enc, AudioEncoder)
    path = tmp_path / "standin_beats.pt"
    save_audio_encoder(enc, path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"cfg", "model"} and raw["cfg"]["arch"] == "transformer"
    loaded = load_audio_encoder(path).eval()
    w = _wave(2, 32000)
    out = enc(w)
    # 1 s at 32 kHz: 101 frames -> 112 padded -> 7 x 2 patches of 16 x 16
    assert out.shape == (2, 14, 24)
    torch.testing.assert_close(loaded(w), out, rtol=0, atol=0)


def test_bad_checkpoints_are_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_audio_encoder(tmp_path / "missing.pt")
    torch.save({"weights": {}}, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="no state dict"):
        load_audio_encoder(tmp_path / "a.pt")
    enc = TransformerAudioEncoder(**TINY)
    sd = enc.state_dict()
    sd.pop("norm_out.weight")
    torch.save({"cfg": {"arch": "transformer", **TINY}, "model": sd}, tmp_path / "b.pt")
    with pytest.raises(ValueError, match="norm_out.weight"):
        load_audio_encoder(tmp_path / "b.pt")
    torch.save({"cfg": {"arch": "clap-htsat", **TINY}, "model": {}}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="unknown audio-encoder architecture"):
        load_audio_encoder(tmp_path / "c.pt")
    (tmp_path / "d.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_audio_encoder(tmp_path / "d.pt")


def test_resampler_matches_torchaudio() -> None:
    ta = pytest.importorskip("torchaudio")
    x = _wave(2, 4000, 1)
    for a, b in ((16000, 32000), (16000, 48000), (44100, 16000), (16000, 22050)):
        want = ta.functional.resample(x, a, b)
        got = resample_sinc(x, a, b)
        assert got.shape == want.shape and torch.equal(got, want)  # se_data's kernel: bit-exact
    # a 1 kHz sine stays a 1 kHz sine (away from the edges)
    t = torch.arange(16000) / 16000
    up = resample_sinc(torch.sin(2 * math.pi * 1000 * t), 16000, 48000)
    t3 = torch.arange(48000) / 48000
    err = (up - torch.sin(2 * math.pi * 1000 * t3))[1000:-1000].abs().max()
    assert err < 1e-3


def test_mel_filterbank() -> None:
    fb = log_mel_filterbank(512, 32, 16000)
    assert fb.shape == (257, 32)
    assert float(fb.max()) <= 1.0 and (fb.sum(0) > 0).all()
    peaks = fb.argmax(0)
    assert (peaks[1:] >= peaks[:-1]).all()  # filters ordered in frequency


def test_adapter_frozen_and_inside_the_model(tmp_path) -> None:
    torch.manual_seed(0)
    save_audio_encoder(TransformerAudioEncoder(**TINY), tmp_path / "enc.pt")
    adapter = PretrainedNoiseEncoder(load_audio_encoder(tmp_path / "enc.pt"), dim=16, num_tokens=4)
    m = NoiseCondScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), adapter, inject="film", n_classes=3)
    m.train()
    assert not m.encoder.encoder.training  # a frozen encoder stays in eval mode
    e = m.encode(torch.randn(2, 1, 256, 32, dtype=torch.complex64))  # spectrogram -> waveform -> encoder
    assert e.tokens.shape == (2, 4, 16) and e.logits.shape == (2, 3)
    x0 = torch.randn(2, 1, 256, 32, dtype=torch.complex64)
    m.loss(x0, x0 + 0.5 * torch.randn_like(x0), torch.Generator().manual_seed(0),
           labels=torch.tensor([0, 2]))[0].backward()
    assert all(p.grad is None for p in m.encoder.encoder.parameters())
    assert m.encoder.proj.weight.grad is not None  # the projection is trained
    # the adapter sees the waveform at the encoder's rate: 16 kHz in, 32 kHz to the encoder
    seen = []
    m.encoder.encoder.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape))
    m.eval()
    m.prepare(_wave(1, 8000)[0], 16000)
    assert seen == [torch.Size([1, 16000])]
    # the config rebuilds the architecture; the state dict carries the pretrained weights
    m2 = score_model_from_config(m.to_config())
    m2.load_state_dict(m.state_dict())
    m2.eval()
    y = torch.randn(1, 1, 256, 32, dtype=torch.complex64)
    torch.testing.assert_close(m2.encode(y).pooled, m.encode(y).pooled)


def test_unfrozen_adapter_fine_tunes() -> None:
    torch.manual_seed(0)
    adapter = PretrainedNoiseEncoder(TransformerAudioEncoder(**TINY), dim=8, num_tokens=2, freeze=False)
    out = adapter(_wave(2, 8000))
    out.pooled.sum().backward()
    assert adapter.encoder.patch_embed.weight.grad is not None
    with pytest.raises(TypeError, match="not an AudioEncoder"):
        PretrainedNoiseEncoder(torch.nn.Linear(3, 3))
