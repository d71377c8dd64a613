"""Command-line helpers shared by the thin scripts in tools/ (not a public API): output folders,
the common flags, and the flags every trainer shares.

Every tool writes into ``--out DIR``; by default a new ``runs/<tool>-<YYYYmmdd-HHMMSS>/``.
Nothing is ever overwritten: an existing non-empty ``--out`` is refused unless the tool
resumes from it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import os
import sys
from pathlib import Path
from typing import Any

import _argtypes as T
from _outdir import LOCK_NAME, acquire_out_lock


def default_out_dir(tool: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{tool}-{stamp}"
    out, k = base, 1
    while out.exists():  # two runs in the same second never share a folder
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def prepare_out_dir(out: str | os.PathLike | None, tool: str, *, allow_existing: bool = False,
                    resumable: bool = False) -> Path:
    """Create the output folder and take its lock (:func:`_outdir.acquire_out_lock`); refuse a
    non-empty existing one unless ``allow_existing`` (``--resume``, which may also take over the
    lock of a run that died)."""
    path = Path(out) if out is not None else default_out_dir(tool)
    lock = path / LOCK_NAME
    if path.exists() and any(p != lock for p in path.iterdir()) and not allow_existing:
        sys.exit(f"error: --out {path} already exists and is not empty; nothing is overwritten. "
                 f"Choose a new --out{' (or pass --resume to continue its run)' if resumable else ''}.")
    path.mkdir(parents=True, exist_ok=True)
    acquire_out_lock(path, tool, resume=allow_existing, resumable=resumable)
    return path


def add_common_args(p: argparse.ArgumentParser, *, device: bool = True, seed: bool = True) -> None:
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: a new runs/<tool>-<YYYYmmdd-HHMMSS>/); "
                        "an existing non-empty folder is refused, never overwritten")
    if seed:
        p.add_argument("--seed", type=T.SEED, default=0, help="random seed for every random choice (default 0)")
    if device:
        p.add_argument("--device", default="auto",
                       help="torch device: auto (cuda if available, else cpu), cpu, cuda, cuda:1 ... (default auto)")


def resolve_device(name: str) -> Any:
    """The ``--device`` name as a ``torch.device`` (torch is imported here, not at module load,
    so that tools that need no torch parse ``--help`` fast)."""
    import torch  # noqa: PLC0415

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ----------------------------------------------------------------------------- trainers' shared flags
FLOAT64_HELP = ("train in float64 (model, data and loss): slow, for exactness checks such as a DDP run "
                "equalling one process with the global batch regardless of float32 reduction order")


def add_optimizer_args(g: Any, *, adam_is: str = "the recipe's Adam") -> None:
    """``--optimizer adam|sgd`` and ``--float64``, with one wording in every trainer."""
    g.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                   help=f"adam: {adam_is}; sgd: plain SGD (for controlled comparisons, e.g. DDP against one "
                        f"process; default adam)")
    g.add_argument("--float64", action="store_true", help=FLOAT64_HELP)


def add_corpus_args(g: Any) -> None:
    """``--data``, ``--demo-dir``, ``--resample``, ``--downmix``, ``--num-workers`` and
    ``--valid-speakers``: what :func:`open_corpus` reads, and how."""
    g.add_argument("--data", default=None, metavar="DIR",
                   help="a VoiceBank-DEMAND tree ({clean,noisy}_{trainset_28spk,testset}_wav) or a paired-folder "
                        "tree ({train,valid,test}/{clean,noisy}); default: the built-in demo corpus, generated "
                        "once into --demo-dir")
    g.add_argument("--demo-dir", default="runs/demo-corpus", metavar="DIR",
                   help="where the demo corpus is generated and reused (default runs/demo-corpus)")
    g.add_argument("--resample", action="store_true",
                   help="resample audio at another rate than the model's on load (VoiceBank-DEMAND ships 48 kHz); "
                        "without it such audio is an error naming the fix (pre-resampling the tree once with "
                        "tools/resample_dataset.py is faster)")
    g.add_argument("--downmix", action="store_true",
                   help="average the channels of multi-channel files (mean downmix); without it such a file is an "
                        "error naming it")
    g.add_argument("--num-workers", type=T.LOADER_WORKERS, default=0, metavar="N",
                   help="DataLoader worker processes that read, crop, resample (--resample) and augment "
                        "(--noise-dir) the training and validation batches while the model trains (default 0: in "
                        "the training process). The batches are the same for any N, bit for bit, and --resume "
                        "may change it; each worker takes CPU cores from the training step")
    g.add_argument("--valid-speakers", nargs="*", default=None,
                   help="VoiceBank-DEMAND: training speakers held out for validation (default p226 p287); the "
                        "test set is never used for model selection")


THREADS_HELP = "torch CPU threads (default, or 0: torch's choice)"


def add_noise_augment_args(g: Any) -> None:
    """``--noise-dir``, ``--snr-range`` and ``--noise-p``: on-the-fly noise augmentation of the
    training split (:class:`se_data.NoiseAugmentedDataset`); ``--dns-root`` and ``--rir-p``: a
    training split of DNS-Challenge-style mixtures instead (:class:`se_data.DNSChallengeDataset`)."""
    import _argtypes as T  # noqa: PLC0415

    g.add_argument("--noise-dir", default=None, metavar="DIR",
                   help="noise augmentation: mix each training item's clean speech with a noise file from DIR at a "
                        "random SNR (sub-folders name the noise classes of the NC loss; files without one have no "
                        "class and are left out of that loss). Validation and test stay unaugmented")
    g.add_argument("--snr-range", type=T.SNR_DB, nargs=2, default=[-5.0, 15.0], metavar=("LO", "HI"),
                   help="with --noise-dir or --dns-root: SNR drawn uniformly in [LO, HI] dB per item (default -5 15)")
    g.add_argument("--noise-p", type=T.PROBABILITY, default=1.0,
                   help="with --noise-dir: probability that an item is augmented (default 1)")
    g.add_argument("--dns-root", default=None, metavar="DIR",
                   help="train on mixtures synthesised on the fly from a DNS-Challenge-style tree: DIR/clean, "
                        "DIR/noise and optionally DIR/impulse_responses (se_data.DNSChallengeDataset; SNR from "
                        "--snr-range, reverberation with --rir-p, one item per clean file and epoch) instead of "
                        "the training split of --data; validation and test stay --data's (or the demo corpus')")
    g.add_argument("--rir-p", type=T.PROBABILITY, default=0.0,
                   help="with --dns-root: probability that an item's speech is convolved with a random impulse "
                        "response of DIR/impulse_responses; the target is then the reverberant speech (default 0)")


def check_noise_augment_args(p: Any, args: Any) -> None:
    """Parse-time checks of :func:`add_noise_augment_args`' flags (``p.error`` exits 2)."""
    lo, hi = args.snr_range
    if lo > hi:
        p.error(f"--snr-range {lo:g} {hi:g}: LO must not exceed HI")
    if args.dns_root is not None and args.noise_dir is not None:
        p.error("--dns-root synthesises its own mixtures; leave out --noise-dir (or --dns-root)")
    if args.rir_p > 0 and args.dns_root is None:
        p.error("--rir-p applies to --dns-root's impulse responses; pass --dns-root DIR")


