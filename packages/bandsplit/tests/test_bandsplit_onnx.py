"""ONNX export: graphs on real/imaginary spectrograms [B, 2, F, T] with dynamic batch and length for
BSRNN, BSDT and the ERB-UNets; onnxruntime's output equals PyTorch's (1e-4 of the output's peak on
real speech through ``bandsplit.enhance``); the real-valued rewrite equals the complex model in
float64; the streaming step; int8 quantisation; metadata; errors."""

from __future__ import annotations

import pytest
import torch

import bandsplit
from bandsplit import RealSpectrogramModel, export_onnx, load_onnx, quantize_onnx
from bandsplit.onnx_export import OnnxModel, OnnxStreamer, read_metadata

pytest.importorskip("onnx", reason="ONNX export needs the onnx package: pip install 'bandsplit[onnx]'")
pytest.importorskip("onnxruntime", reason="ONNX inference needs onnxruntime: pip install 'bandsplit[onnx]'")

TINY = {
    "bsrnn": {"name": "bsrnn", "num_channel": 16, "num_layer": 2},
    "bsrnn-causal-interleaved": {"name": "bsrnn", "num_channel": 16, "num_layer": 2, "causal": True,
                                 "interleaved": True},
    "bsdt": {"name": "bsdt", "num_channel": 16, "num_layer": 2, "num_heads": 2},
    "bsdt-v1-standard-per-band": {"name": "bsdt-v1", "num_channel": 16, "num_layer": 1, "num_heads": 2,
                                  "attention": "standard", "temporal_sharing": "per_band"},
    "bsdt-dense-dynamic": {"name": "bsdt", "num_channel": 16, "num_layer": 1, "num_heads": 2, "graph": "dense",
                           "fusion": "dynamic"},
    "erb-unet-257": {"name": "erb-unet-257", "base_channels": 4, "d_model": 32, "transformer_layers": 1},
    "erb-unet-601-adapter": {"name": "erb-unet", "base_channels": 4, "d_model": 32, "transformer_layers": 1},
}


