"""Run a tool's ``main(argv)`` inside the test process, as its process would run it: what it
prints, its exit status and its exit-time clean-up (e.g. the --out lock it releases at exit).

A tool started with ``subprocess`` pays for Python's and torch's start-up and the imports of its
packages (seconds of CPU each time); in-process that is paid once per test session. Each tool
keeps at least one subprocess test elsewhere that checks its command line end to end.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import torch

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"


def tool_module(tool: str) -> Any:
    """The module of ``tools/<tool>`` (e.g. "train_aa.py"), imported in this process as running it
    would (tools/ on ``sys.path``: the tools import their helpers by plain name)."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return importlib.import_module(Path(tool).stem)


def run_tool(tool: str, *args: Any, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``python tools/<tool> ARGS`` (``tool``: e.g. "enhance.py") in this process, run from the
    folder ``cwd``: returncode, stdout and stderr as the process would give them (``sys.exit``
    with a message: the message on stderr and status 1). The exit handlers the tool's own
    modules (tools/*.py) register run when it returns, as at process exit; torch's thread count
    and global RNG state are restored afterwards, so later tests see the process as before."""
    module = tool_module(tool)
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    exit_handlers: list[tuple[Any, tuple, dict]] = []
    real_register = atexit.register

    def register(fn: Any, *a: Any, **kw: Any) -> Any:
        """The tools' own exit handlers run when ``main`` returns; a library's (imported for the
        first time meanwhile) stay with the process."""
        if (TOOLS / f"{getattr(fn, '__module__', '')}.py").is_file():
            exit_handlers.append((fn, a, kw))
            return fn
        return real_register(fn, *a, **kw)

    threads, rng, here = torch.get_num_threads(), torch.get_rng_state(), os.getcwd()
    code: int = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(), \
                mock.patch.object(atexit, "register", register):
            try:
                result = module.main(argv)
                code = result if isinstance(result, int) else 0
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:  # what Python does with sys.exit("message")
                    print(e.code, file=sys.stderr)
                    code = 1
            finally:
                for fn, a, kw in reversed(exit_handlers):  # atexit runs them last-in, first-out
                    fn(*a, **kw)
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
        torch.set_rng_state(rng)
    return subprocess.CompletedProcess([sys.executable, f"tools/{tool}", *argv], code, out.getvalue(), err.getvalue())
