"""Causal BSRNN streaming: ``model.streamer().push(frames)`` / ``flush()`` equals the offline causal
model for any split of the frames (float64 to 1e-12, float32 to 1e-5 of the output's peak on real
speech), one frame of delay, 40 ms algorithmic latency, clear errors."""

from __future__ import annotations

import pytest
import torch

import bandsplit
from bandsplit import BSDT, BSRNN, BSRNNStreamer


def _spec(model: BSRNN, seconds: float, batch: int = 1, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    wave = 0.1 * torch.randn(batch, int(seconds * 16000), generator=g, dtype=dtype)
    return model.stft.stft(wave)


def _stream(streamer, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    outs, t = [], 0
    for n in sizes:
        outs.append(streamer.push(x[..., t:t + n]))
        t += n
    outs.append(streamer.push(x[..., t:]))
    outs.append(streamer.flush())
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("sizes", [[1] * 40, [1, 3, 0, 7, 1, 2], [64], [0, 0, 5]])
def test_float64_stream_equals_offline_causal_model(interleaved: bool, sizes: list[int]):
    torch.manual_seed(0)
    model = BSRNN(16, 2, causal=True, interleaved=interleaved).double().eval()
    x = _spec(model, 0.5, batch=2)                                                  # 63 frames
    with torch.no_grad():
        ref = model(x)
    y = _stream(model.streamer(), x, sizes)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    # float64: only the LSTMs' chunking of the time axis differs from the offline pass
    assert (y - ref).abs().max().item() < 1e-12 * ref.abs().max().item()


def test_float32_stream_equals_offline_on_real_speech_to_1e5(shared_data):
    import se_data

    torch.manual_seed(0)
    model = bandsplit.build_model({"name": "bsrnn", "num_channel": 64, "num_layer": 5, "causal": True}).eval()
    audio, sr = se_data.load_audio(shared_data / "speech" / "voicebank16k" / "noisy" / "p287_001.wav", 16000)
    x = model.stft.stft(audio[None, :24000])                                         # 1.5 s: 188 frames
    with torch.no_grad():
        ref = model(x)
    g = torch.Generator().manual_seed(1)
    sizes = torch.randint(0, 6, (60,), generator=g).tolist()                          # frame by frame and in chunks
    y = _stream(model.streamer(), x, sizes)
    # float32 rounding (the LSTMs see the time axis in other chunks) scales with the signal: the
    # bound is relative to the output's peak magnitude (56.7 here; the error is ~4e-7 of it)
    err, peak = (y - ref).abs().max().item(), ref.abs().max().item()
    assert err < 1e-5 * peak, (err, peak)


def test_one_frame_of_delay_counts_and_unbatched_frames():
    model = BSRNN(8, 1, causal=True).double().eval()
    x = _spec(model, 0.2)[0]                                                          # [F, T] unbatched
    s = model.streamer()
    assert s.push(x[:, :1]).shape == (257, 0)      # frame 0 waits for frame 1 (the mask's look-ahead)
    assert s.push(x[:, 1:4]).shape == (257, 3)     # frames 0, 1, 2
    assert (s.frames_in, s.frames_out) == (4, 3)
    rest = s.push(x[:, 4:])
    last = s.flush()
    assert last.shape == (257, 1) and rest.shape == (257, x.shape[1] - 4)
    assert s.frames_in == 0 and s.flush().shape == (1, 257, 0)   # flush resets; a new stream has nothing pending


def test_reset_starts_a_new_stream():
    model = BSRNN(8, 1, causal=True).double().eval()
    x = _spec(model, 0.2, batch=2)
    s = model.streamer()
    first = _stream(s, x, [5, 5])
    s.push(x[..., :7])
    s.reset()
    assert torch.equal(_stream(s, x, [5, 5]), first)


def test_latency_is_window_plus_one_hop():
    s = BSRNN(8, 1, causal=True).streamer()
    assert s.latency_samples == 512 + 128 and s.latency_seconds == pytest.approx(0.040)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="causal=True"):
        BSRNN(8, 1).streamer()
    with pytest.raises(TypeError, match="BSRNN"):
        BSRNNStreamer(BSDT(16, 1, 2))
    assert not hasattr(BSDT, "streamer")     # BSDT has no causal form (see bandsplit.streaming)
    s = BSRNN(8, 1, causal=True).streamer()
    with pytest.raises(ValueError, match="complex"):
        s.push(torch.zeros(1, 257, 3))
    with pytest.raises(ValueError, match="257"):
        s.push(torch.zeros(1, 100, 3, dtype=torch.complex64))
    s.push(torch.zeros(2, 257, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="batch 2"):
        s.push(torch.zeros(1, 257, 3, dtype=torch.complex64))
