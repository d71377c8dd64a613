"""Tests of the .nam reader/writer and the WaveNet / LSTM modules.

Real files: ``shared_data/nam`` (see its README for the expected loudness values).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from aa_distill import (
    LayerArrayConfig,
    NamFormatError,
    NamLSTM,
    NamWaveNet,
    load_nam,
    nam_document,
    nam_sha256,
    save_nam,
)


def _loudness_db(y: torch.Tensor) -> float:
    return 20.0 * math.log10(float(y.double().pow(2).mean().sqrt()))


@pytest.fixture(scope="module")
def loudness_input(shared_data) -> torch.Tensor:
    x, sr = sf.read(shared_data / "nam" / "loudness_input.wav", dtype="float64")
    assert sr == 48_000 and x.ndim == 1
    return torch.from_numpy(x)[None]


# ----------------------------------------------------------------------------- real files
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_wavenet_reproduces_metadata_loudness(shared_data, loudness_input, dtype):
    m = load_nam(shared_data / "nam" / "core_wavenet_tiny.nam", dtype=dtype)
    assert isinstance(m, NamWaveNet)
    assert m.sample_rate == 48_000 and not m.sample_rate_assumed
    assert m.receptive_field == 1 + 2 * 3 + 2 * 8
    with torch.no_grad():
        y = m(loudness_input)
    assert y.shape == loudness_input.shape and y.dtype == dtype
    assert abs(_loudness_db(y) - m.metadata["loudness"]) < 1e-3
    assert abs(_loudness_db(y) - (-20.0207)) < 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_lstm_matches_nam_loudness(shared_data, loudness_input, dtype):
    m = load_nam(shared_data / "nam" / "core_lstm_tiny.nam", dtype=dtype)
    assert isinstance(m, NamLSTM) and m.hidden_size == 3 and m.num_layers == 1
    assert m.num_weights == 70
    with torch.no_grad():
        y = m(loudness_input)
    # NAM's own implementation from the stored (h0, c0): -38.0717 dB (data README)
    assert abs(_loudness_db(y) - (-38.0717)) < 1e-3


@pytest.mark.parametrize("name, n_weights, channels", [
    ("core_wavenet_standard.nam", 13_802, (16, 8)),
    ("boss_sd1_feather.nam", 3_026, (8, 4)),
])
def test_real_captures_load_and_run(shared_data, name, n_weights, channels):
    path = shared_data / "nam" / name
    m = load_nam(path)
    doc = json.loads(path.read_text())
    assert m.num_weights == n_weights == len(doc["weights"])
    assert tuple(c.channels for c in m.layer_configs) == channels
    rf = 1 + sum((c.kernel_size - 1) * sum(c.dilations) for c in m.layer_configs)
    assert m.receptive_field == rf == 4093
    # no sample_rate key in these 0.5.0 files: NAM's standard 48 kHz is assumed and recorded
    assert m.sample_rate == 48_000 and m.sample_rate_assumed
    assert m.metadata is None and m.nam_version == "0.5.0"
    x = 0.5 * torch.sin(2 * math.pi * 220.0 * torch.arange(6000) / 48_000)[None]
    with torch.no_grad():
        y = m(x)
    assert y.shape == (1, 6000) and torch.isfinite(y).all()
    assert float(y[0, 4093:].abs().max()) > 1e-3  # a real capture makes sound


def test_float32_and_float64_agree(shared_data):
    path = shared_data / "nam" / "core_wavenet_standard.nam"
    m32, m64 = load_nam(path, torch.float32), load_nam(path, torch.float64)
    g = torch.Generator().manual_seed(0)
    x = 0.8 * torch.rand(1, 5000, generator=g, dtype=torch.float64) - 0.4
    with torch.no_grad():
        y32, y64 = m32(x.float()).double(), m64(x)
    rel = float((y32 - y64).abs().max() / y64.pow(2).mean().sqrt())
    assert rel < 1e-5


@pytest.mark.parametrize("name", ["core_wavenet_tiny.nam", "core_lstm_tiny.nam",
                                  "core_wavenet_standard.nam", "boss_sd1_feather.nam"])
def test_write_then_read_is_bit_exact(shared_data, tmp_path, name):
    src = shared_data / "nam" / name
    original = json.loads(src.read_text())
    m64 = load_nam(src, torch.float64)
    # float64 load keeps the file's weights exactly
    assert np.array_equal(m64.export_weights(), np.asarray(original["weights"]))
    out = save_nam(m64, tmp_path / "copy.nam")
    written = json.loads(out.read_text())
    assert written == original  # every key, the metadata and all weights round-trip
    assert list(written) == list(original)  # and in NAM's key order

    m32 = load_nam(src, torch.float32)
    save_nam(m32, tmp_path / "copy32.nam")
    back = load_nam(tmp_path / "copy32.nam", torch.float32)
    for (k1, p1), (k2, p2) in zip(m32.state_dict().items(), back.state_dict().items()):
        assert k1 == k2 and torch.equal(p1, p2)
    x = torch.linspace(-0.7, 0.7, 2000)[None]
    with torch.no_grad():
        assert torch.equal(m32(x), back(x))
    # a second cycle writes the same document again
    save_nam(back, tmp_path / "copy32b.nam")
    assert json.loads((tmp_path / "copy32b.nam").read_text()) == json.loads(
        (tmp_path / "copy32.nam").read_text())


# ----------------------------------------------------------------------------- forward semantics
def _reference_wavenet(model: NamWaveNet, x: np.ndarray) -> np.ndarray:
    """Literal NAM semantics with explicit tap sums (no conv1d): zero-padded start, valid
    dilated convolutions, head accumulators passed from array to array."""
    acts = {"Tanh": np.tanh, "ReLU": lambda v: np.maximum(v, 0.0),
            "Sigmoid": lambda v: 1 / (1 + np.exp(-v))}
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    p = lambda t: t.detach().double().numpy()  # noqa: E731
    xp = np.concatenate([np.zeros(model.receptive_field - 1), x])
    y, head = xp[None, :], None
    for arr in model.arrays:
        cfg = arr.cfg
        out_len = y.shape[1] - (cfg.receptive_field - 1)
        y = p(arr.rechannel.weight)[:, :, 0] @ y
        for layer in arr.layers:
            w, d, c = p(layer.conv.weight), layer.dilation, cfg.channels
            n = y.shape[1] - (cfg.kernel_size - 1) * d
            z = sum(w[:, :, k] @ y[:, k * d:k * d + n] for k in range(cfg.kernel_size))
            z = z + p(layer.conv.bias)[:, None] + p(layer.mixer.weight)[:, :, 0] @ xp[None, -n:]
            a = acts[cfg.activation](z[:c]) * sig(z[c:]) if cfg.gated else acts[cfg.activation](z)
            y = y[:, -n:] + p(layer.conv1x1.weight)[:, :, 0] @ a + p(layer.conv1x1.bias)[:, None]
            head = a[:, -out_len:] if head is None else head[:, -out_len:] + a[:, -out_len:]
        head = p(arr.head_rechannel.weight)[:, :, 0] @ head
        if arr.head_rechannel.bias is not None:
            head = head + p(arr.head_rechannel.bias)[:, None]
    return model.head_scale * head[0]


def _odd_wavenet() -> NamWaveNet:
    torch.manual_seed(3)
    layers = [LayerArrayConfig(1, 1, 3, 4, 2, (1, 3), "Tanh", gated=True, head_bias=True),
              LayerArrayConfig(4, 1, 2, 3, 3, (2,), "ReLU", gated=False, head_bias=False),
              LayerArrayConfig(3, 1, 1, 2, 4, (1, 5), "Sigmoid", gated=True, head_bias=True)]
    return NamWaveNet(layers, head_scale=0.5, sample_rate=44_100).double()


def test_wavenet_matches_literal_reference_gated_multi_array():
    m = _odd_wavenet()
    x = np.random.default_rng(0).uniform(-1, 1, 300)
    with torch.no_grad():
        y = m(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(y, _reference_wavenet(m, x), rtol=0, atol=1e-13)


def test_wavenet_receptive_field_and_causality():
    m = _odd_wavenet()
    rf = m.receptive_field
    assert rf == 1 + (1 * 4) + (2 * 2) + (3 * 6)
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (1, 200)))
    x2 = x.clone()
    x2[0, 50] = 0.3
    with torch.no_grad():
        diff = (m(x2) - m(x))[0].abs()
        assert float(diff[:50].max()) == 0.0  # causal
        assert float(diff[50 + rf - 1]) > 0.0  # the oldest sample in the field matters
        assert float(diff[50 + rf:].max()) == 0.0  # nothing older does
        # pad_start=False gives exactly the outputs whose field lies inside the input
        v = m(x2, pad_start=False)
        assert v.shape[-1] == 200 - rf + 1
        assert torch.equal(v, m(x2)[:, rf - 1:])


def test_wavenet_counts_and_chain_rules():
    m = _odd_wavenet()
    assert m.num_weights == sum(p.numel() for p in m.parameters()) + 1
    with pytest.raises(ValueError, match="channels 5 must equal the head_size"):
        NamWaveNet([LayerArrayConfig(1, 1, 3, 4, 3, (1,)), LayerArrayConfig(4, 1, 1, 5, 3, (1,))])
    with pytest.raises(ValueError, match="head_size 1"):
        NamWaveNet([LayerArrayConfig(1, 1, 2, 4, 3, (1,))])


def test_lstm_import_maps_gates_and_merged_bias():
    m = NamLSTM(hidden_size=2, num_layers=2).double()
    n = m.num_weights
    assert n == (4 * 2 * 3 + 8 + 4) + (4 * 2 * 4 + 8 + 4) + 3
    w = np.arange(n, dtype=np.float64) / n
    m.import_weights(w)
    # layer 0: [W_ih | W_hh] is (8, 1 + 2) row-major; W_ih is its first column
    mat = w[:24].reshape(8, 3)
    assert np.array_equal(m.core.weight_ih_l0.detach().numpy(), mat[:, :1])
    assert np.array_equal(m.core.weight_hh_l0.detach().numpy(), mat[:, 1:])
    assert np.array_equal(m.core.bias_ih_l0.detach().numpy(), w[24:32])
    assert float(m.core.bias_hh_l0.detach().abs().sum()) == 0.0
    assert np.array_equal(m.h0[0].detach().numpy(), w[32:34])
    assert np.array_equal(m.c0[0].detach().numpy(), w[34:36])
    assert np.array_equal(m.export_weights(), w)


def test_lstm_starts_from_stored_state():
    torch.manual_seed(0)
    m = NamLSTM(hidden_size=4).double()
    with torch.no_grad():
        m.h0.fill_(0.3)
        m.c0.fill_(-0.2)
        y = m(torch.zeros(2, 5, dtype=torch.float64))
        # the first output comes from one LSTM step from (h0, c0), computed by hand
        wi, wh = m.core.weight_ih_l0, m.core.weight_hh_l0
        g = wh @ m.h0[0] + m.core.bias_ih_l0 + m.core.bias_hh_l0 + wi[:, 0] * 0.0
        i, f, gg, o = g.chunk(4)
        c1 = torch.sigmoid(f) * m.c0[0] + torch.sigmoid(i) * torch.tanh(gg)
        h1 = torch.sigmoid(o) * torch.tanh(c1)
        expected = m.head(h1)[0]
    assert torch.allclose(y[:, 0], expected.expand(2), rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------- errors
def _tiny_doc(shared_data) -> dict:
    return json.loads((shared_data / "nam" / "core_wavenet_tiny.nam").read_text())


def _write(tmp_path, name, doc_or_text) -> str:
    p = tmp_path / name
    p.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return p


def test_error_malformed_json(tmp_path):
    p = _write(tmp_path, "broken.nam", '{"version": "0.5.4", "weights": [1, 2,')
    with pytest.raises(NamFormatError, match=r"broken\.nam.*malformed JSON"):
        load_nam(p)


def test_error_unknown_version(shared_data, tmp_path):
    doc = _tiny_doc(shared_data)
    doc["version"] = "0.7.0"
    with pytest.raises(NamFormatError, match=r"newer\.nam.*unsupported .nam version 0\.7\.0"):
        load_nam(_write(tmp_path, "newer.nam", doc))


def test_error_unknown_architecture(shared_data, tmp_path):
    doc = _tiny_doc(shared_data)
    doc["architecture"] = "ConvNet"
    with pytest.raises(NamFormatError, match=r"conv\.nam.*unsupported architecture 'ConvNet'"):
        load_nam(_write(tmp_path, "conv.nam", doc))


def test_error_weight_count(shared_data, tmp_path):
    doc = _tiny_doc(shared_data)
    doc["weights"] = doc["weights"][:-1]
    with pytest.raises(NamFormatError, match=r"short\.nam.*expected 131, got 130"):
        load_nam(_write(tmp_path, "short.nam", doc))
    doc = json.loads((shared_data / "nam" / "core_lstm_tiny.nam").read_text())
    doc["weights"].append(0.0)
    with pytest.raises(NamFormatError, match=r"long\.nam.*LSTM.*expected 70, got 71"):
        load_nam(_write(tmp_path, "long.nam", doc))


def test_error_non_finite_weights(shared_data, tmp_path):
    doc = _tiny_doc(shared_data)
    doc["weights"][7] = float("nan")  # json.dumps writes NaN, which json.loads accepts
    with pytest.raises(NamFormatError, match=r"nan\.nam.*non-finite weight.*index 7"):
        load_nam(_write(tmp_path, "nan.nam", doc))


def test_error_bad_config_and_head_scale(shared_data, tmp_path):
    doc = _tiny_doc(shared_data)
    doc["config"]["layers"][1]["channels"] = 3
    with pytest.raises(NamFormatError, match=r"chain\.nam.*must equal the head_size"):
        load_nam(_write(tmp_path, "chain.nam", doc))
    doc = _tiny_doc(shared_data)
    doc["config"]["layers"][0]["bottleneck"] = 2
    with pytest.raises(NamFormatError, match=r"keys\.nam.*unknown layer-array keys"):
        load_nam(_write(tmp_path, "keys.nam", doc))
    doc = _tiny_doc(shared_data)
    doc["weights"][-1] = 0.5
    with pytest.raises(NamFormatError, match=r"hs\.nam.*head_scale"):
        load_nam(_write(tmp_path, "hs.nam", doc))
    with pytest.raises(NamFormatError, match=r"list\.nam.*JSON object"):
        load_nam(_write(tmp_path, "list.nam", "[1, 2]"))


def test_save_refuses_overwrite_non_finite_and_merges_metadata(shared_data, tmp_path):
    m = load_nam(shared_data / "nam" / "core_wavenet_tiny.nam")
    p = save_nam(m, tmp_path / "a.nam", metadata={"teacher_sha256": "ab" * 32})
    with pytest.raises(FileExistsError):
        save_nam(m, p)
    doc = json.loads(p.read_text())
    assert doc["metadata"]["teacher_sha256"] == "ab" * 32
    assert doc["metadata"]["loudness"] == m.metadata["loudness"]  # kept
    with torch.no_grad():
        m.arrays[0].rechannel.weight[0, 0, 0] = float("inf")
    with pytest.raises(NamFormatError, match="non-finite"):
        nam_document(m)
    assert len(nam_sha256(p)) == 64



def test_saved_nam_respects_the_umask(tmp_path):
    """save_nam writes through a temp file; the result gets 0666 less the umask, as open() would."""
    import os
    import stat

    old = os.umask(0o027)
    try:
        p = save_nam(_odd_wavenet(), tmp_path / "b.nam")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
