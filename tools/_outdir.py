"""Output folders that two runs can never share, and inputs that never overlap outputs
(not a public API).

A tool that writes into ``--out`` holds ``OUT/.lock``: created atomically (``O_EXCL``) with the
host, PID, tool and start time, removed when the tool exits (normally or with an error). A
second run into the same folder fails at once and names the holder. A lock left behind by a
run that was killed (its PID is gone on this host) is reported as such; ``--resume`` takes such
a folder over.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path

LOCK_NAME = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _read_holder(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}


def _release(lock: Path, pid: int) -> None:
    """Remove ``lock`` if this process still holds it."""
    if _read_holder(lock).get("pid") == pid and lock.exists():
        try:
            lock.unlink()
        except OSError:
            pass


def acquire_out_lock(out: Path, tool: str, *, resume: bool = False, resumable: bool = True) -> Path:
    """Take ``out/.lock`` for this process (released at exit); exits with a message naming the
    holder when another run holds it. With ``resume``, a lock whose process is gone (same host)
    is taken over; otherwise the message points to ``--resume`` (``resumable`` tools) or to
    removing the stale lock."""
    lock = Path(out) / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "tool": tool,
          "started": _dt.datetime.now().isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            holder = _read_holder(lock)
            who = (f"{holder.get('tool', 'a run')} (PID {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                   f"started {holder.get('started', '?')})")
            dead = holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) \
                and not _pid_alive(holder["pid"])
            if not dead:
                sys.exit(f"error: --out {out} is in use by {who}; wait for it to finish or choose another --out")
            if not resume:
                fix = ("pass --resume to take the folder over" if resumable else
                       f"delete {lock} to reuse the folder (what it holds stays)")
                sys.exit(f"error: --out {out} holds the lock of {who}, which is no longer running (it crashed or "
                         f"was killed); {fix}, or choose another --out")
            lock.unlink(missing_ok=True)  # a dead holder on this host: take over
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        atexit.register(_release, lock, me["pid"])
        return lock
    sys.exit(f"error: --out {out}: could not take {lock} (another run took it meanwhile)")


def check_no_overlap(out: Path, out_flag: str, **inputs: Path | str | None) -> None:
    """Exit when the output folder is an input folder, inside one, or contains one: a tool
    would read its own outputs back (``inputs``: flag name -> folder; None entries are skipped)."""
    o = Path(out).resolve()
    for flag, d in inputs.items():
        if d is None:
            continue
        i = Path(d).resolve()
        if o == i or i in o.parents or o in i.parents:
            rel = "is" if o == i else ("is inside" if i in o.parents else "contains")
            sys.exit(f"error: {out_flag} {out} {rel} {flag} {d}: a run would read its own outputs back. "
                     f"Choose an output folder outside the input folders")
