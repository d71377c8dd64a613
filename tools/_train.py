"""Training plumbing shared by the tools (not a public API).

- Checkpoints: atomic writes, everything needed for a bit-exact resume on CPU (model,
  optimizer, scheduler, RNG states, step, history), loadable with
  ``torch.load(..., weights_only=True)`` so a checkpoint from someone else never runs code.
- DDP: ``setup_distributed()`` works unchanged under ``torchrun --nproc_per_node N``
  (gloo on CPU, nccl on CUDA) and as a plain single process.
- A NaN/Inf guard that stops every rank with a clear message.
- The run skeleton every trainer shares: resume policy, model selection, epoch checkpoints.
  (The CSV / TensorBoard run log is ``_run_log``.)
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.distributed as dist

from se_data import CHECKPOINT_FORMAT as CKPT_FORMAT  # the tag every trainer writes
from se_data import read_checkpoint


# ----------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: torch.device) -> DistInfo:
    """Initialise torch.distributed when launched by torchrun; a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, 0, device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank, device)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (a no-op without DDP)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= info.world_size
    return x


# ----------------------------------------------------------------------------- data
def open_corpus(args: Any, *, sample_rate: int, segment: float, info: DistInfo) -> Any:
    """The corpus of ``--data`` (None: the demo corpus in ``--demo-dir``, built by rank 0 first)
    as an :class:`se_data.TrainingCorpus`; a bad folder or file exits with the library's message."""
    import se_data

    try:
        if args.data is None and info.is_main:
            se_data.make_demo_corpus(args.demo_dir, seed=0, sample_rate=sample_rate)
        if info.enabled:
            dist.barrier()
        corpus = se_data.open_training_corpus(
            args.data, sample_rate=sample_rate, segment=segment, resample=args.resample,
            mono=getattr(args, "downmix", False), seed=args.seed,
            valid_speakers=None if args.valid_speakers is None else tuple(args.valid_speakers),
            demo_dir=args.demo_dir, build_demo=False)
    except (se_data.SampleRateError, se_data.AudioFileError, se_data.CorpusLayoutError) as e:
        raise SystemExit(f"error: --data: {e}") from e
    batch = getattr(args, "batch_size", None)
    if batch is not None and len(corpus.train) < batch * info.world_size:  # before anything trains
        raise SystemExit(f"error: --batch-size {batch}: the training split of {corpus.root} holds "
                         f"{len(corpus.train)} item(s), fewer than one global batch ({batch} x "
                         f"{info.world_size} process(es)); lower --batch-size or use fewer processes")
    return corpus


def training_set(args: Any, data: Any) -> tuple[Any, tuple[str, ...] | None]:
    """The training split, wrapped in :class:`se_data.NoiseAugmentedDataset` with ``--noise-dir``
    (draws keyed by (seed, epoch, index): resume and DDP stay exact), and the noise-class names
    its labels index (the corpus' classes first, then the noise folder's new ones). With
    ``--dns-root``: :func:`dns_training_set`, without noise-class names."""
    import se_data

    if getattr(args, "dns_root", None) is not None:
        return dns_training_set(args, data), None
    if getattr(args, "noise_dir", None) is None:
        return data.train, data.class_names
    lo, hi = args.snr_range
    try:
        train = se_data.NoiseAugmentedDataset(data.train, args.noise_dir, seed=args.seed, snr_range=(lo, hi),
                                              p=args.noise_p, class_names=data.class_names)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: --noise-dir: {e}") from e
    return train, (tuple(train.class_names) or None)


def dns_training_set(args: Any, data: Any) -> Any:
    """``--dns-root``'s :class:`se_data.DNSChallengeDataset` at the corpus' rate and crop length
    (``--snr-range``, ``--rir-p``, ``--seed``, ``--resample``, ``--downmix``)."""
    import se_data

    lo, hi = args.snr_range
    try:
        train = se_data.DNSChallengeDataset(args.dns_root, sample_rate=data.sample_rate, segment=data.train.segment,
                                            snr_range=(lo, hi), rir_p=args.rir_p, seed=args.seed,
                                            resample=args.resample, mono=getattr(args, "downmix", False))
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: --dns-root: {e}") from e
    batch = getattr(args, "batch_size", None)
    if batch is not None and len(train) < batch:
        raise SystemExit(f"error: --batch-size {batch}: --dns-root {args.dns_root} holds {len(train)} clean file(s), "
                         f"fewer than one batch; lower --batch-size")
    return train


