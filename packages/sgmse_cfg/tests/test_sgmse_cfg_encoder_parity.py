"""The BEATs / PANNs CNN14 / LAION-CLAP encoders against their peers, without the peers installed.

``tests/data/encoder_parity.json`` (JSON text, written by ``bench/pretrained_encoder_parity.py``
in an isolated environment with panns-inference 0.1.1, laion-clap 1.1.7 and speechbrain 1.1.2)
holds, for each published architecture at full size, the peer's state-dict key list and shapes
and a summary of the peer's outputs (per row: first and last 16 values, sum, sum of squares, max
|value|) when filled with the deterministic weights of ``encoder_parity_recipe.py``. Here the
same weights are rebuilt from the key list, wrapped as the published file wraps them, passed
through ``convert_encoder_checkpoint`` and loaded strictly into our module, whose outputs must
equal the peer's within 1e-4 of max(|output|, 1) elementwise (every summary bound follows from
that, ``json_fixtures.assert_matches_summary``). Also: the converter's wrappers and refusals,
and numpy entries in a file.
Nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sgmse_cfg import (
    CLAP_PRESETS,
    BEATsEncoder,
    ClapAudioEncoder,
    Cnn14Encoder,
    EncoderCheckpointError,
    PretrainedNoiseEncoder,
    check_encoder_checkpoint,
    convert_encoder_checkpoint,
    load_audio_encoder,
    load_pretrained_encoder,
)

sys.path.insert(0, str(Path(__file__).parent))  # the recipe module beside this file (pytest's importlib mode)
from encoder_parity_recipe import make_input, recipe_state_dict  # noqa: E402
from json_fixtures import assert_matches_summary, summary_scale  # noqa: E402

FIXTURE = Path(__file__).parent / "data" / "encoder_parity.json"
SB_G, SB_V = "parametrizations.weight.original0", "parametrizations.weight.original1"


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def _close(got: torch.Tensor, want: dict, rel: float = 1e-4) -> float:
    """``got`` within ``rel * max(max |peer output|, 1)`` of the peer's output, as far as its summary shows."""
    return assert_matches_summary(got, want, rel * max(summary_scale(want), 1.0))


def _keys(case: dict) -> list[tuple[str, list[int]]]:
    return [(k, list(s)) for k, s in case["keys"]]


def test_fixture_is_small_and_names_its_peers(fixture: dict) -> None:
    assert FIXTURE.stat().st_size < 150_000
    assert {"cnn14", "clap_HTSAT-tiny", "clap_PANN-14", "beats"} <= set(fixture)
    assert fixture["versions"]["panns-inference"] == "0.1.1" and fixture["versions"]["laion-clap"] == "1.1.7"


def test_cnn14_equals_panns_inference(fixture: dict) -> None:
    case = fixture["cnn14"]
    own = Cnn14Encoder()
    sd = recipe_state_dict(_keys(case), own.state_dict(), fixture["seed"])
    # the published file: {"iteration": ..., "model": state_dict, "sampler": numpy state}
    arch, cfg, conv = convert_encoder_checkpoint({"iteration": 660000, "model": sd}, "cnn14", source="Cnn14.pth")
    assert arch == "cnn14" and cfg["sample_rate"] == 32000 and cfg["classes_num"] == 527
    ours = Cnn14Encoder(**cfg).eval()
    assert {k: list(v.shape) for k, v in ours.state_dict().items()} == dict(_keys(case))  # peer's names and shapes
    ours.load_state_dict(conv, strict=True)
    x = make_input(*case["input"])
    with torch.no_grad():
        out = ours.clip_outputs(x)
    _close(out["embedding"], case["outputs"]["embedding"])
    _close(out["clipwise_output"], case["outputs"]["clipwise_output"])


