"""Official SGMSE+ Lightning checkpoints (.ckpt): safe reading, the hyper-parameters mapped to a
ScoreModel, EMA weights by default, refusals by name, and parity with numbers made by the
sgmse 0.1.2 package itself. ``data/sgmse_ckpt.json`` (JSON text, written by
``bench/sgmse_ckpt_fixtures.py`` in an isolated environment) holds what sgmse's train.py records,
the layout of the file sgmse's ScoreModel saved through a Lightning Trainer with the seeded
weights of ``sgmse_ckpt_recipe.py``, and sgmse's outputs for it; the bench checked that
``sgmse_ckpt_recipe.write_checkpoint`` writes a file equal to Lightning's, which the tests write
into a temporary folder."""

from __future__ import annotations

import json
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

import sgmse_cfg
from sgmse_cfg import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    NCSNpp,
    ScoreModel,
    enhance_like_sgmse,
    is_sgmse_checkpoint,
    load_model,
    load_sgmse_checkpoint,
    read_sgmse_checkpoint,
)

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules beside this file (pytest's importlib mode)
from json_fixtures import assert_matches_summary, stored_max_diff, summary_scale, tensor_from_json  # noqa: E402
from sgmse_ckpt_recipe import score_inputs, sgmse_data_module_stand_in, waves, write_checkpoint  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "data" / "sgmse_ckpt.json"


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ----------------------------------------------------------------------------- parity with sgmse's own files
@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def ckpts(reference: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The .ckpt of each configuration, as sgmse's Lightning run saved it (recipe weights)."""
    folder = tmp_path_factory.mktemp("sgmse_ckpt")
    return {n: Path(write_checkpoint(folder / f"sgmse_{n}.ckpt", c)) for n, c in reference["configs"].items()}


def _inputs(c: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return score_inputs(c["hyper_parameters"]["n_fft"] // 2 + 1)


def test_the_fixtures_are_sgmse_checkpoints_in_lightnings_layout(reference: dict[str, Any],
                                                                 ckpts: dict[str, Path]) -> None:
    assert set(ckpts) == {"ncsnpp_ouve", "ncsnppv2_sbve"} and reference["sgmse"] == "0.1.2"
    assert "sgmse" not in sys.modules  # the stand-in class lived only while the files were written
    for name, path in ckpts.items():
        c = reference["configs"][name]
        assert is_sgmse_checkpoint(path)
        ck = read_sgmse_checkpoint(path)
        assert list(ck) == c["layout"] and ck["global_step"] == c["entries"]["global_step"]
        assert [[k, list(v.shape)] for k, v in ck["state_dict"].items()] == c["state_dict"]
        assert len(ck["ema"]["shadow_params"]) == len(c["state_dict"]) and ck["ema"]["decay"] == 0.999
    assert "optimizer_states" in reference["configs"]["ncsnpp_ouve"]["layout"]  # a full save, as train.py's
    assert "optimizer_states" not in reference["configs"]["ncsnppv2_sbve"]["layout"]  # weights_only


def test_the_model_output_equals_sgmses_with_the_ema_weights_by_default(reference: dict[str, Any],
                                                                         ckpts: dict[str, Path]) -> None:
    """sgmse evaluates with its EMA weights: so does load_model unless weights='live'; the
    live weights give sgmse's non-EMA output instead, far from the EMA one."""
    for name, c in reference["configs"].items():
        args = _inputs(c)
        outputs = {}
        for weights in ("ema", "live"):
            model = load_model(ckpts[name], weights=weights)
            assert model.info["weights"] == weights and model.info["format"] == "sgmse-lightning"
            with torch.no_grad():  # sgmse's forward: the score (OUVE) or the bridge's x0 estimate
                outputs[weights] = model.denoise(*args) if c["sde"] == "sbve" else model(*args)
        want_ema, want_live = (tensor_from_json(c["outputs"][k]) for k in ("score_ema", "score_live"))
        assert _rel(outputs["ema"], want_ema) < 2e-6, name
        assert _rel(outputs["live"], want_live) < 2e-6, name
        assert _rel(outputs["live"], want_ema) > 1e-2, name  # the naive route is another model


def test_sgmse_compat_reproduces_enhancement_py_file_after_file(reference: dict[str, Any],
                                                                 ckpts: dict[str, Path]) -> None:
    """enhancement.py after torch.manual_seed(seed): two files in a row from the global random
    stream, frames padded to 64, inverse STFT over all padded frames, then trimmed. The PC
    sampler agrees to float32 rounding; the bridge's first ODE step divides by sqrt(1e-8), which
    magnifies float32 rounding: ~1e-5 on the torch that wrote the reference, ~1e-4 on torch 2.4
    (other kernels round differently), still far below what another sample or model gives.
    sgmse's waveforms are stored as summaries (first / last 64 samples, every 16th, sum, sum of
    squares, max |value|), each bound derived from the elementwise tolerance."""
    for name, c in reference["configs"].items():
        model = load_model(ckpts[name])
        N = reference["N_pc"] if c["sde"] == "ouve" else None  # the bridge: its N from the checkpoint
        ws = waves(c["sample_rate"], c["hyper_parameters"]["hop_length"])
        torch.manual_seed(reference["seed"])
        outs = [enhance_like_sgmse(model, w, c["sample_rate"], N=N, snr=reference["snr"],
                                   corrector_steps=reference["corrector_steps"]) for w in ws]
        tol = 2e-6 if c["sde"] == "ouve" else 3e-4
        for out, want, w in zip(outs, c["outputs"]["enhanced"], ws):
            assert out.shape == w.shape
            assert_matches_summary(out, want, tol * summary_scale(want), name)
        # the stream continues from file to file: the second file alone is another sample
        if c["sde"] == "ouve":
            torch.manual_seed(reference["seed"])
            alone = enhance_like_sgmse(model, ws[1], c["sample_rate"], N=N)
            want = c["outputs"]["enhanced"][1]
            assert stored_max_diff(alone, want) / summary_scale(want) > 1e-3


def test_what_the_hyper_parameters_give(reference: dict[str, Any], ckpts: dict[str, Path]) -> None:
    c = reference["configs"]["ncsnpp_ouve"]
    model = load_model(ckpts["ncsnpp_ouve"])
    info = model.info
    cfg = info["model_config"]
    assert cfg["backbone_config"]["nf"] == 4 and cfg["backbone_config"]["ch_mult"] == (1, 2)
    assert cfg["backbone_config"]["attn_resolutions"] == (16,) and cfg["backbone_config"]["scale_by_sigma"]
    assert cfg["sde"] == {"name": "ouve", "theta": 1.5, "sigma_min": 0.05, "sigma_max": 0.5}
    assert cfg["transform"] == {"sample_rate": 16000, "n_fft": 62, "hop_length": 32, "window": "hann",
                                "spec_factor": 0.15, "spec_abs_exponent": 0.5, "transform_type": "exponent"}
    assert cfg["output_scaling"] == "none" and cfg["t_eps"] == 0.03
    assert info["sampler_defaults"] == {"sampler": "pc", "N": None, "pad_mode": "zero"}
    hp = info["sgmse"]["hyper_parameters"]
    assert hp["data_module_cls"] == "sgmse.data_module.SpecsDataModule"  # a name, never the class
    assert hp["backbone"] == "ncsnpp" and not info["sgmse"]["output_layer_negated"]
    assert info["step"] == c["entries"]["global_step"] and info["epoch"] == c["entries"]["epoch"]
    assert "sgmse" not in sys.modules  # nothing of the sgmse package was imported to read it
    sb = load_model(ckpts["ncsnppv2_sbve"])
    assert sb.info["model_config"]["sde"] == {"name": "sbve", "k": 2.6, "c": 0.4}
    assert sb.info["model_config"]["output_scaling"] == "data"
    assert sb.info["sampler_defaults"] == {"sampler": "sb_ode", "N": 4, "pad_mode": "reflect"}
    assert sgmse_cfg.resolve_sampler(sb)[0] == "sb_ode"
    # load_sgmse_checkpoint is what load_model dispatches to for such a file
    direct = load_sgmse_checkpoint(ckpts["ncsnpp_ouve"])
    assert all(torch.equal(a, b) for a, b in zip(direct.state_dict().values(), model.state_dict().values()))


def test_the_project_path_and_sgmse_compat_differ_only_by_design(ckpts: dict[str, Path]) -> None:
    """Same spectrogram estimate, the two ways back to a waveform: sgmse's inverse STFT over the
    padded frames changes only the last n_fft / 2 samples or so (~12 ms on average for SGMSE+'s
    510 / 128 STFT); everything before is the same."""
    model = load_model(ckpts["ncsnpp_ouve"])
    tr = model.transform
    wave = waves(16000, tr.hop_length)[0]
    Y = tr.wave_to_spec(wave, 16000)
    T = Y.shape[-1]
    padded = torch.cat([Y, 0.3 * torch.randn(Y.shape[0], 64 - T % 64, dtype=Y.dtype)], dim=-1)  # content in pad
    full = tr.spec_to_wave(padded, length=wave.shape[0])
    trimmed = tr.spec_to_wave(padded[:, :T], length=wave.shape[0])
    diff = (full - trimmed).abs()
    first = int(torch.nonzero(diff > 1e-6)[0])
    assert wave.shape[0] - first <= tr.n_fft // 2 and diff[:first].max() < 1e-6 and diff.max() > 1e-3


# ----------------------------------------------------------------------------- synthetic checkpoints
TINY = dict(nf=4, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), image_size=32)


def _hparams(data_module_cls: Any, **over: Any) -> dict[str, Any]:
    """hyper_parameters as sgmse's train.py records them (a subset of its ~40 entries)."""
    hp: dict[str, Any] = {
        "backbone": "ncsnpp", "sde": "ouve", "lr": 1e-4, "ema_decay": 0.999, "t_eps": 0.03, "num_eval_files": 20,
        "loss_type": "score_matching", "loss_weighting": "sigma^2", "network_scaling": None, "c_in": "1",
        "c_out": "1", "c_skip": "0", "sigma_data": 0.1, "l1_weight": 0.001, "pesq_weight": 0.0, "sr": 16000,
        "data_module_cls": data_module_cls, "theta": 1.5, "sigma_min": 0.05, "sigma_max": 0.5, "N": 30,
        "sampler_type": "pc", "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "centered": True,
        "base_dir": "/data/vb", "format": "default", "batch_size": 8, "n_fft": 62, "hop_length": 32,
        "num_frames": 256, "window": "hann", "num_workers": 4, "dummy": False, "spec_factor": 0.15,
        "spec_abs_exponent": 0.5, "normalize": "noisy", "transform_type": "exponent", "nf": 4, "image_size": 32,
        "nolog": False}
    hp.update(over)
    return hp


def _net(seed: int = 0, **cfg: Any) -> NCSNpp:
    torch.manual_seed(seed)
    net = NCSNpp(**{**TINY, **cfg})
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def _ckpt(path: Path, net: NCSNpp, *, ema: Any = "half", drop: tuple[str, ...] = (), extra_state: dict | None = None,
          **hp_over: Any) -> Path:
    """A Lightning checkpoint of sgmse's layout: 'dnn.' state_dict, torch_ema state with one
    shadow tensor per parameter in parameter order (here: half the live values), the
    hyper_parameters with the data-module class pickled by reference, and Lightning's entries."""
    sd = OrderedDict((f"dnn.{k}", v.clone()) for k, v in net.state_dict().items() if f"dnn.{k}" not in drop)
    sd.update(extra_state or {})
    with sgmse_data_module_stand_in() as cls:
        payload: dict[str, Any] = {
            "epoch": 3, "global_step": 1234, "pytorch-lightning_version": "2.6.1", "state_dict": sd,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4}}}},
            "callbacks": {"ModelCheckpoint{'monitor': 'pesq'}": {"best_model_score": torch.tensor(2.9),
                                                                  "best_model_path": "logs/x.ckpt"}},
            "optimizer_states": [{"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-4}]}],
            "lr_schedulers": [], "hparams_name": "kwargs", "hyper_parameters": _hparams(cls, **hp_over)}
        if ema == "half":
            payload["ema"] = {"decay": 0.999, "num_updates": 1234, "collected_params": None,
                              "shadow_params": [0.5 * p.detach().clone() for p in net.parameters()]}
        torch.save(payload, path)
    return path


def test_a_synthetic_checkpoint_loads_its_ema_weights_without_unpickling_the_class(tmp_path: Path) -> None:
    net = _net()
    path = _ckpt(tmp_path / "epoch=3-pesq=2.90.ckpt", net)
    assert "sgmse" not in sys.modules
    with pytest.raises(Exception, match="sgmse.data_module.SpecsDataModule"):  # plain weights_only refuses it
        torch.load(path, weights_only=True)
    model = load_model(path)
    assert "sgmse" not in sys.modules
    live = net.state_dict()
    got = model.backbone.state_dict()
    assert all(torch.equal(got[k], 0.5 * v) for k, v in net.named_parameters())
    model_live = load_model(path, weights="live")
    assert all(torch.equal(model_live.backbone.state_dict()[k], v) for k, v in live.items())
    assert model.info["epoch"] == 3 and model.info["step"] == 1234
    assert model.info["sgmse"]["hyper_parameters"]["data_module_cls"] == "sgmse.data_module.SpecsDataModule"
    x = torch.randn(2, 2, 32, 8, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.9, 0.2])
    with torch.no_grad():  # sgmse: score = -dnn(cat(x_t, y), t)
        assert torch.equal(model_live(x[:, :1], x[:, 1:], t), -net(x, t))
    assert not is_sgmse_checkpoint(tmp_path / "nope.ckpt")


