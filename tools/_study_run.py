"""Planning a study (not a public API): the runs (row x seed) with their configuration
hashes, the held-out test set, setup steps, the noisy row and the study folder; the runs are
launched by :mod:`_study_launch`.

Folder layout of a study (``--out``)::

    study.json                 the study file's name, path and mode (checked when resuming)
    testset/{clean,noisy}/     the held-out test files every run is scored on (links)
    setup/<name>/              outputs of [[setup]] steps
    noisy/metrics/             the unprocessed input scored like a model
    runs/<row>/seed<S>/        job.json, run.json, train.log, train/, eval/<point>/
    replaced/                  runs moved aside by --rerun (never deleted)
    table.md, table.csv, results.json, report.html, report/
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from _study_job import RUN_JSON, read_json, write_json
from _study_rows import Row, slug
from _study_schema import Study, StudyError, config_hash, to_argv
import _study_tools as tools

TOOLS_DIR = Path(__file__).resolve().parent


@dataclass
class Run:
    row: Row
    seed: int
    dir: Path
    job: dict[str, Any]

    @property
    def hash(self) -> str:
        return self.job["config_hash"]

    def state(self) -> str:
        """``complete``, ``failed``, ``partial`` (started, not finished: resumes), ``new`` or
        ``changed`` (its folder holds a run of another configuration)."""
        rec = read_json(self.dir / RUN_JSON)
        if rec is None:
            return "partial" if (self.dir / "train").exists() else "new"
        if rec.get("config_hash") != self.hash:
            return "changed"
        if rec.get("status") == "complete" and all(
                (self.dir / "eval" / p["slug"] / "stats.json").exists() for p in self.job["points"]):
            return "complete"
        return "failed" if rec.get("status") == "failed" else "partial"


# ----------------------------------------------------------------------------- test set
def corpus_test_dirs(data: str | None, demo_dir: str) -> tuple[Path, Path]:
    """``(clean, noisy)`` test folders of the corpus: the demo corpus' ``test/``, a
    VoiceBank-DEMAND tree's ``*_testset_wav``, or a paired tree's ``test/``."""
    if data is None:
        root = Path(demo_dir)
        return root / "test" / "clean", root / "test" / "noisy"
    import se_data

    root = Path(data)
    if se_data.detect_layout(root) == "vbdemand":
        return root / "clean_testset_wav", root / "noisy_testset_wav"
    return root / "test" / "clean", root / "test" / "noisy"


def prepare_testset(out: Path, clean: Path, noisy: Path, limit: int | None) -> dict[str, Any]:
    """``out/testset/{clean,noisy}``: links to the first ``limit`` (all: None) noisy files by name
    and their clean partners. A study folder keeps its test set: another one is refused."""
    files = sorted(p.name for p in noisy.glob("*.wav"))
    files = [f for f in files if (clean / f).exists()][: limit or None]
    if not files:
        raise StudyError(f"no test files: no *.wav in {noisy} with a clean partner of the same name in {clean}")
    desc = {"clean": str(clean.resolve()), "noisy": str(noisy.resolve()), "files": files}
    ts = out / "testset"
    old = read_json(ts / "testset.json")
    if old is not None and old != desc:
        raise StudyError(f"{out} was run on another test set ({old['noisy']}, {len(old['files'])} files); this run "
                         f"would use {desc['noisy']} ({len(files)} files). Use another --out")
    if old is None:
        for kind, src in (("clean", clean), ("noisy", noisy)):
            d = ts / kind
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            for f in files:
                os.symlink((src / f).resolve(), d / f)
        write_json(ts / "testset.json", desc)
    return {"clean": str(ts / "clean"), "noisy": str(ts / "noisy"), "root": str(ts), "files": files}


# ----------------------------------------------------------------------------- planning
def seeds_of(row: Row, n_seeds: int | None, quick: bool) -> list[int]:
    if quick and not row.quick:
        return []  # a row marked quick = false runs only in the full study
    if n_seeds is not None:
        return list(range(n_seeds))
    seeds = row.seeds or [0]
    return seeds[:1] if quick else seeds


def plan(study: Study, out: Path, *, data: str | None, demo_dir: str, quick: bool, n_seeds: int | None,
         device: str, threads: int | None, workers: int, testset: dict[str, Any] | None,
         setup_dirs: dict[str, str]) -> list[Run]:
    """Every run of the study with its job description and configuration hash."""
    runs = []
    for row in study.rows:
        if row.kind != "model":
            continue
        spec = tools.TOOLS[row.tool or ""]
        argv = _subst(tools.train_argv(study, row, data=data is not None, quick=quick), setup_dirs)
        runner_argv = tools.runner_argv(row.tool or "", data=data, demo_dir=demo_dir, device=device,
                                        threads=threads)
        points = []
        for p in row.sweep or [None]:
            enh, ev = tools.point_flags(row, p.flags if p is not None else {}, quick=quick)
            label = p.label if p is not None else ""
            points.append({"label": label, "slug": slug(label) if label else "default",
                           "enhance_argv": _subst(to_argv(enh), setup_dirs),
                           "eval_argv": _subst(to_argv(ev), setup_dirs)})
        teacher = [a for k, v in _teacher_flags(row, study, data is not None, quick).items()
                   for a in to_argv({k: v})]
        config = {"tool": row.tool, "train_argv": argv, "nproc": row.nproc, "eval_tool": row.eval_tool,
                  "points": points, "data": str(Path(data).resolve()) if data else "demo", "quick": quick,
                  "testset": (testset or {}).get("files")}
        h = config_hash(config)
        for seed in seeds_of(row, n_seeds, quick):
            d = out / "runs" / row.slug / f"seed{seed}"
            job = {"row": row.name, "seed": seed, "tool": row.tool, "train_argv": argv, "runner_argv": runner_argv,
                   "nproc": row.nproc, "eval_tool": row.eval_tool, "points": points, "teacher_argv": teacher,
                   "testset": testset or {}, "device": device, "threads": threads, "workers": workers,
                   "run_dir": str(d), "config_hash": h, "spec": spec.name}
            runs.append(Run(row, seed, d, job))
    return runs


def _teacher_flags(row: Row, study: Study, data: bool, quick: bool) -> dict[str, Any]:
    """train_aa's teacher flags, passed on to analyze_aa (the same teacher is analysed)."""
    if row.tool != "train_aa":
        return {}
    from _study_schema import merged_flags

    flags = merged_flags(study, row, data=data, quick=quick)
    keep = {k: v for k, v in flags.items() if k == "teacher" or k.startswith("builtin-")}
    keep.setdefault("teacher", "builtin")
    return keep


