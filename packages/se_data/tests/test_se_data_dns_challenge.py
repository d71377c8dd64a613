"""DNSChallengeDataset on a tiny synthetic DNS-Challenge-style tree: realised SNR = drawn SNR,
reverberation = a reference convolution, determinism per (seed, epoch, index), clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import se_data

SR = 16000
SEG = 0.25  # 4000 samples


def _write(path: Path, x: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, subtype="FLOAT")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dns") / "datasets"
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    for i, seconds in enumerate((1.0, 0.6, 0.2)):  # the last is shorter than the segment
        n = int(seconds * SR)
        _write(root / "clean" / f"reader_{i}" / f"book_{i}.wav",
               0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t[:n]) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t[:n])))
    _write(root / "noise" / "fan.wav", 0.2 * rng.standard_normal(SR))
    _write(root / "noise" / "click.wav", 0.2 * rng.standard_normal(1500))  # shorter: looped
    for j, decay in enumerate((0.01, 0.03)):
        k = np.arange(int(0.05 * SR))
        h = np.exp(-k / (decay * SR)) * rng.standard_normal(k.size)
        h[0] = 1.0
        _write(root / "impulse_responses" / f"room{j}.wav", 0.5 * h)
    return root


def _snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    c, y = clean.double().numpy(), noisy.double().numpy()
    return 10 * math.log10(np.sum(c**2) / np.sum((y - c) ** 2))


def test_realised_snr_is_the_drawn_one(tree: Path) -> None:
    ds = se_data.DNSChallengeDataset(tree, sample_rate=SR, segment=SEG, snr_range=(-5, 20), seed=3, num_items=12)
    snrs = []
    for i in range(len(ds)):
        item = ds[i]
        assert item["clean"].shape == item["noisy"].shape == (4000,) and item["clean"].dtype == torch.float32
        # float32 outputs: each sample rounded to 2^-24 relative, so the ratio moves by < 1e-5 dB
        assert _snr_db(item["clean"], item["noisy"]) == pytest.approx(item["snr_db"], abs=1e-4)
        assert -5 <= item["snr_db"] <= 20 and item["rir_name"] == ""
        assert float(item["noisy"].abs().max()) <= 0.99 + 1e-6
        snrs.append(item["snr_db"])
    assert len(set(snrs)) == len(snrs)
    # the SNR is the generator's fourth draw (crop start, noise file, noise offset, SNR)
    rng = ds.generator(0)
    rng.integers(0, SR - 4000 + 1)
    name = ds.noise[int(rng.integers(2))][0]
    rng.integers(0, SR - 4000 + 1) if name == "fan" else rng.integers(0, 1500)  # the short noise loops
    assert ds[0]["noise_name"] == name and ds[0]["snr_db"] == float(rng.uniform(-5, 20))
    # the short clean file is zero-padded; its real length is reported
    short = ds[2]
    assert short["length"] == 3200 and not short["clean"][3200:].any()


def test_reverberation_equals_a_reference_convolution(tree: Path) -> None:
    ds = se_data.DNSChallengeDataset(tree, sample_rate=SR, segment=SEG, rir_p=1.0, seed=5, num_items=6)
    dry = se_data.DNSChallengeDataset(tree, sample_rate=SR, segment=SEG, rir_p=0.0, seed=5, num_items=6)
    used = set()
    for i in range(len(ds)):
        item = ds[i]
        name = ds.clean[i % len(ds.clean)][1].path
        x, _ = sf.read(name, dtype="float32")
        crop = np.zeros(4000)
        crop[:item["length"]] = x[item["clean_offset"]:item["clean_offset"] + item["length"]]
        h, _ = sf.read(tree / "impulse_responses" / f"{item['rir_name']}.wav", dtype="float32")
        ref = np.convolve(crop, h.astype(np.float64))[:4000] * item["gain"]  # direct convolution, float64
        got = item["clean"].double().numpy()
        assert np.max(np.abs(got - ref)) <= 4 * 2.0**-24 * np.max(np.abs(ref))  # float32 rounding of the output
        assert _snr_db(item["clean"], item["noisy"]) == pytest.approx(item["snr_db"], abs=1e-4)
        used.add(item["rir_name"])
        # the same draws without reverberation: the target is the plain crop
        plain = dry[i]
        assert plain["rir_name"] == "" and plain["clean_offset"] == item["clean_offset"]
        assert np.max(np.abs(plain["clean"].double().numpy() - crop * plain["gain"])) <= 2.0**-24 * np.max(np.abs(crop))
        assert np.max(np.abs(got - plain["clean"].double().numpy() * item["gain"] / plain["gain"])) > 1e-3
    assert used == {"room0", "room1"}


def test_items_depend_on_seed_epoch_and_index_only(tree: Path) -> None:
    kw = dict(sample_rate=SR, segment=SEG, rir_p=0.5, level_range=(-35.0, -15.0), num_items=8)
    a = se_data.DNSChallengeDataset(tree, seed=1, **kw)
    b = se_data.DNSChallengeDataset(tree, seed=1, **kw)
    forward = [a[i] for i in range(8)]
    backward = {i: b[i] for i in reversed(range(8))}
    for i, item in enumerate(forward):
        assert torch.equal(item["noisy"], backward[i]["noisy"]) and torch.equal(item["clean"], backward[i]["clean"])
        rms = math.sqrt(float(np.mean(item["clean"].double().numpy() ** 2)))
        if float(item["noisy"].abs().max()) < 0.99 - 1e-6:  # not scaled down by the peak guard
            assert -35.0 - 1e-4 <= 20 * math.log10(rms) <= -15.0 + 1e-4
    assert len({it["rir_name"] for it in forward}) > 1  # some reverberated, some not
    c = se_data.DNSChallengeDataset(tree, seed=2, **kw)
    assert not torch.equal(c[0]["noisy"], forward[0]["noisy"])
    a.set_epoch(1)
    assert not torch.equal(a[0]["noisy"], forward[0]["noisy"])
    # DataLoader workers give the same batches
    w0 = list(se_data.iterate_batches(a, epoch=1, seed=0, batch_size=4, num_workers=0))
    w2 = list(se_data.iterate_batches(a, epoch=1, seed=0, batch_size=4, num_workers=2))
    assert all(torch.equal(x, y) for p, q in zip(w0, w2) for x, y in zip(p, q))


def test_errors_name_the_folder_or_file(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "clean").mkdir()
    (tmp_path / "noise").mkdir()
    with pytest.raises(se_data.AudioFileError, match=f"{tmp_path / 'clean'}: no audio files"):
        se_data.DNSChallengeDataset(tmp_path, sample_rate=SR, segment=SEG)
    with pytest.raises(FileNotFoundError, match="noise folder does not exist"):
        se_data.DNSChallengeDataset(clean_dir=tree / "clean", noise_dir=tmp_path / "nope", sample_rate=SR, segment=SEG)
    _write(tmp_path / "noise" / "hum48k.wav", 0.1 * np.ones(4800), 48000)
    with pytest.raises(se_data.SampleRateError, match="hum48k.wav \\(48000 Hz\\)"):
        se_data.DNSChallengeDataset(clean_dir=tree / "clean", noise_dir=tmp_path / "noise", sample_rate=SR,
                                    segment=SEG)
    ok = se_data.DNSChallengeDataset(clean_dir=tree / "clean", noise_dir=tmp_path / "noise", sample_rate=SR,
                                     segment=SEG, resample=True)
    assert ok[0]["noisy"].shape == (4000,)
    with pytest.raises(ValueError, match="rir_p=0.5 needs impulse responses"):
        se_data.DNSChallengeDataset(clean_dir=tree / "clean", noise_dir=tree / "noise", sample_rate=SR, segment=SEG,
                                    rir_p=0.5)
    with pytest.raises(ValueError, match="sample_rate"):
        se_data.DNSChallengeDataset(tree, sample_rate=16000.0, segment=SEG)  # type: ignore[arg-type]