def test_code_in_a_checkpoint_is_refused_by_name_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    net = _net()
    path = _ckpt(tmp_path / "evil.ckpt", net)
    with sgmse_data_module_stand_in():
        ck = torch.load(path, weights_only=False)  # our own file: nothing in it yet
        ck["hyper_parameters"]["callback"] = Payload()
        torch.save(ck, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=r"evil\.ckpt references code .*pathlib"):
        load_model(path)
    assert not marker.exists()


def _refusal(tmp_path: Path, net: NCSNpp | None = None, **kw: Any) -> str:
    path = _ckpt(tmp_path / "x.ckpt", net or _net(), **kw)
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    assert "x.ckpt" in str(e.value)
    return str(e.value)


@pytest.mark.parametrize(("over", "named"), [
    ({"backbone": "dcunet"}, "backbone 'dcunet' is not implemented"),
    ({"sde": "bbed"}, "SDE 'bbed' is not implemented"),
    ({"transform_type": "log"}, "transform_type='log'"),
    ({"nonlinearity": "elu"}, "nonlinearity='elu'"),
    ({"progressive": "residual"}, "progressive='residual'"),
    ({"backbone": "ncsnpp_v2", "loss_type": "denoiser"}, "loss_type='denoiser'"),
    ({"backbone": "ncsnpp_v2", "c_in": "edm"}, "c_in='edm'"),
    ({"backbone": "ncsnpp_v2", "c_out": "sigma"}, "network_scaling=None with c_out='sigma'"),
    ({"n_fft": 126}, "image_size=32 .* 64 bins"),
])
def test_what_is_not_implemented_is_refused_by_name(tmp_path: Path, over: dict, named: str) -> None:
    assert re.search(named, _refusal(tmp_path, **over))