def _subst(argv: list[str], setup_dirs: dict[str, str]) -> list[str]:
    return [setup_dirs.get(a[6:], a) if a.startswith("setup:") else a for a in argv]


def check_changes(runs: list[Run], rerun: set[str], out: Path) -> list[Run]:
    """Refuse runs whose folder holds another configuration, unless their row is in ``rerun``;
    move the runs of ``rerun`` rows aside (``out/replaced/``) so they train anew."""
    changed = [r for r in runs if r.state() == "changed" and r.row.name not in rerun and r.row.slug not in rerun]
    if changed:
        names = sorted({r.row.name for r in changed})
        raise StudyError("the configuration of row(s) " + ", ".join(repr(n) for n in names) + " changed since their "
                         f"runs in {out}/runs; the runner never mixes the two. Pass "
                         + " ".join(f"--rerun {n!r}" for n in names) + " to train them anew (the old runs are moved "
                         "to replaced/), or choose another --out")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for r in runs:
        if (r.row.name in rerun or r.row.slug in rerun) and r.dir.exists():
            dest = out / "replaced" / f"{r.row.slug}-seed{r.seed}-{stamp}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(r.dir, dest)
    return runs


# ----------------------------------------------------------------------------- setup and noisy
def expand(value: str, *, demo_dir: str, data: str | None) -> str:
    """A setup flag's placeholders replaced: ``{demo_dir}``, ``{data}``, ``{test_clean}``."""
    if "{test_clean}" in value:
        value = value.replace("{test_clean}", str(corpus_test_dirs(data, demo_dir)[0]))
    return value.replace("{demo_dir}", demo_dir).replace("{data}", data or "")


