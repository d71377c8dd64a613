"""Demo corpus: layout, exact SNRs, determinism, idempotence, difficulty (PESQ-WB) on the default test split."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from se_data import PairedFolders
from se_data.demo_corpus import DEFAULT_NOISE_WEIGHTS, demo_corpus_dir, make_demo_corpus

SMALL = dict(n_train=4, n_valid=2, n_test=2, seconds=1.0, seed=3)


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "small"
    return out, make_demo_corpus(out, **SMALL)


def test_layout_manifest_and_exact_snr(small):
    out, m = small
    assert m["reused"] is False and m["counts"] == {"train": 4, "valid": 2, "test": 2}
    assert m["seed"] == 3 and m["sample_rate"] == 16000 and m["generator_version"]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["settings_hash"] == m["settings_hash"] and len(on_disk["files"]) == 8
    for f in m["files"]:
        assert -5.0 <= f["snr_db"] <= 15.0 and f["noise"] in DEFAULT_NOISE_WEIGHTS and 90 <= f["f0_hz"] <= 250
        c, sr = sf.read(out / f["split"] / "clean" / f["name"])
        y, _ = sf.read(out / f["split"] / "noisy" / f["name"])
        assert sr == 16000 and c.size == y.size == 16000
        assert sf.info(out / f["split"] / "noisy" / f["name"]).subtype == "PCM_16"
        snr = 10 * np.log10(np.sum(c**2) / np.sum((y - c) ** 2))
        assert abs(snr - f["snr_db"]) < 0.05  # exact before 16-bit quantisation
    for split, n in m["counts"].items():
        ds = PairedFolders(out / split / "clean", out / split / "noisy", 16000)
        assert len(ds) == n


def test_same_seed_same_bytes_and_split_independence(small, tmp_path):
    out, m = small
    again = make_demo_corpus(tmp_path / "again", **SMALL)
    assert _hashes(tmp_path / "again") == _hashes(out)
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    assert again["settings_hash"] == m["settings_hash"]
    # a split depends only on (seed, split, index): the test split alone is byte-identical
    only_test = make_demo_corpus(tmp_path / "only_test", **{**SMALL, "n_train": 0, "n_valid": 0})
    assert only_test["counts"]["train"] == 0 and not (tmp_path / "only_test" / "train").exists()
    assert _hashes(tmp_path / "only_test") == {k: v for k, v in _hashes(out).items() if k.startswith("test/")}
    other = make_demo_corpus(tmp_path / "other", **{**SMALL, "seed": 4})
    assert set(_hashes(tmp_path / "other").values()).isdisjoint(_hashes(out).values())
    assert other["settings_hash"] != m["settings_hash"]


def test_idempotent_reuse_and_no_mixing(small, tmp_path):
    out, m = small
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    r = make_demo_corpus(out, **SMALL)
    assert r["reused"] is True and r["files"] == m["files"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    with pytest.raises(FileExistsError, match="other settings"):
        make_demo_corpus(out, **{**SMALL, "n_train": 5})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="no demo-corpus manifest"):
        make_demo_corpus(foreign, **SMALL)
    assert (foreign / "x.txt").read_text() == "mine"
    d1, d2 = demo_corpus_dir(tmp_path, **SMALL), demo_corpus_dir(tmp_path, **{**SMALL, "seed": 9})
    assert d1 != d2 and d1 == demo_corpus_dir(tmp_path, **SMALL)
    (out / "test" / "noisy" / m["files"][-1]["name"]).rename(tmp_path / "moved.wav")
    with pytest.raises(FileExistsError, match="incomplete"):
        make_demo_corpus(out, **SMALL)
    (tmp_path / "moved.wav").rename(out / "test" / "noisy" / m["files"][-1]["name"])


def test_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        make_demo_corpus(tmp_path / "a", n_train=0, n_valid=0, n_test=0)
    with pytest.raises(ValueError, match="noise_weights"):
        make_demo_corpus(tmp_path / "b", n_train=1, noise_weights={"purple": 1.0})
    with pytest.raises(ValueError, match="seconds"):
        make_demo_corpus(tmp_path / "c", n_train=1, seconds=0.1)
    with pytest.raises(ValueError, match="sample rate"):
        make_demo_corpus(tmp_path / "d", n_train=1, sample_rate=0)
    assert not any(tmp_path.iterdir())  # nothing left behind


def test_default_test_split_is_as_hard_as_voicebank_demand(tmp_path):
    """Mean noisy PESQ-WB of the default held-out split: VoiceBank-DEMAND's test set has 1.97."""
    pesq = pytest.importorskip("pesq", reason="the difficulty check needs the pesq package").pesq
    m = make_demo_corpus(tmp_path / "demo", n_train=0, n_valid=0)  # = the default corpus' test split
    assert m["counts"]["test"] == 40
    scores = []
    for f in m["files"]:
        c, _ = sf.read(tmp_path / "demo" / "test" / "clean" / f["name"])
        y, _ = sf.read(tmp_path / "demo" / "test" / "noisy" / f["name"])
        scores.append(pesq(16000, c, y, "wb"))
    mean = float(np.mean(scores))
    assert 1.5 <= mean <= 2.2, f"mean noisy PESQ-WB {mean:.3f}"
    assert min(scores) < 1.3 and max(scores) > 2.5  # a spread of difficulties, not one level
    snrs = [f["snr_db"] for f in m["files"]]
    assert -5 <= min(snrs) < -3 and 13 < max(snrs) <= 15  # stratified over the whole [-5, 15] dB range
