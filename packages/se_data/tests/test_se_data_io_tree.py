"""resample_tree (the library behind tools/resample_dataset.py), run in-process."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from se_data.resample_tree import resample_tree


def _write(p, x, sr, subtype="PCM_16"):
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(p, x, sr, subtype=subtype)


def test_corrupt_source_is_recorded_and_the_rest_done(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write(src / "a" / "ok.wav", np.zeros(4800, np.float32), 48000)
    (src / "a" / "broken.wav").write_bytes(b"RIFF....not a wav at all")
    _write(src / "a" / "empty.wav", np.zeros(0, np.float32), 48000)
    (src / "a" / "._ok.wav").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # not audio: copied
    (src / "a" / ".ok.wav.77.0123abcd.partial").write_bytes(b"half")  # a partial file: ignored
    rep = resample_tree(src, dst, 16000, progress=False)
    assert rep.other_copied == ["a/._ok.wav"]
    assert not rep.ok and sorted(rep.failed) == ["a/broken.wav", "a/empty.wav"]
    assert "empty" in rep.failed["a/empty.wav"]
    assert rep.resampled == ["a/ok.wav"] and sf.info(dst / "a" / "ok.wav").frames == 1600
    assert sorted(p.name for p in (dst / "a").iterdir()) == ["._ok.wav", "ok.wav"]


def test_clipping_is_reported_and_channels_subtype_kept(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    n = 4800
    sq = np.where(np.arange(n) % 96 < 48, 1.0, -1.0).astype(np.float32)  # full-scale square: Gibbs overshoot
    _write(src / "loud.wav", sq, 48000)
    _write(src / "st.wav", np.stack([sq * 0.5, -sq * 0.25], 1), 48000, subtype="PCM_24")
    _write(src / "fl.flac", sq * 0.5, 44100, subtype="PCM_16")
    rep = resample_tree(src, dst, 16000, progress=False)
    assert rep.ok and rep.clipped == ["loud.wav"]
    y, _ = sf.read(dst / "loud.wav", dtype="float32")
    assert np.abs(y).max() <= 1.0
    info = sf.info(dst / "st.wav")
    assert (info.channels, info.subtype, info.frames, info.samplerate) == (2, "PCM_24", 1600, 16000)
    assert sf.info(dst / "fl.flac").frames == -(-n * 160 // 441)
    assert rep.rates_seen == {48000: 2, 44100: 1}
    rep2 = resample_tree(src, dst, 16000, progress=False)  # everything done: all skipped
    assert rep2.skipped == ["fl.flac", "loud.wav", "st.wav"] and not rep2.resampled


def test_a_dst_file_at_the_wrong_rate_is_redone_not_kept(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write(src / "x.wav", np.zeros(4800, np.float32), 48000)
    _write(dst / "x.wav", np.zeros(1600, np.float32), 8000)  # a stale file from another run
    rep = resample_tree(src, dst, 16000, progress=False)
    assert rep.replaced == ["x.wav"] and rep.resampled == ["x.wav"]
    assert sf.info(dst / "x.wav").samplerate == 16000


def test_overlapping_or_missing_trees_are_refused(tmp_path):
    src = tmp_path / "src"
    _write(src / "x.wav", np.zeros(480, np.float32), 48000)
    with pytest.raises(ValueError, match="overlap"):
        resample_tree(src, src / "out", 16000, progress=False)
    with pytest.raises(ValueError, match="overlap"):
        resample_tree(src, tmp_path, 16000, progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        resample_tree(tmp_path / "nope", tmp_path / "d", 16000, progress=False)
