"""The ``[[row]]`` tables of a study file (not a public API): which training tools and
evaluators a row may name, the :class:`Row` it becomes (with its evaluation sweep), and
:func:`parse_row`, which checks one row table and names the study file's line of a problem.
The whole schema is in :mod:`_study_schema`'s docstring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from _study_toml import SourceLines, check_keys, flag_table, string_value

TRAIN_TOOLS = ("train_bsdt", "train_sgmse", "train_aa")
EVAL_TOOLS = ("eval_dir", "eval_ood", "analyze_aa")
#: the evaluator that a training tool's rows get when their eval names none
DEFAULT_EVAL = {"train_bsdt": "eval_dir", "train_sgmse": "eval_dir", "train_aa": "analyze_aa"}
#: which evaluators may score which tool's models
EVAL_FOR = {"train_bsdt": ("eval_dir",), "train_sgmse": ("eval_dir", "eval_ood"), "train_aa": ("analyze_aa",)}
ROW_KINDS = ("model", "noisy", "quoted")
ROW_KEYS = {"name", "kind", "tool", "flags", "data_flags", "quick_flags", "seeds", "nproc", "eval", "citation",
            "test_set", "values", "note", "quick"}
EVAL_KEYS = {"tool", "flags", "sweep"}
SWEEP_KEYS = {"label", "flags"}


@dataclass
class SweepPoint:
    """One evaluation setting of a trained model (``label`` "" for the row's only one)."""

    label: str
    flags: dict[str, Any]
    line: int


@dataclass
class Row:
    """One ``[[row]]`` of the study file: a model to train and score (kind "model"), the
    unprocessed input ("noisy"), or numbers quoted from a paper ("quoted")."""

    name: str
    kind: str
    index: int                         # position among the [[row]] tables
    line: int
    tool: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    data_flags: dict[str, Any] = field(default_factory=dict)
    quick_flags: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] | None = None
    nproc: int = 1
    quick: bool = True                 # runs with --quick (false: only the full study runs it)
    eval_tool: str | None = None
    eval_flags: dict[str, Any] = field(default_factory=dict)
    sweep: list[SweepPoint] = field(default_factory=list)
    citation: str = ""
    test_set: str = ""
    values: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def slug(self) -> str:
        return slug(self.name)

    def table_names(self) -> list[str]:
        """The table rows this row gives: one per sweep point (``"NAME / LABEL"``)."""
        if self.kind != "model" or not self.sweep:
            return [self.name]
        return [f"{self.name} / {p.label}" if p.label else self.name for p in self.sweep]


def slug(name: str) -> str:
    """A folder name for a row or sweep label: ``"BSDT w/o inter-band"`` -> ``"bsdt-w-o-inter-band"``."""
    s = re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-.").lower()
    return s or "row"


