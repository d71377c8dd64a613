"""se_data.fingerprint: size / mtime / streamed SHA-256 records and the reason a file changed."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

import se_data
from se_data.fingerprint import sha256_file


def test_fingerprint_fields_and_streamed_hash(tmp_path):
    p = tmp_path / "a.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one 1 MiB chunk
    p.write_bytes(data)
    fp = se_data.file_fingerprint(p)
    assert fp == {"size": len(data), "mtime_ns": p.stat().st_mtime_ns, "sha256": hashlib.sha256(data).hexdigest()}
    assert sha256_file(p, chunk=1000) == fp["sha256"]
    assert se_data.sha256_file(p) == fp["sha256"]  # the OOD builder's hash is the same function


def test_change_reasons(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"abcd")
    old = se_data.file_fingerprint(p)
    assert se_data.fingerprint_change(old, p) is None
    # same bytes rewritten later: the mtime moved, the content did not -> unchanged
    os.utime(p, ns=(old["mtime_ns"] + 10**9, old["mtime_ns"] + 10**9))
    assert se_data.fingerprint_change(old, p) is None
    # same size, same mtime, other bytes: only the hash sees it
    p.write_bytes(b"abce")
    os.utime(p, ns=(old["mtime_ns"], old["mtime_ns"]))
    why = se_data.fingerprint_change(old, p)
    assert why is not None and why.startswith("content changed (sha256 ") and old["sha256"][:8] in why
    p.write_bytes(b"abcdef")
    assert se_data.fingerprint_change(old, p) == "size changed (4 -> 6 bytes)"
    p.unlink()
    assert se_data.fingerprint_change(old, p) == "file is missing"
    for bad in (None, {}, {"size": 4, "mtime_ns": 1}, {"size": "4", "mtime_ns": 1, "sha256": old["sha256"]}):
        assert se_data.fingerprint_change(bad, tmp_path) == "no fingerprint recorded"


def test_change_with_a_fingerprint_already_taken(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"abcd")
    old = se_data.file_fingerprint(p)
    assert se_data.fingerprint_change(old, p, current=dict(old)) is None
    assert se_data.fingerprint_change(old, p, current={**old, "sha256": "0" * 64}).startswith("content changed")


def test_write_json_atomic_replaces_and_leaves_no_temp_file(tmp_path):
    p = tmp_path / "m.json"
    old_umask = os.umask(0o022)
    try:
        se_data.write_json_atomic(p, {"b": 1, "a": [1, 2]})
        se_data.write_json_atomic(p, {"c": 3})
    finally:
        os.umask(old_umask)
    assert json.loads(p.read_text()) == {"c": 3}
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert [q.name for q in tmp_path.iterdir()] == ["m.json"]
    with pytest.raises(ValueError):  # NaN is not JSON: refused, the old file stays
        se_data.write_json_atomic(p, {"x": float("nan")})
    assert json.loads(p.read_text()) == {"c": 3} and [q.name for q in tmp_path.iterdir()] == ["m.json"]
