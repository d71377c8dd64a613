"""tools/eval_ood.py end to end on an OOD set built by tools/make_ood_testset.py: the table per
set and guidance condition, the uncertainty-vs-quality correlations and the scatter plot; the
per-SNR / per-noise-class breakdown, the AUROC of each uncertainty score, a settable k-NN tau,
several checkpoints in one table, in-distribution-only runs and the exit status of failed
files. Every number is re-derived from the per-file table the tool writes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import se_data
from sgmse_cfg import CNNNoiseEncoder, NoiseCondScoreModel, SmallUNet

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import _train  # noqa: E402

METRICS = ("PESQ-WB", "ESTOI", "SI-SDR (dB)")


def _run(script: str, args: list, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, f"tools/{script}", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, \
        f"{script} exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _tiny_checkpoint(path: Path, seed: int = 1) -> None:
    """A model.pt as tools/train_sgmse.py writes it (untrained tiny weights, fitted bank)."""
    torch.manual_seed(0)
    m = NoiseCondScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), CNNNoiseEncoder(channels=(4, 8), dim=8),
                            n_classes=5, class_names=["babble", "brown", "nonstationary", "pink", "white"],
                            p_uncond=0.1)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():  # conditional and unconditional scores differ
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    m.fit_bank(torch.randn(32, 8, generator=g))
    path.parent.mkdir(parents=True, exist_ok=True)
    _train.save_checkpoint(path, {"tool": "train_sgmse", "model_config": m.to_config(), "sample_rate": 16000,
                                  "class_names": m.class_names, "ema": m.state_dict()})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """3 in-distribution files; an OOD set of the same speech with two unseen tone noises at 0
    and 10 dB (6 files, manifest.csv); two tiny checkpoints in run folders runA/ and runB/."""
    root = tmp_path_factory.mktemp("eval_ood")
    corpus = root / "corpus"
    se_data.make_demo_corpus(corpus, n_train=0, n_valid=0, n_test=3, seconds=(1.2, 1.5), seed=0)
    noise = root / "tones"
    noise.mkdir()
    t = np.arange(16000 * 2) / 16000
    sf.write(noise / "alarm.wav", (0.3 * np.sin(2 * np.pi * 1200 * t) * (np.sin(2 * np.pi * 3 * t) > 0)), 16000)
    sf.write(noise / "siren.wav", 0.3 * np.sin(2 * np.pi * (600 + 300 * np.sin(2 * np.pi * 0.7 * t)) * t), 16000)
    ood = root / "ood"
    _run("make_ood_testset.py", ["--clean", corpus / "test" / "clean", "--noise", noise, "--out", ood,
                                 "--snrs", "0", "10", "--no-progress"])
    _tiny_checkpoint(root / "runA" / "model.pt", seed=1)
    _tiny_checkpoint(root / "runB" / "model.pt", seed=2)
    return {"root": root, "id": corpus / "test", "ood": ood, "ckptA": root / "runA" / "model.pt",
            "ckptB": root / "runB" / "model.pt"}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _table_labels(stdout: str, n: int) -> list[str]:
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "PESQ-WB" in line)
    return [" ".join(line.split()[:-5]) for line in lines[head + 2: head + 2 + n]]


def _fitted_tau(ckpt: Path) -> float:
    return float(torch.load(ckpt, weights_only=True)["ema"]["bank.tau"])


def test_eval_ood_table_correlation_and_plot(data: dict[str, Path]) -> None:
    out = data["root"] / "eval"
    proc = _run("eval_ood.py", ["--ckpt", data["ckptA"], "--id", data["id"], "--ood", data["ood"], "--files", "3",
                                "--conditions", "uncond", "cond", "static:2", "knn", "mix", "--N", "1",
                                "--threads", "1", "--out", out])
    assert _table_labels(proc.stdout, 12) == [
        "ID noisy", "ID uncond", "ID cond", "ID static w=2", "ID knn", "ID mix",
        "OOD noisy", "OOD uncond", "OOD cond", "OOD static w=2", "OOD knn", "OOD mix"]
    res = json.loads((out / "results.json").read_text())
    tab = res["table"]
    assert tab["ID uncond"]["mean w"] == 0.0 and tab["OOD static w=2"]["mean w"] == 2.0
    assert 0.0 < tab["OOD knn"]["mean w"] < 1.0 and tab["ID cond"]["files"] == 3
    # the guidance scale matters: static w=2 differs from the conditional score
    assert tab["ID static w=2"]["SI-SDR (dB)"] != tab["ID cond"]["SI-SDR (dB)"]
    rows = _rows(out / "per_file.csv")
    assert len(rows) == 6 and {r["set"] for r in rows} == {"ID", "OOD"}
    # correlations recomputed from the per-file table
    from scipy.stats import pearsonr

    d = [float(r["knn_distance"]) for r in rows]
    q = [float(r["cond|SI-SDR (dB)"]) - float(r["noisy|SI-SDR (dB)"]) for r in rows]
    want = pearsonr(d, q)[0]
    got = res["correlations"]["k-NN distance vs dSI-SDR (cond - noisy)"]
    assert got["n"] == 6 and abs(got["pearson"] - want) < 1e-9
    assert "1 - NC certainty vs dSI-SDR (cond - uncond)" in res["correlations"]
    assert "uncertainty vs quality" in proc.stdout
    assert (out / "plots" / "uncertainty_vs_quality.png").stat().st_size > 10_000
    assert not (out / ".lock").exists()  # held while running, released at exit


def test_two_checkpoints_breakdown_auroc_and_tau(data: dict[str, Path]) -> None:
    out = data["root"] / "eval_two"
    tau = 0.25
    proc = _run("eval_ood.py", ["--ckpt", data["ckptA"], "--ckpt", f"second={data['ckptB']}", "--id", data["id"],
                                "--ood", data["ood"], "--conditions", "cond", "nc", "nc_raw", "knn", "mix",
                                "--tau", tau, "--files", "3", "--N", "1", "--threads", "1", "--out", out])
    # two checkpoints: two row groups in one table, labelled by run folder and by NAME=
    conds = ["noisy", "cond", "nc", "nc_raw", "knn", "mix"]
    assert _table_labels(proc.stdout, 24) == [f"{c} {s} {k}" for c in ("runA", "second") for s in ("ID", "OOD")
                                              for k in conds]
    res = json.loads((out / "results.json").read_text())
    assert list(res["checkpoints"]) == ["runA", "second"]
    rows = _rows(out / "per_file.csv")
    assert len(rows) == 2 * (3 + 3) and not any(r.get("error") for r in rows)
    by_ckpt = {c: [r for r in rows if r["checkpoint"] == c] for c in ("runA", "second")}
    assert [r["file"] for r in by_ckpt["runA"]] == [r["file"] for r in by_ckpt["second"]]
    assert by_ckpt["runA"][0]["cond|SI-SDR (dB)"] != by_ckpt["second"][0]["cond|SI-SDR (dB)"]
    for name in ("runA", "second"):
        assert (out / "plots" / f"uncertainty_vs_quality_{name}.png").stat().st_size > 10_000

    # tau: the k-NN weight is 1 / (1 + d / tau) with the given tau, not the fitted one
    for name, ckpt in (("runA", data["ckptA"]), ("second", data["ckptB"])):
        fitted = _fitted_tau(ckpt)
        info = res["checkpoints"][name]
        assert info["tau"] == tau and info["tau_fitted"] == pytest.approx(fitted)
        for r in by_ckpt[name]:
            d, u_nc = float(r["knn_distance"]), float(r["nc_certainty"])
            u_knn = 1.0 / (1.0 + d / tau)
            assert float(r["knn|w"]) == pytest.approx(u_knn, rel=1e-5)
            assert float(r["knn_reliability"]) == pytest.approx(u_knn, rel=1e-5)
            assert abs(float(r["knn|w"]) - 1.0 / (1.0 + d / fitted)) > 1e-3  # tau changed it
            assert float(r["mix|w"]) == pytest.approx(0.5 * u_nc + 0.5 * u_knn, rel=1e-5)
            # the raw rule w = max softmax beside its rescaling (C = 5 classes)
            conf = float(r["nc_confidence"])
            assert float(r["nc_raw|w"]) == pytest.approx(conf, rel=1e-6) and conf >= 0.2 - 1e-7
            assert float(r["nc|w"]) == pytest.approx((conf - 0.2) / 0.8, abs=1e-6)
            assert float(r["score_mix"]) == pytest.approx(1.0 - float(r["mix|w"]), rel=1e-5, abs=1e-7)
            assert float(r["score_nc_confidence"]) == pytest.approx(1.0 - conf)

    # breakdown rows are the means of the per-file rows they group
    bd = _rows(out / "breakdown.csv")
    assert {g["by"] for g in bd} == {"all", "snr_db", "noise_class"}
    for g in bd:
        sel = [r for r in by_ckpt[g["checkpoint"]] if r["set"] == g["set"]]
        if g["by"] == "snr_db":
            sel = [r for r in sel if r["snr_db"] and float(r["snr_db"]) == float(g["value"])]
        elif g["by"] == "noise_class":
            sel = [r for r in sel if r["noise_class"] == g["value"]]
        assert int(g["files"]) == len(sel) > 0, g
        for m in METRICS + ("w",):
            col = "mean w" if m == "w" else m
            if m == "w" and g["condition"] == "noisy":
                assert g[col] == ""
                continue
            vals = [float(r[f"{g['condition']}|{m}"]) for r in sel]
            assert float(g[col]) == pytest.approx(float(np.mean(vals)), rel=1e-12, abs=1e-12), (g, m)
    snr_groups = [g for g in bd if g["by"] == "snr_db" and g["checkpoint"] == "runA" and g["condition"] == "cond"]
    assert [float(g["value"]) for g in snr_groups] == [0.0, 10.0] and sum(int(g["files"]) for g in snr_groups) == 3
    assert all(g["set"] == "OOD" for g in bd if g["by"] != "all")  # the demo corpus has no manifest

    # AUROC: pairs (ID, OOD) of the written scores, OOD above ID counted 1, ties 1/2
    au = json.loads((out / "auroc.json").read_text())["checkpoints"]
    assert set(au) == {"runA", "second"}
    for name, scores in au.items():
        assert set(scores) == {"nc_certainty", "nc_confidence", "nc_entropy", "knn_distance", "mix"}
        for key, entry in scores.items():
            id_s = [float(r[f"score_{key}"]) for r in by_ckpt[name] if r["set"] == "ID"]
            ood = [r for r in by_ckpt[name] if r["set"] == "OOD"]
            ood_s = [float(r[f"score_{key}"]) for r in ood]
            pairs = sum(1.0 if o > i else 0.5 if o == i else 0.0 for i in id_s for o in ood_s)
            assert (entry["n_id"], entry["n_ood"]) == (3, 3)
            assert entry["auroc"] == pytest.approx(pairs / 9, abs=1e-12)
            for snr, sub in entry["by_snr_db"].items():
                sub_s = [float(r[f"score_{key}"]) for r in ood if float(r["snr_db"]) == float(snr)]
                pairs = sum(1.0 if o > i else 0.5 if o == i else 0.0 for i in id_s for o in sub_s)
                assert sub["auroc"] == pytest.approx(pairs / (3 * len(sub_s)), abs=1e-12)
        # rescaling the confidence keeps the ranking, so its AUROC
        assert scores["nc_certainty"]["auroc"] == pytest.approx(scores["nc_confidence"]["auroc"], abs=1e-12)
    md = (out / "table.md").read_text()
    assert "## AUROC" in md and "| runA |" in md and "| second |" in md and "## By snr_db" in md


def test_in_distribution_only(data: dict[str, Path]) -> None:
    out = data["root"] / "eval_id"
    proc = _run("eval_ood.py", ["--ckpt", data["ckptA"], "--id", data["id"], "--conditions", "cond", "knn",
                                "--files", "2", "--N", "1", "--threads", "1", "--out", out])
    assert _table_labels(proc.stdout, 3) == ["ID noisy", "ID cond", "ID knn"]
    rows = _rows(out / "per_file.csv")
    assert len(rows) == 2 and {r["set"] for r in rows} == {"ID"}
    fitted = _fitted_tau(data["ckptA"])  # no --tau: the checkpoint's own
    for r in rows:
        assert float(r["knn|w"]) == pytest.approx(1.0 / (1.0 + float(r["knn_distance"]) / fitted), rel=1e-5)
    res = json.loads((out / "results.json").read_text())
    assert list(res["sets"]) == ["ID"] and res["checkpoints"]["runA"]["tau"] == pytest.approx(fitted)
    assert not (out / "auroc.json").exists() and "AUROC" not in proc.stdout
    assert {g["by"] for g in _rows(out / "breakdown.csv")} == {"all"}


def test_a_failed_file_exits_1_unless_allowed(data: dict[str, Path]) -> None:
    bad = data["root"] / "id_bad"
    for sub in ("clean", "noisy"):
        (bad / sub).mkdir(parents=True)
        for f in sorted((data["id"] / sub).glob("*.wav"))[:2]:
            shutil.copy(f, bad / sub / f.name)
    first = sorted((bad / "noisy").glob("*.wav"))[0]
    x, _ = sf.read(first)
    sf.write(first, x[::2], 8000)  # another rate and no --resample: this file fails
    args = ["--ckpt", data["ckptA"], "--id", bad, "--conditions", "cond", "--N", "1", "--threads", "1"]
    out = data["root"] / "eval_fail"
    proc = _run("eval_ood.py", [*args, "--out", out], expect=1)
    assert "1 of 2 file(s) failed" in proc.stderr
    rows = _rows(out / "per_file.csv")
    assert [bool(r["error"]) for r in rows] == [True, False] and "8000" in rows[0]["error"]
    assert json.loads((out / "results.json").read_text())["table"]["ID cond"]["files"] == 1
    assert not (out / ".lock").exists()
    _run("eval_ood.py", [*args, "--out", data["root"] / "eval_fail2", "--allow-failures"], expect=0)


@pytest.mark.parametrize("argv,message", [
    (["--ckpt", "a/model.pt", "a/model.pt"], "given twice"),
    (["--ckpt", "x=a/model.pt", "x=b/model.pt"], "'x' is given twice"),
    (["--ckpt", "m.pt", "--tau", "0"], "--tau"),
    (["--ckpt", "m.pt", "--conditions", "cond", "cond"], "given twice"),
    (["--ckpt", "m.pt", "--conditions", "nc_raw:30"], "nc_raw:30"),
])
def test_bad_command_lines_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    import eval_ood

    with pytest.raises(SystemExit) as e:
        eval_ood.parse_args([*argv, "--id", "ID"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_checkpoint_names() -> None:
    import eval_ood

    assert eval_ood.checkpoint_names(["runs/a/model.pt", "runs/b/model.pt"]) == [
        ("a", "runs/a/model.pt"), ("b", "runs/b/model.pt")]
    assert eval_ood.checkpoint_names(["runs/a/best.pt", "runs/a/last.pt", "nase=runs/c/model.pt"]) == [
        ("a/best", "runs/a/best.pt"), ("a/last", "runs/a/last.pt"), ("nase", "runs/c/model.pt")]
