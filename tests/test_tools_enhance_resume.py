"""tools/enhance.py reruns: outputs are redone exactly when their input, the checkpoint or the
output-changing settings changed (OUT_DIR/.enhance_manifest.jsonl), and a file it has no
record of is never overwritten."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import bandsplit
sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402
from _tiny_bsdt_ckpt import SR, write_checkpoint  # noqa: E402
import se_data

REPO = Path(__file__).resolve().parents[1]


def _enhance(*args: Any, process: bool = False) -> subprocess.CompletedProcess:
    """tools/enhance.py ARGS: in this process (tests/_inproc.py: its output, status and lock
    release as the process gives them), or with ``process`` as a command of its own."""
    if not process:
        proc = run_tool("enhance.py", *args, "--device", "cpu")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "tools/enhance.py", *map(str, args), "--device", "cpu"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _expected(ckpt: Path, wav: Path, **kw: float) -> np.ndarray:
    """What enhance.py writes for ``wav`` (bandsplit alone), at PCM_16 precision."""
    model = bandsplit.load_model(ckpt)
    x, _ = se_data.load_audio(wav, SR)
    return bandsplit.enhance(model, x, SR, **kw).numpy()


def _line(stdout: str, word: str) -> str:
    return next((ln for ln in stdout.splitlines() if ln.strip().startswith(word)), "")


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    noisy = tmp_path / "noisy"
    (noisy / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for rel in ("a.wav", "b.wav", "sub/c.wav"):
        sf.write(noisy / rel, 0.1 * rng.standard_normal(SR // 2), SR, subtype="PCM_16")
    return noisy, tmp_path / "enh", write_checkpoint(tmp_path / "best.pt", 0)


def test_rerun_redoes_exactly_the_stale_outputs(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    noisy, out, ckpt = setup
    first = _enhance("--ckpt", ckpt, noisy, out, process=True)  # the command line end to end
    assert " 3 files" in _line(first.stdout, "enhanced")
    records = [json.loads(ln) for ln in (out / ".enhance_manifest.jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == ["a.wav", "b.wav", "sub/c.wav"]
    assert records[0]["input"] == se_data.file_fingerprint(noisy / "a.wav")
    assert {k: records[0]["checkpoint"][k] for k in ("size", "sha256")} == \
        {k: se_data.file_fingerprint(ckpt)[k] for k in ("size", "sha256")}
    assert records[0]["settings"] == {"weights": "ema", "resample": False, "chunk_seconds": 30.0,
                                      "overlap_seconds": 1.0}
    b_before = (out / "b.wav").stat().st_mtime_ns, (out / "b.wav").read_bytes()

    # nothing changed: everything skipped
    again = _enhance("--ckpt", ckpt, noisy, out)
    assert " 0 files" in _line(again.stdout, "enhanced") and " 3 (already" in _line(again.stdout, "skipped")

    # one input replaced: only its output is redone, from the new input; the others untouched
    sf.write(noisy / "a.wav", 0.2 * np.random.default_rng(1).standard_normal(SR // 2), SR, subtype="PCM_16")
    st = (noisy / "b.wav").stat()  # same bytes, newer mtime: not a change
    os.utime(noisy / "b.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r1 = _enhance("--ckpt", ckpt, noisy, out)
    assert " 1 files" in _line(r1.stdout, "enhanced") and " 2 (already" in _line(r1.stdout, "skipped")
    assert "    redone      1 of them" in r1.stdout and "input changed (1)" in r1.stdout
    assert "  a.wav: input changed: content changed (sha256 " in r1.stdout
    got, _ = sf.read(out / "a.wav")
    assert np.abs(got - _expected(ckpt, noisy / "a.wav")).max() <= 1 / 32768 + 1e-6
    assert ((out / "b.wav").stat().st_mtime_ns, (out / "b.wav").read_bytes()) == b_before
    assert not list(out.rglob("*.partial")) and not list(out.glob(".*.tmp"))
    # the manifest is compacted: one record per output, the new input's fingerprint
    lines = (out / ".enhance_manifest.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["input"] == se_data.file_fingerprint(noisy / "a.wav")

    # another checkpoint (same path, other weights): every output is redone
    write_checkpoint(ckpt, 1)
    r2 = _enhance("--ckpt", ckpt, noisy, out)
    assert " 3 files" in _line(r2.stdout, "enhanced") and "checkpoint changed (3)" in r2.stdout
    got, _ = sf.read(out / "sub" / "c.wav")
    assert np.abs(got - _expected(ckpt, noisy / "sub" / "c.wav")).max() <= 1 / 32768 + 1e-6
    # the same checkpoint bytes under another path is the same checkpoint
    (tmp_path / "copy.pt").write_bytes(ckpt.read_bytes())
    r3 = _enhance("--ckpt", tmp_path / "copy.pt", noisy, out)
    assert " 3 (already" in _line(r3.stdout, "skipped")

    # a setting that changes the output: redone, and said so
    r4 = _enhance("--ckpt", ckpt, noisy, out, "--chunk-seconds", "0.2", "--overlap-seconds", "0.05")
    assert " 3 files" in _line(r4.stdout, "enhanced")
    assert "settings changed (3)" in r4.stdout and "chunk_seconds 30.0 -> 0.2" in r4.stdout
    got, _ = sf.read(out / "b.wav")
    assert np.abs(got - _expected(ckpt, noisy / "b.wav", chunk_seconds=0.2, overlap_seconds=0.05)).max() \
        <= 1 / 32768 + 1e-6


def test_an_output_without_a_record_is_never_overwritten(setup: tuple[Path, Path, Path]) -> None:
    noisy, out, ckpt = setup
    out.mkdir()
    sf.write(out / "a.wav", np.zeros(100), SR)  # someone else's file under the same name
    before = (out / "a.wav").read_bytes()
    r = _enhance("--ckpt", ckpt, noisy, out)
    assert " 2 files" in _line(r.stdout, "enhanced")
    assert "kept" in r.stdout and " 1 existing file(s)" in _line(r.stdout, "kept")
    assert "never overwritten" in r.stdout
    assert (out / "a.wav").read_bytes() == before
    assert [json.loads(ln)["file"] for ln in (out / ".enhance_manifest.jsonl").read_text().splitlines()] == \
        ["b.wav", "sub/c.wav"]
    # still kept after its input changes: there is no record that this tool made it
    sf.write(noisy / "a.wav", np.ones(SR // 2) * 0.1, SR)
    r2 = _enhance("--ckpt", ckpt, noisy, out)
    assert (out / "a.wav").read_bytes() == before and " 1 existing file(s)" in _line(r2.stdout, "kept")