# ----------------------------------------------------------------------------- NaN guard
class NonFiniteLossError(RuntimeError):
    pass


def check_finite(losses: dict[str, torch.Tensor], *, step: int, epoch: int, info: DistInfo) -> None:
    """Stop every rank with a clear message when any loss term is NaN/Inf.

    Under DDP the flag is all-reduced so that no rank is left waiting in a collective.
    """
    bad = torch.tensor([0.0 if all(bool(torch.isfinite(v.detach()).all()) for v in losses.values()) else 1.0],
                       device=next(iter(losses.values())).device)
    if info.enabled:
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if bad.item() > 0:
        parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        raise NonFiniteLossError(
            f"non-finite loss at epoch {epoch}, step {step} ({parts}); training stopped. "
            "Check the data for NaN/Inf or silent clips, lower --lr, or resume from the last "
            "good checkpoint with --resume.")


# ----------------------------------------------------------------------------- checkpoints
def package_versions(names: Iterable[str]) -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": str(torch.__version__)}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    payload = {"format": CKPT_FORMAT, **payload}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True`` (no code runs); checks the format tag (se_data's reader)."""
    return read_checkpoint(path, map_location=map_location, error=RuntimeError)


# ----------------------------------------------------------------------------- optimiser
def make_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float) -> torch.optim.Optimizer:
    """``--optimizer``: Adam or plain SGD at ``lr``."""
    params = list(params)
    return torch.optim.Adam(params, lr=lr) if name == "adam" else torch.optim.SGD(params, lr=lr)


# ----------------------------------------------------------------------------- runs
#: flags that may differ between a run and its --resume (everything else must match; --num-workers
#: changes how the batches are read, never what they hold)
RESUME_FREE = frozenset({"resume", "out", "threads", "no_progress", "tensorboard", "device", "epochs",
                         "num_workers"})


#: process pools of the running trainer (:func:`metric_pool`), shut down when :func:`run_main` returns
_POOLS: list[Any] = []


def metric_pool(workers: int) -> Any:
    """``se_metrics.metric_pool(workers)`` (None for 0) for this run, shut down when
    :func:`run_main` returns, however the run ends."""
    import se_metrics  # noqa: PLC0415

    pool = se_metrics.metric_pool(workers)
    if pool is not None:
        _POOLS.append(pool)
    return pool


def _close_pools() -> None:
    while _POOLS:
        _POOLS.pop().shutdown(wait=True, cancel_futures=True)