def add_run_args(g: Any, *, threads_help: str = THREADS_HELP) -> None:
    """``--resume``, ``--tensorboard``, ``--threads`` and ``--config``, shared by the trainers (parse
    with :func:`parse_with_config`)."""
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt exactly where it stopped (same flags; "
                        "--epochs may grow)")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs (needs tensorboard)")
    g.add_argument("--threads", type=T.THREADS, default=None, help=threads_help)
    add_config_arg(g)


def check_run_args(p: Any, args: Any) -> None:
    """Argument checks every trainer shares (``p.error`` exits with the usage line)."""
    if args.resume and args.out is None:
        p.error("--resume needs --out DIR (the run to continue)")


#: a run's settings a ``--config`` replay never takes from the file: the replay is a new run in its own
#: ``--out`` (``--resume`` and ``--out`` are given on the command line when wanted)
NOT_REPLAYED = frozenset({"out", "resume", "config"})


def add_config_arg(p: Any) -> None:
    """``--config RUN/config.json``: replay a run's settings (see :func:`parse_with_config`)."""
    p.add_argument("--config", default=None, metavar="RUN/config.json",
                   help="replay the settings of an earlier run from its config.json (the \"args\" this tool wrote "
                        "there); flags given on the command line override it, and each override is printed. "
                        "--out and --resume are not replayed (the replay is a new run in its own --out); a key "
                        "that is not a flag of this tool is an error")


