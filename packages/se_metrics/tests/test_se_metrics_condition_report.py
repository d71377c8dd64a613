"""se_metrics.condition_report: the tables of an evaluation of every file under several
conditions (tools/eval_ood.py's), checked against hand-computed means on a small set of rows."""

from __future__ import annotations

import csv
import math

import pytest

import se_metrics as sm

COLS = ("PESQ-WB", "SI-SDR (dB)")


def _row(ckpt, s, f, noisy, cond, w, **tags):
    return {"checkpoint": ckpt, "set": s, "file": f, **tags, "noisy|PESQ-WB": noisy[0], "noisy|SI-SDR (dB)": noisy[1],
            "cond|PESQ-WB": cond[0], "cond|SI-SDR (dB)": cond[1], "cond|w": w}


ROWS = [_row("a", "ID", "1.wav", (1.0, 2.0), (2.0, 5.0), 0.5, snr_db=0.0, noise_class="babble"),
        _row("a", "ID", "2.wav", (2.0, math.nan), (3.0, 7.0), 1.5, snr_db=5.0),
        _row("a", "OOD", "3.wav", (1.5, 0.0), (1.75, 1.0), 1.0, snr_db=0.0, noise_class="siren")]
LABELS = {"a": ["noisy", "cond"]}


def test_condition_means_and_breakdown():
    table, keys = sm.condition_means(ROWS, LABELS, ["ID", "OOD"], COLS, prefix=False)
    assert list(table) == ["ID noisy", "ID cond", "OOD noisy", "OOD cond"]
    assert keys["ID cond"] == ("a", "ID", "cond")
    assert table["ID noisy"] == {"PESQ-WB": 1.5, "SI-SDR (dB)": 2.0, "files": 2}  # NaN skipped, no "mean w"
    assert table["ID cond"] == {"PESQ-WB": 2.5, "SI-SDR (dB)": 6.0, "mean w": 1.0, "files": 2}
    named, _ = sm.condition_means(ROWS, LABELS, ["ID"], COLS, prefix=True)
    assert list(named) == ["a ID noisy", "a ID cond"]

    bd = sm.condition_breakdown(ROWS, LABELS, COLS, ("snr_db", "noise_class"), list(keys.values()))
    got = [(g["set"], g["condition"], g["by"], g["value"], g["files"], g["PESQ-WB"], g["mean w"]) for g in bd]
    assert got == [
        ("ID", "noisy", "all", "all", 2, 1.5, None),
        ("ID", "noisy", "snr_db", 0.0, 1, 1.0, None),
        ("ID", "noisy", "snr_db", 5.0, 1, 2.0, None),
        ("ID", "noisy", "noise_class", "babble", 1, 1.0, None),  # 2.wav has no noise class: left out
        ("ID", "cond", "all", "all", 2, 2.5, 1.0),
        ("ID", "cond", "snr_db", 0.0, 1, 2.0, 0.5),
        ("ID", "cond", "snr_db", 5.0, 1, 3.0, 1.5),
        ("ID", "cond", "noise_class", "babble", 1, 2.0, 0.5),
        ("OOD", "noisy", "all", "all", 1, 1.5, None),
        ("OOD", "noisy", "snr_db", 0.0, 1, 1.5, None),
        ("OOD", "noisy", "noise_class", "siren", 1, 1.5, None),
        ("OOD", "cond", "all", "all", 1, 1.75, 1.0),
        ("OOD", "cond", "snr_db", 0.0, 1, 1.75, 1.0),
        ("OOD", "cond", "noise_class", "siren", 1, 1.75, 1.0)]

    md = sm.condition_markdown(table, keys, bd, COLS, by=("snr_db",), auroc={"a": {"nc": {"auroc": 0.75}}},
                               score_labels={"nc": "1 - NC certainty", "knn": "k-NN distance"},
                               correlations={"a": {"x vs y": {"pearson": 0.5, "spearman": -1.0, "n": 3}}})
    lines = md.splitlines()
    assert lines[2] == "| checkpoint | set | condition | PESQ-WB | SI-SDR (dB) | mean w | files |"
    assert lines[4] == "| a | ID | noisy | 1.500 | 2.000 | - | 2 |"
    assert lines[5] == "|  | ID | cond | 2.500 | 6.000 | 1.000 | 2 |"
    assert "| 1 - NC certainty | 0.750 |" in lines and not any("k-NN" in ln for ln in lines)
    assert "| a | x vs y | 0.500 | -1.000 | 3 |" in lines
    assert "| a | ID | cond | 5 | 1 | 3.000 | 7.000 |" in lines and "## By noise_class" not in md


def test_tags_pairs_and_csv(tmp_path):
    root = tmp_path / "set"
    for d in ("clean", "noisy"):
        (root / d / "sub").mkdir(parents=True)
        for rel in ("b.wav", "sub/a.WAV", "c.flac"):
            (root / d / rel).write_bytes(b"")
    (root / "noisy" / "notes.txt").write_text("x")
    pairs = sm.set_file_pairs(root)
    assert [p[0] for p in pairs] == ["b.wav", "c.flac", "sub/a.WAV"] and pairs[0][2] == root / "clean" / "b.wav"
    assert len(sm.set_file_pairs(root, 2)) == 2
    (root / "noisy" / "d.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="d.wav has no clean reference"):
        sm.set_file_pairs(root)
    with pytest.raises(ValueError, match="neither clean/ \\+ noisy/"):
        sm.set_file_pairs(tmp_path)

    files = ["b.wav", "sub/a.WAV", "d.wav"]
    assert sm.condition_tags(root, files) == ({}, None, [])  # no manifest
    (root / "manifest.csv").write_text("file,snr_db,noise_class\nb.wav,5,babble\na,-2.5,siren\n")
    tags, source, notes = sm.condition_tags(root, files)
    assert tags == {"b.wav": {"snr_db": 5.0, "noise_class": "babble"},
                    "sub/a.WAV": {"snr_db": -2.5, "noise_class": "siren"}}
    assert source == str(root / "manifest.csv") and notes == [
        f"{root / 'manifest.csv'} describes 2 of 3 files; the other 1 are left out of the SNR / noise-class breakdown"]
    assert sm.condition_tags(root, files, "none") == ({}, None, [])
    bad = tmp_path / "bad.csv"
    bad.write_text("file,other\nb.wav,1\n")
    with pytest.raises(ValueError, match="^--id-manifest .*bad.csv: "):
        sm.condition_tags(root, files, str(bad), flag="--id-manifest")
    (root / "manifest.csv").write_text("file,other\nb.wav,1\n")  # the default one, unreadable: a note, no tags
    tags, source, notes = sm.condition_tags(root, files)
    assert (tags, source) == ({}, None)
    assert notes[0].startswith(f"{root / 'manifest.csv'} is not read for the breakdown")

    out = tmp_path / "rows.csv"
    sm.write_dict_rows(out, [{"x": 1.5, "error": "boom", "file": "a"}, {"file": "b", "y": None, "z": 2}],
                       front=("file", "q"))
    with open(out, newline="") as fh:
        got = list(csv.reader(fh))
    assert got == [["file", "x", "y", "z", "error"], ["a", "1.5", "", "", "boom"], ["b", "", "", "2", ""]]
