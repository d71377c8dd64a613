"""tools/run_study.py: study files checked before anything runs (errors name the line), dry run,
runs that resume without retraining, changed configurations refused unless --rerun, a failing
row marked failed while the others finish, quoted rows never ranked, the statistics, report.html,
and the Slurm path through submitit's local executor with a train_sgmse row and an
evaluation-only sweep. A toy study on a tiny corpus keeps it to about a minute and a half."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import se_data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import run_study  # noqa: E402
import _study_markdown as markdown  # noqa: E402
import _study_table as table  # noqa: E402

TINY = ("epochs = 1, steps-per-epoch = 2, batch-size = 2, segment = 0.5, valid-pesq-files = 0, num-channel = 4, "
        "num-layer = 1")

TOY = f"""# a toy study: two tiny models, one row that fails, the noisy input and a quoted row
[study]
name = "toy"
title = "Toy study"
baseline = "A"
metrics = ["pesq_wb", "stoi", "si_sdr", "lsd"]

[defaults.train_bsdt]
flags = {{ {TINY} }}

[[row]]
name = "noisy"
kind = "noisy"

[[row]]
name = "A"
tool = "train_bsdt"
flags = {{ model = "bsrnn" }}
seeds = [0, 1]

[[row]]
name = "B"
tool = "train_bsdt"
flags = {{ model = "bsdt", num-heads = 2 }}

[[row]]
name = "broken"
tool = "train_bsdt"
flags = {{ model = "bsrnn", batch-size = 100 }}

[[row]]
name = "paper"
kind = "quoted"
citation = "Someone et al., a paper (2099)"
test_set = "another test set"
values = {{ pesq_wb = 4.5, stoi = 0.99 }}
"""


def _cli(args: list[str], check_rc: int | None = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "tools/run_study.py", "--threads", "1", "--workers", "1", "--no-progress",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check_rc is not None and proc.returncode != check_rc:
        raise AssertionError(f"exit {proc.returncode} (expected {check_rc}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study") / "corpus"
    se_data.make_demo_corpus(root, n_train=8, n_valid=2, n_test=3, seconds=1.0, seed=0)
    return root


@pytest.fixture(scope="module")
def toy(corpus: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The toy study run once: (study file, study folder). The broken row makes it exit 1."""
    d = tmp_path_factory.mktemp("toy")
    study = d / "toy.toml"
    study.write_text(TOY)
    out = d / "out"
    proc = _cli([str(study), "--data", str(corpus), "--out", str(out), "--check"], check_rc=1)
    assert "broken seed 0" in proc.stderr and "every table number equals" in proc.stdout
    return study, out


def _table(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "table.csv", newline="") as fh:
        return {r["configuration"]: r for r in csv.DictReader(fh)}


def _per_file(metrics_dir: Path, metric: str) -> dict[str, float]:
    with open(metrics_dir / "per_file.csv", newline="") as fh:
        return {r["file"]: float(r[metric]) for r in csv.DictReader(fh) if not r["error"]}


# ----------------------------------------------------------------------------- bad study files
def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


B_FLAGS = 'flags = { model = "bsdt", num-heads = 2 }'


def _second(text: str, line: str) -> int:
    return [i for i, ln in enumerate(text.splitlines(), 1) if ln == line][1]


