"""A 60 s utterance (T = 7,500 frames at hop 128 / 16 kHz) through every module in CPU inference,
in a fresh process whose peak RSS shows that no T×T map was materialised."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

T = 7500  # 60 s · 16000 / 128 = 7,500 frames

SCRIPT = r"""
import json, sys, time
import torch
import diffattn as D


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def start_probe():
    # reset the peak-RSS mark (VmHWM) to the current RSS, so each measurement sees only its own peak
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kb("VmRSS")


def peak_delta_mb(rss0):
    return (_status_kb("VmHWM") - rss0) / 1024

torch.manual_seed(0)
torch.set_num_threads(2)
T = int(sys.argv[1])
if len(sys.argv) > 2:  # control, in its own fresh process so earlier peaks cannot hide it:
    # the naive path at T = 3000 does materialise [2, 2, T, T] maps; the probe must see them
    ctrl = D.DifferentialAttention(8, 1, 0).eval()
    ctrl(torch.randn(1, 2, 16, 8), impl="naive").sum().backward()
    before = start_probe()
    y = ctrl(torch.randn(1, 2, 3000, 8), impl="naive")  # with autograd the maps stay alive
    y.sum().backward()
    print(json.dumps({"control_naive_T3000_mb": peak_delta_mb(before)}))
    sys.exit(0)
widths = [2] + [3] * 10 + [8] * 12 + [16] * 7 + [17]
centres = D.band_centres_hz(widths, 16000, 512)
dim, K = 8, 31
mods = {
    "diff": (D.DifferentialAttention(dim, 1, 0), (1, 2, T, dim)),
    "diff_causal_rotary": (D.DifferentialAttention(dim, 1, 0, causal=True, rotary=True), (1, 2, T, dim)),
    "adaptive_bands": (D.AdaptiveDifferentialAttention(dim, 1, 0, num_bands=2, causal=True), (1, 2, T, dim)),
    "multiscale_gate": (D.MultiScaleDynamicFusionGate(8), (1, K, 2, T, 8)),
    "frequency_gate": (D.FrequencyAdaptiveFusionGate(8, K), (1, K, 2, T, 8)),
    "fixed": (D.make_inter_band("fixed", dim, 1, K, centres_hz=centres), (1, K, T, dim)),
    "learned": (D.make_inter_band("learned", dim, 1, K), (1, K, T, dim)),
    "dense": (D.make_inter_band("dense", dim, 1, K), (1, K, T, dim)),
    "none": (D.make_inter_band("none", dim, 1, K), (1, K, T, dim)),
}
inputs = {n: torch.randn(shape) for n, (_, shape) in mods.items()}
with torch.no_grad():  # warm up kernels and allocator on a short input
    for n, (m, shape) in mods.items():
        m.eval()
        m(torch.randn(*shape[:-2], 16, shape[-1]) if n != "frequency_gate" else inputs[n][..., :16, :])
out = {"runs": {}}
with torch.no_grad():
    for n, (m, _) in mods.items():
        base = start_probe()
        t0 = time.perf_counter()
        y = m(inputs[n])
        out["runs"][n] = {"shape": list(y.shape), "finite": bool(torch.isfinite(y).all()),
                          "seconds": time.perf_counter() - t0,
                          "peak_delta_mb": peak_delta_mb(base)}
print(json.dumps(out))
"""


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="needs Linux /proc/self/clear_refs to reset the peak-RSS probe")
def test_sixty_second_utterance_runs_without_txt_maps():
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(T)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = res["runs"]
    assert runs["diff"]["shape"] == [1, 2, T, 8]
    assert runs["adaptive_bands"]["shape"] == [1, 2, T, 8]
    assert runs["multiscale_gate"]["shape"] == [1, 31, 2, T]
    assert runs["frequency_gate"]["shape"] == [1, 31, 3]
    for kind in ("fixed", "learned", "dense", "none"):
        assert runs[kind]["shape"] == [1, 31, T, 8]
    assert all(r["finite"] for r in runs.values())
    # The temporal modules' maps would be [2 sequences, 2 sub-heads, T, T] float32 = 858 MiB; a
    # single T×T map is 214 MiB. The peak over ALL modules stays below a third of one map.
    peak = max(r["peak_delta_mb"] for r in runs.values())
    one_map_mb = T * T * 4 / 2 ** 20
    assert peak < one_map_mb / 3, json.dumps(runs, indent=1)
    # ... and the probe does see quadratic memory: the naive path at T = 3000 (maps 4·T²·4 B
    # = 137 MiB each, several alive at once)
    ctrl = subprocess.run([sys.executable, "-c", SCRIPT, str(T), "control"], capture_output=True, text=True,
                          timeout=120)
    assert ctrl.returncode == 0, ctrl.stderr[-2000:]
    control_mb = json.loads(ctrl.stdout.strip().splitlines()[-1])["control_naive_T3000_mb"]
    assert control_mb > 2 * (one_map_mb / 3), control_mb
