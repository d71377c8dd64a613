"""A chosen subset of metrics (evaluate_pair_defined / evaluate_dir ``metrics=``), STOI and
ESTOI from one shared front end (stoi_pair), and the evaluator's chunked pool: the same
values as the full, one-metric-at-a-time computation."""

from __future__ import annotations

import csv
import math

import numpy as np
import pystoi
import pytest
import soundfile as sf

import se_metrics as sm
from se_metrics.batch import _chunks
from se_metrics.pesq_stoi import stoi_pair

SR = 16000
FOUR = ("pesq_wb", "pesq_nb", "stoi", "estoi")


@pytest.fixture(scope="module")
def pairs(shared_data):
    sp = shared_data / "speech"
    out = [(sf.read(sp / "speech.wav")[0], sf.read(sp / "speech_bab_0dB.wav")[0])]
    for i in (1, 2):
        out.append((sf.read(sp / "voicebank16k" / "clean" / f"p287_00{i}.wav")[0],
                    sf.read(sp / "voicebank16k" / "noisy" / f"p287_00{i}.wav")[0]))
    return out


def test_stoi_pair_is_pystoi_bit_for_bit(pairs):
    for c, e in pairs:
        np.random.seed(7)  # ESTOI's dither comes from NumPy's global stream: the same state, the same bits
        want = (pystoi.stoi(c, e, SR), pystoi.stoi(c, e, SR, extended=True))
        np.random.seed(7)
        got = stoi_pair(c, e, SR)
        assert (got[False], got[True]) == want
        assert stoi_pair(c, e, SR, extended=(False,)) == {False: want[0]}
    # another rate goes through pystoi's resampler the same way
    c8, e8 = pairs[0][0][::2].copy(), pairs[0][1][::2].copy()
    assert stoi_pair(c8, e8, 8000, extended=(False,))[False] == pystoi.stoi(c8, e8, 8000)


def test_stoi_pair_undefined_as_stoi(pairs):
    c, _ = pairs[0]
    got = stoi_pair(c, np.zeros_like(c), SR)
    for ext in (False, True):
        with pytest.raises(sm.MetricUndefinedError) as single:
            sm.stoi(c, np.zeros_like(c), SR, extended=ext)
        assert isinstance(got[ext], sm.MetricUndefinedError)
        assert (str(got[ext]), got[ext].reason) == (str(single.value), single.value.reason)
    short = stoi_pair(c[:4000], c[:4000], SR)
    assert all("too short" in v.reason for v in short.values())


def test_subset_equals_full_evaluation(pairs):
    for c, e in pairs:
        np.random.seed(1)
        full, _ = sm.evaluate_pair_defined(c, e, SR)
        np.random.seed(1)
        four, why = sm.evaluate_pair_defined(c, e, SR, metrics=list(reversed(FOUR)))
        assert tuple(four) == FOUR and not why  # METRICS order, whatever order was asked
        assert four == {m: full[m] for m in FOUR}
        comp, _ = sm.evaluate_pair_defined(c, e, SR, metrics=["covl"])
        assert comp == {"covl": full["covl"]}
    c, _ = pairs[0]
    values, why = sm.evaluate_pair_defined(c, np.zeros_like(c), SR, metrics=["estoi", "snr", "csig"])
    assert set(values) == {"snr"} and set(why) == {"estoi", "csig"}
    for bad in (["pesq"], [], ["stoi", "stoi"]):
        with pytest.raises(ValueError, match="pesq_wb"):
            sm.evaluate_pair_defined(c, c, SR, metrics=bad)


def test_chunks_cover_every_task_in_order():
    tasks = list(range(203))
    for workers in (1, 2, 7):
        chunks = _chunks(tasks, workers)
        assert [t for ch in chunks for t in ch] == tasks
        assert max(map(len, chunks)) <= 16 and len(chunks) >= min(len(tasks), 8 * workers)
    assert _chunks([1], 4) == [[1]]


def test_evaluate_dir_subset_pool_equals_sequential(tmp_path, shared_data):
    vb = shared_data / "speech" / "voicebank16k"
    enh, clean = tmp_path / "enh", tmp_path / "clean"
    enh.mkdir()
    clean.mkdir()
    for i in (1, 2):  # the two shortest pairs
        for k in range(2):  # 4 files: more than one chunk per worker
            name = f"p287_00{i}_{k}.wav"
            sf.write(enh / name, sf.read(vb / "noisy" / f"p287_00{i}.wav")[0], SR, subtype="FLOAT")
            sf.write(clean / name, sf.read(vb / "clean" / f"p287_00{i}.wav")[0], SR, subtype="FLOAT")
    rows = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        summary = sm.evaluate_dir(enh, clean, out, workers=workers, progress=False, metrics=FOUR)
        assert summary["config"]["metrics"] == list(FOUR) and set(summary["enhanced"]["metrics"]) == set(FOUR)
        with open(out / "per_file.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            assert tuple(reader.fieldnames[1:5]) == FOUR
            rows[workers] = {r["file"]: r for r in reader}
    assert len(rows[2]) == 4
    for f, r in rows[1].items():
        c, e = sf.read(clean / f)[0], sf.read(enh / f)[0]
        direct = {"pesq_wb": sm.pesq(c, e, SR, "wb"), "pesq_nb": sm.pesq(c, e, SR, "nb"), "stoi": sm.stoi(c, e, SR)}
        for m, v in direct.items():
            assert float(r[m]) == float(rows[2][f][m]) == v
        assert math.isclose(float(r["estoi"]), float(rows[2][f]["estoi"]), rel_tol=0, abs_tol=1e-12)
    with pytest.raises(sm.MetricInputError, match="cannot be resumed"):  # a resume must choose the same metrics
        sm.evaluate_dir(enh, clean, tmp_path / "out1", workers=1, progress=False)


def test_evaluate_dir_metric_choice_is_checked_before_scoring(tmp_path):
    """metrics= takes METRICS and DNSMOS names; an unknown or repeated name, a metric that needs a
    clean reference without one, and DNSMOS alone with one raise ValueError naming the valid
    names, before any output is written."""
    enh = tmp_path / "enh"
    enh.mkdir()
    sf.write(enh / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(16000), SR)
    out = tmp_path / "out"
    cases = [(enh, ["pesq_wb", "pesq"], r"unknown metric\(s\) \['pesq'\].*'dnsmos_p808'"),
             (enh, ["stoi", "stoi"], "an empty or repeated selection"),
             (enh, [], "an empty or repeated selection"),
             (None, ["stoi", "dnsmos_ovrl"], r"\['stoi'\] need a clean reference"),
             (enh, ["dnsmos_ovrl"], "only DNSMOS scores")]
    for clean, metrics, message in cases:
        with pytest.raises(ValueError, match=message):
            sm.evaluate_dir(enh, clean, out, workers=1, progress=False, metrics=metrics)
        assert not out.exists()
