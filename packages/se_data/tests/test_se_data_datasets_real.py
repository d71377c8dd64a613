"""Datasets on the real shared recordings (skipped where ../shared/data is absent)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from se_data import PairedFolders, SampleRateError, VoiceBankDEMAND, pad_collate

# frames of speech/voicebank16k/{clean,noisy}/p287_00{1..6}.wav (16 kHz)
P287_FRAMES = [31367, 52086, 115715, 77781, 103896, 81271]


def test_real_voicebank16k_as_paired_folders(shared_data):
    vb = shared_data / "speech" / "voicebank16k"
    ds = PairedFolders(vb / "clean", vb / "noisy", 16000)
    assert ds.sample_rate == 16000 and len(ds) == 6
    assert [e.name for e in ds.entries] == [f"p287_00{i}" for i in range(1, 7)]
    assert ds.lengths == P287_FRAMES
    it = ds[2]
    ref, sr = sf.read(vb / "noisy" / "p287_003.wav", dtype="float32")
    assert sr == 16000 and torch.equal(it["noisy"], torch.from_numpy(ref)) and it["length"] == 115715
    # clean and noisy really differ (noisy = clean + noise), and they are aligned: corr > 0.5
    c, n = it["clean"].double(), it["noisy"].double()
    assert not torch.equal(c, n) and torch.corrcoef(torch.stack([c, n]))[0, 1] > 0.5
    batch = next(iter(DataLoader(ds, batch_size=6, collate_fn=pad_collate)))
    assert batch["clean"].shape == (6, 115715) and batch["length"].tolist() == P287_FRAMES


def test_real_voicebank16k_at_48k_raises(shared_data):
    vb = shared_data / "speech" / "voicebank16k"
    with pytest.raises(SampleRateError) as e:
        PairedFolders(vb / "clean", vb / "noisy", 48000)
    msg = str(e.value)
    assert "12 of 12 files" in msg and "p287_001.wav (16000 Hz)" in msg and "resample=True" in msg
    up = PairedFolders(vb / "clean", vb / "noisy", 48000, resample=True)
    assert up.lengths == [3 * n for n in P287_FRAMES] and up[0]["clean"].shape == (3 * 31367,)


def test_real_crops_reproducible(shared_data):
    vb = shared_data / "speech" / "voicebank16k"
    a = PairedFolders(vb / "clean", vb / "noisy", 16000, segment=1.0, seed=3)
    b = PairedFolders(vb / "clean", vb / "noisy", 16000, segment=1.0, seed=3)
    for i in range(len(a)):
        assert a[i]["clean"].shape == (16000,) and torch.equal(a[i]["clean"], b[i]["clean"])
    b.set_epoch(1)
    assert sum(not torch.equal(a[i]["clean"], b[i]["clean"]) for i in range(len(a))) == len(a)


def test_real_48k_utterance_in_a_vb_layout(shared_data, tmp_path):
    """The real 48 kHz VoiceBank file, laid out as VB-DEMAND: 16 kHz use needs resampling."""
    src = shared_data / "speech" / "p286_011_48k.wav"
    for kind in ("clean", "noisy"):
        d = tmp_path / f"{kind}_trainset_28spk_wav"
        d.mkdir()
        (d / "p286_011.wav").symlink_to(src)
    (tmp_path / "log_trainset_28spk.txt").write_text("p286_011 metro 10\n")
    with pytest.raises(SampleRateError, match=r"p286_011.wav \(48000 Hz\).*tools/resample_dataset.py"):
        VoiceBankDEMAND(tmp_path, "valid", valid_speakers=["p286"])
    ds = VoiceBankDEMAND(tmp_path, "valid", valid_speakers=["p286"], resample=True)
    it = ds[0]
    assert it["clean"].shape == (108320,) and it["noise_class"] == 5 and it["snr_db"] == 10.0
    assert np.isclose(it["clean"].double().pow(2).mean().item(),
                      torch.from_numpy(sf.read(src, dtype="float32")[0]).double().pow(2).mean().item(), rtol=0.05)
