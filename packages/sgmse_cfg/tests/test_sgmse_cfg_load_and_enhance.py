"""load_model (checkpoints as tools/train_sgmse.py writes them, read without tools/ on the
path) and the module-level enhance (sampler from the model's SDE, guidance, diagnostics)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

import sgmse_cfg
from sgmse_cfg import (
    CHECKPOINT_FORMAT,
    SBVESDE,
    CheckpointError,
    CNNNoiseEncoder,
    NoiseCondScoreModel,
    SampleRateError,
    ScoreModel,
    SmallUNet,
    SpecTransform,
    enhance,
    load_model,
    resolve_sampler,
)

CLASSES = ["babble", "brown", "nonstationary", "pink", "white"]


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # off the zero init: conditional and null scores differ
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _nc_model(seed: int = 0) -> NoiseCondScoreModel:
    torch.manual_seed(seed)
    m = NoiseCondScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), CNNNoiseEncoder(channels=(4, 8), dim=8),
                            n_classes=5, class_names=CLASSES, p_uncond=0.1)
    _perturbed(m, seed + 1)
    m.fit_bank(torch.randn(24, 8, generator=torch.Generator().manual_seed(seed + 2)))
    return m.eval()


def _save(path: Path, model: ScoreModel, *, ema: ScoreModel | None = None, live: bool = True, **extra) -> Path:
    """A checkpoint with the entries tools/train_sgmse.py writes (best.pt / last.pt layout)."""
    payload = {"format": CHECKPOINT_FORMAT, "tool": "train_sgmse", "config": {"lr": 1e-3, "seed": 0},
               "model_config": model.to_config(), "sample_rate": model.sample_rate, "frames": 32,
               "class_names": getattr(model, "class_names", None),
               "versions": {"python": "3.11", "torch": str(torch.__version__), "sgmse-cfg": "0.1.0"},
               "epoch": 1, "step": 4, "best": {"epoch": 1, "value": 1.0, "key": "valid_dsm"},
               "ema": (ema or model).state_dict(), "optimizer": {"state": {}}, "rng": {"torch": torch.get_rng_state()}}
    if live:
        payload["model"] = model.state_dict()
    payload.update(extra)
    torch.save(payload, path)
    return path


def _wave(seconds: float, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(int(seconds * 16000), generator=torch.Generator().manual_seed(seed))


# ---- load_model -------------------------------------------------------------------------------
def test_load_model_rebuilds_the_model_with_ema_or_live_weights(tmp_path: Path) -> None:
    live, ema = _nc_model(0), _nc_model(10)  # two different weight sets of one architecture
    path = _save(tmp_path / "best.pt", live, ema=ema)
    m = load_model(path)
    assert type(m) is NoiseCondScoreModel and not m.training
    for k, v in ema.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k  # EMA is the default (as sgmse)
    assert len(m.bank) == 24  # the k-NN bank travels in the weights
    m_live = load_model(path, weights="live")
    for k, v in live.state_dict().items():
        assert torch.equal(m_live.state_dict()[k], v), k
    # what the model carries
    assert m.sample_rate == 16000 and isinstance(m.stft, SpecTransform) and m.stft is m.transform
    assert m.info["config"] == {"lr": 1e-3, "seed": 0} and m.info["versions"]["sgmse-cfg"] == "0.1.0"
    assert m.info["model_config"] == ema.to_config() and m.info["class_names"] == CLASSES
    assert m.info["weights"] == "ema" and m.info["path"] == str(path) and m_live.info["weights"] == "live"
    assert not {"ema", "model", "optimizer", "rng", "format"} & set(m.info)
    # the loaded model is the saved one: same scores
    x, y = (torch.randn(1, 1, 256, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(s))
            for s in (1, 2))
    t = torch.tensor([0.4])
    with torch.no_grad():
        torch.testing.assert_close(m(x, y, t, m.condition(m.encode(y))), ema(x, y, t, ema.condition(ema.encode(y))),
                                   rtol=0, atol=0)


def test_load_model_plain_score_model_and_final_model_pt(tmp_path: Path) -> None:
    torch.manual_seed(3)
    plain = _perturbed(ScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), SBVESDE(), output_scaling="data"), 4)
    path = _save(tmp_path / "model.pt", plain, live=False)  # the final model.pt: EMA weights only
    m = load_model(path, map_location="cpu")
    assert type(m) is ScoreModel and isinstance(m.sde, SBVESDE) and m.output_scaling == "data"
    assert all(torch.equal(m.state_dict()[k], v) for k, v in plain.state_dict().items())
    with pytest.raises(CheckpointError, match=r"model\.pt holds no live weights.*weights='ema'"):
        load_model(path, weights="live")


def test_load_model_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    m = _nc_model()
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_model(tmp_path / "nowhere.pt")
    torch.save({"format": "something-else/2", "ema": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt is not a checkpoint written by this toolkit.*"
                                              r"se-toolkit-checkpoint/1"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*junk\.pt"):
        load_model(tmp_path / "junk.pt")
    _save(tmp_path / "bsdt.pt", m, tool="train_bsdt")
    with pytest.raises(CheckpointError, match=r"bsdt\.pt was not written by tools/train_sgmse.py .*use "
                                              r"tools/enhance.py --ckpt \(bandsplit.load_model\)"):
        load_model(tmp_path / "bsdt.pt")
    # strict loading: a state dict with a missing key is refused
    sd = m.state_dict()
    sd.pop("null_embedding")
    payload = torch.load(_save(tmp_path / "partial.pt", m, live=False), weights_only=True)
    payload["ema"] = sd
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"(?s)partial\.pt: the ema weights do not fit.*null_embedding"):
        load_model(tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="'ema' or 'live'"):
        load_model(tmp_path / "partial.pt", weights="best")  # type: ignore[arg-type]
    # an unregistered backbone names the registry function
    cfg = m.to_config()
    cfg["backbone"] = "MyUNet"
    _save(tmp_path / "custom.pt", m, model_config=cfg)
    with pytest.raises(CheckpointError, match="register_backbone"):
        load_model(tmp_path / "custom.pt")


def test_load_model_needs_nothing_from_tools() -> None:
    """The loader reads the file with se_data's weights-only reader, not through tools/_train."""
    import se_data.checkpoint_io

    src = inspect.getsource(sgmse_cfg.model_loading)
    assert "_train" not in src and "se_data.read_checkpoint(" in src
    assert "weights_only=True" in inspect.getsource(se_data.checkpoint_io.read_checkpoint)


