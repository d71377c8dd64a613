"""Training-data loading: partial reads (only the crop is read, resampled on its own) and
DataLoader workers (the same batches, bit for bit, for any worker count)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import se_data
from se_data.resample import RESAMPLE_FILTER, _sinc_kernel


def _tone_noise(rng: np.random.Generator, n: int, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / sr
    x = 0.4 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.1 * rng.standard_normal((n, channels))
    return x[:, 0] if channels == 1 else x


def _resample_tolerance(orig: int, new: int, peak: float) -> float:
    """Bound on the difference between two float32 evaluations of one resampled sample that sum
    the same K filter taps in different orders: 2 gamma_K sum|h| max|x|, gamma_K = K u / (1 - K u)
    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5)."""
    g = math.gcd(orig, new)
    f = RESAMPLE_FILTER
    kernel, _ = _sinc_kernel(orig // g, new // g, f["lowpass_filter_width"], f["rolloff"], f["resampling_method"],
                             f["beta"], torch.device("cpu"), torch.float32)
    k = kernel.shape[-1]
    u = 2.0 ** -24
    gamma = k * u / (1 - k * u)
    return 2 * gamma * float(kernel.abs().sum(-1).max()) * peak


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seg")
    rng = np.random.default_rng(0)
    out = {}
    for name, sr, ch, subtype in [("mono16", 16000, 1, "PCM_16"), ("stereo16", 16000, 2, "FLOAT"),
                                  ("mono48", 48000, 1, "PCM_16"), ("mono441", 44100, 1, "PCM_24")]:
        out[name] = root / f"{name}.wav"
        sf.write(out[name], _tone_noise(rng, int(1.3 * sr), sr, ch), sr, subtype=subtype)
    return out


@pytest.mark.parametrize("name", ["mono16", "stereo16"])
def test_partial_read_equals_slicing_the_full_read(files: dict[str, Path], name: str) -> None:
    full, sr = se_data.load_audio(files[name], 16000, mono=True)
    for start, length in [(0, 1), (0, full.numel()), (123, 4567), (full.numel() - 800, 800)]:
        seg = se_data.load_segment(files[name], start, length, 16000, mono=True)
        assert seg.dtype == torch.float32 and torch.equal(seg, full[start:start + length])


@pytest.mark.parametrize("name,orig", [("mono48", 48000), ("mono441", 44100)])
def test_resampled_partial_read_equals_the_full_resample_within_rounding(files: dict[str, Path], name: str,
                                                                          orig: int) -> None:
    full, _ = se_data.load_audio(files[name], 16000, resample=True)
    raw, _ = se_data.load_audio(files[name])
    tol = _resample_tolerance(orig, 16000, float(raw.abs().max()))
    assert tol < 1e-3
    for start, length in [(0, 1), (0, 3000), (777, 8000), (full.numel() - 2500, 2500)]:
        seg = se_data.load_segment(files[name], start, length, 16000, resample=True)
        assert seg.shape == (length,)
        assert float((seg - full[start:start + length]).abs().max()) <= tol
        if start > 0:  # the bound is tight enough to tell a crop one sample off
            assert float((seg - full[start - 1:start - 1 + length]).abs().max()) > 100 * tol


def test_partial_read_errors_name_the_file(files: dict[str, Path]) -> None:
    with pytest.raises(se_data.SampleRateError, match="mono48.wav"):
        se_data.load_segment(files["mono48"], 0, 100, 16000)
    with pytest.raises(se_data.AudioFileError, match="stereo16.wav.*2 channels"):
        se_data.load_segment(files["stereo16"], 0, 100, 16000)
    with pytest.raises(ValueError, match="mono16.wav.*outside"):
        se_data.load_segment(files["mono16"], 20000, 1000, 16000)


def _paired_tree(root: Path, sr: int, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        clean = _tone_noise(rng, int(sr * (0.6 + 0.1 * i)), sr)
        noisy = clean + 0.05 * rng.standard_normal(clean.size)
        for kind, x in (("clean", clean), ("noisy", noisy)):
            (root / kind).mkdir(parents=True, exist_ok=True)
            sf.write(root / kind / f"u{i:02d}.wav", x, sr)
    return root


def test_dataset_crops_equal_the_full_load_then_crop(tmp_path: Path) -> None:
    root = _paired_tree(tmp_path / "p16", 16000, 5, seed=1)
    ds = se_data.PairedFolders(root / "clean", root / "noisy", 16000, segment=0.75)  # one item is shorter: padded
    ds.set_epoch(3)
    for i in range(len(ds)):
        item = ds[i]
        clean, _ = se_data.load_audio(ds.entries[i].clean, 16000)
        noisy, _ = se_data.load_audio(ds.entries[i].noisy, 16000)
        c, nz, length = se_data.crop_pair(clean, noisy, 12000, generator=se_data.item_generator(0, 3, i))
        assert torch.equal(item["clean"], c) and torch.equal(item["noisy"], nz) and item["length"] == length
    assert any(ds[i]["length"] < 12000 for i in range(len(ds)))


@pytest.fixture(scope="module")
def tree48(tmp_path_factory) -> Path:
    return _paired_tree(tmp_path_factory.mktemp("p48") / "tree", 48000, 8, seed=2)


def test_batches_are_the_same_for_0_and_2_workers(tree48: Path, tmp_path: Path) -> None:
    noise = tmp_path / "noise" / "hum"
    noise.mkdir(parents=True)
    sf.write(noise / "n.wav", _tone_noise(np.random.default_rng(3), 44100, 44100), 44100)
    ds = se_data.PairedFolders(tree48 / "clean", tree48 / "noisy", 16000, segment=0.5, resample=True, seed=4)
    aug = se_data.NoiseAugmentedDataset(ds, tmp_path / "noise", seed=4, p=0.5)
    for data in (ds, aug):
        for epoch in (0, 1):
            before = torch.get_rng_state()
            runs = {w: list(se_data.iterate_batches(data, epoch=epoch, seed=4, batch_size=3, num_workers=w))
                    for w in (0, 2)}
            assert torch.equal(torch.get_rng_state(), before)  # the global RNG is never drawn on
            assert len(runs[0]) == len(runs[2]) == 2
            for a, b in zip(runs[0], runs[2]):
                for x, y in zip(a, b):
                    assert x.dtype == y.dtype and torch.equal(x, y)
        # not vacuous: epochs differ, and the augmented items differ from the plain ones
        e0 = next(se_data.iterate_batches(data, epoch=0, seed=4, batch_size=3))
        e1 = next(se_data.iterate_batches(data, epoch=1, seed=4, batch_size=3))
        assert not torch.equal(e0[0], e1[0])
    plain = next(se_data.iterate_batches(ds, epoch=0, seed=4, batch_size=3))
    mixed = next(se_data.iterate_batches(aug, epoch=0, seed=4, batch_size=3))
    assert not torch.equal(plain[0], mixed[0]) and torch.equal(plain[1], mixed[1])
    with pytest.raises(ValueError, match="num_workers"):
        next(se_data.iterate_batches(ds, epoch=0, seed=4, batch_size=3, num_workers=-1))