def parse_with_config(p: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``p.parse_args(argv)`` with ``--config FILE`` applied: the file's ``"args"`` (a trainer's
    ``config.json``) become the defaults, the command line overrides them, and every flag whose
    command-line value differs from the file's is printed (rank 0 only). An unreadable file, one
    without ``"args"``, or a key that is not a flag of this tool is a usage error (exit 2).
    The returned namespace has no ``config`` entry, so a replay writes the same ``config.json``
    as the run it replays (flags being equal)."""
    args = p.parse_args(argv)
    path = getattr(args, "config", None)
    if path is not None:
        replayed = _read_config_args(p, path)
        defaults = {a.dest: a.default for a in p._actions}
        # JSON has no tuples: a flag whose default is a tuple gets one back, so a replay compares
        # equal to a run that used the default (--resume compares the settings)
        replayed = {k: tuple(v) if isinstance(v, list) and isinstance(defaults[k], tuple) else v
                    for k, v in replayed.items()}
        saved = {k: defaults[k] for k in replayed}
        try:
            p.set_defaults(**replayed)
            args = p.parse_args(argv)
        finally:
            p.set_defaults(**saved)
        overrides = [(k, v, getattr(args, k)) for k, v in replayed.items() if getattr(args, k) != v]
        if os.environ.get("RANK", "0") == "0":
            opt = {a.dest: a.option_strings[0] for a in p._actions if a.option_strings}
            for k, old, new in overrides:
                print(f"--config {path}: overriding {opt.get(k, k)}: {old!r} -> {new!r}", flush=True)
    if hasattr(args, "config"):
        del args.config
    return args


def _read_config_args(p: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """The replayable ``"args"`` of a run's config.json, every key checked against ``p``'s flags."""
    import json  # noqa: PLC0415

    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        p.error(f"argument --config: cannot read {path}: {e.strerror or e}")
    except ValueError as e:
        p.error(f"argument --config: {path} is not valid JSON ({e})")
    if not isinstance(doc, dict) or not isinstance(doc.get("args"), dict):
        p.error(f"argument --config: {path} has no \"args\" object; pass the config.json a training run "
                f"wrote into its --out folder")
    dests = {a.dest for a in p._actions if a.dest != argparse.SUPPRESS and a.dest != "help"}
    unknown = sorted(k for k in doc["args"] if k not in dests)
    if unknown:
        p.error(f"argument --config: {path}: unknown key(s) {', '.join(repr(k) for k in unknown)}: not a flag of "
                f"{p.prog} (a config.json of another tool or version?); remove them from the file")
    return {k: v for k, v in doc["args"].items() if k not in NOT_REPLAYED}


ALLOW_FAILURES_HELP = ("exit 0 even when some items failed (they are still listed and counted); by default "
                       "any failed item makes the exit status 1")


def add_allow_failures(p: Any) -> None:
    """``--allow-failures``: the one opt-out of "a failed item makes the exit status 1"."""
    p.add_argument("--allow-failures", action="store_true", help=ALLOW_FAILURES_HELP)


def failure_status(n_failed: int, n_total: int, args: Any, what: str = "item(s)") -> int:
    """Exit status of a tool that processed ``n_total`` items of which ``n_failed`` failed:
    1 when any failed (unless ``--allow-failures``), else 0; prints the count on failure."""
    if n_failed:
        print(f"{n_failed} of {n_total} {what} failed"
              + ("; exit status 0 (--allow-failures)" if args.allow_failures else "; exit status 1 "
                 "(--allow-failures to exit 0)"), file=sys.stderr)
    return 1 if n_failed and not args.allow_failures else 0


# ----------------------------------------------------------------------------- error phrasing
def phrased(**flags: str | None) -> Any:
    """Decorator for a tool's ``main``: library errors raised inside name this tool's flags
    (``resample="--resample"`` → "pass `--resample`"), never API keywords ("resample=True"),
    and for an option the tool has no flag for say what to do instead (see
    :func:`se_data.cli_flags`)."""
    def deco(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            import se_data  # noqa: PLC0415 - tools that need no audio parse --help without it

            with se_data.cli_flags(**flags):
                return fn(*a, **kw)
        return wrapper
    return deco


def corpus_flags(args: Any) -> dict[str, str | None]:
    """The :func:`se_data.cli_flags` of a tool built with :func:`add_corpus_args`."""
    return {"resample": "--resample" if hasattr(args, "resample") else None,
            "mono": "--downmix" if hasattr(args, "downmix") else None}