def _noise_spec(model, batch: int, frames: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return model.stft.stft(0.1 * torch.randn(batch, 128 * (frames - 1), generator=g))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each tiny model and its exported graph (exported once per module)."""
    out = {}
    folder = tmp_path_factory.mktemp("onnx")
    for name, cfg in TINY.items():
        torch.manual_seed(0)
        model = bandsplit.build_model(cfg).eval()
        out[name] = (model, export_onnx(model, folder / f"{name}.onnx"))
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_onnxruntime_equals_pytorch_at_other_batches_and_lengths(exported, name):
    model, path = exported[name]
    onnx_model = load_onnx(path, threads=1)
    for batch, frames, seed in [(1, 64, 1), (3, 101, 2), (1, 5, 3)]:    # traced at [1, 2, F, 64]
        x = _noise_spec(model, batch, frames, seed)
        with torch.no_grad():
            ref, y = model(x), onnx_model(x)
        assert y.shape == ref.shape and y.dtype == ref.dtype
        # float32 on both sides, other kernels: ~1e-7..1e-6 of the peak (the adapter's STFTs ~5e-6)
        err, peak = (y - ref).abs().max().item(), ref.abs().max().item()
        assert err < 1e-4 * peak, (batch, frames, err, peak)


@pytest.mark.parametrize("name", ["bsrnn", "bsrnn-causal-interleaved", "bsdt", "bsdt-v1-standard-per-band",
                                  "erb-unet-257"])
def test_real_valued_rewrite_equals_the_complex_model_in_float64(name):
    torch.manual_seed(0)
    model = bandsplit.build_model(TINY[name]).double().eval()
    x = _noise_spec(model, 2, 37, 4).to(torch.complex128)
    with torch.no_grad():
        ref = torch.view_as_real(model(x)).permute(0, 3, 1, 2)
        y = RealSpectrogramModel(model)(torch.view_as_real(x).permute(0, 3, 1, 2))
    assert (y - ref).abs().max().item() < 1e-12 * ref.abs().max().item()


def test_graph_layout_and_metadata(exported):
    import onnx

    model, path = exported["bsrnn"]
    proto = onnx.load(str(path))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, out.name, dims) == ("spec", "enhanced", ["batch", 2, 257, "frames"])
    meta = read_metadata(path)
    assert meta["stft"] == {"n_fft": 512, "hop_length": 128, "sample_rate": 16000, "window": "hann",
                            "center": True, "num_freqs": 257}
    assert meta["model"]["kind"] == "bsrnn" and meta["model"]["config"] == model.config
    assert meta["streaming"] is False
    adapter = read_metadata(exported["erb-unet-601-adapter"][1])
    assert adapter["stft"]["n_fft"] == 1200 and adapter["stft"]["hop_length"] == 100
    assert adapter["model"]["adapter"]["io_n_fft"] == 512
    assert isinstance(load_onnx(exported["erb-unet-601-adapter"][1]), bandsplit.ERBUNetAdapter)


def test_onnx_model_takes_the_real_layout_and_numpy(exported):
    model, path = exported["bsdt"]
    om = OnnxModel(path, threads=1)
    x = _noise_spec(model, 2, 20, 5)
    real = torch.view_as_real(x).permute(0, 3, 1, 2).contiguous()
    y_complex = om(x)
    y_real = om(real.double())
    assert y_real.dtype == torch.float64 and y_real.shape == real.shape
    torch.testing.assert_close(torch.view_as_complex(y_real.float().permute(0, 2, 3, 1).contiguous()), y_complex)
    y_np = om(real.numpy())
    assert (torch.from_numpy(y_np) - y_real.float()).abs().max().item() == 0.0
    with pytest.raises(ValueError, match="257"):
        om(torch.zeros(1, 2, 100, 4))


def test_real_speech_enhance_with_onnxruntime_equals_pytorch(shared_data, tmp_path):
    """The published-size BSRNN, a BSDT and the 257-bin ERB-UNet on real noisy speech, through
    ``bandsplit.enhance`` (the model's own STFT around the graph): spectrograms to 1e-4 of their peak."""
    import se_data

    noisy, sr = se_data.load_audio(shared_data / "speech" / "voicebank16k" / "noisy" / "p287_002.wav", 16000)
    for cfg in ({"name": "bsrnn", "num_channel": 64, "num_layer": 5},
                {"name": "bsdt", "num_channel": 32, "num_layer": 2, "num_heads": 2},
                {"name": "erb-unet-257"}):
        torch.manual_seed(0)
        model = bandsplit.build_model(cfg).eval()
        om = load_onnx(export_onnx(model, tmp_path / f"{cfg['name']}.onnx"), threads=1)
        x = model.stft.stft(noisy[None])
        with torch.no_grad():
            ref, y = model(x), om(x)
        err, peak = (y - ref).abs().max().item(), ref.abs().max().item()
        assert err < 1e-4 * peak, (cfg, err, peak)
        wave_ref, wave = bandsplit.enhance(model, noisy, sr), bandsplit.enhance(om, noisy, sr)
        assert wave.shape == noisy.shape
        assert (wave - wave_ref).abs().max().item() < 1e-4 * wave_ref.abs().max().item()


def test_streaming_graph_equals_the_eager_streamer_and_offline_model(tmp_path):
    torch.manual_seed(0)
    model = bandsplit.BSRNN(16, 2, causal=True).eval()
    path = export_onnx(model, tmp_path / "step.onnx", streaming=True, batch_size=2)
    s = load_onnx(path)
    assert isinstance(s, OnnxStreamer) and s.latency_samples == 640
    x = _noise_spec(model, 2, 50, 6)
    with torch.no_grad():
        ref = model(x)
    outs, t = [], 0
    for n in [1, 0, 4, 1, 20]:
        outs.append(s.push(x[..., t:t + n]))
        t += n
    assert outs[0].shape[-1] == 0 and outs[2].shape[-1] == 4      # one frame of delay, as the eager streamer
    outs += [s.push(x[..., t:]), s.flush()]
    y = torch.cat(outs, dim=-1)
    assert y.shape == ref.shape
    assert (y - ref).abs().max().item() < 1e-5 * ref.abs().max().item()
    with pytest.raises(ValueError, match="batches of 2"):
        s.push(x[:1, :, :3])
    with pytest.raises(ValueError, match="streaming step"):
        OnnxModel(path)


def test_int8_quantised_copy_is_close_and_marked(exported, tmp_path):
    model, path = exported["bsrnn"]
    q = quantize_onnx(path, tmp_path / "int8.onnx")
    meta = read_metadata(q)
    assert meta["quantization"]["kind"] == "int8-dynamic" and meta["stft"] == read_metadata(path)["stft"]
    x = _noise_spec(model, 1, 80, 7)
    y32, y8 = load_onnx(path, threads=1)(x), load_onnx(q, threads=1)(x)
    rel = (y8 - y32).abs().max().item() / y32.abs().max().item()
    assert 0.0 < rel < 0.1    # int8 weights change the numbers, by a few percent of the peak at most


def test_export_refuses_what_it_cannot_export(tmp_path):
    with pytest.raises(TypeError, match="BSRNN, BSDT"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="causal"):
        export_onnx(bandsplit.BSRNN(8, 1), tmp_path / "x.onnx", streaming=True)
    with pytest.raises(ValueError, match="adaptive"):
        export_onnx(bandsplit.build_model({"name": "erb-unet-257", "attention": "adaptive", "base_channels": 4,
                                           "d_model": 32, "transformer_layers": 1}), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="example_frames"):
        export_onnx(bandsplit.BSRNN(8, 1), tmp_path / "x.onnx", example_frames=1)


def test_export_leaves_the_model_unchanged(tmp_path):
    torch.manual_seed(0)
    model = bandsplit.build_model(TINY["bsdt"]).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.blocks[0].attn_t.impl == "auto"
