"""Run logs shared by the trainers (not a public API): ``OUT/log.csv`` (TensorBoard optional)
and the rank-0 console logger."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from _train import DistInfo


def run_logger(info: DistInfo) -> Any:
    """``log(*parts)`` that prints above the progress bar on rank 0 and is silent elsewhere."""
    if not info.is_main:
        return lambda *a: None
    from tqdm import tqdm  # noqa: PLC0415

    return lambda *a: tqdm.write(" ".join(str(x) for x in a))


def open_metric_log(out: Path, args: Any, info: DistInfo, start_epoch: int) -> MetricLogger | None:
    """``OUT/log.csv`` on rank 0 (TensorBoard with ``--tensorboard``); on a resume the rows logged
    after the checkpoint are dropped, so no epoch appears twice."""
    if not info.is_main:
        return None
    csv_log = MetricLogger(out, "log", tensorboard=args.tensorboard)
    if args.resume:
        csv_log.truncate_after("epoch", start_epoch - 1)
    return csv_log


class MetricLogger:
    """Append rows to ``DIR/<name>.csv`` (header fixed by the first row); TensorBoard optional."""

    def __init__(self, out_dir: Path, name: str = "log", tensorboard: bool = False) -> None:
        self.path = Path(out_dir) / f"{name}.csv"
        self.fields: list[str] | None = None
        if self.path.exists():
            with open(self.path, newline="") as f:
                self.fields = next(csv.reader(f), None)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise SystemExit("error: --tensorboard needs the tensorboard package "
                                 "(uv pip install tensorboard); CSV logs are always written") from e
            self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def log(self, row: dict[str, Any], step: int | None = None) -> None:
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.fields)
        elif any(k not in self.fields for k in row):  # a new column (e.g. a loss term that starts later)
            old = self.read()
            self.fields += [k for k in row if k not in self.fields]
            with open(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields)
                w.writeheader()
                w.writerows(old)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in self.fields])
        if self.tb is not None and step is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate_after(self, key: str, value: float) -> None:
        """Drop rows logged after a checkpoint (``row[key] > value``) so a resume does not duplicate them."""
        rows = self.read()
        if not rows or self.fields is None:
            return
        keep = [r for r in rows if r.get(key, "") == "" or float(r[key]) <= value]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            w.writeheader()
            w.writerows(keep)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v
