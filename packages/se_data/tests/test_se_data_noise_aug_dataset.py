"""NoiseAugmentedDataset: draws keyed by (seed, epoch, index) only, exact SNRs, class labels from
sub-folders, unknown classes masked, wrong-rate / stereo noise converted on load, and a
2-rank split equal to one process."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from se_data import (NO_LABEL, UNKNOWN_NOISE_CLASS, NoiseAugmentedDataset, PairedFolders, TemporalAugment,
                     augment_generator, brown_noise, iterate_batches, load_audio, merge_class_names, pink_noise,
                     resample, synth_speech, white_noise)

SR = 16000
SEG = 0.5  # seconds
N_ITEMS = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """8 pairs (0.4-0.9 s: two shorter than the 0.5 s crop) and a noise folder with two class
    sub-folders (one file at 22.05 kHz stereo) plus one file in the root (no class)."""
    root = tmp_path_factory.mktemp("aug")
    for i in range(N_ITEMS):  # no silence padding: some short padded synth_speech draws are all silence
        s = synth_speech(0.4 + 0.5 * i / (N_ITEMS - 1), seed=i, sample_rate=SR, pad_silence=False).numpy()
        noisy = s + 0.01 * white_noise(s.size, seed=100 + i).numpy()
        for sub, x in (("clean", s), ("noisy", noisy)):
            (root / sub).mkdir(exist_ok=True)
            sf.write(root / sub / f"utt{i}.wav", x, SR, subtype="FLOAT")
    noise = root / "noise"
    (noise / "hum").mkdir(parents=True)
    (noise / "hiss").mkdir()
    sf.write(noise / "hum" / "brown.wav", 0.1 * brown_noise(2 * SR, seed=1).numpy(), SR, subtype="FLOAT")
    sf.write(noise / "hum" / "brown2.wav", 0.2 * brown_noise(SR, seed=4).numpy(), SR, subtype="FLOAT")
    stereo = np.stack([white_noise(22050, seed=2).numpy(), pink_noise(22050, seed=5, sample_rate=22050).numpy()], 1)
    sf.write(noise / "hiss" / "white_22k.wav", 0.1 * stereo, 22050, subtype="FLOAT")
    sf.write(noise / "loose.wav", 0.1 * pink_noise(SR, seed=3).numpy(), SR, subtype="FLOAT")
    flat = root / "flat"
    flat.mkdir()
    sf.write(flat / "a.wav", 0.1 * pink_noise(SR, seed=6).numpy(), SR, subtype="FLOAT")
    sf.write(flat / "b.wav", 0.1 * white_noise(SR, seed=7).numpy(), SR, subtype="FLOAT")
    return root


def _base(root, seed=0):
    return PairedFolders(root / "clean", root / "noisy", SR, segment=SEG, seed=seed)


def _aug(root, **kw):
    kw.setdefault("seed", 11)
    kw.setdefault("dtype", torch.float64)
    return NoiseAugmentedDataset(_base(root), root / "noise", trim_silence=False, **kw)


def _meta(it):
    return {k: v for k, v in it.items() if not isinstance(v, torch.Tensor)}


def _same(a, b):
    assert _meta(a) == _meta(b)
    assert torch.equal(a["clean"], b["clean"]) and torch.equal(a["noisy"], b["noisy"])


def _realised_snr(it) -> float:
    n = it["length"]
    s = it["clean"][:n].double().numpy()
    e = it["noisy"][:n].double().numpy() - s
    return 10 * math.log10(np.sum(s**2) / np.sum(e**2))


def test_draws_depend_only_on_seed_epoch_and_index(corpus):
    a = _aug(corpus)
    a.set_epoch(2)
    forward = [a[i] for i in range(N_ITEMS)]
    b = _aug(corpus)  # a fresh process, visiting other epochs and items first, then in reverse order
    b.set_epoch(0)
    _ = b[3], b[5]
    b.set_epoch(7)
    _ = b[1]
    b.set_epoch(2)
    torch.manual_seed(999)
    np.random.seed(999)
    backward = [b[i] for i in reversed(range(N_ITEMS))][::-1]
    for x, y in zip(forward, backward):
        _same(x, y)
    assert all(x["augmented"] for x in forward)  # p = 1 by default
    # the stream is a pure function of the triple, distinct from neighbours
    assert augment_generator(11, 2, 3).random() == augment_generator(11, 2, 3).random()
    assert len({augment_generator(11, e, i).random() for e in range(3) for i in range(3)}) == 9
    with pytest.raises(ValueError, match="epoch"):
        augment_generator(11, -1, 0)


def test_epochs_draw_anew(corpus):
    a = _aug(corpus)
    a.set_epoch(0)
    e0 = [a[i] for i in range(N_ITEMS)]
    a.set_epoch(1)
    e1 = [a[i] for i in range(N_ITEMS)]
    assert all(x["snr_db"] != y["snr_db"] for x, y in zip(e0, e1))
    assert sum(x["noise_offset"] != y["noise_offset"] or x["noise_source"] != y["noise_source"]
               for x, y in zip(e0, e1)) >= N_ITEMS - 1
    assert sum(not torch.equal(x["noisy"], y["noisy"]) for x, y in zip(e0, e1)) == N_ITEMS


def test_realised_snr_equals_the_draw(corpus):
    lo, hi = -7.5, 12.5
    a = _aug(corpus, snr_range=(lo, hi))
    snrs = []
    for epoch in range(3):
        a.set_epoch(epoch)
        for i in range(N_ITEMS):
            it = a[i]
            assert abs(_realised_snr(it) - it["snr_db"]) < 1e-6
            assert lo <= it["snr_db"] <= hi and it["noisy"].dtype == torch.float64
            assert torch.all(it["noisy"][it["length"]:] == 0)  # a zero-padded tail stays silence
            assert torch.equal(it["clean"].float(), a.dataset[i]["clean"])  # the clean target is untouched
            snrs.append(it["snr_db"])
    assert max(snrs) - min(snrs) > 0.6 * (hi - lo)  # the draws cover the range
    assert sum(a[i]["length"] < SEG * SR for i in range(N_ITEMS)) == 2  # padded items were exercised
    # float32 items (the trainers' dtype) are the float64 mixture rounded once
    f = _aug(corpus, snr_range=(lo, hi), dtype=torch.float32)
    f.set_epoch(2)
    assert torch.equal(f[4]["noisy"], a[4]["noisy"].float())


def test_noise_classes_from_subfolders_and_unknown_masked(corpus):
    a = _aug(corpus)
    assert a.noise_classes == ("hiss", "hum") and a.class_names == ("hiss", "hum")
    seen = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        for i in range(N_ITEMS):
            it = a[i]
            src, label, name = it["noise_source"], it["noise_class"], it["noise_name"]
            expected = {"hum": 1, "hiss": 0}.get(src.split("/")[0], NO_LABEL)
            assert label == expected and name == (src.split("/")[0] if "/" in src else UNKNOWN_NOISE_CLASS)
            seen.add(label)
    assert seen == {0, 1, NO_LABEL}  # every kind was drawn
    assert a.describe()["unlabelled_files"] == 1
    # a model's vocabulary: the corpus' classes keep their indices, the noise's are appended
    assert merge_class_names(("babble", "hum"), a.noise_classes) == ("babble", "hum", "hiss")
    v = _aug(corpus, class_names=("babble", "hum"))
    assert v.class_names == ("babble", "hum", "hiss")
    assert v.label_of("hum") == 1 and v.label_of("hiss") == 2 and v.label_of(UNKNOWN_NOISE_CLASS) == NO_LABEL
    v.set_epoch(1)
    a.set_epoch(1)
    for i in range(N_ITEMS):  # the same draws, labelled in the new vocabulary
        x, y = v[i], a[i]
        assert x["noise_source"] == y["noise_source"] and x["noise_class"] == {0: 2, 1: 1, -1: -1}[y["noise_class"]]
    fixed = _aug(corpus, class_names=("hiss", "hum", "babble"), extend_classes=False)
    assert fixed.class_names == ("hiss", "hum", "babble")
    with pytest.raises(ValueError, match=r"noise classes \['hiss'\] are not in class_names"):
        _aug(corpus, class_names=("hum",), extend_classes=False)
    flat = NoiseAugmentedDataset(_base(corpus), corpus / "flat", seed=1)
    assert flat.noise_classes == ()
    assert {flat[i]["noise_class"] for i in range(N_ITEMS)} == {NO_LABEL}
    assert {flat[i]["noise_name"] for i in range(N_ITEMS)} == {UNKNOWN_NOISE_CLASS}


def test_wrong_rate_stereo_noise_is_downmixed_resampled_and_used_as_loaded(corpus):
    a = _aug(corpus)
    assert a.resampled == ["hiss/white_22k.wav"] and a.downmixed == ["hiss/white_22k.wav"]
    x, sr = sf.read(corpus / "noise" / "hiss" / "white_22k.wav", dtype="float32")
    expected = resample(torch.from_numpy(x.mean(axis=1, dtype=np.float64).astype(np.float32)), 22050, SR)
    got = a.noise("hiss/white_22k.wav")
    assert sr == 22050 and got.shape == (SR,) and torch.equal(got, expected)
    assert torch.equal(got, load_audio(corpus / "noise" / "hiss" / "white_22k.wav", SR, resample=True, mono=True)[0])
    hits = 0
    for epoch in range(8):
        a.set_epoch(epoch)
        for i in range(N_ITEMS):
            it = a[i]
            if it["noise_source"] != "hiss/white_22k.wav":
                continue
            n = it["length"]
            seg = got.double().numpy()[(it["noise_offset"] + np.arange(n)) % got.numel()]
            added = it["noisy"][:n].numpy() - it["clean"][:n].numpy()
            assert np.max(np.abs(added - it["noise_gain"] * seg)) < 1e-12
            hits += 1
    assert hits >= 3


def test_two_ranks_take_exactly_the_single_process_items(corpus):
    kw = dict(batch_size=2, seed=5, labels={})
    for epoch in (0, 3):
        one = list(iterate_batches(_aug(corpus), epoch=epoch, world_size=1, **{**kw, "batch_size": 4}))
        ranks = [list(iterate_batches(_aug(corpus), epoch=epoch, rank=r, world_size=2, **kw)) for r in range(2)]
        assert len(one) == len(ranks[0]) == len(ranks[1]) == 2
        for step, (noisy, clean, lab) in enumerate(one):
            for r in range(2):  # the global batch's items r, r+2, ... are rank r's batch
                rn, rc, rl = ranks[r][step]
                assert torch.equal(noisy[r::2], rn) and torch.equal(clean[r::2], rc) and torch.equal(lab[r::2], rl)
            assert lab.dtype == torch.long and set(lab.tolist()) <= {0, 1, NO_LABEL}


def test_labels_in_batches_mix_the_corpus_map_and_the_augmentation(corpus):
    a = _aug(corpus, p=0.5)
    a.set_epoch(0)
    flags = [a[i]["augmented"] for i in range(N_ITEMS)]
    assert 0 < sum(flags) < N_ITEMS
    corpus_labels = {f"utt{i}": 7 for i in range(N_ITEMS)}
    batch = next(iterate_batches(a, epoch=0, seed=0, batch_size=N_ITEMS, labels=corpus_labels, shuffle=False))
    for i, lab in enumerate(batch[2].tolist()):
        assert lab == (a[i]["noise_class"] if flags[i] else 7)
    assert set(next(iterate_batches(a, epoch=0, seed=0, batch_size=N_ITEMS, shuffle=False))[2].tolist()) == {-1}


def test_probability_two_noises_and_temporal(corpus):
    base = _base(corpus)
    none = _aug(corpus, p=0.0)
    for i in range(N_ITEMS):
        it, ref = none[i], base[i]
        assert not it["augmented"] and torch.equal(it["noisy"], ref["noisy"].double())
    half = _aug(corpus, p=0.5)
    n_aug = sum(half[i]["augmented"] for e in range(8) if not half.set_epoch(e) for i in range(N_ITEMS))
    assert 16 <= n_aug <= 48  # 64 draws at p = 0.5
    two = _aug(corpus, p_two_noises=1.0, temporal=TemporalAugment(p_reverse=0.5, p_flip=0.5))
    labels = set()
    for e in range(4):
        two.set_epoch(e)
        for i in range(N_ITEMS):
            it = two[i]
            a_, b_ = it["noise_source"].split("+")
            same = a_.split("/")[0] == b_.split("/")[0] and "/" in a_
            assert it["noise_class"] == ({"hiss": 0, "hum": 1}[a_.split("/")[0]] if same else NO_LABEL)
            assert abs(_realised_snr(it) - it["snr_db"]) < 1e-6
            labels.add(it["noise_class"])
    assert NO_LABEL in labels and labels - {NO_LABEL}


def test_silent_speech_crop_stays_unaugmented_and_bad_arguments(corpus, tmp_path):
    for sub in ("clean", "noisy"):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "quiet.wav", np.zeros(SR), SR, subtype="FLOAT")
    ds = NoiseAugmentedDataset(PairedFolders(tmp_path / "clean", tmp_path / "noisy", SR, segment=SEG),
                               corpus / "noise", seed=0)
    assert ds[0]["augmented"] is False and "snr_db" not in ds[0]
    with pytest.raises(ValueError, match="snr_range"):
        _aug(corpus, snr_range=(10, 0))
    with pytest.raises(ValueError, match="probability"):
        _aug(corpus, p=1.5)
    with pytest.raises(ValueError, match="seed"):
        _aug(corpus, seed=-1)
    with pytest.raises(ValueError, match="sample_rate"):
        NoiseAugmentedDataset(object(), corpus / "noise", seed=0)


def test_dataloader_workers_give_the_same_items(corpus):
    a = _aug(corpus)
    a.set_epoch(4)
    direct = [a[i] for i in range(N_ITEMS)]
    loader = torch.utils.data.DataLoader(a, batch_size=None, num_workers=2, shuffle=False,
                                         multiprocessing_context="fork")
    for x, y in zip(loader, direct):
        _same(x, y)