# ---- enhance -------------------------------------------------------------------------------
def test_enhance_is_prepare_plus_model_enhance_and_reports_diagnostics() -> None:
    m = _nc_model()
    wave = _wave(1.5, seed=5)
    diag: dict = {}
    out = enhance(m, wave, 16000, N=2, guidance="knn", w=1.5, generator=torch.Generator().manual_seed(7),
                  diagnostics=diag, max_chunk_seconds=1.0)
    gc, enc = m.prepare(wave, 16000, guidance="knn", w=1.5)
    ref = m.enhance(wave, 16000, cond=gc, sampler="pc", N=2, generator=torch.Generator().manual_seed(7),
                    max_chunk_seconds=1.0)
    assert torch.equal(out, ref) and out.shape == wave.shape
    u = m.uncertainty(enc)
    assert diag["sampler"] == "pc" and diag["N"] == 2 and diag["forwards_per_eval"] == 2
    assert diag["w"] == pytest.approx(1.5 * float(u["knn_reliability"][0]), rel=1e-6) and 0 < diag["w"] < 1.5
    assert diag["nc_class_name"] == CLASSES[int(u["nc_class"][0])]
    # guidance options as the tools pass them: static w=1 is the conditional score (one forward)
    d1: dict = {}
    a = enhance(m, wave, 16000, N=2, guidance="static", w=1.0, generator=torch.Generator().manual_seed(7),
                diagnostics=d1)
    b = enhance(m, wave, 16000, N=2, generator=torch.Generator().manual_seed(7))  # guidance default: cond
    assert torch.equal(a, b) and d1["forwards_per_eval"] == 1
    # the scale matters: CFG at w=2 (two halves per evaluation) moves the output
    d2: dict = {}
    c = enhance(m, wave, 16000, N=2, guidance="static", w=2.0, generator=torch.Generator().manual_seed(7),
                diagnostics=d2)
    assert d2["w"] == 2.0 and d2["forwards_per_eval"] == 2
    assert float((c - a).abs().max()) > 1e-2 * float(a.abs().max())


def test_enhance_picks_the_sampler_from_the_sde() -> None:
    torch.manual_seed(0)
    bridge = _perturbed(ScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), SBVESDE(), output_scaling="data"),
                        1).eval()
    assert resolve_sampler(bridge) == ("sb_ode", 10) and resolve_sampler(bridge, "sb_sde", 3) == ("sb_sde", 3)
    assert resolve_sampler(_nc_model()) == ("pc", 30) and resolve_sampler(_nc_model(), "ode") == ("ode", 30)
    wave = _wave(0.5, seed=2)
    diag: dict = {}
    out = enhance(bridge, wave, sr=16000, N=2, generator=torch.Generator().manual_seed(0), diagnostics=diag)
    assert diag == {"sampler": "sb_ode", "N": 2, "forwards_per_eval": 1} and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="sb_ode or sb_sde"):
        enhance(bridge, wave, 16000, sampler="pc")
    with pytest.raises(ValueError, match="pc or ode"):
        resolve_sampler(_nc_model(), "sb_ode")
    with pytest.raises(ValueError, match="noise-conditioned model.*guidance='cond'"):
        enhance(bridge, wave, 16000, guidance="static", w=2.0)
    with pytest.raises(ValueError, match="noise_ref"):
        enhance(bridge, wave, 16000, noise_ref=wave)
    with pytest.raises(SampleRateError, match="48000 Hz"):
        enhance(bridge, torch.randn(48000), 48000)


def test_enhance_of_a_loaded_model(tmp_path: Path) -> None:
    m = _nc_model()
    loaded = load_model(_save(tmp_path / "model.pt", m, live=False))
    wave = _wave(1.0, seed=9)
    a = enhance(loaded, wave, 16000, N=2, guidance="mix", generator=torch.Generator().manual_seed(1))
    b = enhance(m, wave, 16000, N=2, guidance="mix", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_is_chunked_counts_the_frames_enhance_transforms() -> None:
    """``is_chunked`` uses ``num_samples // hop + 1`` frames: the STFT's own count, checked at the
    boundary of max_chunk_seconds (frames x hop / rate)."""
    from sgmse_cfg import ScoreModel, SmallUNet

    m = ScoreModel(SmallUNet(channels=(4, 8), temb_dim=16))
    tr = m.transform
    hop, sr = tr.hop_length, tr.sample_rate
    for n in (tr.n_fft, 3 * hop - 1, 3 * hop, 16000):
        frames = tr.wave_to_spec(torch.zeros(n), sr).shape[-1]
        assert frames == n // hop + 1
        limit = frames * hop / sr
        assert not m.is_chunked(n, limit) and m.is_chunked(n, limit - 1e-9)