@pytest.mark.parametrize("name", ["HTSAT-tiny", "PANN-14"])
def test_clap_audio_embedding_equals_laion_clap(fixture: dict, name: str) -> None:
    case = fixture[f"clap_{name}"]
    own = ClapAudioEncoder(**CLAP_PRESETS[name])
    sd = recipe_state_dict(_keys(case), own.state_dict(), fixture["seed"])
    # the published file: {"epoch", "state_dict": {"module." + every CLAP key}}, text branch included
    full = {**sd, **{k: torch.zeros(1) for k in case["other_keys"]}}
    ck = {"epoch": 45, "state_dict": {"module." + k: v for k, v in full.items()}}
    arch, cfg, conv = convert_encoder_checkpoint(ck, source=f"{name}.pt")  # auto-detected
    assert arch == "clap" and cfg["audio_model"] == CLAP_PRESETS[name]["audio_model"]
    if name == "HTSAT-tiny":
        assert cfg["depths"] == [2, 2, 6, 2] and cfg["num_heads"] == [4, 8, 16, 32] and cfg["embed_dim"] == 96
    ours = ClapAudioEncoder(**cfg).eval()
    assert {k: list(v.shape) for k, v in ours.state_dict().items()} == dict(_keys(case))
    ours.load_state_dict(conv, strict=True)
    x = make_input(*case["input"])
    with torch.no_grad():
        emb = ours.embed(x)
        tokens = ours(x)
    _close(emb, case["outputs"]["embedding"])
    assert tokens.shape == (2, 1, 512) and torch.equal(tokens[:, 0], emb)


def test_beats_equals_speechbrain(fixture: dict) -> None:
    case = fixture["beats"]
    peer_keys = _keys(case)
    ours_names = [(k.replace(SB_G, "weight_g").replace(SB_V, "weight_v"), s) for k, s in peer_keys]
    rec = recipe_state_dict(ours_names, {}, fixture["seed"])
    sb_sd = {pk: rec[ok] for (pk, _), (ok, _) in zip(peer_keys, ours_names)}
    # SpeechBrain's names (parametrized weight norm) and BEATs' own (weight_g / weight_v) both load
    for sd in (sb_sd, rec):
        arch, cfg, conv = convert_encoder_checkpoint({"cfg": case["cfg"], "model": sd}, "beats", source="BEATs.pt")
        assert arch == "beats" and cfg["deep_norm"] and cfg["predictor_class"] == 527
        ours = BEATsEncoder(**cfg).eval()
        assert set(ours.state_dict()) == set(rec)
        ours.load_state_dict(conv, strict=True)
    x = make_input(*case["input"])
    with torch.no_grad():
        out = ours.clip_outputs(x)
    assert out["tokens"].shape == tuple(case["outputs"]["tokens"]["shape"]) == (2, 24, 768)
    _close(out["tokens"], case["outputs"]["tokens"])
    _close(out["probs"], case["outputs"]["probs"])
    # without the stored cfg (a bare state dict): sizes from the tensors, iter3's deep norm
    arch, cfg2, _ = convert_encoder_checkpoint(rec, "beats")
    assert {k: cfg2[k] for k in cfg} == {k: cfg[k] for k in cfg}


# ---------------------------------------------------------------------------- files
def _small_beats() -> BEATsEncoder:
    torch.manual_seed(0)
    return BEATsEncoder(encoder_layers=2, embed_dim=32, encoder_embed_dim=48, encoder_ffn_embed_dim=64,
                        encoder_attention_heads=4, conv_pos=16, conv_pos_groups=4, relative_position_embedding=True,
                        num_buckets=32, max_distance=800, gru_rel_pos=True, deep_norm=True)  # 800: the released value


def test_published_layouts_load_from_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cnn = Cnn14Encoder().eval()
    # PANNs: numpy sampler state beside the weights (weights_only with numpy arrays allowed)
    torch.save({"iteration": 3, "model": cnn.state_dict(),
                "sampler": {"indexes_per_class": [np.arange(3)], "queue": np.zeros(2, np.int64)}}, tmp_path / "p.pth")
    assert check_encoder_checkpoint(tmp_path / "p.pth") == "cnn14"
    got = load_pretrained_encoder(tmp_path / "p.pth", output="embedding")
    x = make_input(5, 1, 16000)
    with torch.no_grad():
        assert torch.equal(got(x)[:, 0], cnn.clip_outputs(x)["embedding"])
    # a Lightning-style wrapper around a training module holding BEATs
    beats = _small_beats().eval()
    sd = {"model.noise_encoder.beats." + k: v for k, v in beats.state_dict().items()}
    torch.save({"state_dict": {**sd, "model.dnn.weight": torch.zeros(2)}, "epoch": 1}, tmp_path / "l.ckpt")
    enc = load_audio_encoder(tmp_path / "l.ckpt", arch="beats")
    assert isinstance(enc, BEATsEncoder) and enc.config["encoder_layers"] == 2
    with torch.no_grad():
        assert torch.equal(enc(make_input(6, 1, 8000)), beats(make_input(6, 1, 8000)))
    # as the noise encoder of a model, rebuilt from its config
    pe = PretrainedNoiseEncoder(enc, dim=8, num_tokens=3)
    assert pe(make_input(7, 2, 16000)).tokens.shape == (2, 3, 8)
    assert isinstance(PretrainedNoiseEncoder.from_config(pe.config).encoder, BEATsEncoder)


