"""tools/model_table.py: the parameter table matches the models the trainer builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bandsplit

REPO = Path(__file__).resolve().parents[1]


def test_parameter_table(tmp_path: Path) -> None:
    out = tmp_path / "table.json"
    proc = subprocess.run([sys.executable, "tools/model_table.py", "--num-channel", "32", "--num-layer", "2",
                           "--num-heads", "2", "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2,963,024" in proc.stdout and "11,417,488" in proc.stdout
    table = {r["model"]: r for r in json.loads(out.read_text())}
    assert table["BSRNN published (N=64, L=5)"]["parameters"] == 2_963_024
    small = table["BSDT w/o both"]
    assert sum(p.numel() for p in bandsplit.build_model(small["config"]).parameters()) == small["parameters"]
    full = table["BSDT v2: learned graph"]["parameters"]
    for ablation in ("BSDT w/o inter-band", "BSDT w/o multi-scale", "BSDT w/o both"):
        assert table[ablation]["parameters"] < full
    # refuses to overwrite
    again = subprocess.run([sys.executable, "tools/model_table.py", "--json", str(out)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "nothing is overwritten" in again.stderr
