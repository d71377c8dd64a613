"""The study file of tools/run_study.py: TOML read with the standard library's ``tomllib``,
checked in full before anything runs (not a public API).

Schema (every table but ``[study]`` and ``[[row]]`` is optional)::

    [study]                       name, title, baseline (a row name), test_set ("test": the
                                  corpus' held-out test split), metrics (se_metrics names; default
                                  every metric of the table), description, full_run, gpu_time
    [defaults]                    shared by every row of a tool: flags = {...}, data_flags = {...}
                                  (added with --data: research sizes), quick_flags = {...}
    [[setup]]                     name, tool (make_ood_testset), flags: run once before the rows;
                                  a row's flag value "setup:NAME" is that step's output folder
    [[row]]                       name, tool (train_bsdt | train_sgmse | train_aa), flags,
                                  data_flags, quick_flags, seeds = [...], nproc (torchrun),
                                  quick = false (left out of --quick, listed as not run),
                                  [row.eval]: tool (eval_dir | eval_ood | analyze_aa), flags,
                                  [[row.eval.sweep]]: label, flags -- one table row per entry
                                  from the same trained model (evaluation-only sweep); with
                                  sweep entries write [row.eval] as a table, not inline
    [[row]] kind = "noisy"        the unprocessed input, scored like a model
    [[row]] kind = "quoted"       numbers from a paper: citation, test_set, values = {metric: x}
    [[criterion]]                 a success criterion reported pass / FAIL from the table: name,
                                  row and baseline (table row names, e.g. "CFG / OOD / static
                                  w=3"), metric, and more_than = x (row - baseline > x) or
                                  at_least = x (row - baseline >= x; lower-is-better metrics
                                  are compared as baseline - row)

A flag ``key = value`` is ``--key value``; ``true`` is the bare switch, ``false`` leaves it out,
a list gives several values. tomllib gives no line numbers, so errors find the line by scanning
the text for the row's table and the key (``_study_toml.SourceLines``).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _study_rows import TRAIN_TOOLS, Row, parse_row
from _study_toml import SourceLines, StudyError, check_keys, flag_table, string_value, table_array, top_line

SETUP_TOOLS = ("make_ood_testset", "make_nonstationary_testset")
STUDY_KEYS = {"name", "title", "baseline", "test_set", "metrics", "description", "full_run", "gpu_time"}
SETUP_KEYS = {"name", "tool", "flags"}
DEFAULTS_KEYS = {"flags", "data_flags", "quick_flags"}
CRITERION_KEYS = {"name", "row", "baseline", "metric", "more_than", "at_least"}


@dataclass
class Setup:
    name: str
    tool: str
    flags: dict[str, Any]
    line: int


@dataclass
class Criterion:
    """A success criterion: ``row`` beats ``baseline`` on ``metric`` by more than (``strict``) or
    at least ``margin``."""

    name: str
    row: str
    baseline: str
    metric: str
    margin: float
    strict: bool
    line: int


@dataclass
class Study:
    path: Path
    source: SourceLines
    name: str
    title: str
    baseline: str | None
    test_set: str
    metrics: list[str]
    description: str
    full_run: str
    gpu_time: str
    defaults: dict[str, dict[str, dict[str, Any]]]   # tool -> {"flags"|"data_flags"|"quick_flags": {...}}
    setups: list[Setup]
    rows: list[Row]
    criteria: list[Criterion] = field(default_factory=list)

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name or r.slug == name:
                return r
        raise KeyError(name)


def config_hash(obj: Any) -> str:
    """SHA-256 (first 16 hex digits) of ``obj`` as canonical JSON: a run's configuration."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading
def load_study(path: str | Path) -> Study:
    """Read and check the structure of a study file (flags against the tools' parsers are
    checked by ``_study_tools.validate``); raises :class:`StudyError` naming the line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise StudyError(f"{path}: cannot read the study file ({e.strerror})") from None
    src = SourceLines(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise src.error(int(m.group(1)) if m else 1, f"not valid TOML: {e}") from None

    for key in doc:
        if key not in ("study", "defaults", "setup", "row", "criterion"):
            raise src.error(src.find(key, None, key) if key in dict(src.sections) else top_line(src, key),
                            f"unknown table [{key}]; a study has [study], [defaults], [[setup]], [[row]] and "
                            "[[criterion]]")
    st = doc.get("study")
    if not isinstance(st, dict):
        raise src.error(1, "missing [study] table (name, baseline, test_set)")
    check_keys(src, "study", None, st, STUDY_KEYS)
    name = string_value(src, "study", None, st, "name", required=True)
    metrics = st.get("metrics")
    if metrics is not None and not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
        raise src.error(src.find("study", None, "metrics"), "metrics must be a list of metric names")

    defaults: dict[str, dict[str, dict[str, Any]]] = {}
    dd = doc.get("defaults", {})
    if not isinstance(dd, dict):
        raise src.error(top_line(src, "defaults"), "[defaults] must be a table")
    for tool, block in dd.items():
        line = src.find("defaults", None, tool) if tool not in DEFAULTS_KEYS else src.table("defaults")[0]
        if tool in DEFAULTS_KEYS:  # [defaults] flags = ...: shared by every training tool
            block, tool = {tool: block}, "*"
        elif tool not in TRAIN_TOOLS:
            raise src.error(src.find(f"defaults.{tool}", None) if f"defaults.{tool}" in dict(src.sections) else line,
                            f"unknown tool {tool!r} in [defaults]; one of {', '.join(TRAIN_TOOLS)}")
        if not isinstance(block, dict):
            raise src.error(line, f"[defaults] {tool}: expected a table of flags")
        for k, v in block.items():
            if k not in DEFAULTS_KEYS:
                raise src.error(src.find("defaults", None, k), f"unknown key {k!r} in [defaults]; "
                                f"use {', '.join(sorted(DEFAULTS_KEYS))}")
            flag_table(src, "defaults", None, k, v)
        defaults.setdefault(tool, {}).update(block)
    for tool, block in list(defaults.items()):
        for k in DEFAULTS_KEYS:
            block.setdefault(k, {})

    setups = [_setup(src, i, s) for i, s in enumerate(table_array(src, doc, "setup"))]
    rows = [parse_row(src, i, r) for i, r in enumerate(table_array(src, doc, "row"))]
    if not rows:
        raise src.error(len(src.lines) or 1, "the study has no [[row]]")
    seen: dict[str, Row] = {}
    for r in rows:
        for key in (r.name, r.slug):
            if key in seen and seen[key] is not r:
                raise src.error(src.find("row", r.index, "name"), f"row name {r.name!r} repeats (or has the same "
                                f"folder name as) the row on line {seen[key].line}")
            seen[key] = r
    names = {s.name for s in setups}
    if len(names) != len(setups):
        raise src.error(setups[-1].line, "two [[setup]] steps share a name")
    baseline = st.get("baseline")
    if baseline is not None:
        if not isinstance(baseline, str) or baseline not in {n for r in rows for n in [r.name, *r.table_names()]}:
            raise src.error(src.find("study", None, "baseline"),
                            f"baseline {baseline!r} is not the name of a row (or of a row's sweep entry)")
        if next(r for r in rows if baseline in [r.name, *r.table_names()]).kind == "quoted":
            raise src.error(src.find("study", None, "baseline"),
                            "the baseline must be a measured row, not a quoted one")
    for r in rows:
        for k, v in r.flags.items():
            if isinstance(v, str) and v.startswith("setup:") and v[6:] not in names:
                raise src.error(src.find("row", r.index, k), f"{k} = {v!r}: no [[setup]] step named {v[6:]!r}")
    criteria = [_criterion(src, i, c, rows) for i, c in enumerate(table_array(src, doc, "criterion"))]
    return Study(path=path, source=src, name=name, title=string_value(src, "study", None, st, "title") or name,
                 baseline=baseline, test_set=string_value(src, "study", None, st, "test_set") or "test",
                 metrics=list(metrics) if metrics is not None else [],
                 description=string_value(src, "study", None, st, "description"),
                 full_run=string_value(src, "study", None, st, "full_run"),
                 gpu_time=string_value(src, "study", None, st, "gpu_time"),
                 defaults=defaults, setups=setups, rows=rows, criteria=criteria)


def _setup(src: SourceLines, i: int, s: dict[str, Any]) -> Setup:
    check_keys(src, "setup", i, s, SETUP_KEYS)
    name = string_value(src, "setup", i, s, "name", required=True)
    tool = string_value(src, "setup", i, s, "tool", required=True)
    if tool not in SETUP_TOOLS:
        raise src.error(src.find("setup", i, "tool"), f"unknown setup tool {tool!r}; one of {', '.join(SETUP_TOOLS)}")
    return Setup(name, tool, flag_table(src, "setup", i, "flags", s.get("flags", {})), src.table("setup", i)[0])


def _criterion(src: SourceLines, i: int, c: dict[str, Any], rows: list[Row]) -> Criterion:
    check_keys(src, "criterion", i, c, CRITERION_KEYS)
    names = {n for r in rows for n in [r.name, *r.table_names()]}
    vals = {}
    for k in ("name", "row", "baseline", "metric"):
        vals[k] = string_value(src, "criterion", i, c, k, required=True)
    for k in ("row", "baseline"):  # eval_ood rows add " / SET / CONDITION" to the row's name
        if vals[k] not in names and vals[k].split(" / ")[0] not in names:
            raise src.error(src.find("criterion", i, k), f"criterion {vals['name']!r}: {k} {vals[k]!r} does not "
                            "start with the name of a row")
    if ("more_than" in c) == ("at_least" in c):
        raise src.error(src.table("criterion", i)[0], f"criterion {vals['name']!r}: give one of more_than = x "
                        "(row - baseline > x) or at_least = x (row - baseline >= x)")
    key = "more_than" if "more_than" in c else "at_least"
    if not isinstance(c[key], (int, float)) or isinstance(c[key], bool):
        raise src.error(src.find("criterion", i, key), f"criterion {vals['name']!r}: {key} must be a number")
    return Criterion(vals["name"], vals["row"], vals["baseline"], vals["metric"], float(c[key]), key == "more_than",
                     src.table("criterion", i)[0])


# ----------------------------------------------------------------------------- flags
def merged_flags(study: Study, row: Row, *, data: bool, quick: bool) -> dict[str, Any]:
    """The row's flags: ``[defaults]`` (shared, then its tool's) under the row's own; with
    ``data`` each level's ``data_flags`` over its ``flags`` (so a row's explicit size beats a
    default research size), with ``quick`` the ``quick_flags`` likewise."""
    out: dict[str, Any] = {}
    for level in (study.defaults.get("*", {}), study.defaults.get(row.tool or "", {}),
                  {"flags": row.flags, "data_flags": row.data_flags, "quick_flags": row.quick_flags}):
        out.update(level.get("flags", {}))
        if data:
            out.update(level.get("data_flags", {}))
        if quick:
            out.update(level.get("quick_flags", {}))
    return out


def to_argv(flags: dict[str, Any]) -> list[str]:
    """``{"num-channel": 8, "no-multiscale": True, "valid-speakers": ["p226"]}`` ->
    ``["--num-channel", "8", "--no-multiscale", "--valid-speakers", "p226"]``; False is left out."""
    argv: list[str] = []
    for k, v in flags.items():
        opt = "--" + k
        if v is True:
            argv.append(opt)
        elif v is False or v is None:
            continue
        elif isinstance(v, list):
            argv += [opt, *(str(x) for x in v)]
        else:
            argv += [opt, str(v)]
    return argv