@pytest.mark.parametrize("old,new,locate,message", [
    ('tool = "train_bsdt"\nflags = { model = "bsdt"', 'tool = "train_bsd"\nflags = { model = "bsdt"',
     lambda t: _line_of(t, 'tool = "train_bsd"'), "unknown tool 'train_bsd'"),
    (B_FLAGS, 'flags = { model = "bsdt", epochz = 3 }', lambda t: _line_of(t, "epochz"),
     "has no flag --epochz"),
    (B_FLAGS, 'flags = { model = "bsdt", num_layer = 3 }', lambda t: _line_of(t, "num_layer"),
     "did you mean 'num-layer'"),
    (B_FLAGS, 'flags = { model = "bsdt", lr = -1 }', lambda t: _line_of(t, "lr = -1"),
     "argument --lr"),
    (B_FLAGS, 'flags = { model = "bsdt", seed = 3 }', lambda t: _line_of(t, "seed = 3"),
     "set by the runner"),
    ('"si_sdr", "lsd"]', '"si_sdr", "mos"]', lambda t: _line_of(t, '"mos"'), "unknown metric 'mos'"),
    ("stoi = 0.99 }", "stoi = 0.99, dnsmos = 3 }", lambda t: _line_of(t, "dnsmos"), "unknown metric 'dnsmos'"),
    ('baseline = "A"', 'baseline = "paper"', lambda t: _line_of(t, 'baseline = "paper"'), "must be a measured row"),
    ('name = "B"', 'name = "A"', lambda t: _second(t, 'name = "A"'), "row name 'A' repeats"),
    ('[[row]]\nname = "paper"', '[[rows]]\nname = "paper"', lambda t: _line_of(t, "[[rows]]"),
     "unknown table [rows]"),
])
def test_bad_study_file_fails_before_any_run_naming_the_line(tmp_path: Path, capsys, old: str, new: str,
                                                             locate, message: str) -> None:
    assert old in TOY
    text = TOY.replace(old, new, 1)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert run_study.main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{locate(text)}:" in err, err
    assert message in err, err
    assert not out.exists()  # nothing ran, nothing was written


def test_dry_run_lists_every_run_and_writes_nothing(tmp_path: Path, capsys) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(TOY)
    out = tmp_path / "out"
    assert run_study.main([str(path), "--out", str(out), "--dry-run", "--seeds", "3"]) == 0
    text = capsys.readouterr().out
    assert "9 run(s)" in text  # A, B, broken x seeds 0..2
    assert "A seed 2: tools/train_bsdt.py --epochs 1" in text and "--model bsrnn" in text
    assert "[quoted  ] paper (Someone et al., a paper (2099))" in text
    assert not out.exists()


# ----------------------------------------------------------------------------- a study end to end
def test_failed_row_is_marked_with_its_log_and_the_others_finish(toy: tuple[Path, Path]) -> None:
    _, out = toy
    t = _table(out)
    assert t["A"]["status"] == "ok" and t["A"]["seeds"] == "2" and t["B"]["status"] == "ok"
    assert t["broken"]["status"].startswith("failed") and t["broken"]["seeds"] == "0"
    log = Path(t["broken"]["logs"])
    assert log.is_file() and "--batch-size 100" in log.read_text()
    assert "logs" in t["broken"] and "[log](" in (out / "table.md").read_text()
    rec = json.loads((out / "runs" / "broken" / "seed0" / "run.json").read_text())
    assert rec["status"] == "failed" and rec["log"] == str(log)


def test_table_statistics_equal_scipy_on_the_runs_scores(toy: tuple[Path, Path]) -> None:
    _, out = toy
    t = _table(out)
    runs = {s: out / "runs" / "a" / f"seed{s}" / "eval" / "default" / "metrics" for s in (0, 1)}
    per_seed = [np.mean(list(_per_file(runs[s], "pesq_wb").values())) for s in (0, 1)]
    lo, hi = stats.t.interval(0.95, 1, loc=np.mean(per_seed), scale=stats.sem(per_seed))
    assert float(t["A"]["pesq_wb"]) == pytest.approx(np.mean(per_seed), rel=1e-12)
    assert float(t["A"]["pesq_wb_ci95"]) == pytest.approx((hi - lo) / 2, rel=1e-9)
    # B against the baseline A: each file's A score averaged over A's two seeds, then paired
    b = _per_file(out / "runs" / "b" / "seed0" / "eval" / "default" / "metrics", "si_sdr")
    a = {f: np.mean([_per_file(runs[s], "si_sdr")[f] for s in (0, 1)]) for f in b}
    files = sorted(b)
    ref = stats.wilcoxon([b[f] - a[f] for f in files])
    assert float(t["B"]["si_sdr_p"]) == pytest.approx(float(ref.pvalue), rel=1e-12)
    assert float(t["B"]["si_sdr_delta"]) == pytest.approx(np.mean(list(b.values())) - np.mean(per_seed := [
        np.mean(list(_per_file(runs[s], "si_sdr").values())) for s in (0, 1)]), rel=1e-9)
    # cost columns: parameters of the trained model, an RTF
    assert int(float(t["A"]["parameters"])) > 1000 and float(t["A"]["rtf"]) > 0