def test_missing_or_foreign_keys_and_a_missing_ema_are_refused(tmp_path: Path) -> None:
    assert "missing ['dnn.output_layer.bias']" in _refusal(tmp_path, drop=("dnn.output_layer.bias",))
    msg = _refusal(tmp_path, extra_state={"beats.encoder.weight": torch.zeros(2)})
    assert "besides the backbone" in msg and "beats.encoder.weight" in msg
    msg = _refusal(tmp_path, ema=None)
    assert "no 'ema' entry" in msg and "weights='live'" in msg
    assert load_model(_ckpt(tmp_path / "y.ckpt", _net(), ema=None), weights="live").info["weights"] == "live"
    wrong = _net(nf=8)  # weights of another size than the hyper-parameters (nf 4) say
    assert re.search(r"dnn\.all_modules\.0\.W is \(8,\), .*needs \(4,\)", _refusal(tmp_path, net=wrong))


def test_our_own_checkpoints_and_junk_are_not_taken_for_sgmse_ones(tmp_path: Path) -> None:
    own = tmp_path / "model.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "tool": "train_sgmse", "state_dict": {}}, own)
    assert not is_sgmse_checkpoint(own)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"PK\x03\x04 not a zip")
    assert not is_sgmse_checkpoint(junk)
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        load_model(junk)


