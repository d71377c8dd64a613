"""load_audio / save_audio / audio_info: round trips and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from se_data import AudioFileError, SampleRateError, audio_info, load_audio, save_audio


def _tone(sr: int, seconds: float = 0.5, f: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds), dtype=np.float64) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_round_trip_pcm16_and_float(tmp_path):
    x = _tone(16000)
    p16 = save_audio(tmp_path / "a.wav", torch.from_numpy(x), 16000)
    y, sr = load_audio(p16, 16000)
    assert sr == 16000 and y.dtype == torch.float32 and y.shape == (len(x),)
    assert np.abs(y.numpy() - x).max() <= 1.0 / 32768 + 1e-7  # PCM_16 quantisation
    assert audio_info(p16).subtype == "PCM_16" and audio_info(p16).frames == len(x)

    pf = save_audio(tmp_path / "b.wav", x, 16000, subtype="FLOAT")
    z, _ = load_audio(pf)
    assert torch.equal(z, torch.from_numpy(x))  # float32 is bit exact


def test_save_refuses_overwrite_and_leaves_no_partial_files(tmp_path):
    p = save_audio(tmp_path / "sub" / "a.wav", _tone(16000), 16000)
    with pytest.raises(FileExistsError, match="a.wav"):
        save_audio(p, _tone(16000, amp=0.1), 16000)
    assert abs(load_audio(p)[0].abs().max().item() - 0.5) < 1e-3  # untouched
    save_audio(p, _tone(16000, amp=0.1), 16000, overwrite=True)
    assert abs(load_audio(p)[0].abs().max().item() - 0.1) < 1e-3
    assert sorted(f.name for f in p.parent.iterdir()) == ["a.wav"]


def test_save_refuses_clipping_nan_and_empty(tmp_path):
    x = _tone(16000, amp=1.5)
    with pytest.raises(ValueError, match=r"clip.*FLOAT"):
        save_audio(tmp_path / "loud.wav", x, 16000)
    assert not (tmp_path / "loud.wav").exists()
    save_audio(tmp_path / "loud_float.wav", x, 16000, subtype="FLOAT")  # float keeps > 1
    assert load_audio(tmp_path / "loud_float.wav")[0].abs().max().item() == pytest.approx(1.5, abs=1e-4)
    x[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="empty"):
        save_audio(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["loud_float.wav"]


def test_wrong_rate_raises_with_file_rates_and_fix(tmp_path):
    p = save_audio(tmp_path / "x48.wav", _tone(48000), 48000)
    with pytest.raises(SampleRateError) as e:
        load_audio(p, 16000)
    msg = str(e.value)
    for part in ("x48.wav", "48000", "16000", "resample=True", "se_data.resample(", "tools/resample_dataset.py"):
        assert part in msg
    assert isinstance(e.value, ValueError)
    y, sr = load_audio(p, 16000, resample=True)
    assert sr == 16000 and y.shape == (8000,)
    with pytest.raises(ValueError, match="sample_rate="):
        load_audio(p, resample=True)
    # the earlier keyword `sr` is an alias of `sample_rate`
    assert torch.equal(load_audio(p, sr=16000, resample=True)[0], y)
    assert load_audio(p, sample_rate=16000, resample=True)[1] == 16000
    with pytest.raises(TypeError, match="not both"):
        load_audio(p, sample_rate=16000, sr=16000)


def test_stereo_needs_mono_flag(tmp_path):
    left, right = _tone(16000, f=300.0), _tone(16000, f=500.0, amp=0.25)
    p = tmp_path / "stereo.wav"
    sf.write(p, np.stack([left, right], 1), 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=r"stereo.wav.*2 channels.*mono=True"):
        load_audio(p, 16000)
    y, _ = load_audio(p, 16000, mono=True)
    np.testing.assert_allclose(y.numpy(), (left + right) / 2, atol=1e-7)


def test_empty_corrupt_missing_and_nan_files(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)  # valid header, 0 frames
    with pytest.raises(AudioFileError, match=r"empty.wav.*empty"):
        load_audio(empty)
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioFileError, match="zero.wav"):
        load_audio(zero_bytes)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioFileError, match=r"junk.wav.*corrupt"):
        load_audio(junk)
    with pytest.raises(AudioFileError, match=r"missing.wav.*no such"):
        load_audio(tmp_path / "missing.wav")
    x = _tone(16000)
    x[100], x[200] = np.nan, np.inf
    nan = tmp_path / "nan.wav"
    sf.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=r"nan.wav.*2 NaN/Inf"):
        load_audio(nan)


def test_wav_with_cut_header_is_an_error(tmp_path):
    p = save_audio(tmp_path / "t.wav", _tone(16000), 16000)
    data = p.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:30])  # header cut in the middle
    with pytest.raises(AudioFileError, match="cut.wav"):
        load_audio(cut)


def test_real_48k_file_reports_rate(shared_data):
    p = shared_data / "speech" / "p286_011_48k.wav"
    info = audio_info(p)
    assert (info.sample_rate, info.frames, info.channels) == (48000, 324960, 1)
    with pytest.raises(SampleRateError, match=r"p286_011_48k.wav.*48000 Hz.*16000 Hz"):
        load_audio(p, 16000)
    x, sr = load_audio(p)
    assert sr == 48000 and x.shape == (324960,)


def test_keyword_alias_maps_an_earlier_name():
    from se_data import keyword_alias

    @keyword_alias(sr="sample_rate")
    def f(x, sample_rate=None, *, scale=1):
        return x * scale, sample_rate

    assert f(2, sr=8000) == f(2, 8000) == f(2, sample_rate=8000) == (2, 8000)
    with pytest.raises(TypeError, match="give sample_rate or its earlier name sr, not both"):
        f(2, 8000, sr=8000)
    with pytest.raises(TypeError, match="not both"):
        f(2, sample_rate=8000, sr=8000)
    with pytest.raises(ValueError, match="no parameter"):
        keyword_alias(sr="rate")(f)


@pytest.mark.parametrize("subtype,channels", [("PCM_16", 1), ("PCM_24", 2), ("FLOAT", 1)])
def test_a_wav_cut_short_is_an_error_naming_both_frame_counts(tmp_path, subtype, channels):
    from se_data import AudioFileError, audio_info

    x = 0.1 * np.ones((16000, channels), np.float32)
    full = tmp_path / "full.wav"
    sf.write(full, x, 16000, subtype=subtype)
    assert audio_info(full).frames == 16000  # an intact file passes
    cut = tmp_path / "cut.wav"
    data = full.read_bytes()
    block = {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype] * channels
    cut.write_bytes(data[: len(data) - 1000 * block])  # the last 1000 frames are lost
    with pytest.raises(AudioFileError, match=r"cut.wav: truncated: its header declares 16000 frames but the file "
                                             r"holds 15000"):
        load_audio(cut, mono=True)
    y, sr = load_audio(cut, mono=True, allow_truncated=True)  # the explicit option accepts it
    assert sr == 16000 and y.shape == (15000,)
    # other containers and intact files are not affected
    sf.write(tmp_path / "a.flac", x, 16000)
    assert audio_info(tmp_path / "a.flac").frames == 16000


def test_cli_flags_phrase_fixes_as_the_tools_flags(tmp_path):
    """Inside ``cli_flags`` a fix names the tool's flag ("pass `--resample`"), or, where the tool
    has none, what to do instead (convert a stereo file); outside it names the API keywords."""
    from se_data import cli_flags

    stereo, at48 = tmp_path / "stereo.wav", tmp_path / "at48.wav"
    sf.write(stereo, np.zeros((1600, 2)) + 0.1, 16000)
    sf.write(at48, np.zeros(4800) + 0.1, 48000)

    def message(path, **kw):
        with pytest.raises((AudioFileError, SampleRateError)) as e:
            load_audio(path, 16000, **kw)
        return str(e.value)

    assert "mono=True" in message(stereo) and "resample=True" in message(at48)
    with cli_flags(resample="--resample", mono="--downmix"):
        m_stereo, m_rate = message(stereo), message(at48)
    assert "pass `--downmix`" in m_stereo and "mono=True" not in m_stereo and str(stereo) in m_stereo
    assert "pass `--resample`" in m_rate and "resample=True" not in m_rate and "se_data." not in m_rate
    with cli_flags():  # a tool with neither flag: how to convert, and the whole-tree resampler
        m_stereo, m_rate = message(stereo), message(at48)
    assert "-ac 1" in m_stereo and "mono=True" not in m_stereo
    assert "tools/resample_dataset.py" in m_rate and "resample=True" not in m_rate and "--resample`" not in m_rate
    assert "mono=True" in message(stereo)  # the block's phrasing ends with it