def test_quoted_rows_are_shown_apart_and_never_ranked(toy: tuple[Path, Path]) -> None:
    _, out = toy
    t = _table(out)
    assert t["paper"]["kind"] == "quoted" and float(t["paper"]["pesq_wb"]) == 4.5  # beats every measured row
    assert t["paper"]["pesq_wb_best"] == "" and t["paper"]["stoi_best"] == ""
    measured = {k: float(v["pesq_wb"]) for k, v in t.items() if v["kind"] != "quoted" and v["pesq_wb"]}
    best = [k for k, v in t.items() if v["pesq_wb_best"] == "1"]
    assert best == [max(measured, key=measured.get)]
    lsd = {k: float(v["lsd"]) for k, v in t.items() if v["kind"] != "quoted" and v["lsd"]}
    assert [k for k, v in t.items() if v["lsd_best"] == "1"] == [min(lsd, key=lsd.get)]  # lower is better
    md = (out / "table.md").read_text()
    assert "Quoted from papers (not measured here" in md and "| paper † |" in md
    assert md.index("paper †") > md.index("Δ against A")


def test_results_json_records_provenance_of_every_run(toy: tuple[Path, Path]) -> None:
    _, out = toy
    res = json.loads((out / "results.json").read_text())
    done = [r for r in res["runs"] if r["status"] == "complete"]
    assert len(done) == 3
    for r in done:
        assert r["commit"] and r["versions"]["torch"] and r["device"] == "cpu" and r["wall_s"] > 0
        assert r["command"][1].endswith("tools/train_bsdt.py") and "--seed" in r["command"]
    assert {row["configuration"]: row["status"] for row in res["rows"]}["paper"] == "quoted"


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def test_report_html_is_self_contained_and_every_file_it_names_exists(toy: tuple[Path, Path]) -> None:
    _, out = toy
    p = _Refs()
    p.feed((out / "report.html").read_text())
    assert "script" not in p.tags and "link" not in p.tags
    imgs = [r for r in p.refs if r.endswith(".png")]
    wavs = [r for r in p.refs if r.endswith(".wav")]
    assert len(imgs) == 4  # bars, spectrograms, loss curves, BSDT analysis
    assert len(wavs) == 3 * 4  # the 3 test utterances: noisy, A, B, clean
    for r in p.refs:
        assert not r.startswith(("http:", "https:", "//")), r
        assert (out / r).is_file() or Path(r).is_file(), r