# ----------------------------------------------------------------------------- the output conventions
X = torch.randn(2, 1, 32, 8, dtype=torch.complex64, generator=torch.Generator().manual_seed(5))
Y = torch.randn(2, 1, 32, 8, dtype=torch.complex64, generator=torch.Generator().manual_seed(6))
T = torch.tensor([0.7, 0.15])


def _raw(net: NCSNpp) -> torch.Tensor:
    """The network output F without any 1/t scaling (sgmse's ncsnpp_v2 forward), same weights."""
    plain = NCSNpp(**{**TINY, "scale_by_sigma": False})
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        return plain.eval()(torch.cat([X, Y], dim=1), T)


@pytest.mark.parametrize(("hp", "expected"), [
    # sgmse ScoreModel.forward for each convention, written out from F (no 1/t) and sigma(t)
    ({"backbone": "ncsnpp_v2"}, lambda F, s, t: F),                                   # score = c_out F
    ({"backbone": "ncsnpp_v2", "network_scaling": "1/sigma"}, lambda F, s, t: F / s),
    ({"backbone": "ncsnpp_v2", "c_out": "1/sigma"}, lambda F, s, t: F / s),
    ({"backbone": "ncsnpp_v2", "network_scaling": "1/t"}, lambda F, s, t: F / t),
    ({"backbone": "ncsnpp_48k", "progressive": "none", "progressive_input": "none"},
     lambda F, s, t: -F / t),                                                        # -(W h + b) / t
])
def test_each_sgmse_score_convention_is_reproduced(tmp_path: Path, hp: dict, expected: Any) -> None:
    cfg = {"progressive": hp["progressive"], "progressive_input": hp["progressive_input"]} if "progressive" in hp else {}
    net = _net(**cfg)
    model = load_model(_ckpt(tmp_path / "c.ckpt", net, **hp), weights="live")
    plain = NCSNpp(**{**TINY, **cfg, "scale_by_sigma": False})
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        F = plain.eval()(torch.cat([X, Y], dim=1), T)
        got = model(X, Y, T)
    sigma = model.sde.std(T)[:, None, None, None]
    want = expected(F, sigma, T[:, None, None, None])
    assert _rel(got, want) < 1e-6


@pytest.mark.parametrize("backbone", ["ncsnpp_v2", "ncsnpp"])
def test_the_bridge_takes_sgmses_output_as_the_clean_estimate(tmp_path: Path, backbone: str) -> None:
    net = _net()
    hp = {"backbone": backbone, "sde": "sbve", "k": 2.6, "c": 0.4, "N": 50, "eps": 1e-8, "sampler_type": "ode",
          "loss_type": "data_prediction"}
    model = load_model(_ckpt(tmp_path / "sb.ckpt", net, **hp), weights="live")
    with torch.no_grad():
        got = model.denoise(X, Y, T)
        want = _raw(net) if backbone == "ncsnpp_v2" else -net(torch.cat([X, Y], dim=1), T)
    assert _rel(got, want) < 1e-6
    assert model.info["sampler_defaults"] == {"sampler": "sb_ode", "N": 50, "pad_mode": "reflect" if
                                              backbone == "ncsnpp_v2" else "zero"}
    assert isinstance(model, ScoreModel) and model.output_scaling == "data"
