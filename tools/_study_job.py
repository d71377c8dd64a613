"""One run of a study (one row x one seed): train, enhance the test set, evaluate, measure
(not a public API).

:func:`execute` takes the job description the runner writes to ``RUN/job.json`` and does, in
``RUN/``:

1. ``train/``: the training tool as a subprocess (under torchrun when ``nproc > 1``), its
   stdout/stderr in ``train.log``; a folder left by a killed attempt is continued with
   ``--resume`` (the trainers take it over, from scratch without a checkpoint);
2. per evaluation setting ``eval/<point>/``: the enhanced test set (``enhanced/``), the
   evaluator's output (``metrics/``: se_metrics' ``per_file.csv`` + ``summary.json``, or the
   eval_ood / analyze_aa files), ``stats.json`` (parameters, MACs per second of audio, RTF) and
   for BSDT models ``analysis.json`` (fusion weights per band, the inter-band graph);
3. ``run.json`` with ``status: complete`` and the provenance: commit, package versions,
   commands, device, wall time. A run is complete only once that file says so.

Runs as ``python tools/_study_job.py RUN/job.json`` for the parallel and Slurm launchers; the
sequential launcher calls :func:`execute` in its own process.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOOLS_DIR = Path(__file__).resolve().parent
REPO = TOOLS_DIR.parent
RUN_JSON = "run.json"
JOB_JSON = "job.json"


class RunFailed(Exception):
    """A step of the run failed; ``log`` is the file that says why."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


# ----------------------------------------------------------------------------- provenance
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "bandsplit", "diffattn", "sgmse-cfg", "aa-distill", "se-metrics",
                 "se-data", "pesq", "pystoi"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_json(path: Path, obj: Any) -> None:
    """Atomic write (temp file + rename): a kill never leaves half a record."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- steps
def _run_logged(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RunFailed(f"{Path(cmd[1] if cmd[1] != '-m' else cmd[-1]).name} exited {proc.returncode}", log)


def _env(job: dict[str, Any]) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if "PYTHONDONTWRITEBYTECODE" in env and "PYTHONPYCACHEPREFIX" not in env:
        # every run is a fresh interpreter: without cached bytecode each recompiles torch and the
        # packages (~5 s of CPU); cache it outside the checkout instead
        del env["PYTHONDONTWRITEBYTECODE"]
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), f"se-toolkit-pycache-{uid}")
    if job.get("threads"):
        env["OMP_NUM_THREADS"] = str(job["threads"])
    return env


def train(job: dict[str, Any], run: Path) -> list[str]:
    """The training subprocess; returns its command."""
    out = run / "train"
    cmd = [sys.executable]
    if job.get("nproc", 1) > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(job["nproc"])]
    cmd += [str(TOOLS_DIR / f"{job['tool']}.py"), *job["train_argv"], "--seed", str(job["seed"]), "--out", str(out)]
    cmd += job.get("runner_argv", [])
    if out.is_dir() and any(p.name != ".lock" for p in out.iterdir()):
        cmd.append("--resume")  # an earlier attempt was killed or failed after training started
    _run_logged(cmd, run / "train.log", _env(job))
    return cmd


def model_file(job: dict[str, Any], run: Path) -> Path:
    name = {"train_bsdt": "best.pt", "train_sgmse": "model.pt", "train_aa": "student.nam"}[job["tool"]]
    path = run / "train" / name
    if not path.exists():
        raise RunFailed(f"training finished without {path.name} (no finite validation score?)", run / "train.log")
    return path


def enhance_in_process(job: dict[str, Any], ckpt: Path, point: Path) -> dict[str, Any]:
    """train_bsdt models: enhance the test set with ``bandsplit.enhance`` (timed: the RTF),
    count parameters and MACs, and dump the BSDT analysis of the first test file."""
    import torch

    import bandsplit
    from se_data import load_audio, save_audio

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    device = torch.device(job["device"] if job["device"] != "auto" else ("cuda" if torch.cuda.is_available()
                                                                          else "cpu"))
    model = bandsplit.load_model(ckpt, map_location=device).eval()
    sr = model.sample_rate
    noisy_dir = Path(job["testset"]["noisy"])
    enh_dir = point / "enhanced"
    tmp = point / ".enhanced.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = sorted(p for p in noisy_dir.glob("*.wav"))
    wall = audio_s = 0.0
    with torch.no_grad():
        for f in files:
            x, _ = load_audio(f, sr, resample=True, mono=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            y = bandsplit.enhance(model, x.to(device), sr).cpu()
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall += time.perf_counter() - t0
            audio_s += x.shape[-1] / sr
            save_audio(tmp / f.name, y.clamp(-1, 1), sr)
        analysis = _analysis(model, files[0], sr, device) if files else None
    shutil.rmtree(enh_dir, ignore_errors=True)
    os.replace(tmp, enh_dir)
    macs = None
    if hasattr(bandsplit, "count_macs"):
        try:
            counted = bandsplit.count_macs(model, seconds=1.0)  # a count, or a record with .macs
            macs = float(getattr(counted, "macs", counted))
        except Exception:  # noqa: BLE001 - an optional column; the run stands without it
            macs = None
    if analysis is not None:
        write_json(point / "analysis.json", analysis)
    return {"parameters": sum(p.numel() for p in model.parameters()), "macs_per_second": macs,
            "rtf": wall / audio_s if audio_s else None, "device": str(device)}


def _analysis(model: Any, wav: Path, sr: int, device: Any) -> dict[str, Any] | None:
    """BSDT's fusion weights per band ``[L, K, S]`` and inter-band graph ``[L, K, K]`` on one file."""
    import torch

    from se_data import load_audio

    if not getattr(model, "supports_analysis", False):
        return None
    x, _ = load_audio(wav, sr, resample=True, mono=True)
    spec = model.stft.stft(x.unsqueeze(0).to(device))
    _, a = model(spec, return_analysis=True)
    out: dict[str, Any] = {"file": wav.name, "graph_kind": a.get("graph_kind"), "windows": list(a.get("windows") or [])}
    for key in ("fusion_weights", "graph"):
        v = a.get(key)
        if isinstance(v, torch.Tensor):
            out[key] = v.detach().float().cpu().tolist()
    return out


