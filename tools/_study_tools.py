"""What tools/run_study.py knows about each tool it drives (not a public API): the real argparse
parsers a study's flags are checked against, the flags the runner sets itself, the ``--quick``
settings, and the metrics each evaluator reports.

Flags are checked by the tool's own ``parse_args`` (so cross-flag rules such as "--num-channel
must be a multiple of 2 x --num-heads" apply too), after a key-by-key look-up that names the
study file's line of an unknown or runner-owned flag.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from _study_rows import Row
from _study_schema import Study, StudyError, merged_flags, to_argv

TOOLS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ToolSpec:
    """A training tool as the runner drives it.

    managed: flags the runner sets for every run (a study may not);
    quick_sizes: tiny model sizes of ``--quick`` given the row's flags (its ``quick_flags`` may
        change them);
    quick_caps: ``--quick`` limits applied last (steps, test files, crops);
    enhancer: the tool that enhances the test set with a trained model (None: in-process).
    """

    name: str
    managed: frozenset[str]
    quick_sizes: Callable[[dict[str, Any]], dict[str, Any]] = lambda flags: {}
    quick_caps: dict[str, Any] = field(default_factory=dict)
    enhancer: str | None = None
    enhancer_managed: frozenset[str] = frozenset()
    enhancer_quick: dict[str, Any] = field(default_factory=dict)


def _bandsplit_quick_sizes(flags: dict[str, Any]) -> dict[str, Any]:
    """Tiny sizes per --model (the trainer refuses a size flag a model does not have)."""
    model = flags.get("model", "bsdt")
    if model.startswith("erb"):
        return {"num-channel": 4}  # base channels; the ERB-UNets' other sizes are their small defaults
    return {"num-channel": 8, "num-layer": 1, **({"num-heads": 2} if model in ("bsdt", "bsdt-v1") else {})}


_RUN_FLAGS = frozenset({"out", "seed", "resume", "data", "demo-dir", "device", "threads", "help"})
TOOLS: dict[str, ToolSpec] = {
    "train_bsdt": ToolSpec(
        "train_bsdt", _RUN_FLAGS | {"no-test", "test-files"},
        quick_sizes=_bandsplit_quick_sizes,
        # 10 optimizer steps on 1 s crops; validation loss picks the checkpoint (no PESQ each epoch)
        quick_caps={"epochs": 1, "steps-per-epoch": 10, "batch-size": 2, "segment": 1.0, "valid-pesq-files": 0,
                    "valid-batches": 2}),
    "train_sgmse": ToolSpec(
        "train_sgmse", _RUN_FLAGS | {"test-files"},
        # SmallUNet and the Schroedinger bridge (its ODE sampler at N = 5 below)
        quick_sizes=lambda f: {"backbone": "smallunet", "unet-channels": "8,16", "encoder-channels": "8,16",
                               "embed-dim": 16, "sde": "sbve"},
        quick_caps={"epochs": 1, "steps-per-epoch": 10, "batch-size": 2, "frames": 64, "valid-batches": 1,
                    "bank-size": 16, "knn-k": 4},
        enhancer="enhance_sgmse",
        enhancer_managed=frozenset({"ckpt", "out", "clean", "device", "threads", "help"}),
        enhancer_quick={"sampler": "sb_ode", "N": 5}),
    "train_aa": ToolSpec(
        "train_aa", _RUN_FLAGS - {"data", "demo-dir"},
        # a .nam teacher's student is the teacher's own architecture (fine-tuned): no size flags; a few
        # tones, one epoch and one validation level keep a row near 10 s of CPU
        quick_caps={"epochs": 1, "num-tones": 4, "batch-size": 4, "valid-notes": 1, "valid-levels-db": [-18.0]}),
}
#: the runner's own flags of each evaluator (a study may set the others in eval.flags)
EVAL_MANAGED = {
    "eval_dir": frozenset({"out", "noisy-dir", "help", "no-progress"}),
    "eval_ood": frozenset({"ckpt", "id", "out", "device", "threads", "help", "save-audio"}),
    "analyze_aa": frozenset({"student", "out", "device", "threads", "help", "no-progress", "teacher",
                             "builtin-shape", "builtin-gain", "builtin-oversample", "builtin-rate"}),
}
#: ``--quick`` settings of the evaluators
EVAL_QUICK = {"eval_ood": {"files": 4, "sampler": "sb_ode", "N": 5},
              "analyze_aa": {"num-tones": 4, "levels-db": [-18.0]}}


# ----------------------------------------------------------------------------- parsers
_MODULES: dict[str, ModuleType] = {}


def tool_module(name: str) -> ModuleType:
    """tools/NAME.py imported (once; tools/ is on sys.path as when the tool runs)."""
    if name not in _MODULES:
        if str(TOOLS_DIR) not in sys.path:
            sys.path.insert(0, str(TOOLS_DIR))
        _MODULES[name] = importlib.import_module(name)
    return _MODULES[name]


def tool_parser(name: str) -> argparse.ArgumentParser:
    """The tool's own parser (its ``build_parser()``)."""
    mod = tool_module(name)
    if not hasattr(mod, "build_parser"):
        raise StudyError(f"tools/{name}.py has no build_parser(): its flags cannot be checked")
    return mod.build_parser()


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``{"num-channel": action, ...}``: every long option of ``parser`` without its dashes."""
    return {s[2:]: a for a in parser._actions for s in a.option_strings if s.startswith("--")}


def parse_tool_args(name: str, argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    """Run the tool's ``parse_args(argv)`` (or its parser's); ``(namespace, "")`` or
    ``(None, the tool's error message)``."""
    mod = tool_module(name)
    parse = getattr(mod, "parse_args", None) or (lambda a: mod.build_parser().parse_args(a))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parse(argv), ""
    except SystemExit as e:
        lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
        msg = lines[-1] if lines else str(e.code)
        return None, re.sub(r"^[\w.]+: error: ", "", msg)


# ----------------------------------------------------------------------------- checking a study
def _check_keys(study: Study, row: Row, flags: dict[str, Any], tool: str, managed: frozenset[str],
                where: str, extra_allowed: dict[str, argparse.Action] | None = None) -> None:
    known = options(tool_parser(tool))
    if extra_allowed:
        known = {**known, **extra_allowed}
    for k in flags:
        if k in managed:
            raise study.source.error(study.source.find("row", row.index, k) if k in _row_keys(row)
                                     else _defaults_line(study, k),
                                     f"row {row.name!r}: {where} flag --{k} is set by the runner for every run; "
                                     f"leave it out (see `uv run tools/run_study.py --help`)")
        if k not in known:
            hint = k.replace("_", "-")
            fix = f"; did you mean {hint!r}?" if hint in known else ""
            raise study.source.error(study.source.find("row", row.index, k) if k in _row_keys(row)
                                     else _defaults_line(study, k),
                                     f"row {row.name!r}: tools/{tool}.py has no flag --{k}{fix}")


def _row_keys(row: Row) -> set[str]:
    keys = set(row.flags) | set(row.data_flags) | set(row.quick_flags) | set(row.eval_flags)
    for p in row.sweep:
        keys |= set(p.flags)
    return keys


def _defaults_line(study: Study, key: str) -> int:
    return study.source.find("defaults", None, key) if any(
        n.startswith("defaults") for n, _ in study.source.sections) else study.source.table("defaults")[0]


def _line_of_message(study: Study, row: Row, msg: str, flags: dict[str, Any]) -> int:
    """The line of the flag an error message names (``argument --epochs: ...``), else the row's."""
    for m in re.finditer(r"--([A-Za-z0-9][\w-]*)", msg):
        if m.group(1) in _row_keys(row):
            return study.source.find("row", row.index, m.group(1))
        if m.group(1) in flags:
            return _defaults_line(study, m.group(1))
    return row.line


def train_argv(study: Study, row: Row, *, data: bool, quick: bool) -> list[str]:
    """The row's training flags as a command line (without the runner's own flags)."""
    spec = TOOLS[row.tool or ""]
    flags = merged_flags(study, row, data=data, quick=False)
    if quick:
        flags.update(spec.quick_sizes(flags))
        for level in (study.defaults.get("*", {}), study.defaults.get(row.tool or "", {}),
                      {"quick_flags": row.quick_flags}):
            flags.update(level.get("quick_flags", {}))
        for k, cap in spec.quick_caps.items():  # limits: a smaller number the row asks for stays
            v = flags.get(k)
            keep = (isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(cap, (int, float))
                    and not isinstance(cap, bool) and v <= cap)
            flags[k] = v if keep else cap
    return to_argv(flags)


def point_flags(row: Row, point_flags_: dict[str, Any], *, quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(enhancer flags, evaluator flags)`` of one evaluation setting: the row's eval flags under
    the sweep entry's, split by which tool knows them (the enhancer first)."""
    spec = TOOLS[row.tool or ""]
    flags = {**row.eval_flags, **point_flags_}
    enh: dict[str, Any] = {}
    ev: dict[str, Any] = {}
    enh_known = options(tool_parser(spec.enhancer)) if spec.enhancer and row.eval_tool == "eval_dir" else {}
    for k, v in flags.items():
        (enh if k in enh_known else ev)[k] = v
    if quick:
        if enh_known:
            enh.update(spec.enhancer_quick)
        ev.update(EVAL_QUICK.get(row.eval_tool or "", {}))
    return enh, ev


def runner_argv(tool: str, *, data: str | None, demo_dir: str, device: str, threads: int | None) -> list[str]:
    """The flags the runner gives every run of ``tool`` (the corpus, device, threads; the test
    set is the study's own, enhanced and scored after training)."""
    argv = ["--device", device] + (["--threads", str(threads)] if threads else [])
    if tool in ("train_bsdt", "train_sgmse"):
        argv += ["--data", data] if data is not None else ["--demo-dir", demo_dir]
    if tool == "train_bsdt":
        argv.append("--no-test")
    if tool == "train_sgmse":
        argv += ["--test-files", "0"]
    return argv


def validate(study: Study, *, data: str | None, quick: bool, metric_names: set[str],
             demo_dir: str = "runs/demo-corpus") -> None:
    """Check every row's flags against its tools' parsers and every metric name; raise
    :class:`StudyError` naming the study file's line of the first problem."""
    src = study.source
    for m in study.metrics:
        if m not in metric_names:
            raise src.error(src.find("study", None, "metrics", m),
                            f"unknown metric {m!r}; one of {', '.join(sorted(metric_names))}")
    for c in study.criteria:
        if c.metric not in metric_names:
            raise src.error(src.find("criterion", study.criteria.index(c), "metric"),
                            f"criterion {c.name!r}: unknown metric {c.metric!r}")
    for i, st in enumerate(study.setups):
        known = options(tool_parser(st.tool))
        for k in st.flags:
            if k not in known or k in ("out", "help"):
                raise src.error(src.find("setup", i, k), f"setup {st.name!r}: tools/{st.tool}.py has no flag --{k}"
                                + (" the study may set (the runner gives its --out)" if k in known else ""))
        probe = [a.replace("{test_clean}", f"{demo_dir}/test/clean").replace("{demo_dir}", demo_dir)
                 .replace("{data}", data or "") for a in to_argv(st.flags)]
        ns, msg = parse_tool_args(st.tool, probe + ["--out", "/nonexistent/setup-check"])
        if ns is None:
            m = re.search(r"--([A-Za-z0-9][\w-]*)", msg)
            raise src.error(src.find("setup", i, m.group(1)) if m else st.line,
                            f"setup {st.name!r}: tools/{st.tool}.py refuses {msg}")
    for row in study.rows:
        if row.kind == "quoted":
            for m in row.values:
                if m not in metric_names:
                    raise src.error(src.find("row", row.index, m),
                                    f"row {row.name!r}: unknown metric {m!r} in values; one of "
                                    f"{', '.join(sorted(metric_names))}")
        if row.kind != "model":
            continue
        spec = TOOLS[row.tool or ""]
        flags = merged_flags(study, row, data=data is not None, quick=quick)
        _check_keys(study, row, flags, spec.name, spec.managed, "training")
        if quick and not row.quick:
            continue  # not run with --quick: its flag names are checked, not its files (e.g. a local checkpoint)
        # the runner's own flags too: a trainer's defaults may depend on them (--data: research sizes)
        argv = train_argv(study, row, data=data is not None, quick=quick) + runner_argv(
            spec.name, data=data, demo_dir=demo_dir, device="cpu", threads=None) + ["--out", "/nonexistent/study-check"]
        ns, msg = parse_tool_args(spec.name, _resolved_setup_refs(argv))
        if ns is None:
            raise src.error(_line_of_message(study, row, msg, flags), f"row {row.name!r}: tools/{spec.name}.py "
                            f"refuses these flags: {msg}")
        points = row.sweep or []
        for p in points or [None]:
            pflags = p.flags if p is not None else {}
            enh, ev = point_flags(row, pflags, quick=quick)
            if spec.enhancer and row.eval_tool == "eval_dir":
                ns, msg = parse_tool_args(spec.enhancer, ["--ckpt", "x.pt", "in", "--out", "/nonexistent/o",
                                                          *to_argv(enh)])
                if ns is None:
                    raise src.error(p.line if p is not None and not _line_hit(study, row, msg) else
                                    _line_of_message(study, row, msg, {}),
                                    f"row {row.name!r}: tools/{spec.enhancer}.py refuses {msg}")
            _check_keys(study, row, ev, row.eval_tool or "", EVAL_MANAGED[row.eval_tool or ""], "evaluation",
                        extra_allowed=options(tool_parser(spec.enhancer)) if spec.enhancer else None)
            ns, msg = parse_tool_args(row.eval_tool or "", _eval_probe(row, ev))
            if ns is None:
                raise src.error(_line_of_message(study, row, msg, {}),
                                f"row {row.name!r}: tools/{row.eval_tool}.py refuses {msg}")


def _line_hit(study: Study, row: Row, msg: str) -> bool:
    return _line_of_message(study, row, msg, {}) != row.line


def _resolved_setup_refs(argv: list[str]) -> list[str]:
    """``setup:NAME`` values stand for a folder made later: a placeholder path for checking."""
    return [f"/nonexistent/setup-{a[6:]}" if a.startswith("setup:") else a for a in argv]


def _eval_probe(row: Row, ev: dict[str, Any]) -> list[str]:
    """A command line of the evaluator with placeholder paths, to check ``ev`` with its parser."""
    argv = _resolved_setup_refs(to_argv(ev))
    if row.eval_tool == "eval_dir":
        return ["enh", "clean", "--out", "/nonexistent/o", *argv]
    if row.eval_tool == "eval_ood":
        return ["--ckpt", "m.pt", "--id", "id", "--out", "/nonexistent/o", *argv]
    return ["--teacher", "builtin", "--student", "s.nam", "--out", "/nonexistent/o", *argv]
