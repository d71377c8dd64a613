"""OOD test-set builder: exact SNRs in the written files, manifests, bit-exact rebuild."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from se_data import load_audio
from se_data.noise import load_noise
from se_data.ood import MANIFEST_COLUMNS, OOD_TOOL_VERSION, build_ood_set, read_ood_manifest, rebuild_ood_set


def _sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ood")
    clean = tmp / "clean_src"
    (clean / "spk").mkdir(parents=True)
    for name in ("p287_001.wav", "p287_002.wav"):
        shutil.copy(shared_data / "speech" / "voicebank16k" / "clean" / name, clean / name)
    shutil.copy(shared_data / "speech" / "voicebank16k" / "clean" / "p287_004.wav", clean / "spk" / "p287_004.wav")
    esc = tmp / "esc50"
    shutil.copytree(shared_data / "noise" / "esc50", esc)
    out = tmp / "set1"
    summary = build_ood_set(clean, esc, out, snrs=(0, 5, 10), seed=7, sample_rate=16000, progress=False)
    return clean, esc, out, summary


def test_outputs_manifest_and_exact_snr(built):
    clean, esc, out, summary = built
    assert summary["n_files"] == 9 and summary["n_clean"] == 3 and set(summary["per_snr"]) == {0.0, 5.0, 10.0}
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.reader(f)
        assert tuple(next(reader)) == MANIFEST_COLUMNS
    rows = read_ood_manifest(out / "manifest.csv")
    assert rows == read_ood_manifest(out / "manifest.json")
    assert sorted(r.file for r in rows) == sorted(p.name for p in (out / "noisy").iterdir())
    assert sorted(p.name for p in (out / "clean").iterdir()) == sorted(p.name for p in (out / "noisy").iterdir())
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["seed"] == 7 and meta["tool_version"] == OOD_TOOL_VERSION and meta["sample_rate"] == 16000
    assert meta["settings"]["snrs"] == [0.0, 5.0, 10.0] and meta["settings"]["noise_layout"] == "esc50"
    assert meta["settings"]["trim_silence"] is True
    for rel, digest in meta["sources"]["clean"].items():
        assert _sha(clean / rel) == digest
    for rel, digest in meta["sources"]["noise"].items():
        assert _sha(esc / rel) == digest
    assert {r.clean_source for r in rows} == {"p287_001.wav", "p287_002.wav", "spk/p287_004.wav"}
    cats = {r["filename"]: r["category"] for r in csv.DictReader(open(esc / "meta" / "esc50.csv"))}
    for r in rows:
        assert r.noise_class == cats[r.noise_source.split("/")[-1]]
        assert r.file.endswith(f"_{r.noise_class}_snr{r.snr_db:g}dB.wav")
        # rebuild the mixture from the sources and the manifest's numbers
        s, _ = load_audio(clean / r.clean_source, 16000)
        n = load_noise(esc / r.noise_source, 16000, trim_silence=True)
        s, n = s.double().numpy(), n.double().numpy()
        seg = n[(r.noise_offset + np.arange(s.size)) % n.size]
        noisy_ref = r.clean_gain * s + r.noise_gain * seg
        assert abs(10 * np.log10(np.sum((r.clean_gain * s) ** 2) / np.sum((r.noise_gain * seg) ** 2)) - r.snr_db) < 1e-6
        y, sr = sf.read(out / "noisy" / r.file)
        c, _ = sf.read(out / "clean" / r.file)
        assert sr == 16000 and sf.info(out / "noisy" / r.file).subtype == "PCM_16"
        assert np.max(np.abs(y - noisy_ref)) <= 2.0 ** -15 and np.max(np.abs(c - r.clean_gain * s)) <= 2.0 ** -15
        assert r.clean_gain <= 1.0 and np.max(np.abs(noisy_ref)) <= 0.99 + 1e-12
        # the noise segment is not (near-)silent: within 20 dB of the clip's active level
        assert 10 * np.log10(np.mean(seg**2) / np.mean(n[np.abs(n) > 1e-4] ** 2)) > -30
        assert meta["outputs"][f"noisy/{r.file}"] == _sha(out / "noisy" / r.file)


def test_rebuild_is_byte_identical(built, tmp_path):
    _, _, out, _ = built
    s = rebuild_ood_set(out / "manifest.json", tmp_path / "again", progress=False)
    assert s["mismatched_outputs"] == []
    for sub in ("noisy", "clean"):
        a = sorted((out / sub).iterdir())
        assert [p.name for p in a] == sorted(p.name for p in (tmp_path / "again" / sub).iterdir())
        for p in a:
            assert _sha(p) == _sha(tmp_path / "again" / sub / p.name)
    assert _sha(out / "manifest.csv") == _sha(tmp_path / "again" / "manifest.csv")


def test_rebuild_refuses_changed_source_and_existing_out(built, tmp_path):
    clean, esc, out, _ = built
    moved = tmp_path / "moved_clean"
    shutil.copytree(clean, moved)
    # relocated but identical sources rebuild fine
    assert rebuild_ood_set(out / "manifest.json", tmp_path / "r1", clean_dir=moved,
                           progress=False)["mismatched_outputs"] == []
    data = bytearray((moved / "p287_002.wav").read_bytes())
    data[-1] ^= 1  # one bit of one sample
    (moved / "p287_002.wav").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="p287_002.wav: SHA-256 differs"):
        rebuild_ood_set(out / "manifest.json", tmp_path / "r2", clean_dir=moved, progress=False)
    assert not (tmp_path / "r2").exists()  # refused before writing anything
    before = _sha(out / "manifest.json")
    with pytest.raises(FileExistsError, match="nothing is overwritten"):
        build_ood_set(clean, esc, out, snrs=(0,), seed=1, progress=False)
    with pytest.raises(FileExistsError):
        rebuild_ood_set(out / "manifest.json", out, progress=False)
    assert _sha(out / "manifest.json") == before


def test_builder_rejects_bad_settings(built, tmp_path):
    clean, esc, _, _ = built
    with pytest.raises(ValueError, match="distinct"):
        build_ood_set(clean, esc, tmp_path / "a", snrs=(5, 5), progress=False)
    with pytest.raises(ValueError, match="unknown categories"):
        build_ood_set(clean, esc, tmp_path / "b", noise_filters={"categories": ["cat"]}, progress=False)
    with pytest.raises(FileNotFoundError):
        build_ood_set(tmp_path / "none", esc, tmp_path / "c", progress=False)


def test_pick_noise_offset_avoids_silent_padding():
    from se_data.ood import pick_noise_offset

    rng = np.random.default_rng(0)
    x = np.zeros(80000)
    x[60000:64000] = rng.standard_normal(4000)  # a 0.25 s event in 5 s of padding
    for seed in range(20):
        off = pick_noise_offset(x, 8000, np.random.default_rng(seed))
        seg = x[off:off + 8000]
        assert np.mean(seg**2) >= 10 ** (-20 / 10) * np.mean(x[60000:64000] ** 2) * 0.99