def run_main(args: Any, body: Any) -> Any:
    """The trainers' ``main``: ``--threads``, DDP set-up, ``body(args, info)``, a NaN stop as a
    clean error on every rank, and DDP and metric-pool tear-down however the run ends."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    import _cli  # noqa: PLC0415 - tools/ is on sys.path when the tools run

    import se_data  # noqa: PLC0415

    info = setup_distributed(_cli.resolve_device(args.device))
    try:
        with se_data.cli_flags(**_cli.corpus_flags(args)):  # errors name this tool's flags
            return body(args, info)
    except NonFiniteLossError as e:
        raise SystemExit(f"error: {e}") from None
    finally:
        _close_pools()
        cleanup_distributed()


def open_run_dir(args: Any, tool: str, info: DistInfo) -> Path:
    """``--out`` (default ``runs/<tool>-<stamp>``), created by rank 0 and shared with every rank;
    a non-empty folder is refused unless ``--resume``."""
    import _cli  # noqa: PLC0415

    out = _cli.prepare_out_dir(args.out, tool, allow_existing=args.resume, resumable=True) if info.is_main else None
    return Path(broadcast_object(str(out) if out else None, info))


def check_resume_args(ck: dict[str, Any], args: Any, out: Path, *, free: Iterable[str] = RESUME_FREE) -> None:
    """Refuse a ``--resume`` whose flags differ from the checkpoint's run (except ``free`` ones),
    naming every difference."""
    free = set(free)
    old, new = ck["config"], vars(args)
    diff = {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if k not in free and old.get(k) != new.get(k)}
    if diff:
        desc = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
        raise SystemExit(f"error: --resume: {out}/last.pt was trained with other settings ({desc}); "
                         f"resume with the same flags or start a new --out")


def resume_checkpoint(out: Path, tool: str, args: Any, *, free: Iterable[str] = RESUME_FREE) -> dict[str, Any] | None:
    """``OUT/last.pt`` for ``--resume`` (None without it), written by ``tool`` with the same flags.
    A folder whose run stopped before its first checkpoint has no ``last.pt``: the run then starts
    from scratch there (None)."""
    if not args.resume:
        return None
    if not (out / "last.pt").exists():
        print(f"--resume: {out} holds no last.pt (its run stopped before the first checkpoint); "
              f"starting from scratch in it", flush=True)
        return None
    ck = load_checkpoint(out / "last.pt", map_location="cpu")
    if ck.get("tool") != tool:
        raise SystemExit(f"error: --resume: {out}/last.pt was written by {ck.get('tool')}, not {tool}")
    check_resume_args(ck, args, out, free=free)
    return ck


def restore(ck: dict[str, Any] | None, best: "BestTracker", log: Any, out: Path,
            **stateful: Any) -> tuple[int, int, list[dict[str, Any]], "BestTracker"]:
    """Continue from a :func:`resume_checkpoint` (``None``: a fresh run): load each named object
    (``model=..., optimizer=...``) from the checkpoint entry of that name, the RNG state, and
    return ``(start_epoch, step, history, best)``."""
    if ck is None:
        return 0, 0, [], best
    for name, obj in stateful.items():
        obj.load_state_dict(ck[name])
    set_rng_state(ck["rng"])
    start_epoch, step = ck["epoch"] + 1, ck["step"]
    log(f"resumed {out}/last.pt at epoch {start_epoch}, step {step}")
    return start_epoch, step, ck["history"], BestTracker(best.state["key"], best.state["mode"], ck["best"])


class BestTracker:
    """The model-selection record every trainer keeps in its checkpoints:
    ``{"epoch", "key", "mode", "value", "metrics"}`` (``value`` = ``metrics[key]`` of the best
    epoch so far; ``mode`` ``"min"`` or ``"max"``; a non-finite value never wins, so a run whose
    validation is never finite writes no ``best.pt``)."""

    def __init__(self, key: str, mode: str = "min", state: dict[str, Any] | None = None) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.state = dict(state) if state else {"epoch": -1, "key": key, "mode": mode, "value": None, "metrics": {}}

    def update(self, epoch: int, row: dict[str, Any]) -> bool:
        """Record ``row`` of ``epoch``; True when it is the new best."""
        v, best = float(row[self.state["key"]]), self.state["value"]
        better = math.isfinite(v) and (best is None or (v < best if self.state["mode"] == "min" else v > best))
        if better:
            self.state.update(epoch=epoch, value=v, metrics={k: row[k] for k in row
                                                             if isinstance(row[k], (int, float))})
        return better


def save_epoch(out: Path, payload: dict[str, Any], improved: bool) -> None:
    """``last.pt`` every epoch, ``best.pt`` when the epoch improved (one schema: ``tool``,
    ``config``, ``sample_rate``, ``versions``, ``epoch``, ``step``, ``model``, ``optimizer``, ``rng``,
    ``best`` (a :class:`BestTracker` state), ``history``, and the trainer's own entries)."""
    save_checkpoint(out / "last.pt", payload)
    if improved:
        save_checkpoint(out / "best.pt", payload)
