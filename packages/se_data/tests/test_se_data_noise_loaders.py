"""ESC-50, UrbanSound8K and folder noise loaders on real noise recordings."""

from __future__ import annotations

import csv
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from se_data import resample
from se_data.noise import ESC50, NoiseFolder, UrbanSound8K, open_noise_set


def test_esc50_real_clips_resampled_to_16k(shared_data):
    root = shared_data / "noise" / "esc50"
    s = ESC50(root, 16000)
    assert len(s) == 5
    assert s.labels == ["car_horn", "dog", "thunderstorm"]
    for i in range(len(s)):
        item = s[i]
        assert item.sample_rate == 16000 and item.audio.dtype == torch.float32 and item.audio.ndim == 1
        assert item.audio.numel() == 80000  # 5 s at 44.1 kHz -> 5 s at 16 kHz
        raw, sr = sf.read(item.source, dtype="float32")
        assert sr == 44100
        torch.testing.assert_close(item.audio, resample(torch.from_numpy(raw), 44100, 16000), rtol=0, atol=1e-6)
        assert item.meta["fold"] == int(item.source.name.split("-")[0])  # {FOLD}-{CLIP}-{TAKE}-{TARGET}.wav
        assert item.meta["target"] == int(item.source.stem.split("-")[-1])
    assert s[0].label == "dog" and s[0].meta["esc10"] is True


def test_esc50_filters_and_errors(shared_data, tmp_path):
    root = shared_data / "noise" / "esc50"
    assert [e.label for e in ESC50(root, 16000, categories=["thunderstorm"]).entries] == ["thunderstorm"] * 3
    assert [e.meta["fold"] for e in ESC50(root, 16000, folds=[1, 2]).entries] == [1, 2]
    assert len(ESC50(root, 16000, esc10_only=True)) == 1
    with pytest.raises(ValueError, match="unknown categories.*'cat'"):
        ESC50(root, 16000, categories=["cat"])
    with pytest.raises(ValueError, match="sample rate"):
        ESC50(root, 0)
    # a partial download: missing files are an error unless skipped (with a warning)
    part = tmp_path / "esc50"
    shutil.copytree(root, part)
    (part / "audio" / "2-100648-A-43.wav").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 5 files .* missing.*2-100648-A-43.wav"):
        ESC50(part, 16000)
    with pytest.warns(UserWarning, match="skipping 1 of 5"):
        assert len(ESC50(part, 16000, missing="skip")) == 4
    (part / "meta" / "esc50.csv").write_text("filename,fold\n1-100032-A-0.wav,1\n")
    with pytest.raises(ValueError, match="missing column"):
        ESC50(part, 16000)


# (rate, channels, subtype) of the stand-in UrbanSound8K files: the real set mixes all of these
_US8K_FORMATS = [(44100, 2, "PCM_16"), (48000, 1, "PCM_24"), (22050, 1, "PCM_U8"), (8000, 2, "FLOAT"),
                 (96000, 1, "PCM_16"), (11025, 2, "PCM_24")]
_US8K_CLASSES = ["air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling"]


