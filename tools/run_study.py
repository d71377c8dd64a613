#!/usr/bin/env python
"""Run a comparison or ablation study from a study file: every row x seed trained, scored on
the same held-out test set, and tabulated with confidence intervals and paired tests.

    uv run tools/run_study.py studies/bsdt_ablation.toml --quick          # 1-3 CPU minutes
    uv run tools/run_study.py studies/bsdt_ablation.toml --data VB16K --seeds 3 --device cuda

The study file (TOML; see studies/*.toml, each commented) names the rows: a training tool
(train_bsdt, train_sgmse, train_aa) with its flags and seeds, its evaluator (eval_dir, eval_ood,
analyze_aa) and optional evaluation-only sweeps; the unprocessed input (kind = "noisy"); numbers
quoted from papers (kind = "quoted", with their citation, never ranked). Every flag is checked
against the tool's own parser before anything runs: an unknown tool, flag or metric is an
error naming the study file's line.

Each run trains into OUT/runs/ROW/seedS/ (its log beside it), then its model enhances the test
set and se_metrics scores it (PESQ-WB/NB, STOI, ESTOI, SI-SDR, CSIG/CBAK/COVL, LSD) with the
parameter count, MACs per second of audio (where bandsplit can count them) and the real-time
factor. Running the same command again resumes: complete runs are never retrained, a killed
run continues; a row whose configuration changed is refused unless --rerun ROW. A run that
crashes is marked failed with its log, and the others go on (exit status 1).

Outputs in OUT (default runs/run_study-NAME, or -quick): table.md, table.csv, results.json
(numbers and each run's provenance: commit, versions, command, device, wall time), report.html
(table, figures, audio of a few test utterances; works offline from the file) and report/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _argtypes as T  # noqa: E402
from _study_job import write_json  # noqa: E402
import _study_launch as launch  # noqa: E402
import _study_markdown as markdown  # noqa: E402
import _study_report as report  # noqa: E402
import _study_results as results  # noqa: E402
import _study_run as runner  # noqa: E402
from _study_schema import StudyError, load_study  # noqa: E402
import _study_table as table  # noqa: E402
import _study_tools as tools  # noqa: E402

#: test files of --quick (the issue's cap) and the utterances the report plays
QUICK_TEST_FILES = 8


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_study.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", metavar="STUDY.toml", help="the study file (see studies/)")
    p.add_argument("--data", default=None, metavar="ROOT",
                   help="VoiceBank-DEMAND tree (16 kHz, e.g. made by tools/resample_dataset.py) or paired folders; "
                        "every row trains and is scored on it, at its research size (the rows' data_flags). "
                        "Default: the demo corpus")
    p.add_argument("--demo-dir", default="runs/demo-corpus", metavar="DIR",
                   help="where the demo corpus is built once and shared by every row (default runs/demo-corpus)")
    p.add_argument("--quick", action="store_true",
                   help="every row on the demo corpus with 1 seed, at most 10 training steps, 8 test files and tiny "
                        "sizes (SGMSE: SmallUNet, bridge sampler N=5); the table is marked quick")
    p.add_argument("--seeds", type=T.positive_int(noun="a seed count (integer)"), default=None, metavar="N",
                   help="seeds 0..N-1 for every row (default: each row's seeds, or [0]; --quick: the first)")
    p.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: one run per visible GPU at a time, or one after another on the CPU; slurm: each run "
                        "a Slurm job through submitit (default local)")
    p.add_argument("--slurm-executor", choices=["slurm", "local", "debug"], default="slurm",
                   help="submitit executor of --launcher slurm: slurm, or local / debug to run the same path on this "
                        "machine (default slurm)")
    p.add_argument("--slurm-partition", default=None, help="Slurm partition of the jobs")
    p.add_argument("--slurm-timeout-min", type=T.positive_int(), default=24 * 60,
                   help="time limit of each Slurm job in minutes (default 1440)")
    p.add_argument("--device", default="auto",
                   help="torch device of every run: auto (cuda if available, else cpu), cpu, cuda, cuda:1 "
                        "(default auto)")
    p.add_argument("--threads", type=T.THREADS, default=None,
                   help="torch CPU threads of each run (default: 1 with --quick, else torch's choice)")
    p.add_argument("--workers", type=T.WORKERS, default=None,
                   help="metric worker processes per evaluation (default: 1 with --quick, else all cores)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="study folder (default runs/run_study-NAME, -quick with --quick); running again into it "
                        "resumes, a folder of another study or mode is refused")
    p.add_argument("--only", action="append", default=[], metavar="ROW",
                   help="run only this row (repeatable); the table still lists every row")
    p.add_argument("--rerun", action="append", default=[], metavar="ROW",
                   help="train this row anew (repeatable): its runs are moved to OUT/replaced/, e.g. after its "
                        "configuration changed")
    p.add_argument("--dry-run", action="store_true",
                   help="check the study and print every run with its state and command; nothing is written")
    p.add_argument("--check", action="store_true",
                   help="after the runs, verify that every number of table.csv equals the mean of the runs' own "
                        "evaluator summaries (exit 1 otherwise); with nothing left to run it only checks")
    p.add_argument("--report-utterances", type=T.positive_int(), default=3,
                   help="test utterances with audio players in report.html (default 3; 2 with --quick)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick and args.data is not None:
        p.error("--quick runs every row on the demo corpus; leave out --data")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.time()
    try:
        return _main(args, t_start)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every finished run is kept; run the same command again to resume", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace, t_start: float) -> int:
    study = load_study(args.study)
    names = {n for r in study.rows for n in (r.name, r.slug)}
    for flag, vals in (("--only", args.only), ("--rerun", args.rerun)):
        for v in vals:
            if v not in names:
                raise StudyError(f"{flag} {v!r}: no row of that name in {study.path} "
                                 f"({', '.join(r.name for r in study.rows)})")
    tools.validate(study, data=args.data, quick=args.quick, metric_names=results.metric_names(),
                   demo_dir=args.demo_dir)
    metrics = results.default_metrics(study)
    out = Path(args.out or f"runs/run_study-{study.name}{'-quick' if args.quick else ''}")
    threads = args.threads if args.threads is not None else (1 if args.quick else None)
    workers = args.workers or (1 if args.quick else (os.cpu_count() or 1))
    gpus = runner.visible_gpus(args.device) if args.launcher == "local" else []
    device = args.device if args.device != "auto" else ("cuda" if gpus else "cpu")
    clean, noisy = runner.corpus_test_dirs(args.data, args.demo_dir) if not study.test_set.startswith("setup:") \
        else (None, None)

    if args.dry_run:
        runs = runner.plan(study, out, data=args.data, demo_dir=args.demo_dir, quick=args.quick, n_seeds=args.seeds,
                           device=device, threads=threads, workers=workers, testset=None,
                           setup_dirs={s.name: str(out / "setup" / s.name) for s in study.setups})
        print(f"study {study.name!r} ({study.path}): {len(runs)} run(s) into {out}"
              + (" [quick]" if args.quick else ""))
        for s in study.setups:
            print(f"  setup {s.name}: tools/{s.tool}.py")
        for r in runs:
            state = r.state() if out.exists() else "new"
            print(f"  [{state:8s}] {r.row.name} seed {r.seed}: tools/{r.row.tool}.py "
                  f"{' '.join(r.job['train_argv'])} --seed {r.seed} --out {r.dir / 'train'}")
        for r in study.rows:
            if r.kind != "model":
                print(f"  [{r.kind:8s}] {r.name}" + (f" ({r.citation})" if r.citation else ""))
        return 0

    record = runner.study_record(study, args.quick, str(Path(args.data).resolve()) if args.data else None)
    runner.open_study_dir(out, record)
    log = print
    if args.data is None:
        import se_data

        log(f"demo corpus: {args.demo_dir}")
        se_data.make_demo_corpus(args.demo_dir, seed=0, sample_rate=16000)  # once, before any row
    setup_dirs = runner.run_setups(study, out, demo_dir=args.demo_dir, data=args.data, log=log)
    if study.test_set.startswith("setup:"):
        root = Path(setup_dirs[study.test_set[6:]])
        clean, noisy = root / "clean", root / "noisy"
    testset = runner.prepare_testset(out, clean, noisy, QUICK_TEST_FILES if args.quick else None)
    runs = runner.plan(study, out, data=args.data, demo_dir=args.demo_dir, quick=args.quick, n_seeds=args.seeds,
                       device=device, threads=threads, workers=workers, testset=testset, setup_dirs=setup_dirs)
    runner.check_changes(runs, set(args.rerun), out)
    todo = [r for r in runs if r.state() != "complete" and (not args.only or r.row.name in args.only
                                                              or r.row.slug in args.only)]
    noisy_dir = runner.score_noisy(out, testset, workers) if any(r.kind == "noisy" for r in study.rows) else None

    progress = launch.Progress(len(runs), len(runs) - len([r for r in runs if r.state() != "complete"]),
                               enabled=not args.no_progress)
    failed: list[Any] = []
    try:
        if todo:
            if args.launcher == "slurm":
                failed = launch.launch_slurm(todo, out=out, executor=args.slurm_executor,
                                             partition=args.slurm_partition, timeout_min=args.slurm_timeout_min,
                                             progress=progress)
            else:
                failed = launch.launch_local(todo, slots=max(1, len(gpus)), gpus=gpus, progress=progress)
    finally:
        progress.close()

    expected = {r.name: len(runner.seeds_of(r, args.seeds, args.quick)) for r in study.rows if r.kind == "model"}
    rows = results.collect(study, runs, metrics, noisy_dir, expected)
    table.compute(rows, metrics, study.baseline)
    seeds_desc = "1 seed" if args.quick and args.seeds is None else "seeds"
    test_desc = (f"{len(testset['files'])} files of {Path(noisy).parent if noisy else study.test_set}"
                 + (" (demo corpus)" if args.data is None else ""))
    criteria = table.criteria_results(rows, study.criteria)
    uncertainty = results.ood_uncertainty(runs)
    md = markdown.markdown(rows, metrics, baseline=study.baseline, quick=args.quick, title=study.title,
                           test_desc=test_desc, seeds_desc=seeds_desc, criteria=criteria, uncertainty=uncertainty)
    (out / "table.md").write_text(md)
    (out / "table.csv").write_text(table.csv_text(rows, metrics))
    run_records = [runner.read_json(r.dir / "run.json") for r in runs]
    write_json(out / "results.json", {
        **record, "title": study.title, "baseline": study.baseline, "metrics": metrics, "testset": testset,
        "rows": table.as_json(rows, metrics), "criteria": criteria, "uncertainty": uncertainty,
        "runs": [x for x in run_records if x is not None],
        "wall_s": time.time() - t_start})
    html = report.write_report(out, study, rows, metrics, runs, testset, quick=args.quick, table_md=md,
                               utterances=2 if args.quick else args.report_utterances)
    print("\n" + md)
    print(f"written: {out}/table.md, table.csv, results.json, {html.name} ({time.time() - t_start:.0f} s)")
    status = 0
    if failed:
        print(f"{len(failed)} run(s) failed:", file=sys.stderr)
        for r, why in failed:
            print(f"  {r.row.name} seed {r.seed}: {why}", file=sys.stderr)
        status = 1
    if args.check:
        problems = table.check_table(out / "table.csv", rows, metrics)
        for p in problems:
            print(f"check: {p}", file=sys.stderr)
        print(f"check: {'FAILED' if problems else 'every table number equals its runs evaluation means'}")
        status = status or (1 if problems else 0)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