def test_other_files_are_refused_naming_file_architecture_and_keys(tmp_path: Path) -> None:
    cnn = Cnn14Encoder().state_dict()
    torch.save({"model": cnn}, tmp_path / "cnn.pth")
    with pytest.raises(EncoderCheckpointError, match=r"cnn\.pth is not a beats checkpoint.*looks like cnn14"):
        check_encoder_checkpoint(tmp_path / "cnn.pth", "beats")
    with pytest.raises(EncoderCheckpointError, match=r"cnn\.pth is not a clap checkpoint"):
        load_pretrained_encoder(tmp_path / "cnn.pth", "clap")
    part = {k: v for k, v in cnn.items() if not k.startswith("conv_block6.")}
    torch.save({"model": part}, tmp_path / "part.pth")
    with pytest.raises(EncoderCheckpointError, match=r"part\.pth is not a cnn14 .*missing \['conv_block6\.conv1"):
        load_pretrained_encoder(tmp_path / "part.pth")
    wide = dict(cnn, **{"fc1.weight": torch.zeros(2048, 1024)})
    torch.save({"model": wide}, tmp_path / "wide.pth")
    with pytest.raises(EncoderCheckpointError, match=re.escape("fc1.weight (2048, 1024) (expected (2048, 2048))")):
        load_pretrained_encoder(tmp_path / "wide.pth")
    torch.save({"model": {"encoder.weight": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(EncoderCheckpointError, match=r"other\.pt is none of the known .*encoder\.weight"):
        load_pretrained_encoder(tmp_path / "other.pt")
    fusion = {f"audio_branch.{k}": v for k, v in cnn.items()}
    fusion.update({"audio_projection.0.weight": torch.zeros(512, 2048), "audio_projection.0.bias": torch.zeros(512),
                   "audio_projection.2.weight": torch.zeros(512, 512), "audio_projection.2.bias": torch.zeros(512),
                   "audio_branch.fusion_model.local_att.0.weight": torch.zeros(1)})
    torch.save({"state_dict": fusion}, tmp_path / "fusion.pt")
    with pytest.raises(EncoderCheckpointError, match="feature-fusion CLAP"):
        load_pretrained_encoder(tmp_path / "fusion.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderCheckpointError, match=r"cannot read .*junk\.pt"):
        check_encoder_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        check_encoder_checkpoint(tmp_path / "missing.pt")


def test_front_end_sample_rate_is_read_from_the_mel_filters(tmp_path: Path) -> None:
    # PANNs' 16 kHz CNN14 (Cnn14_16k_mAP=0.438.pth: n_fft 512, hop 160, fmax 8 kHz) is told apart
    sd = Cnn14Encoder(sample_rate=16000, window_size=512, hop_size=160, fmax=8000.0).state_dict()
    _, cfg, _ = convert_encoder_checkpoint({"model": sd}, "cnn14")
    assert (cfg["sample_rate"], cfg["window_size"], cfg["hop_size"], cfg["fmax"]) == (16000, 512, 160, 8000.0)
    bad = dict(sd, **{"logmel_extractor.melW": sd["logmel_extractor.melW"] * 2})
    with pytest.raises(EncoderCheckpointError, match="mel filters"):
        convert_encoder_checkpoint({"model": bad}, "cnn14", source="odd.pth")