@pytest.fixture
def us8k_root(shared_data, tmp_path):
    """An UrbanSound8K-layout tree built from real noises, in varying rates/channels/bit depths."""
    root = tmp_path / "UrbanSound8K"
    rows = []
    for k, (sr, ch, subtype) in enumerate(_US8K_FORMATS):
        src, src_sr = sf.read(shared_data / "noise" / f"noise{k % 5 + 1}.wav", dtype="float32")
        x = resample(torch.from_numpy(src[: 3 * src_sr]), src_sr, sr).numpy()
        x = 0.9 * x / np.abs(x).max()
        data = np.stack([x, 0.5 * x], axis=1) if ch == 2 else x
        fold = k % 3 + 1
        name = f"{1000 + k}-{k}-0-{k}.wav"
        (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / f"fold{fold}" / name, data, sr, subtype=subtype)
        rows.append({"slice_file_name": name, "fsID": 1000 + k, "start": 0.0, "end": 3.0, "salience": k % 2 + 1,
                     "fold": fold, "classID": k, "class": _US8K_CLASSES[k]})
    (root / "metadata").mkdir(parents=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_urbansound8k_varying_formats_resampled_and_downmixed(us8k_root):
    s = UrbanSound8K(us8k_root, 16000)
    assert len(s) == len(_US8K_FORMATS)
    for i, (sr, ch, subtype) in enumerate(_US8K_FORMATS):
        item = s[i]
        info = sf.info(item.source)
        assert (info.samplerate, info.channels, info.subtype) == (sr, ch, subtype)
        assert item.sample_rate == 16000 and item.audio.ndim == 1 and item.audio.dtype == torch.float32
        assert item.audio.numel() == math.ceil(info.frames * 16000 / sr)
        raw, _ = sf.read(item.source, dtype="float32", always_2d=True)
        mono = raw.mean(axis=1)
        if ch == 2:  # mean downmix of [x, 0.5x] is 0.75x (up to one quantisation step of each channel)
            np.testing.assert_allclose(mono, 0.75 * raw[:, 0], atol=2.0 ** -15)
        torch.testing.assert_close(item.audio, resample(torch.from_numpy(mono), sr, 16000), rtol=0, atol=1e-5)
        assert item.label == _US8K_CLASSES[i] and item.meta["classID"] == i
        assert float(item.audio.abs().max()) > 0.3  # the real noise survived every format (not silence)


def test_urbansound8k_filters(us8k_root):
    assert [e.label for e in UrbanSound8K(us8k_root, 16000, folds=[2]).entries] == ["car_horn", "drilling"]
    assert len(UrbanSound8K(us8k_root, 16000, salience=1)) == 3
    assert UrbanSound8K(us8k_root, 16000, classes=["drilling"]).entries[0].meta["fold"] == 2
    with pytest.raises(ValueError, match="unknown classes"):
        UrbanSound8K(us8k_root, 16000, classes=["siren"])
    with pytest.raises(ValueError, match="salience"):
        UrbanSound8K(us8k_root, 16000, salience=3)
    assert isinstance(open_noise_set(us8k_root, 16000, classes=["drilling"]), UrbanSound8K)


def test_noise_folder_labels_rates_and_detection(shared_data, tmp_path):
    root = tmp_path / "noises"
    (root / "kitchen").mkdir(parents=True)
    shutil.copy(shared_data / "noise" / "doing_the_dishes.wav", root / "kitchen" / "dishes.wav")
    shutil.copy(shared_data / "noise" / "noise_freesound_573577.wav", root / "freesound.wav")  # 48 kHz
    (root / ".hidden.wav").write_bytes(b"")
    (root / "notes.txt").write_text("not audio")
    s = NoiseFolder(root, 16000)
    assert [e.label for e in s.entries] == ["freesound", "kitchen"]
    assert s.relpath(1) == "kitchen/dishes.wav"
    fs = s[0]
    assert fs.sample_rate == 16000 and fs.audio.numel() == math.ceil(sf.info(fs.source).frames / 3)
    assert isinstance(open_noise_set(root, 16000), NoiseFolder)
    assert isinstance(open_noise_set(shared_data / "noise" / "esc50", 16000), ESC50)
    with pytest.raises(ValueError, match="only apply to ESC-50"):
        open_noise_set(root, 16000, categories=["dog"])
    with pytest.raises(FileNotFoundError):
        NoiseFolder(tmp_path / "nope", 16000)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        NoiseFolder(tmp_path / "empty", 16000)


def test_corrupt_noise_file_names_the_file(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    s = NoiseFolder(root, 16000)
    with pytest.raises(ValueError, match="broken.wav"):
        s[0]


def test_trim_silence_strips_padding(tmp_path):
    from se_data.noise import load_noise

    x = np.zeros(32000, np.float32)
    x[8000:12000] = 0.5 * np.sin(np.arange(4000) * 0.3)
    (tmp_path / "n").mkdir()
    sf.write(tmp_path / "n" / "padded.wav", x, 16000, subtype="FLOAT")
    assert NoiseFolder(tmp_path / "n", 16000)[0].audio.numel() == 32000
    t = NoiseFolder(tmp_path / "n", 16000, trim_silence=True)[0].audio
    assert t.numel() <= 4000 and t.numel() > 3900 and float(t.abs().max()) > 0.49
    sf.write(tmp_path / "n" / "silent.wav", np.zeros(100, np.float32), 16000)
    with pytest.raises(ValueError, match="silent.wav.*silent"):
        load_noise(tmp_path / "n" / "silent.wav", 16000)