def enhance_sgmse(job: dict[str, Any], ckpt: Path, point: Path, flags: list[str], run: Path) -> dict[str, Any]:
    """train_sgmse models: tools/enhance_sgmse.py on the test set (sampler, N, guidance of the
    point); RTF from its enhance.csv, parameters from the trainer's results.json."""
    out = point / "enhance"
    if out.exists():
        shutil.rmtree(out)  # a half-finished enhancement of a killed attempt
    cmd = [sys.executable, str(TOOLS_DIR / "enhance_sgmse.py"), "--ckpt", str(ckpt), job["testset"]["noisy"],
           "--out", str(out), "--device", job["device"], *flags]
    if job.get("threads"):
        cmd += ["--threads", str(job["threads"])]
    _run_logged(cmd, point / "eval.log", _env(job))
    shutil.rmtree(point / "enhanced", ignore_errors=True)
    os.replace(out / "enhanced", point / "enhanced")
    rtf = []
    with open(out / "enhance.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("rtf"):
                rtf.append(float(r["rtf"]))
    res = read_json(run / "train" / "results.json") or {}
    return {"parameters": res.get("parameters"), "macs_per_second": None,
            "rtf": sum(rtf) / len(rtf) if rtf else None, "device": job["device"]}


def evaluate_enhanced(job: dict[str, Any], point: Path) -> None:
    """se_metrics' batch evaluator on ``point/enhanced`` against the clean test set."""
    from se_metrics import evaluate_dir

    evaluate_dir(point / "enhanced", job["testset"]["clean"], point / "metrics", sample_rate=16000,
                 workers=int(job.get("workers", 1)), progress=False)


def run_point(job: dict[str, Any], run: Path, point_spec: dict[str, Any]) -> dict[str, Any]:
    """One evaluation setting of the trained model; returns its stats record."""
    point = run / "eval" / point_spec["slug"]
    done = read_json(point / "stats.json")
    if done is not None and done.get("complete"):
        return done
    point.mkdir(parents=True, exist_ok=True)
    ckpt = model_file(job, run)
    t0 = time.time()
    ev = point_spec["eval_argv"]
    if job["eval_tool"] == "eval_dir":
        if job["tool"] == "train_bsdt":
            stats = enhance_in_process(job, ckpt, point)
        else:
            stats = enhance_sgmse(job, ckpt, point, point_spec["enhance_argv"], run)
        if (point / "metrics").exists():
            shutil.rmtree(point / "metrics")
        evaluate_enhanced(job, point)
    elif job["eval_tool"] == "eval_ood":
        shutil.rmtree(point / "metrics", ignore_errors=True)
        _run_logged([sys.executable, str(TOOLS_DIR / "eval_ood.py"), "--ckpt", str(ckpt), "--id",
                     job["testset"]["root"], "--out", str(point / "metrics"), "--device", job["device"], *ev],
                    point / "eval.log", _env(job))
        res = read_json(run / "train" / "results.json") or {}
        stats = {"parameters": res.get("parameters"), "macs_per_second": None, "rtf": None, "device": job["device"]}
    else:  # analyze_aa
        shutil.rmtree(point / "metrics", ignore_errors=True)
        _run_logged([sys.executable, str(TOOLS_DIR / "analyze_aa.py"), *job["teacher_argv"], "--student", str(ckpt),
                     "--out", str(point / "metrics"), "--device", job["device"], "--no-plots", *ev],
                    point / "eval.log", _env(job))
        stats = {"parameters": None, "macs_per_second": None, "rtf": None, "device": job["device"]}
    stats["first_epoch_valid_pesq"] = first_epoch_valid_pesq(run / "train" / "log.csv")
    stats.update(complete=True, label=point_spec["label"], eval_seconds=time.time() - t0)
    write_json(point / "stats.json", stats)
    return stats


def first_epoch_valid_pesq(log_csv: Path) -> float | None:
    """The validation PESQ-WB after the first epoch from a trainer's ``log.csv`` (None where the
    run scored none, e.g. ``--valid-pesq-files 0``): the ERB-UNet notes' early gate."""
    try:
        with open(log_csv, newline="") as fh:
            first = next(csv.DictReader(fh), None)
    except OSError:
        return None
    try:
        v = float((first or {}).get("valid_pesq") or "nan")
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def execute(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one run (see the module docstring); returns the final ``run.json``.
    Raises :class:`RunFailed` (``run.json`` then says ``failed`` and names the log)."""
    run = Path(job["run_dir"])
    run.mkdir(parents=True, exist_ok=True)
    record = {**(read_json(run / RUN_JSON) or {}), "row": job["row"], "seed": job["seed"],
              "config_hash": job["config_hash"], "status": "running", "host": platform.node(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(run / RUN_JSON, record)
    t0 = time.time()
    try:
        cmd = train(job, run)
        train_s = time.time() - t0
        points = {p["label"]: run_point(job, run, p) for p in job["points"]}
    except RunFailed as e:
        record.update(status="failed", error=str(e), log=str(e.log) if e.log else None, wall_s=time.time() - t0)
        write_json(run / RUN_JSON, record)
        raise
    except Exception as e:  # noqa: BLE001 - any crash marks the run failed; the study goes on
        log = run / "train.log"
        with open(log, "a") as fh:
            import traceback

            fh.write("\n[run_study] evaluation crashed:\n" + traceback.format_exc())
        record.update(status="failed", error=f"{type(e).__name__}: {e}", log=str(log), wall_s=time.time() - t0)
        write_json(run / RUN_JSON, record)
        raise RunFailed(f"{type(e).__name__}: {e}", log) from e
    record.update(status="complete", error=None, log=str(run / "train.log"), command=cmd, wall_s=time.time() - t0,
                  train_s=train_s, device=job["device"], commit=git_commit(), versions=package_versions(),
                  points=points, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json(run / RUN_JSON, record)
    return record


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: _study_job.py RUN/job.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    try:
        execute(job)
    except RunFailed as e:
        print(f"run failed: {e} (log: {e.log})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(TOOLS_DIR))
    raise SystemExit(main(sys.argv[1:]))
