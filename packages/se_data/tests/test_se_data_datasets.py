"""VoiceBankDEMAND / PairedFolders / crops / collate on tiny synthetic trees built in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from se_data import (
    VBDEMAND_TRAIN_NOISE_CLASSES,
    AudioFileError,
    PairedFolders,
    SampleRateError,
    VoiceBankDEMAND,
    crop_pair,
    item_generator,
    load_audio,
    pad_collate,
    read_vbdemand_log,
)

TRAIN_SPK = ("p226", "p227", "p250", "p287")
TEST_SPK = ("p232", "p257")
N_UTT = 3


def _write_pair(root, part, name, n, sr, rng):
    clean = (0.3 * rng.standard_normal(n)).clip(-0.99, 0.99).astype(np.float32)
    noisy = (clean + 0.05 * rng.standard_normal(n)).clip(-0.99, 0.99).astype(np.float32)
    for kind, x in (("clean", clean), ("noisy", noisy)):
        d = root / f"{kind}_{part}_wav"
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / f"{name}.wav", x, sr, subtype="FLOAT")


def make_vb_tree(root, sr=16000, log_dir="logfiles", lengths=None):
    """4 training speakers x 3 utterances, 2 test speakers x 2; lengths 0.25 .. 0.6 s."""
    rng = np.random.default_rng(1)
    log, labels = [], {}
    for i, spk in enumerate(TRAIN_SPK):
        for j in range(1, N_UTT + 1):
            name = f"{spk}_{j:03d}"
            n = lengths.get(name, int(sr * (0.25 + 0.1 * j))) if lengths else int(sr * (0.25 + 0.1 * j))
            _write_pair(root, "trainset_28spk", name, n, sr, rng)
            noise = VBDEMAND_TRAIN_NOISE_CLASSES[(3 * i + j) % 10]
            snr = (0, 5, 10, 15)[j % 4]
            log.append(f"{name} {noise} {snr}")
            labels[name] = (noise, float(snr))
    for spk in TEST_SPK:
        for j in range(1, 3):
            _write_pair(root, "testset", f"{spk}_{j:03d}", int(sr * 0.3), sr, rng)
    if log_dir is not None:
        (root / log_dir).mkdir(exist_ok=True)
        (root / log_dir / "log_trainset_28spk.txt").write_text("\n".join(log) + "\n")
        (root / log_dir / "log_testset.txt").write_text(
            "".join(f"{s}_{j:03d} bus 1.750000e+01\n" for s in TEST_SPK for j in (1, 2)))
    return labels


@pytest.fixture(scope="module")
def vb(tmp_path_factory):
    root = tmp_path_factory.mktemp("vb16k")
    labels = make_vb_tree(root)
    return root, labels


# -- splits ------------------------------------------------------------------------------
def test_split_by_speaker_never_touches_test(vb):
    root, _ = vb
    tr, va, te = (VoiceBankDEMAND(root, s) for s in ("train", "valid", "test"))
    assert tr.speakers == ("p227", "p250") and va.speakers == ("p226", "p287") and te.speakers == TEST_SPK
    names = [{e.name for e in d.entries} for d in (tr, va, te)]
    assert len(names[0]) == 6 and len(names[1]) == 6 and len(names[2]) == 4
    assert not (names[0] & names[1]) and not (names[1] & names[2]) and not (names[0] & names[2])
    assert names[0] | names[1] == {f"{s}_{j:03d}" for s in TRAIN_SPK for j in range(1, N_UTT + 1)}
    assert all(e.clean.parent.name == "clean_trainset_28spk_wav" for e in va.entries)
    assert tr.sample_rate == va.sample_rate == te.sample_rate == 16000
    # deterministic: a second build gives the same order
    assert [e.name for e in VoiceBankDEMAND(root, "valid").entries] == [e.name for e in va.entries]


def test_valid_speakers_configurable_and_checked(vb, tmp_path):
    root, _ = vb
    assert VoiceBankDEMAND(root, "valid", valid_speakers=["p250"]).speakers == ("p250",)
    assert VoiceBankDEMAND(root, "train", valid_speakers=["p250"]).speakers == ("p226", "p227", "p287")
    with pytest.raises(ValueError, match=r"test speakers.*never be the test set"):
        VoiceBankDEMAND(root, "valid", valid_speakers=["p232"])
    with pytest.raises(ValueError, match=r"p999.*not found.*p226, p227, p250, p287"):
        VoiceBankDEMAND(root, "valid", valid_speakers=["p999"])
    with pytest.raises(ValueError, match="at least one speaker"):
        VoiceBankDEMAND(root, "valid", valid_speakers=[])
    # a training folder that contains a test speaker is refused
    leak = tmp_path / "leak"
    make_vb_tree(leak, log_dir=None)
    _write_pair(leak, "trainset_28spk", "p257_009", 4000, 16000, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"test speakers \['p257'\]"):
        VoiceBankDEMAND(leak, "train")
    with pytest.raises(FileNotFoundError, match="clean_trainset_28spk_wav"):
        VoiceBankDEMAND(tmp_path / "nothing_here", "train")


# -- labels ------------------------------------------------------------------------------
def test_noise_labels_from_training_log(vb):
    root, labels = vb
    ds = VoiceBankDEMAND(root, "train")
    assert ds.log_path == root / "logfiles" / "log_trainset_28spk.txt"
    for i in range(len(ds)):
        it = ds[i]
        noise, snr = labels[it["name"]]
        assert it["noise_class"] == VBDEMAND_TRAIN_NOISE_CLASSES.index(noise)
        assert it["noise_name"] == noise and it["snr_db"] == snr
    te = VoiceBankDEMAND(root, "test")
    assert te[0]["noise_class"] == -1 and te[0]["noise_name"] == "bus" and te[0]["snr_db"] == 17.5
    assert "noise_class" not in VoiceBankDEMAND(root, "train", labels=False)[0]


def test_label_errors(tmp_path):
    root = tmp_path / "vb"
    make_vb_tree(root, log_dir=None)
    assert "noise_class" not in VoiceBankDEMAND(root, "train")[0]  # auto: no log, no labels
    with pytest.raises(FileNotFoundError, match="log_trainset_28spk.txt"):
        VoiceBankDEMAND(root, "train", labels=True)
    (root / "log_trainset_28spk.txt").write_text("p227_001 babble 5\n")  # found in root itself
    with pytest.raises(ValueError, match=r"no noise label for 5 file\(s\): p227_002"):
        VoiceBankDEMAND(root, "train")
    log = tmp_path / "bad.txt"
    log.write_text("p227_001 babble 5\np227_002 babble\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected"):
        read_vbdemand_log(log)
    log.write_text("p227_001 babble 5\np227_001.wav car 0\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: utterance 'p227_001' appears twice"):
        read_vbdemand_log(log)
    log.write_text("p227_001 babble 5\np227_002 trumpet 5\np227_003 car 0\n")
    with pytest.raises(ValueError, match=r"trumpet.*10 training classes"):
        VoiceBankDEMAND(root, "train", valid_speakers=["p226", "p250", "p287"], log_path=log,
                        labels=True).entries  # noqa: B018
    log.write_text("\np236_002 babble 15\np257_001 bus 1.750000e+01\n")
    assert read_vbdemand_log(log) == {"p236_002": ("babble", 15.0), "p257_001": ("bus", 17.5)}


def test_train_noise_classes_constant():
    assert VBDEMAND_TRAIN_NOISE_CLASSES == ("babble", "cafeteria", "car", "kitchen", "meeting", "metro",
                                            "restaurant", "ssn", "station", "traffic")


# -- sample rate ---------------------------------------------------------------------------
def test_48k_tree_at_16k_raises_unless_resample(tmp_path):
    root = tmp_path / "vb48k"
    make_vb_tree(root, sr=48000)
    with pytest.raises(SampleRateError) as e:
        VoiceBankDEMAND(root, "train", sample_rate=16000)
    msg = str(e.value)
    for part in ("12 of 12 files", "48000 Hz", "sample_rate=16000", "p227_001.wav",
                 "resample=True", "tools/resample_dataset.py"):
        assert part in msg
    ds = VoiceBankDEMAND(root, "valid", sample_rate=16000, resample=True)
    it = ds[0]
    ref, _ = load_audio(ds.entries[0].clean, 16000, resample=True)
    assert it["clean"].shape == (ds.lengths[0],) == ref.shape and torch.equal(it["clean"], ref)
    assert ds.lengths[0] == -(-sf.info(ds.entries[0].clean).frames // 3)


# -- crops ---------------------------------------------------------------------------------
def test_crops_deterministic_per_seed_epoch_index(vb):
    root, _ = vb
    a = VoiceBankDEMAND(root, "train", segment=0.2, seed=7)
    b = VoiceBankDEMAND(root, "train", segment=0.2, seed=7)  # another process / DDP rank
    seg = 3200
    first = [a[i] for i in range(len(a))]
    for i in reversed(range(len(b))):  # other access order, other instance: same crops
        it = b[i]
        assert it["clean"].shape == (seg,) and it["length"] == seg
        assert torch.equal(it["clean"], first[i]["clean"]) and torch.equal(it["noisy"], first[i]["noisy"])
    # a crop is the same slice of clean and noisy
    for i in range(len(a)):
        full_c, _ = load_audio(a.entries[i].clean, 16000)
        full_n, _ = load_audio(a.entries[i].noisy, 16000)
        starts = [s for s in range(full_c.shape[0] - seg + 1) if torch.equal(full_c[s:s + seg], first[i]["clean"])]
        assert len(starts) == 1 and torch.equal(full_n[starts[0]:starts[0] + seg], first[i]["noisy"])
    a.set_epoch(1)
    changed = sum(not torch.equal(a[i]["clean"], first[i]["clean"]) for i in range(len(a)))
    assert changed >= len(a) - 1  # (one 0.35 s item has only 2400 possible starts)
    a.set_epoch(0)
    assert all(torch.equal(a[i]["clean"], first[i]["clean"]) for i in range(len(a)))
    c = VoiceBankDEMAND(root, "train", segment=0.2, seed=8)
    assert sum(not torch.equal(c[i]["clean"], first[i]["clean"]) for i in range(len(c))) >= len(c) - 1


def test_item_generator_streams():
    x = torch.rand(4, generator=item_generator(0, 0, 5))
    assert torch.equal(x, torch.rand(4, generator=item_generator(0, 0, 5)))
    others = [item_generator(0, 1, 5), item_generator(0, 0, 6), item_generator(1, 0, 5)]
    assert all(not torch.equal(x, torch.rand(4, generator=g)) for g in others)
    with pytest.raises(ValueError, match="epoch"):
        item_generator(0, -1, 0)


def test_pad_policies():
    c, n = torch.arange(1.0, 4.0), -torch.arange(1.0, 4.0)  # T = 3
    zc, zn, length = crop_pair(c, n, 8, pad="zero")
    assert length == 3 and zc.tolist() == [1, 2, 3, 0, 0, 0, 0, 0] and zn.tolist() == [-1, -2, -3, 0, 0, 0, 0, 0]
    rc, rn, length = crop_pair(c, n, 8, pad="reflect")
    assert length == 3 and rc.tolist() == [1, 2, 3, 2, 1, 2, 3, 2] and torch.equal(rn, -rc)
    with pytest.raises(ValueError, match="drop"):
        crop_pair(c, n, 8, pad="drop")
    with pytest.raises(ValueError, match="pad must be one of"):
        crop_pair(c, n, 8, pad="wrap")


def test_pad_drop_and_short_items(tmp_path):
    root = tmp_path / "vb"
    make_vb_tree(root, lengths={"p227_001": 1000, "p250_002": 2000})  # shorter than 0.2 s
    with pytest.warns(UserWarning, match=r"removed 2 of 6.*p227_001, p250_002"):
        ds = VoiceBankDEMAND(root, "train", segment=0.2, pad="drop")
    assert len(ds) == 4 and ds.dropped == ["p227_001", "p250_002"]
    z = VoiceBankDEMAND(root, "train", segment=0.2, pad="zero")
    it = z[0]
    assert it["name"] == "p227_001" and it["length"] == 1000 and it["clean"].shape == (3200,)
    assert it["clean"][1000:].abs().sum() == 0 and it["clean"][:1000].abs().sum() > 0
    r = VoiceBankDEMAND(root, "train", segment=0.2, pad="reflect")[0]
    assert r["length"] == 1000 and torch.equal(r["clean"][:1000], it["clean"][:1000])
    assert torch.equal(r["clean"][1000:1999], it["clean"][:1000].flip(0)[1:])


# -- collate / loaders -------------------------------------------------------------------
def test_pad_collate_full_utterances(vb):
    root, _ = vb
    ds = VoiceBankDEMAND(root, "valid")
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=pad_collate)))
    lengths = batch["length"].tolist()
    assert batch["clean"].shape == (4, max(lengths)) and batch["noisy"].shape == (4, max(lengths))
    assert lengths == ds.lengths[:4] and len(set(lengths)) > 1
    for b in range(4):
        assert torch.equal(batch["clean"][b, :lengths[b]], ds[b]["clean"])
        assert batch["clean"][b, lengths[b]:].abs().sum() == 0
    assert batch["noise_class"].dtype == torch.long and batch["snr_db"].dtype == torch.float32
    assert batch["name"] == [e.name for e in ds.entries[:4]]
    with pytest.raises(ValueError, match="empty batch"):
        pad_collate([])


def test_default_collate_on_crops(vb):
    root, _ = vb
    ds = VoiceBankDEMAND(root, "train", segment=0.1)
    batch = next(iter(DataLoader(ds, batch_size=3, shuffle=False)))
    assert batch["clean"].shape == (3, 1600) and batch["noise_class"].shape == (3,)


# -- PairedFolders -----------------------------------------------------------------------
def test_paired_folders_nested_and_missing_partners(tmp_path):
    rng = np.random.default_rng(0)
    for kind in ("clean", "noisy"):
        for rel in ("a/x.wav", "a/y.wav", "b/z.wav"):
            p = tmp_path / kind / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, rng.uniform(-0.5, 0.5, 800).astype(np.float32), 8000)
    ds = PairedFolders(tmp_path / "clean", tmp_path / "noisy", 8000)
    assert [e.name for e in ds.entries] == ["a/x", "a/y", "b/z"] and ds.sample_rate == 8000
    with pytest.raises(SampleRateError, match=r"6 of 6 files.*8000 Hz"):
        PairedFolders(tmp_path / "clean", tmp_path / "noisy", 16000)
    (tmp_path / "clean" / "a" / "y.wav").unlink()
    sf.write(tmp_path / "noisy" / "only_noisy.wav", np.zeros(80, np.float32), 8000)
    sf.write(tmp_path / "clean" / "b" / "only_clean.wav", np.zeros(80, np.float32), 8000)
    with pytest.raises(AudioFileError) as e:
        PairedFolders(tmp_path / "clean", tmp_path / "noisy", 8000)
    msg = str(e.value)
    assert "1 clean file(s) with no noisy partner" in msg and "b/only_clean" in msg
    assert "2 noisy file(s) with no clean partner" in msg and "a/y" in msg and "only_noisy" in msg


def test_paired_folders_length_mismatch_stereo_and_empty(tmp_path):
    for kind, n in (("clean", 800), ("noisy", 801)):
        (tmp_path / kind).mkdir()
        sf.write(tmp_path / kind / "u.wav", np.zeros(n, np.float32), 8000)
    with pytest.raises(AudioFileError, match=r"u: clean 800 samples at 8000 Hz vs noisy 801"):
        PairedFolders(tmp_path / "clean", tmp_path / "noisy", 8000)
    sf.write(tmp_path / "noisy" / "u.wav", np.zeros((800, 2), np.float32), 8000)
    with pytest.raises(AudioFileError, match=r"noisy/u.wav \(2 channels\).*mono=True"):
        PairedFolders(tmp_path / "clean", tmp_path / "noisy", 8000)
    assert PairedFolders(tmp_path / "clean", tmp_path / "noisy", 8000, mono=True)[0]["noisy"].shape == (800,)
    (tmp_path / "e1").mkdir()
    (tmp_path / "e2").mkdir()
    with pytest.raises(AudioFileError, match="no audio files"):
        PairedFolders(tmp_path / "e1", tmp_path / "e2", 8000)
    with pytest.raises(ValueError, match="segment"):
        PairedFolders(tmp_path / "clean", tmp_path / "noisy", 8000, segment=0, mono=True)