def test_second_run_resumes_without_retraining(toy: tuple[Path, Path], corpus: Path) -> None:
    study, out = toy
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/seed*/train/best.pt")}
    assert len(before) == 3
    proc = _cli([str(study), "--data", str(corpus), "--out", str(out), "--only", "A", "--only", "B"])
    assert "run  " not in proc.stderr  # nothing was launched
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/seed*/train/best.pt")} == before
    # a run killed after training, during its evaluation: it continues (--resume, no epoch left),
    # is evaluated again, and its model is not retrained
    run = out / "runs" / "a" / "seed1"
    rec = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**rec, "status": "running"}))
    (run / "eval" / "default" / "stats.json").unlink()
    proc = _cli([str(study), "--data", str(corpus), "--out", str(out), "--only", "A"])
    assert "run  A seed 1" in proc.stderr and "run  A seed 0" not in proc.stderr
    assert "--resume" in json.loads((run / "run.json").read_text())["command"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/seed*/train/best.pt")} == before
    assert _table(out)["A"]["seeds"] == "2"
    # a study folder is never shared with another study or mode
    other = study.with_name("other.toml")
    other.write_text(study.read_text().replace('name = "toy"', 'name = "other"'))
    assert "holds study 'toy'" in _cli([str(other), "--data", str(corpus), "--out", str(out)], check_rc=2).stderr


def test_changed_configuration_is_refused_unless_rerun(toy: tuple[Path, Path], corpus: Path) -> None:
    study, out = toy
    changed = study.with_name("changed.toml")
    old = 'flags = { model = "bsdt", num-heads = 2 }'
    changed.write_text(study.read_text().replace(old, 'flags = { model = "bsdt", num-heads = 2, lr = 0.002 }'))
    before = json.loads((out / "runs" / "b" / "seed0" / "run.json").read_text())
    proc = _cli([str(changed), "--data", str(corpus), "--out", str(out)], check_rc=2)
    assert "configuration of row(s) 'B' changed" in proc.stderr and "--rerun 'B'" in proc.stderr
    assert json.loads((out / "runs" / "b" / "seed0" / "run.json").read_text()) == before
    _cli([str(changed), "--data", str(corpus), "--out", str(out), "--rerun", "B", "--only", "B"])
    after = json.loads((out / "runs" / "b" / "seed0" / "run.json").read_text())
    assert after["status"] == "complete" and after["config_hash"] != before["config_hash"]
    assert "--lr" in after["command"]
    moved = list((out / "replaced").glob("b-seed0-*/run.json"))
    assert len(moved) == 1 and json.loads(moved[0].read_text())["config_hash"] == before["config_hash"]


# ----------------------------------------------------------------------------- the Slurm path and SGMSE
SG_FLAGS = ('backbone = "smallunet", unet-channels = "8,16", encoder-channels = "8,16", embed-dim = 16, '
            'sde = "sbve", epochs = 1, steps-per-epoch = 2, batch-size = 2, frames = 32, valid-batches = 1, '
            'bank-size = 8, knn-k = 2')
SGMSE_STUDY = """[study]
name = "toy_sgmse"
baseline = "SG / w=1"
metrics = ["pesq_wb", "si_sdr"]

[defaults.train_sgmse]
flags = { SG_FLAGS }

[[row]]
name = "SG"
tool = "train_sgmse"
[row.eval]
tool = "eval_dir"
flags = { sampler = "sb_ode", N = 2 }
[[row.eval.sweep]]
label = "w=1"
flags = { guidance = "static", w = 1 }
[[row.eval.sweep]]
label = "adaptive"
flags = { guidance = "knn", w = 2 }
"""


def test_sgmse_sweep_through_submitits_local_executor(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    study = tmp_path / "sg.toml"
    study.write_text(SGMSE_STUDY.replace("SG_FLAGS", SG_FLAGS))
    out = tmp_path / "out"
    proc = _cli([str(study), "--data", str(corpus), "--out", str(out), "--launcher", "slurm", "--slurm-executor",
                 "local", "--check"])
    assert "submitted SG seed 0 (local job" in proc.stderr
    t = _table(out)
    assert set(t) == {"SG / w=1", "SG / adaptive"}  # one trained model, two table rows
    assert all(v["status"] == "ok" for v in t.values())
    assert len(list(out.glob("runs/sg/seed0/train/model.pt"))) == 1
    for label in ("w-1", "adaptive"):
        assert len(list((out / "runs" / "sg" / "seed0" / "eval" / label / "enhanced").glob("*.wav"))) == 3
    settings = json.loads((out / "runs/sg/seed0/eval/adaptive/enhance/settings.json").read_text())["args"]
    assert settings["guidance"] == "knn" and settings["w"] == 2 and settings["N"] == 2
    assert float(t["SG / adaptive"]["rtf"]) > 0 and t["SG / adaptive"]["pesq_wb_p"] != ""


# ----------------------------------------------------------------------------- statistics and the checker
def _runs(values: list[list[float]]) -> list[table.RunScores]:
    return [table.RunScores(s, {"pesq_wb": {f"f{i}": v for i, v in enumerate(vals)}},
                            summary_means={"pesq_wb": float(np.mean(vals))}) for s, vals in enumerate(values)]


def test_compute_by_hand_and_the_checker_catches_a_wrong_number(tmp_path: Path) -> None:
    base = table.TableRow("base", "model", runs=_runs([[2.0, 2.0, 2.0], [2.5, 2.5, 2.5]]), expected_seeds=2)
    new = table.TableRow("new", "model", runs=_runs([[3.0, 2.5, 2.0]]), expected_seeds=1)
    quoted = table.TableRow("q", "quoted", quoted={"pesq_wb": 9.0}, citation="c")
    rows = [base, new, quoted]
    table.compute(rows, ["pesq_wb"], "base")
    c = base.cells["pesq_wb"]
    # two seeds 2.0 and 2.5: s = 0.35355, t_{0.975,1} = 12.7062, half width = t s / sqrt 2 = 3.1766
    assert c["mean"] == 2.25 and c["ci"] == pytest.approx(12.706204736 * math.sqrt(0.125) / math.sqrt(2), rel=1e-8)
    d = new.cells["pesq_wb"]
    assert d["delta"] == pytest.approx(2.5 - 2.25) and d["ci"] is None  # one seed: no interval
    assert d["p"] == pytest.approx(float(stats.wilcoxon([0.75, 0.25, -0.25]).pvalue))
    assert new.best == {"pesq_wb"} and not quoted.best
    path = tmp_path / "table.csv"
    path.write_text(table.csv_text(rows, ["pesq_wb"]))
    assert table.check_table(path, rows, ["pesq_wb"]) == []
    path.write_text(path.read_text().replace(repr(2.25), repr(2.2500001)))
    problems = table.check_table(path, rows, ["pesq_wb"])
    assert len(problems) == 1 and problems[0].startswith("base pesq_wb")


def test_first_epoch_pesq_gate_is_read_from_the_log_and_reported(tmp_path: Path) -> None:
    import _study_job

    log = tmp_path / "log.csv"
    log.write_text("epoch,step,valid_loss,valid_pesq\n0,10,0.2,2.61\n1,20,0.1,2.9\n")
    assert _study_job.first_epoch_valid_pesq(log) == 2.61
    log.write_text("epoch,step,valid_loss\n0,10,0.2\n")  # no PESQ scored (--valid-pesq-files 0)
    assert _study_job.first_epoch_valid_pesq(log) is None
    assert _study_job.first_epoch_valid_pesq(tmp_path / "missing.csv") is None
    runs = _runs([[2.0, 2.0]])
    runs[0].stats = {"first_epoch_valid_pesq": 2.4}
    good = _runs([[3.0, 3.0], [3.0, 3.0]])
    good[0].stats, good[1].stats = {"first_epoch_valid_pesq": 2.6}, {"first_epoch_valid_pesq": 2.8}
    rows = [table.TableRow("low", "model", runs=runs), table.TableRow("high", "model", runs=good, expected_seeds=2)]
    table.compute(rows, ["pesq_wb"], "low")
    md = markdown.markdown(rows, ["pesq_wb"], baseline="low", quick=False, title="t", test_desc="x", seeds_desc="y")
    assert "| low | 2.400 | FAIL |" in md and "| high | 2.700 | pass |" in md
    rows[0].runs[0].stats, rows[1].runs[0].stats, rows[1].runs[1].stats = {}, {}, {}
    assert "early gate" not in markdown.markdown(rows, ["pesq_wb"], baseline="low", quick=False, title="t",
                                                 test_desc="x", seeds_desc="y")


def test_setup_step_flags_are_checked_against_its_tool(tmp_path: Path, capsys) -> None:
    text = ('[study]\nname = "s"\n\n[[setup]]\nname = "ood"\ntool = "make_ood_testset"\n'
            'flags = { clean = "{demo_dir}/test/clean", noise = "n", snrz = [0, 5] }\n\n'
            '[[row]]\nname = "noisy"\nkind = "noisy"\n')
    path = tmp_path / "s.toml"
    path.write_text(text)
    assert run_study.main([str(path), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert f"{path}:7: setup 'ood': tools/make_ood_testset.py has no flag --snrz" in capsys.readouterr().err
    path.write_text(text.replace("snrz = [0, 5]", "snrs = [0, 500]"))
    assert run_study.main([str(path), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert f"{path}:7: setup 'ood': tools/make_ood_testset.py refuses argument --snrs" in capsys.readouterr().err


def test_quick_caps_are_limits_a_row_may_go_below() -> None:
    import _study_schema
    import _study_tools

    study = _study_schema.load_study(REPO / "studies" / "bandsplit_compare.toml")
    rows = {r.name: r for r in study.rows}

    def argv(name: str) -> list[str]:
        return _study_tools.train_argv(study, rows[name], data=False, quick=True)

    erb, bsrnn = argv("ERB-UNet plain conv"), argv("BSRNN")
    assert erb[erb.index("--steps-per-epoch") + 1] == "4" and erb[erb.index("--segment") + 1] == "0.5"
    assert bsrnn[bsrnn.index("--steps-per-epoch") + 1] == "10" and bsrnn[bsrnn.index("--epochs") + 1] == "1"
    rows["BSRNN"].quick_flags = {"steps-per-epoch": 50}  # above the cap: capped
    assert argv("BSRNN")[argv("BSRNN").index("--steps-per-epoch") + 1] == "10"


# ----------------------------------------------------------------------------- AA bands, eval_ood sets, criteria
def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _aa_dir(d: Path, nmr: list[float], hesr: list[float]) -> Path:
    """A fake analyze_aa output: two tones, the student's band 12k-20k scores given, a teacher row ignored."""
    d.mkdir(parents=True)
    tones = [("100", "-18"), ("1000", "-18")]
    _write_csv(d / "per_tone.csv", [{"model": m, "f0_hz": f, "level_db": lv, "nmr_s_db": v, "hesr_t_db": -20}
                                    for m, v in (("student", -30), ("teacher", 99)) for f, lv in tones])
    rows = [{"model": "student", "f0_hz": f, "level_db": lv, "band": "12k-20k", "nmr_s_db": n, "hesr_t_db": h}
            for (f, lv), n, h in zip(tones, nmr, hesr)]
    rows.append({"model": "teacher", "f0_hz": "100", "level_db": "-18", "band": "12k-20k", "nmr_s_db": 50,
                 "hesr_t_db": "-inf"})
    _write_csv(d / "per_tone_band.csv", rows)
    (d / "summary.json").write_text(json.dumps({"per_band": {"student": {"12k-20k": {
        "nmr_s_db": float(np.mean(nmr)), "hesr_t_db": float(np.mean(hesr))}}}}))
    return d


def test_aa_band_columns_pool_tones_and_seeds_and_mark_the_targets(tmp_path: Path) -> None:
    import _study_results as results

    metrics = ["nmr_s", "nmr_s@12k-20k", "hesr_t@12k-20k"]
    assert set(metrics) <= results.metric_names()
    s0 = results.analyze_aa_scores(_aa_dir(tmp_path / "s0", [-12.0, -14.0], [-16.0, -20.0]), metrics, 0)
    s1 = results.analyze_aa_scores(_aa_dir(tmp_path / "s1", [-8.0, -10.0], [-17.0, -19.0]), metrics, 1)
    assert s0.per_item["nmr_s@12k-20k"] == {"100@-18": -12.0, "1000@-18": -14.0}  # the teacher's rows left out
    assert s0.summary_means["hesr_t@12k-20k"] == -18.0
    row = table.TableRow("A", "model", runs=[s0, s1], expected_seeds=2)
    table.compute([row], metrics, None)
    cell = row.cells["nmr_s@12k-20k"]
    pooled = [-12.0, -14.0, -8.0, -10.0]  # every tone of every seed: mean -11, CI with 3 degrees of freedom
    assert cell["mean"] == -11.0 and cell["n"] == 4
    assert cell["ci"] == pytest.approx(stats.t.ppf(0.975, 3) * np.std(pooled, ddof=1) / 2, rel=1e-9)
    loud = table.TableRow("B", "model", runs=[s1], expected_seeds=1)  # NMR-S -9 dB misses the -10 dB target
    table.compute([row, loud], metrics, None)
    md = markdown.markdown([row, loud], metrics, baseline=None, quick=False, title="t", test_desc="x", seeds_desc="y")
    assert "| A | pass (-11.0 / -18.0) | pass |" in md and "| B | FAIL (-9.0 / -18.0) | FAIL |" in md
    path = tmp_path / "table.csv"
    path.write_text(table.csv_text([row, loud], metrics))
    assert table.check_table(path, [row, loud], metrics) == []
    path.write_text(path.read_text().replace(repr(-11.0), repr(-11.5)))
    assert [p.split(":")[0] for p in table.check_table(path, [row, loud], metrics)] == [
        "A nmr_s@12k-20k"]


def test_eval_ood_rows_split_by_snr_and_compare_within_their_set(tmp_path: Path) -> None:
    import _study_results as results

    def ood_dir(name: str, vals: dict[str, float]) -> Path:
        d = tmp_path / name
        d.mkdir()
        files = [("ID", "a.wav", ""), ("ID", "b.wav", ""), ("OOD", "c.wav", "0"), ("OOD", "d.wav", "5")]
        _write_csv(d / "per_file.csv", [{"set": s, "file": f, "snr_db": snr, "cond|PESQ-WB": vals[f],
                                         "cond|rtf": 0.5} for s, f, snr in files])
        mean = {s: float(np.mean([vals[f] for s2, f, _ in files if s2 == s])) for s in ("ID", "OOD")}
        (d / "results.json").write_text(json.dumps({"table": {f"{s} cond": {"PESQ-WB": m} for s, m in mean.items()}}))
        _write_csv(d / "breakdown.csv", [{"set": "OOD", "condition": "cond", "by": "snr_db", "value": v,
                                          "PESQ-WB": vals[f]} for f, v in (("c.wav", "0.0"), ("d.wav", "5.0"))])
        return d

    base = results.eval_ood_scores(ood_dir("base", {"a.wav": 2.0, "b.wav": 3.0, "c.wav": 1.0, "d.wav": 1.5}),
                                   ["pesq_wb"], 0)
    new = results.eval_ood_scores(ood_dir("new", {"a.wav": 2.5, "b.wav": 3.0, "c.wav": 2.0, "d.wav": 1.5}),
                                  ["pesq_wb"], 0)
    assert sorted(base) == [("ID", "cond"), ("OOD", "cond"), ("OOD 0 dB", "cond"), ("OOD 5 dB", "cond")]
    assert base[("OOD 5 dB", "cond")].per_item["pesq_wb"] == {"d.wav": 1.5}
    assert base[("OOD 0 dB", "cond")].summary_means == {"pesq_wb": 1.0} and base[("ID", "cond")].stats == {"rtf": 0.5}
    rows = [table.TableRow(f"{n} / {s} / cond", "model", runs=[rs[(s, "cond")]], group=s)
            for n, rs in (("S", base), ("T", new)) for s in ("ID", "OOD", "OOD 0 dB")]
    table.compute(rows, ["pesq_wb"], "S")
    by = {r.name: r for r in rows}
    assert [r.name for r in rows if r.is_baseline] == ["S / ID / cond", "S / OOD / cond", "S / OOD 0 dB / cond"]
    assert by["T / ID / cond"].cells["pesq_wb"]["delta"] == pytest.approx(0.25)   # against S on ID, not on OOD
    assert by["T / OOD / cond"].cells["pesq_wb"]["delta"] == pytest.approx(0.5)
    assert by["T / OOD 0 dB / cond"].cells["pesq_wb"]["delta"] == pytest.approx(1.0)
    path = tmp_path / "table.csv"
    path.write_text(table.csv_text(rows, ["pesq_wb"]))
    assert table.check_table(path, rows, ["pesq_wb"]) == []


def test_criteria_and_quick_false_rows(tmp_path: Path, capsys) -> None:
    import _study_run
    import _study_schema

    text = ('[study]\nname = "c"\n\n[[row]]\nname = "A"\ntool = "train_bsdt"\n\n[[row]]\nname = "B"\n'
            'tool = "train_bsdt"\nquick = false\n\n[[criterion]]\nname = "B beats A by 0.3"\nrow = "B"\n'
            'baseline = "A"\nmetric = "pesq_wb"\nmore_than = 0.3\n\n[[criterion]]\nname = "lsd no worse"\n'
            'row = "B"\nbaseline = "A"\nmetric = "lsd"\nat_least = 0\n')
    path = tmp_path / "c.toml"
    path.write_text(text)
    study = _study_schema.load_study(path)
    assert [_study_run.seeds_of(r, None, quick=True) for r in study.rows] == [[0], []]
    assert _study_run.seeds_of(study.rows[1], None, quick=False) == [0]
    a = table.TableRow("A", "model", runs=_runs([[2.0, 2.0]]))
    b = table.TableRow("B", "model", runs=_runs([[2.3, 2.3]]))
    for r, lsd in ((a, 0.5), (b, 0.5)):
        r.runs[0].per_item["lsd"] = {"f0": lsd}
    table.compute([a, b], ["pesq_wb", "lsd"], None)
    res = table.criteria_results([a, b], study.criteria)
    assert res[0]["gain"] == pytest.approx(0.3) and res[0]["verdict"] == "FAIL"   # 0.3 is not more than 0.3
    assert res[1]["gain"] == 0.0 and res[1]["verdict"] == "pass"                 # equal LSD is at least 0
    assert "| B beats A by 0.3 | B | A | PESQ-WB | +0.300 | > +0.3 | FAIL |" in markdown.criteria_markdown(res)
    assert table.TableRow("B", "model", expected_seeds=0).status == "not run with --quick"
    path.write_text(text.replace("quick = false", 'quick = "no"'))
    with pytest.raises(_study_schema.StudyError, match=r"c.toml:11: row 'B': quick must be true or false"):
        _study_schema.load_study(path)
    path.write_text(text.replace('row = "B"\nbaseline = "A"\nmetric = "lsd"', 'row = "Z / ID"\nbaseline = "A"\n'
                                 'metric = "lsd"'))
    with pytest.raises(_study_schema.StudyError, match="row 'Z / ID' does not start with the name of a row"):
        _study_schema.load_study(path)


def test_ood_uncertainty_means_auroc_and_spearman_over_seeds(tmp_path: Path) -> None:
    import types

    import _study_results as results

    runs = []
    for seed, (auroc, rho) in enumerate(((0.75, 0.5), (0.25, -0.25))):
        d = tmp_path / f"seed{seed}"
        m = d / "eval" / "default" / "metrics"
        m.mkdir(parents=True)
        (m / "auroc.json").write_text(json.dumps({"checkpoints": {"train": {"knn": {"label": "k-NN distance",
                                                                                   "auroc": auroc}}}}))
        (m / "results.json").write_text(json.dumps({"correlations": {
            "k-NN distance vs dPESQ (cond - noisy)": {"spearman": rho},
            "k-NN distance vs dPESQ (cond - uncond)": {"spearman": 9.0},  # the conditioning gain: not this column
            "k-NN distance vs dSI-SDR (cond - noisy)": {"spearman": float("nan")}}}))
        row = types.SimpleNamespace(name="CFG", eval_tool="eval_ood")
        runs.append(types.SimpleNamespace(row=row, dir=d, job={"points": [{"label": "", "slug": "default"}]},
                                          state=lambda: "complete"))
    (item,) = results.ood_uncertainty(runs)
    assert item == {"row": "CFG", "point": "", "score": "k-NN distance", "seeds": 2, "auroc": 0.5,
                    "rho_pesq": 0.125}
    assert "| CFG | k-NN distance | 0.500 | 0.12 | – | 2 |" in markdown.uncertainty_markdown([item])


def test_setup_flag_placeholders_name_the_corpus_test_folder() -> None:
    import _study_run

    assert _study_run.expand("{test_clean}", demo_dir="D", data=None) == str(Path("D") / "test" / "clean")
    assert _study_run.expand("{demo_dir}/x:{data}", demo_dir="D", data="V") == "D/x:V"
    import _study_schema

    assert "make_nonstationary_testset" in _study_schema.SETUP_TOOLS
