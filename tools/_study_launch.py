"""Launching a study's runs (not a public API): locally one after another in this process, or
one subprocess per visible GPU; on Slurm through submitit. Each run executes its ``job.json``
(:func:`_study_job.execute`); one progress bar counts the runs of the whole study.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _study_job import JOB_JSON, RUN_JSON, RunFailed, execute, read_json, write_json
from _study_run import Run
from _study_schema import StudyError

TOOLS_DIR = Path(__file__).resolve().parent


class Progress:
    """One bar for the whole study: runs done / total and tqdm's ETA."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, desc="study", unit="run", disable=not enabled,
                        dynamic_ncols=True, file=sys.stderr)
        self.t0 = time.time()

    def write(self, msg: str) -> None:
        self.bar.write(msg, file=sys.stderr)

    def step(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _describe(r: Run) -> str:
    return f"{r.row.name} seed {r.seed}"


def launch_local(runs: list[Run], *, slots: int, gpus: list[int], progress: Progress) -> list[tuple[Run, str]]:
    """Run every job: in this process one after another (``slots == 1``), else one subprocess per
    slot, each with its own GPUs (``CUDA_VISIBLE_DEVICES``; a torchrun row takes ``nproc``).
    Returns ``[(run, error)]`` of the runs that failed."""
    failed: list[tuple[Run, str]] = []
    if slots <= 1:
        for r in runs:
            r.dir.mkdir(parents=True, exist_ok=True)
            write_json(r.dir / JOB_JSON, r.job)
            progress.write(f"run  {_describe(r)} -> {r.dir}")
            t0 = time.time()
            try:
                execute(r.job)
                progress.write(f"done {_describe(r)} ({time.time() - t0:.0f} s)")
            except RunFailed as e:
                failed.append((r, f"{e} (log: {e.log})"))
                progress.write(f"FAILED {_describe(r)}: {e} (log: {e.log})")
            progress.step()
        return failed
    free = list(gpus)
    running: list[tuple[subprocess.Popen, Run, list[int]]] = []
    queue = list(runs)
    try:
        while queue or running:
            while queue and len(free) >= min(queue[0].row.nproc, len(gpus)):
                r = queue.pop(0)
                take, free = free[: r.row.nproc], free[r.row.nproc:]
                r.dir.mkdir(parents=True, exist_ok=True)
                write_json(r.dir / JOB_JSON, r.job)
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(map(str, take))}
                p = subprocess.Popen([sys.executable, str(TOOLS_DIR / "_study_job.py"), str(r.dir / JOB_JSON)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                running.append((p, r, take))
                progress.write(f"run  {_describe(r)} on GPU {','.join(map(str, take))} -> {r.dir}")
            time.sleep(0.5)
            for item in list(running):
                p, r, take = item
                if p.poll() is None:
                    continue
                running.remove(item)
                free += take
                rec = read_json(r.dir / RUN_JSON) or {}
                if p.returncode != 0 or rec.get("status") != "complete":
                    failed.append((r, f"{rec.get('error', 'exit ' + str(p.returncode))} (log: {rec.get('log')})"))
                    progress.write(f"FAILED {_describe(r)}: {rec.get('error')} (log: {rec.get('log')})")
                else:
                    progress.write(f"done {_describe(r)}")
                progress.step()
    finally:
        for p, _, _ in running:  # Ctrl-C: stop the runs in flight; finished ones stay complete
            p.terminate()
    return failed


def launch_slurm(runs: list[Run], *, out: Path, executor: str, partition: str | None, timeout_min: int,
                 progress: Progress) -> list[tuple[Run, str]]:
    """Submit every job through submitit (``executor``: ``slurm``, or ``local`` / ``debug`` to run
    the same path on this machine) and wait for them; ``[(run, error)]`` of the failed ones."""
    try:
        import submitit
    except ImportError:
        raise StudyError("--launcher slurm needs submitit (uv sync installs it with the workspace)") from None
    ex = submitit.AutoExecutor(folder=str(out / "slurm" / "%j"), cluster=None if executor == "slurm" else executor)
    params: dict[str, Any] = {"timeout_min": timeout_min, "name": "run_study"}
    if executor == "slurm" and partition:
        params["slurm_partition"] = partition
    failed: list[tuple[Run, str]] = []
    jobs = []
    for r in runs:
        r.dir.mkdir(parents=True, exist_ok=True)
        write_json(r.dir / JOB_JSON, r.job)
        p = dict(params)
        if executor == "slurm" and r.job["device"] != "cpu":
            p.update(gpus_per_node=r.row.nproc, tasks_per_node=1)
        ex.update_parameters(**p)
        fn = submitit.helpers.CommandFunction([sys.executable, str(TOOLS_DIR / "_study_job.py"),
                                               str(r.dir / JOB_JSON)], cwd=str(TOOLS_DIR.parent))
        jobs.append((ex.submit(fn), r))
        progress.write(f"submitted {_describe(r)} ({executor} job {jobs[-1][0].job_id})")
    for job, r in jobs:
        try:
            job.result()
        except Exception as e:  # noqa: BLE001 - a failed job is reported; the others go on
            rec = read_json(r.dir / RUN_JSON) or {}
            failed.append((r, f"{rec.get('error') or type(e).__name__} (log: {rec.get('log')})"))
            progress.write(f"FAILED {_describe(r)}: {rec.get('error')} (log: {rec.get('log')})")
        else:
            progress.write(f"done {_describe(r)}")
        progress.step()
    return failed
