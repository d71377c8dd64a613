"""resample_tree (the library behind tools/resample_dataset.py), run in-process: failures,
clipping, resume, and redoing files whose source changed since."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

import se_data
from se_data import resample
from se_data.resample_tree import MANIFEST_NAME, resample_tree


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
    assert set(json.loads((dst / MANIFEST_NAME).read_text())["files"]) == {"a/ok.wav", "a/._ok.wav"}


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


def test_a_changed_source_is_redone_and_reported(tmp_path):
    """A DST file that is valid but was made from an older version of its source is redone."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    rng = np.random.default_rng(0)
    a, b = (0.1 * rng.standard_normal((2, 4800))).astype(np.float32)
    _write(src / "a.wav", a, 48000)
    _write(src / "b.wav", b, 48000)
    (src / "notes.txt").write_text("v1")
    rep = resample_tree(src, dst, 16000, progress=False)
    assert rep.resampled == ["a.wav", "b.wav"] and rep.stale == {}
    manifest = json.loads((dst / MANIFEST_NAME).read_text())
    assert manifest["format"] == 1 and manifest["sample_rate"] == 16000
    assert manifest["files"] == {rel: {"source": se_data.file_fingerprint(src / rel)}
                                 for rel in ("a.wav", "b.wav", "notes.txt")}
    old_b = sf.read(dst / "b.wav")[0]
    # a.wav's source is replaced by another signal of the same length, notes.txt by same-size text;
    # b.wav is only touched (same bytes, new mtime)
    _write(src / "a.wav", -a, 48000)
    (src / "notes.txt").write_text("v2")
    st = (src / "b.wav").stat()
    os.utime(src / "b.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rep2 = resample_tree(src, dst, 16000, progress=False)
    assert rep2.resampled == ["a.wav"] and rep2.skipped == ["b.wav"]
    assert set(rep2.stale) == {"a.wav", "notes.txt"} and rep2.stale["a.wav"].startswith("source changed: content changed")
    assert sorted(rep2.replaced) == ["a.wav", "notes.txt"] and rep2.other_copied == ["notes.txt"]
    got, _ = sf.read(dst / "a.wav", dtype="float32")
    want = resample(torch.from_numpy(sf.read(src / "a.wav", dtype="float32")[0]), 48000, 16000).numpy()
    assert np.abs(got - want).max() <= 1 / 32768 + 1e-6   # the new source's resampling, not the old one
    assert np.array_equal(sf.read(dst / "b.wav")[0], old_b) and (dst / "notes.txt").read_text() == "v2"
    rows = dict(rep2.summary_rows())
    assert rows["redone (source changed)"] == "2" and rows["replaced (invalid in DST)"] == "0"
    assert rep2.to_dict()["stale"] == rep2.stale
    assert resample_tree(src, dst, 16000, progress=False).stale == {}   # nothing changed since


def test_files_without_a_record_are_redone_and_the_manifest_is_no_source(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write(src / "x.wav", np.zeros(4800, np.float32), 48000)
    resample_tree(src, dst, 16000, progress=False)
    (dst / MANIFEST_NAME).unlink()   # e.g. DST made by a version without the manifest
    rep = resample_tree(src, dst, 16000, progress=False)
    assert rep.stale == {"x.wav": f"no record of its source in {MANIFEST_NAME}"} and rep.resampled == ["x.wav"]
    (dst / MANIFEST_NAME).write_text("{not json")   # a damaged manifest: nothing is trusted
    assert resample_tree(src, dst, 16000, progress=False).resampled == ["x.wav"]
    # a resampled tree resampled again: its manifest is not a source file
    rep3 = resample_tree(dst, tmp_path / "d8k", 8000, progress=False)
    assert rep3.resampled == ["x.wav"] and rep3.other_copied == []
    assert sorted(p.name for p in (tmp_path / "d8k").iterdir()) == [MANIFEST_NAME, "x.wav"]
