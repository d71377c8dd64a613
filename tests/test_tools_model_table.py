"""tools/model_table.py: the parameter table matches the models the trainer builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bandsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: the helper beside this file
from _inproc import run_tool  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_parameter_table(tmp_path: Path) -> None:
    out = tmp_path / "table.json"
    proc = subprocess.run([sys.executable, "tools/model_table.py", "--num-channel", "32", "--num-layer", "2",
                           "--num-heads", "2", "--seconds", "0.25", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2,963,024" in proc.stdout and "11,417,488" in proc.stdout
    table = {r["model"]: r for r in json.loads(out.read_text())}
    assert table["BSRNN published (N=64, L=5)"]["parameters"] == 2_963_024
    small = table["BSDT w/o both"]
    assert sum(p.numel() for p in bandsplit.build_model(small["config"]).parameters()) == small["parameters"]
    # MACs per second: bandsplit.count_macs on the same duration
    ref = table["BSRNN published (N=64, L=5)"]
    assert ref["macs_seconds"] == 0.25
    assert ref["macs_per_second"] == round(bandsplit.count_macs(bandsplit.build_model(ref["config"]), 0.25).per_second)
    assert all(r["macs_per_second"] > 0 for r in table.values())
    # per-band temporal attention: more parameters, the same MACs; standard attention: the same MACs
    bsdt = table["BSDT v2: learned graph"]
    assert table["BSDT per-band temporal attention"]["parameters"] > bsdt["parameters"]
    assert table["BSDT per-band temporal attention"]["macs_per_second"] == bsdt["macs_per_second"]
    assert table["BSDT standard attention"]["macs_per_second"] == bsdt["macs_per_second"]
    assert table["preset bsdt-research (research size)"]["parameters"] == 3_919_311
    full = table["BSDT v2: learned graph"]["parameters"]
    for ablation in ("BSDT w/o inter-band", "BSDT w/o multi-scale", "BSDT w/o both"):
        assert table[ablation]["parameters"] < full
    # refuses to overwrite
    again = run_tool("model_table.py", "--json", out)   # refused before any counting (main in this process)
    assert again.returncode != 0 and "nothing is overwritten" in again.stderr