def run_setups(study: Study, out: Path, *, demo_dir: str, data: str | None, log: Callable[[str], None]
               ) -> dict[str, str]:
    """Run each [[setup]] step once (its tool as a subprocess into ``out/setup/NAME``);
    ``{name: folder}``. ``{demo_dir}`` / ``{data}`` / ``{test_clean}`` (the corpus' clean test
    folder: the demo corpus', or --data's) in a flag value are replaced."""
    dirs: dict[str, str] = {}
    for s in study.setups:
        d = out / "setup" / slug(s.name)
        flags = {k: (expand(v, demo_dir=demo_dir, data=data) if isinstance(v, str) else v) for k, v in s.flags.items()}
        h = config_hash({"tool": s.tool, "flags": flags})
        done = read_json(out / "setup" / f"{slug(s.name)}.json")
        if done is not None and done.get("config_hash") == h:
            dirs[s.name] = str(d)
            continue
        if d.exists():
            shutil.rmtree(d)  # a half-made set of a killed attempt, or of another configuration
        d.parent.mkdir(parents=True, exist_ok=True)
        logf = out / "setup" / f"{slug(s.name)}.log"
        cmd = [sys.executable, str(TOOLS_DIR / f"{s.tool}.py"), *to_argv(flags), "--out", str(d)]
        log(f"setup {s.name}: {' '.join(cmd[1:])}")
        with open(logf, "w") as fh:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise StudyError(f"setup step {s.name!r} failed (exit {rc}); see {logf}")
        write_json(out / "setup" / f"{slug(s.name)}.json", {"config_hash": h, "command": cmd})
        dirs[s.name] = str(d)
    return dirs


def score_noisy(out: Path, testset: dict[str, Any], workers: int) -> Path:
    """The noisy row: se_metrics' evaluator on the unprocessed test inputs (once per study)."""
    from se_metrics import evaluate_dir

    d = out / "noisy" / "metrics"
    if not (d / "summary.json").exists():
        evaluate_dir(testset["noisy"], testset["clean"], d, sample_rate=16000, workers=workers, progress=False)
    return d


def study_record(study: Study, quick: bool, data: str | None) -> dict[str, Any]:
    return {"study": study.name, "file": str(study.path), "quick": quick, "data": data}


def open_study_dir(out: Path, record: dict[str, Any]) -> None:
    """Create or resume ``out`` for this study: an existing non-empty folder must hold the same
    study in the same mode (``study.json``); takes ``out/.lock``."""
    from _outdir import acquire_out_lock

    existing = read_json(out / "study.json")
    if out.exists() and any(p.name != ".lock" for p in out.iterdir()):
        if existing is None:
            raise StudyError(f"--out {out} is not empty and holds no study; nothing is overwritten. Choose a new --out")
        for k in ("study", "quick", "data"):
            if existing.get(k) != record.get(k):
                raise StudyError(f"--out {out} holds study {existing.get('study')!r} (quick={existing.get('quick')}, "
                                 f"data={existing.get('data')}); this is {record['study']!r} (quick={record['quick']}, "
                                 f"data={record['data']}). Choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    acquire_out_lock(out, "run_study", resume=True)  # a study always resumes; a dead holder is taken over
    write_json(out / "study.json", record)


def visible_gpus(device: str) -> list[int]:
    """GPU indices the local launcher may use (none for a CPU device)."""
    if device == "cpu":
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    if device.startswith("cuda:"):
        return [int(device.split(":")[1])]
    return list(range(torch.cuda.device_count()))

