"""TOML line numbers and value checks for the study file (not a public API): tomllib gives no
line numbers, so :class:`SourceLines` finds a table's and a key's line by scanning the text, and
the checks below raise :class:`StudyError` naming the file and that line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


class StudyError(Exception):
    """A bad study file: the message names the file and line."""


class SourceLines:
    """Line numbers for tomllib's line-less tables: the ``n``-th ``[[row]]`` header and a key
    inside it, found by scanning the text."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$")

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.sections: list[tuple[str, int]] = []  # (header name, 1-based line) in file order
        for i, line in enumerate(self.lines, 1):
            m = self._HEADER.match(line)
            if m:
                self.sections.append((m.group(1), i))

    def table(self, name: str, index: int | None = None) -> tuple[int, int]:
        """``(first, last)`` lines of table ``name`` (the ``index``-th of an array of tables),
        including its sub-tables (``row.eval``...)."""
        hits = [(k, ln) for k, (n, ln) in enumerate(self.sections) if n == name]
        if not hits:
            return 1, len(self.lines)
        k, start = hits[index or 0] if (index or 0) < len(hits) else hits[-1]
        end = len(self.lines)
        for n, ln in self.sections[k + 1:]:
            if not n.startswith(name + "."):
                end = ln - 1
                break
        return start, end

    def find(self, name: str, index: int | None, *needles: str) -> int:
        """The first line inside the table holding ``needles[0]`` as a key (or, failing that,
        any needle as text); the table's header line when none is found."""
        start, end = self.table(name, index)
        for needle in needles:
            key = re.compile(rf"(^|[\s{{,]){re.escape(needle)}\s*=")
            for ln in range(start, end + 1):
                if key.search(self.lines[ln - 1].split("#", 1)[0]):
                    return ln
        for needle in needles:
            for ln in range(start, end + 1):
                if needle in self.lines[ln - 1]:
                    return ln
        return start

    def error(self, line: int, message: str) -> StudyError:
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        return StudyError(f"{self.path}:{line}: {message}" + (f"\n    {line} | {text}" if text else ""))


def top_line(src: SourceLines, key: str) -> int:
    for i, line in enumerate(src.lines, 1):
        if re.match(rf"\s*\[*\s*{re.escape(key)}\b", line) or re.match(rf"\s*{re.escape(key)}\s*=", line):
            return i
    return 1


def table_array(src: SourceLines, doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    v = doc.get(name, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise src.error(top_line(src, name), f"{name} must be an array of tables: write [[{name}]]")
    return v


def check_keys(src: SourceLines, table: str, index: int | None, d: dict[str, Any], allowed: set[str]) -> None:
    for k in d:
        if k not in allowed:
            raise src.error(src.find(table, index, k), f"unknown key {k!r} in [{table}]; "
                            f"allowed: {', '.join(sorted(allowed))}")


def string_value(src: SourceLines, table: str, index: int | None, d: dict[str, Any], key: str,
            required: bool = False) -> str:
    v = d.get(key)
    if v is None:
        if required:
            raise src.error(src.table(table, index)[0], f"[{table}] needs {key} = \"...\"")
        return ""
    if not isinstance(v, str) or (required and not v.strip()):
        raise src.error(src.find(table, index, key), f"{key} must be a non-empty string")
    return v


def flag_table(src: SourceLines, table: str, index: int | None, key: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise src.error(src.find(table, index, key), f"{key} must be a table of flags: {key} = {{ epochs = 3 }}")
    for k, x in v.items():
        ok = isinstance(x, (str, int, float, bool)) or (
            isinstance(x, list) and all(isinstance(y, (str, int, float)) and not isinstance(y, bool) for y in x))
        if not ok:
            raise src.error(src.find(table, index, k, key), f"flag {k!r}: a value must be a string, number, "
                            "true/false or a list of strings/numbers")
    return dict(v)
