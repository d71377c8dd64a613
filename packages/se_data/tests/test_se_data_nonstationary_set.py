"""Non-stationary test-set builder: the written files follow the recorded SNR trajectory window by
window, the manifest records sources / segments / events / seeds, wrong-rate sources are
resampled and recorded, and a rebuild from the manifest is byte-identical."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf

from se_data import (brown_noise, build_nonstationary_set, pink_noise, read_nonstationary_manifest,
                     rebuild_nonstationary_set, snr_trajectory, synth_speech, white_noise)
from se_data.nonstationary_set import MANIFEST_COLUMNS, window_power_mean_db, windowed_snr_db

SR = 16000


def _sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _hashes(root):
    return {p.relative_to(root).as_posix(): _sha(p) for p in sorted(root.rglob("*.wav"))}


def _speech(seconds, seed, sr=SR):
    # no silence padding: with it some short synth_speech draws are all silence
    return synth_speech(seconds, seed=seed, sample_rate=sr, pad_silence=False).numpy()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Clean speech (one file at 22.05 kHz, one in a sub-folder) and a noise folder with three
    class sub-folders, one of them a 48 kHz stereo file."""
    root = tmp_path_factory.mktemp("ns")
    clean = root / "clean"
    (clean / "spk").mkdir(parents=True)
    sf.write(clean / "a.wav", _speech(2.5, 1), SR, subtype="PCM_16")
    sf.write(clean / "spk" / "b.wav", _speech(3.5, 2), SR, subtype="PCM_16")
    sf.write(clean / "c22.wav", _speech(2.0, 3, 22050), 22050, subtype="PCM_16")
    noise = root / "noise"
    for d in ("hum", "hiss", "buzz"):
        (noise / d).mkdir(parents=True)
    sf.write(noise / "hum" / "brown.wav", 0.1 * brown_noise(4 * SR, seed=1).numpy(), SR, subtype="PCM_16")
    stereo = np.stack([white_noise(3 * 48000, seed=2).numpy(), white_noise(3 * 48000, seed=3).numpy()], 1)
    sf.write(noise / "hiss" / "w48.wav", 0.1 * stereo, 48000, subtype="PCM_16")
    sf.write(noise / "buzz" / "pink.wav", 0.1 * pink_noise(3 * SR, seed=4).numpy(), SR, subtype="PCM_16")
    return clean, noise


