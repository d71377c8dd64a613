"""epoch_batches / iterate_batches (deterministic, DDP-exact order) and open_training_corpus."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from se_data import (DEMO_NOISE_CLASSES, CorpusLayoutError, SampleRateError, detect_layout, epoch_batches,
                     iterate_batches, make_demo_corpus, open_training_corpus)


def test_ranks_together_take_the_single_process_global_batches():
    n, bs, world = 23, 3, 2
    single = epoch_batches(n, epoch=4, seed=7, batch_size=bs * world)
    shards = [epoch_batches(n, epoch=4, seed=7, batch_size=bs, rank=r, world_size=world) for r in range(world)]
    assert len(single) == 3 and all(len(s) == 3 for s in shards)  # 23 // 6 full global batches
    for step, glob in enumerate(single):
        assert sorted(shards[0][step] + shards[1][step]) == sorted(glob)
    # the order depends on (seed, epoch) only: the global RNG does not move it
    torch.manual_seed(123)
    assert epoch_batches(n, epoch=4, seed=7, batch_size=6) == single
    assert epoch_batches(n, epoch=5, seed=7, batch_size=6) != single


def test_drop_last_and_evaluation_order():
    kept = epoch_batches(10, epoch=0, seed=0, batch_size=4, drop_last=False, world_size=2, rank=1)
    assert [len(b) for b in kept] == [4, 1]  # 10 items, 5 per rank: a short last batch
    assert epoch_batches(5, epoch=0, seed=0, batch_size=2, shuffle=False) == [[0, 1], [2, 3], [4]]
    assert len(epoch_batches(100, epoch=0, seed=0, batch_size=4, max_batches=3)) == 3
    with pytest.raises(ValueError, match="fewer than one global batch"):
        epoch_batches(5, epoch=0, seed=0, batch_size=4, world_size=2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "demo"
    make_demo_corpus(root, n_train=6, n_valid=2, n_test=2, seconds=1.0, seed=0)
    return root


def test_demo_corpus_opens_with_labels_and_batches(demo):
    c = open_training_corpus(demo, sample_rate=16000, segment=0.5, seed=0)
    assert c.kind == "demo corpus" and detect_layout(demo) == "paired"
    assert (len(c.train), len(c.valid), len(c.test)) == (6, 2, 2)
    assert c.class_names == DEMO_NOISE_CLASSES and len(c.labels) == 10
    assert [p[0] for p in c.test_pairs] == sorted(p[0] for p in c.test_pairs) and c.test_pairs[0][0].endswith(".wav")
    noisy, clean, lab = next(iterate_batches(c.train, epoch=0, seed=0, batch_size=2, labels=c.labels))
    assert noisy.shape == clean.shape == (2, 8000) and lab.dtype == torch.long and (lab >= 0).all()
    _, _, none = next(iterate_batches(c.train, epoch=0, seed=0, batch_size=2))
    assert none.tolist() == [-1, -1]
    n0, c0 = c.valid_utterances(1)[0]
    assert n0.shape == c0.shape == (16000,)


def test_paired_folders_without_manifest_and_bad_layouts(demo, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(demo, plain)
    (plain / "manifest.json").unlink()
    c = open_training_corpus(plain, sample_rate=16000, segment=0.5)
    assert c.kind == "paired folders" and c.labels is None and c.class_names is None
    with pytest.raises(CorpusLayoutError, match="neither a VoiceBank-DEMAND tree"):
        open_training_corpus(tmp_path, sample_rate=16000, segment=0.5)
    with pytest.raises(CorpusLayoutError, match="not a folder"):
        detect_layout(tmp_path / "missing")
    # a pair at another rate is refused by name unless resample=True
    name = sorted(p.name for p in (plain / "train" / "noisy").iterdir())[0]
    for side in ("clean", "noisy"):
        sf.write(plain / "train" / side / name, np.zeros(48000, np.float32), 48000)
    with pytest.raises(SampleRateError, match=name):
        open_training_corpus(plain, sample_rate=16000, segment=0.5)
    assert len(open_training_corpus(plain, sample_rate=16000, segment=0.5, resample=True).train) == 6