def parse_row(src: SourceLines, i: int, r: dict[str, Any]) -> Row:
    """The ``i``-th ``[[row]]`` table ``r`` of the study file checked and read; raises
    :class:`StudyError` naming the line of the first problem."""
    check_keys(src, "row", i, r, ROW_KEYS)
    line = src.table("row", i)[0]
    name = string_value(src, "row", i, r, "name", required=True)
    kind = r.get("kind", "model")
    if kind not in ROW_KINDS:
        raise src.error(src.find("row", i, "kind"), f"row {name!r}: unknown kind {kind!r}; one of "
                        f"{', '.join(ROW_KINDS)}")
    row = Row(name=name, kind=kind, index=i, line=line, note=string_value(src, "row", i, r, "note"))
    if kind == "quoted":
        for k in ("tool", "flags", "seeds", "eval", "data_flags", "quick_flags", "nproc", "quick"):
            if k in r:
                raise src.error(src.find("row", i, k), f"row {name!r}: a quoted row has no {k} (it is not run)")
        row.citation = string_value(src, "row", i, r, "citation", required=True)
        row.test_set = string_value(src, "row", i, r, "test_set", required=True)
        vals = r.get("values")
        if not isinstance(vals, dict) or not vals or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals.values()):
            raise src.error(src.find("row", i, "values"), f"row {name!r}: a quoted row needs values = {{ metric = "
                            "number, ... }}")
        row.values = {k: float(v) for k, v in vals.items()}
        return row
    if kind == "noisy":
        for k in ("tool", "flags", "seeds", "eval", "citation", "values", "data_flags", "quick_flags", "nproc",
                  "quick"):
            if k in r:
                raise src.error(src.find("row", i, k), f"row {name!r}: the noisy row has no {k}; it scores the "
                                "unprocessed input of the study's test set")
        return row
    for k in ("citation", "values", "test_set"):
        if k in r:
            raise src.error(src.find("row", i, k), f"row {name!r}: {k} belongs to quoted rows (kind = \"quoted\")")
    tool = r.get("tool")
    if tool not in TRAIN_TOOLS:
        raise src.error(src.find("row", i, "tool"), f"row {name!r}: unknown tool {tool!r}; one of "
                        f"{', '.join(TRAIN_TOOLS)}")
    row.tool = tool
    row.flags = flag_table(src, "row", i, "flags", r.get("flags", {}))
    row.data_flags = flag_table(src, "row", i, "data_flags", r.get("data_flags", {}))
    row.quick_flags = flag_table(src, "row", i, "quick_flags", r.get("quick_flags", {}))
    seeds = r.get("seeds")
    if seeds is not None:
        if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                          for s in seeds)) or len(set(seeds)) != len(seeds):
            raise src.error(src.find("row", i, "seeds"), f"row {name!r}: seeds must be a list of distinct integers "
                            ">= 0, e.g. seeds = [0, 1, 2]")
        row.seeds = list(seeds)
    nproc = r.get("nproc", 1)
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise src.error(src.find("row", i, "nproc"), f"row {name!r}: nproc must be an integer >= 1 (processes "
                        "under torchrun)")
    row.nproc = nproc
    quick = r.get("quick", True)
    if not isinstance(quick, bool):
        raise src.error(src.find("row", i, "quick"), f"row {name!r}: quick must be true or false (false: the row "
                        "is left out of --quick)")
    row.quick = quick
    ev = r.get("eval", {})
    if not isinstance(ev, dict):
        raise src.error(src.find("row", i, "eval"), f"row {name!r}: eval must be a table: eval = {{ tool = "
                        "\"eval_dir\" }}")
    check_keys(src, "row", i, ev, EVAL_KEYS)
    row.eval_tool = ev.get("tool", DEFAULT_EVAL[tool])
    if row.eval_tool not in EVAL_TOOLS:
        raise src.error(src.find("row", i, "tool", str(row.eval_tool)), f"row {name!r}: unknown evaluator "
                        f"{row.eval_tool!r}; one of {', '.join(EVAL_TOOLS)}")
    if row.eval_tool not in EVAL_FOR[tool]:
        raise src.error(src.find("row", i, str(row.eval_tool)), f"row {name!r}: {row.eval_tool} cannot score "
                        f"{tool}'s models; use {' or '.join(EVAL_FOR[tool])}")
    row.eval_flags = flag_table(src, "row", i, "flags", ev.get("flags", {}))
    sweep = ev.get("sweep", [])
    if not isinstance(sweep, list) or not all(isinstance(p, dict) for p in sweep):
        raise src.error(src.find("row", i, "sweep"), f"row {name!r}: write each sweep entry as [[row.eval.sweep]]")
    labels = set()
    for j, p in enumerate(sweep):
        pline = _sweep_line(src, i, j)
        for k in p:
            if k not in SWEEP_KEYS:
                raise src.error(pline, f"row {name!r}: unknown key {k!r} in a sweep entry; use label and flags")
        label = p.get("label")
        if not isinstance(label, str) or not label.strip() or label in labels:
            raise src.error(pline, f"row {name!r}: every sweep entry needs a distinct label = \"...\"")
        labels.add(label)
        if not isinstance(p.get("flags", {}), dict):
            raise src.error(pline, f"row {name!r}: sweep flags must be a table")
        row.sweep.append(SweepPoint(label, dict(p.get("flags", {})), pline))
    return row


def _sweep_line(src: SourceLines, row_index: int, j: int) -> int:
    start, end = src.table("row", row_index)
    hits = [ln for n, ln in src.sections if n == "row.eval.sweep" and start <= ln <= end]
    return hits[j] if j < len(hits) else start