def _window_tolerance_db(curve: np.ndarray, window: int) -> np.ndarray:
    """How far a white Gaussian noise's realised local SNR may stray from the trajectory's power
    mean over a window: the window power is a weighted chi-square mean with weights
    w = 10^(-snr/10), relative std sqrt(2·Σw²)/Σw; allow 6 standard deviations, plus 0.15 dB
    for the per-segment and whole-clip RMS normalisations of the composed noise."""
    w = 10.0 ** (-curve[: curve.size // window * window].reshape(-1, window) / 10.0)
    rel_std = np.sqrt(2.0 * np.sum(w**2, axis=1)) / np.sum(w, axis=1)
    return -10.0 * np.log10(1.0 - 6.0 * rel_std) + 0.15


@pytest.mark.parametrize("trajectory", ["random_walk", "steps"])
def test_written_files_follow_the_trajectory_window_by_window(sources, tmp_path, trajectory):
    clean, _ = sources
    out = tmp_path / "set"
    s = build_nonstationary_set(clean, None, out, seed=4, synthetic_kinds=("white",), n_noises=1,
                                segment_level_db=(0.0, 0.0), event_rate_hz=0.0, trajectory=trajectory,
                                snr_range=(-5.0, 15.0), knot_s=0.5, snr_window_s=0.25, progress=False)
    assert s["n_files"] == 3 and s["n_failed"] == 0 and s["n_events"] == 0
    win, step = 4000, 8000
    spread = []
    for r in read_nonstationary_manifest(out / "manifest.json"):
        curve = snr_trajectory(r.length, SR, seed=r.trajectory_seed, kind=trajectory, snr_range=(-5.0, 15.0),
                               knot_s=0.5).numpy()
        assert r.trajectory == trajectory and r.trajectory_knots_db == tuple(curve[::step])
        assert (r.snr_mean_db, r.snr_min_db, r.snr_max_db) == (curve.mean(), curve.min(), curve.max())
        assert -5.0 - 1e-9 <= r.snr_min_db <= r.snr_max_db <= 15.0 + 1e-9
        target = np.array(r.window_target_db)
        assert target.size == r.length // win and np.array_equal(target, window_power_mean_db(curve, win))
        # the realised local SNR, measured in the written PCM files themselves
        c, sr_c = sf.read(out / "clean" / r.file)
        y, sr_y = sf.read(out / "noisy" / r.file)
        assert sr_c == sr_y == SR and c.size == y.size == r.length
        realised = windowed_snr_db(c, y - c, win)
        assert np.max(np.abs(realised - np.array(r.window_realised_db))) < 0.01  # PCM_16 rounding only
        assert np.all(np.abs(realised - target) <= _window_tolerance_db(curve, win))
        assert abs(10 * math.log10(np.sum(c**2) / np.sum((y - c) ** 2)) - r.snr_clip_db) < 0.01
        # a constant SNR would not pass: the trajectory really moves within the file
        assert np.max(np.abs(realised - r.snr_clip_db)) > 2.0
        spread.append(target.max() - target.min())
    assert max(spread) > 8.0


def test_manifest_records_sources_segments_events_and_resampling(sources, tmp_path):
    clean, noise = sources
    out = tmp_path / "set"
    s = build_nonstationary_set(clean, noise, out, seed=9, n_noises=2, event_rate_hz=2.0, variants=2,
                                progress=False)
    assert s["n_files"] == 6 and s["n_clean"] == 3 and s["n_events"] > 0 and s["n_failed"] == 0
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["tool"] == "make_nonstationary_testset" and meta["seed"] == 9 and meta["sample_rate"] == SR
    assert meta["resampled"] == {"clean": ["c22.wav"], "noise": ["hiss/w48.wav"]}
    assert meta["source_audio"]["clean"]["c22.wav"] == {"sample_rate": 22050, "channels": 1}
    assert meta["source_audio"]["noise"]["hiss/w48.wav"] == {"sample_rate": 48000, "channels": 2}
    for kind, root in (("clean", clean), ("noise", noise)):
        for rel, digest in meta["sources"][kind].items():
            assert _sha(root / rel) == digest
    assert set(meta["sources"]["clean"]) == {"a.wav", "spk/b.wav", "c22.wav"}
    assert set(meta["library_versions"]) >= {"numpy", "torch", "se_data", "soundfile", "libsndfile"}
    rows = read_nonstationary_manifest(out / "manifest.json")
    assert sorted(r.file for r in rows) == sorted(p.name for p in (out / "noisy").iterdir()) \
        == sorted(p.name for p in (out / "clean").iterdir())
    assert {r.file for r in rows} == {f"{n}_v{v}.wav" for n in ("a", "spk__b", "c22") for v in (0, 1)}
    for r in rows:
        assert len(r.noise_classes) == 2 and len(set(r.noise_classes)) == 2
        assert all(src.split("/")[0] == cls for src, cls in zip(r.noise_sources, r.noise_classes))
        assert r.segments[0]["start"] == 0 and r.segments[-1]["end"] == r.length
        assert all(a["end"] == b["start"] for a, b in zip(r.segments, r.segments[1:]))
        assert all(r.noise_classes[g["index"]] == g["label"] and -3 <= g["level_db"] <= 3 for g in r.segments)
        assert all(0 <= e["start"] < e["end"] <= r.length and 0 <= e["level_db"] <= 12 for e in r.events)
        assert sf.info(out / "noisy" / r.file).samplerate == SR and r.output_gain <= 1.0
        assert meta["outputs"][f"noisy/{r.file}"] == _sha(out / "noisy" / r.file)
    assert rows[0].noise_sources != rows[1].noise_sources or rows[0].compose_seed != rows[1].compose_seed
    c22 = next(r for r in rows if r.clean_source == "c22.wav")
    assert c22.length == 2 * SR  # resampled from 44 100 samples at 22.05 kHz
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        lines = {x["file"]: x for x in reader}
    for r in rows:
        x = lines[r.file]
        assert x["noise_sources"].split("|") == list(r.noise_sources) and float(x["snr_clip_db"]) == r.snr_clip_db
        assert int(x["n_segments"]) == len(r.segments) and int(x["compose_seed"]) == r.compose_seed
        # the columns eval_ood groups its breakdown by
        assert float(x["snr_db"]) == r.snr_mean_db and x["noise_class"] == "|".join(r.noise_classes)


def test_rebuild_is_byte_identical_and_refuses_changed_sources(sources, tmp_path):
    clean, noise = sources
    out = tmp_path / "set"
    build_nonstationary_set(clean, noise, out, seed=2, n_noises=3, progress=False)
    built = _hashes(out)
    assert len(built) == 6
    s = rebuild_nonstationary_set(out / "manifest.json", tmp_path / "again", progress=False)
    assert s["mismatched_outputs"] == [] and _hashes(tmp_path / "again") == built
    # synthetic noise rebuilds too (regenerated from the recorded seeds)
    syn = tmp_path / "syn"
    build_nonstationary_set(clean, None, syn, seed=2, synthetic_kinds=("pink", "brown"), progress=False)
    s = rebuild_nonstationary_set(syn / "manifest.json", tmp_path / "syn2", progress=False)
    assert s["mismatched_outputs"] == [] and _hashes(tmp_path / "syn2") == _hashes(syn)
    # moved sources are found with noise_dir / clean_dir; a changed one is refused before writing
    moved = tmp_path / "moved_noise"
    shutil.copytree(noise, moved)
    s = rebuild_nonstationary_set(out / "manifest.json", tmp_path / "moved", noise_dir=moved, progress=False)
    assert _hashes(tmp_path / "moved") == built
    x, sr = sf.read(moved / "hum" / "brown.wav")
    sf.write(moved / "hum" / "brown.wav", 0.5 * x, sr, subtype="PCM_16")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        rebuild_nonstationary_set(out / "manifest.json", tmp_path / "bad", noise_dir=moved, progress=False)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(FileExistsError, match="nothing is overwritten"):
        rebuild_nonstationary_set(out / "manifest.json", out, progress=False)
    with pytest.raises(FileExistsError, match="nothing is overwritten"):
        build_nonstationary_set(clean, noise, out, seed=2, progress=False)
    assert _hashes(out) == built


def test_failed_mixtures_are_listed_and_the_rest_written(sources, tmp_path):
    _, noise = sources
    clean = tmp_path / "clean"
    clean.mkdir()
    sf.write(clean / "ok.wav", _speech(1.5, 5), SR, subtype="PCM_16")
    sf.write(clean / "silent.wav", np.zeros(SR), SR, subtype="PCM_16")
    sf.write(clean / "stereo.wav", np.stack([_speech(1.0, 6)] * 2, 1), SR, subtype="PCM_16")
    s = build_nonstationary_set(clean, noise, tmp_path / "out", seed=0, progress=False)
    assert s["n_files"] == 1 and s["n_failed"] == 2
    why = {f["clean_source"]: f["error"] for f in s["failures"]}
    assert "silent" in why["silent.wav"] and "2 channels" in why["stereo.wav"]
    assert [p.name for p in (tmp_path / "out" / "noisy").iterdir()] == ["ok.wav"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["failures"] == s["failures"]


def test_window_statistics_closed_form_and_bad_settings(sources, tmp_path):
    curve = np.r_[np.zeros(4), np.full(4, 10.0), np.zeros(2), np.full(2, 10.0), 3.0]
    got = window_power_mean_db(curve, 4)  # the last sample is left out (a partial window)
    assert np.allclose(got, [0.0, 10.0, -10 * math.log10((1 + 0.1) / 2)], atol=1e-12)
    speech = np.ones(8)
    noise = np.r_[np.full(4, 0.1), np.full(4, 1.0)]
    assert np.allclose(windowed_snr_db(speech, noise, 4), [20.0, 0.0], atol=1e-12)
    clean, noise_dir = sources
    for kw, msg in ((dict(snr_range=(10, 0)), "snr_range"), (dict(trajectory="zigzag"), "trajectory"),
                    (dict(subtype="FLOAT"), "subtype"), (dict(event_level_db=(5, 1)), "event_level_db")):
        with pytest.raises(ValueError, match=msg):
            build_nonstationary_set(clean, noise_dir, tmp_path / "x", progress=False, **kw)
    with pytest.raises(ValueError, match="synthetic_kinds"):
        build_nonstationary_set(clean, None, tmp_path / "x", synthetic_kinds=("grey",), progress=False)
    assert not (tmp_path / "x").exists()
