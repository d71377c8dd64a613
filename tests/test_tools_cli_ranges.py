"""One CLI contract: every numeric flag of every tool is range-checked when the command line is
parsed, before anything is written.

Table-driven over every action of every tool's parser (argument groups and sub-parsers
included): (a) each numeric flag is typed with a range type of tools/_argtypes.py, so a new
``type=int`` flag without a declared range fails here; (b) "nan", "inf", non-numbers and values
just outside each declared bound exit with status 2 and an error naming the flag and its range;
(c) every default lies inside its range. Then the checks between flags, and end to end: a
refused run creates nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))  # the tools import their helpers by plain name, as when run

import _argtypes  # noqa: E402
from _argtypes import Range  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

#: the required arguments that let parsing reach any flag, per tool (none: nothing required)
BASE_ARGV: dict[str, list[str]] = {
    "train_bsdt": [],
    "train_sgmse": [],
    "train_aa": [],
    "analyze_aa": ["--teacher", "builtin"],
    "eval_dir": ["ENHANCED", "CLEAN"],
    "eval_ood": ["--ckpt", "model.pt", "--id", "ID", "--ood", "OOD"],
    "enhance": ["--ckpt", "best.pt", "IN", "OUT"],
    "enhance_sgmse": ["NOISY", "--ckpt", "model.pt"],
    "make_ood_testset": ["--clean", "CLEAN", "--noise", "NOISE"],
    "make_nonstationary_testset": ["--clean", "CLEAN", "--noise", "NOISE"],
    "model_table": [],
    "export_onnx": ["--preset", "bsrnn-demo"],
    "resample_dataset": ["SRC", "DST"],
    "render_nam": ["--model", "model.nam"],
    "run_study": ["study.toml"],
}
#: every tool: each script in tools/ (helper modules start with "_")
TOOL_NAMES = sorted(p.stem for p in TOOLS.glob("*.py") if not p.name.startswith("_"))

_modules: dict[str, ModuleType] = {}


def tool(name: str) -> ModuleType:
    """The tool's module, imported once in-process (its ``build_parser`` and ``parse_args``)."""
    if name not in _modules:
        spec = importlib.util.spec_from_file_location(f"cli_ranges_{name}", TOOLS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _modules[name] = mod
    return _modules[name]


def parse_args(name: str, argv: list[str]) -> argparse.Namespace:
    """The tool's ``parse_args`` (parsing and the checks between flags), else its parser's."""
    mod = tool(name)
    if hasattr(mod, "parse_args"):
        return mod.parse_args(argv)
    return mod.build_parser().parse_args(argv)


def base(name: str) -> list[str]:
    return list(BASE_ARGV.get(name, []))


def flag(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or action.dest


def numeric_actions(name: str) -> list[argparse.Action]:
    return [a for _, a in _argtypes.range_actions(tool(name).build_parser()) if isinstance(a.type, Range)]


def fmt(v: float, integer: bool) -> str:
    """A number as a command-line word argparse takes as a value: no exponent, so a negative
    one matches argparse's negative-number pattern."""
    return str(int(v)) if integer else np.format_float_positional(float(v), trim="-")


def outside(t: Range) -> list[str]:
    """Words that ``t`` must refuse: non-finite, non-numbers and just outside each bound."""
    words = ["nan", "inf", "-inf", "abc", "1,5" if not isinstance(t, _argtypes.RangeList) else "1;5"]
    if t.integer:
        words.append("2.5")
    if t.low is not None:
        eps = 1e-9 * max(1.0, abs(t.low))
        words.append(fmt(t.low - 1 if t.integer else (t.low if t.low_open else t.low - eps), t.integer))
    if t.high is not None:
        eps = 1e-9 * max(1.0, abs(t.high))
        words.append(fmt(t.high + 1 if t.integer else (t.high if t.high_open else t.high + eps), t.integer))
        words.append(fmt(t.high + 1, t.integer))
    return words


def inside(t: Range) -> float:
    """A value of the range (for the other items of an ``nargs=2`` flag)."""
    lo = t.low if t.low is not None else (t.high - 1 if t.high is not None else 0.0)
    hi = t.high if t.high is not None else lo + 2
    v = (lo + hi) / 2
    return round(v) if t.integer else v


def probe_argv(name: str, action: argparse.Action, word: str) -> list[str] | None:
    opt = max(action.option_strings, key=len)
    if action.nargs in (None, "?", "+", "*"):
        return [*base(name), f"{opt}={word}"]  # '=': a leading '-' is never taken for an option
    if word.startswith("-") and not word[1:2].isdigit():
        return None  # '-inf' as a separate word would be read as an option: covered by the '=' flags
    t = action.type
    return [*base(name), opt, word, *[fmt(inside(t), t.integer)] * (action.nargs - 1)]


def parse_error(name: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``parse_args(argv)`` must exit with status 2; returns its error message."""
    with pytest.raises(SystemExit) as e:
        parse_args(name, argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, (argv, err)
    return err


# ----------------------------------------------------------------------------- the table
def test_every_tool_builds_its_parser_apart() -> None:
    """``build_parser()`` (no parsing) is the contract that lets this table walk every flag."""
    assert len(TOOL_NAMES) >= 11
    missing = [n for n in TOOL_NAMES if not callable(getattr(tool(n), "build_parser", None))]
    assert not missing, f"tools without build_parser(): {missing}"


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_parser_builds_and_help_shows_the_ranges(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse_args(name, ["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for a in numeric_actions(name):
        assert max(a.option_strings, key=len) in text
        assert f"[range: {a.type.help_text()}]" in " ".join(text.split()), (name, flag(a))
    try:
        parse_args(name, base(name))
    except SystemExit:
        pytest.fail(f"{name}: its required arguments alone do not parse: give them in BASE_ARGV "
                    f"({capsys.readouterr().err.strip()})")


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_every_numeric_flag_declares_a_range(name: str) -> None:
    """(a) a typed flag uses a _argtypes range; an untyped one has no numeric default."""
    bad = []
    for _, a in _argtypes.range_actions(tool(name).build_parser()):
        if isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        if a.type is not None:
            if not isinstance(a.type, Range):
                bad.append(f"{flag(a)}: type={a.type!r} is not an _argtypes range type")
            continue
        defaults = a.default if isinstance(a.default, (list, tuple)) else [a.default]
        if a.nargs != 0 and any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in defaults):
            bad.append(f"{flag(a)}: numeric default {a.default!r} but no range type")
    assert not bad, f"{name}: " + "; ".join(bad)


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_values_outside_each_range_exit_2_naming_the_flag(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """(b) NaN, infinities, non-numbers and the nearest values outside each bound."""
    for a in numeric_actions(name):
        t = a.type
        for word in outside(t):
            argv = probe_argv(name, a, word)
            if argv is None:
                continue
            err = parse_error(name, argv, capsys)
            assert f"argument {flag(a)}: invalid value" in err, (name, argv, err)
            assert t.bounds_text() in err, (name, argv, err)


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_defaults_and_closed_bounds_are_inside(name: str) -> None:
    """(c) every default is in its range; the declared closed bounds themselves are accepted."""
    for a in numeric_actions(name):
        t = a.type
        defaults = a.default if isinstance(a.default, (list, tuple)) else [a.default]
        for v in defaults:
            if v is None:  # None: the tool picks (e.g. from the data); never a parsed value
                continue
            assert t.contains(v), f"{name} {flag(a)}: default {v!r} outside {t.help_text()}"
        for bound, is_open in ((t.low, t.low_open), (t.high, t.high_open)):
            if bound is not None and not is_open:
                got = t(fmt(bound, t.integer))
                assert (got[0] if isinstance(got, tuple) else got) == bound, (name, flag(a))


# ----------------------------------------------------------------------------- the types themselves
def test_range_types() -> None:
    t = _argtypes.float_range(0, 1, low_open=True)
    assert (t.low, t.high, t.low_open, t.high_open, t.integer) == (0, 1, True, False, False)
    assert t("1") == 1.0 and t("1e-300") == 1e-300
    for word in ("0", "nan", "-inf", "inf", "", "x", "1.0000001"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"expected a finite number with 0 < x <= 1"):
            t(word)
    n = _argtypes.positive_int()
    assert n("7") == 7 and not n.contains(True) and not n.contains(1.5)
    for word in ("0", "-1", "1.0", "nan", "1e3"):
        with pytest.raises(argparse.ArgumentTypeError, match="x >= 1"):
            n(word)
    o = _argtypes.optional(n)
    assert o("none") is None and o("None") is None and o("3") == 3
    assert _argtypes.int_list()("16, 32,64") == (16, 32, 64)
    with pytest.raises(argparse.ArgumentTypeError):
        _argtypes.int_list()("16,0")
    assert _argtypes.SNR_DB.contains(-50) and not _argtypes.SNR_DB.contains(-200)
    assert _argtypes.SAMPLE_RATE_HZ("16000") == 16000 and not _argtypes.SAMPLE_RATE_HZ.contains(0)
    assert _argtypes.PROBABILITY.contains(0) and _argtypes.PROBABILITY.contains(1)
    with pytest.raises(ValueError):
        _argtypes.float_range(1, 1)


def test_none_restores_a_no_cap_default() -> None:
    assert tool("enhance_sgmse").parse_args([*BASE_ARGV["enhance_sgmse"], "--limit", "none"]).limit is None
    assert tool("train_bsdt").parse_args(["--test-files", "none", "--steps-per-epoch", "3"]).test_files is None
    assert tool("eval_ood").parse_args([*BASE_ARGV["eval_ood"], "--files", "2"]).files == 2


# ----------------------------------------------------------------------------- between flags
CROSS = [
    ("enhance", ["--chunk-seconds", "2", "--overlap-seconds", "2"], "--overlap-seconds (2) must be less than --chunk-seconds (2)"),
    ("enhance_sgmse", ["--chunk-seconds", "1", "--overlap-seconds", "1.5"], "--overlap-seconds (1.5) must be less than"),
    ("eval_ood", ["--chunk-seconds", "1", "--overlap-seconds", "1"], "--overlap-seconds (1) must be less than"),
    ("eval_ood", ["--conditions", "cond", "static:nan"], "argument --conditions: condition 'static:nan'"),
    ("eval_ood", ["--conditions", "knn:25"], "argument --conditions: condition 'knn:25'"),
    ("eval_ood", ["--conditions", "static:-1"], "0 <= x <= 20"),
    ("train_aa", ["--lowpass-hz", "16000", "12000"], "--lowpass-hz PASS (16000) must be less than STOP (12000)"),
    ("train_aa", ["--lowpass-hz", "12000", "24000"], "Nyquist"),
    ("train_aa", ["--builtin-rate", "32000"], "--lowpass-hz STOP (16000) must be less than the built-in teacher's Nyquist"),
    ("train_aa", ["--midi-range", "100", "50"], "--midi-range LO (100) must be less than HI (50)"),
    ("train_aa", ["--midi-range", "21", "139.5"], "Nyquist"),
    ("train_aa", ["--db-range", "0", "-60"], "--db-range LO (0) must be at most HI (-60)"),
    ("train_aa", ["--builtin-rate", "44101"], "must be even"),
    ("analyze_aa", ["--f-range", "1000", "500"], "--f-range LO (1000) must be at most HI (500)"),
    ("analyze_aa", ["--f-range", "27.5", "30000"], "Nyquist"),
    ("model_table", ["--num-channel", "30"], "--num-channel 30 must be a multiple of 2 x --num-heads = 4"),
    ("train_bsdt", ["--model", "bsrnn", "--num-heads", "3"], "--num-heads applies to --model bsdt / bsdt-v1"),
    ("train_bsdt", ["--num-heads", "3"], "multiple of 2 x --num-heads = 6"),
    ("train_bsdt", ["--num-channel", "20", "--num-heads", "3"], "--num-channel 20 must be a multiple"),
    ("train_sgmse", ["--knn-k", "8", "--bank-size", "8"], "--knn-k (8) must be less than --bank-size (8)"),
    ("make_ood_testset", ["--snrs", "0", "5", "0"], "--snrs: the values must be distinct"),
]


@pytest.mark.parametrize("name,extra,message", CROSS, ids=[f"{c[0]}-{'_'.join(c[1])}" for c in CROSS])
def test_checks_between_flags(name: str, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in parse_error(name, [*base(name), *extra], capsys)


def test_checks_between_flags_leave_valid_settings_alone() -> None:
    tool("enhance").parse_args([*BASE_ARGV["enhance"], "--chunk-seconds", "2", "--overlap-seconds", "1.9"])
    tool("train_bsdt").parse_args(["--model", "bsrnn", "--num-channel", "30"])  # no attention heads in BSRNN
    # a .nam teacher's rate is unknown at parse time: its Nyquist is checked when it is loaded
    tool("analyze_aa").parse_args(["--teacher", "amp.nam", "--f-range", "27.5", "30000"])
    tool("train_aa").parse_args(["--teacher", "amp.nam", "--lowpass-hz", "22000", "30000"])
    tool("train_aa").parse_args(["--no-lowpass", "--lowpass-hz", "16000", "12000"])
    tool("train_aa").parse_args(["--db-range", "-20", "-20"])


# ----------------------------------------------------------------------------- end to end
def _run(args: list[Any], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


@pytest.mark.parametrize("tool_args,flag_name,process", [
    (["train_bsdt.py", "--epochs", "-1"], "--epochs", True),
    (["train_bsdt.py", "--batch-size", "-2"], "--batch-size", False),
    (["make_ood_testset.py", "--clean", "C", "--noise", "N", "--snrs", "-200"], "--snrs", True),
])
def test_a_refused_flag_writes_nothing(tool_args: list[str], flag_name: str, process: bool, tmp_path: Path) -> None:
    """A process per tool (the command line end to end); a second flag of the same tool in this
    process (tests/_inproc.py: the same message and status, from the same folder)."""
    out = tmp_path / "D"
    if process:
        r = _run([TOOLS / tool_args[0], *tool_args[1:], "--out", out], cwd=tmp_path)
    else:
        r = run_tool(tool_args[0], *tool_args[1:], "--out", out, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"argument {flag_name}: invalid value" in r.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no default runs/ folder either
