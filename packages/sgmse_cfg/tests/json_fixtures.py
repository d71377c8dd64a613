"""Reference numbers from peer implementations as small JSON text fixtures (not a test module).

The benches that run the peers (``bench/pretrained_encoder_parity.py``,
``bench/sgmse_ckpt_fixtures.py``) write with :func:`dumps`; the tests read with ``json.loads``.
Two forms of an output tensor:

* :func:`tensor_to_json` / :func:`tensor_from_json`: every value (float32 at 9 significant
  digits, which round-trips float32 exactly; complex as ``real`` and ``imag`` lists);
* :func:`summarize`: for each row (the last dimension), the first and last ``edge`` values,
  optionally every ``stride``-th value, and the row's sum, sum of squares and max |value| in
  float64. :func:`assert_matches_summary` checks a tensor against it with bounds that all
  follow from one elementwise bound ``|got - want| <= tol`` (``n`` values in a row):
  ``|sum| <= n tol``, ``|sum of squares| <= tol (2 sqrt(n sumsq) + n tol)`` (Cauchy-Schwarz),
  ``|max abs| <= tol``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor


def _f32(values: Tensor) -> list[float]:
    return [float(f"{v:.9g}") for v in values.double().tolist()]


def tensor_to_json(t: Tensor) -> dict[str, Any]:
    """``{"shape", "dtype", "values"}`` (real) or ``{"shape", "dtype", "real", "imag"}`` (complex)."""
    t = t.detach().cpu()
    if t.is_complex():
        return {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
                "real": _f32(t.real.flatten()), "imag": _f32(t.imag.flatten())}
    return {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "values": _f32(t.flatten())}


def tensor_from_json(d: dict[str, Any]) -> Tensor:
    """The tensor :func:`tensor_to_json` stored, in its dtype."""
    dtype = getattr(torch, d["dtype"])
    if "real" in d:
        z = torch.complex(torch.tensor(d["real"], dtype=torch.float64), torch.tensor(d["imag"], dtype=torch.float64))
        return z.to(dtype).reshape(d["shape"])
    return torch.tensor(d["values"], dtype=torch.float64).to(dtype).reshape(d["shape"])


def summarize(t: Tensor, edge: int = 16, stride: int | None = None) -> dict[str, Any]:
    """A compact description of a real tensor ``[..., n]``: per row of ``n`` values."""
    t = t.detach().cpu()
    rows = t.reshape(-1, t.shape[-1]) if t.dim() else t.reshape(1, 1)
    r64 = rows.double()
    out: dict[str, Any] = {"shape": list(t.shape), "edge": edge, "stride": stride, "rows": []}
    for r, r_64 in zip(rows, r64):
        row = {"head": _f32(r[:edge]), "tail": _f32(r[-edge:]), "sum": float(r_64.sum()),
               "sumsq": float((r_64 * r_64).sum()), "maxabs": float(r_64.abs().max())}
        if stride:
            row["every"] = _f32(r[::stride])
        out["rows"].append(row)
    return out


def summary_scale(summary: dict[str, Any]) -> float:
    """max |value| over the whole tensor the summary describes."""
    return max(r["maxabs"] for r in summary["rows"])


def _stored(rows: Tensor, summary: dict[str, Any]) -> Iterator[tuple[int, Tensor, list[float]]]:
    edge, stride = summary["edge"], summary["stride"]
    for i, (r, s) in enumerate(zip(rows, summary["rows"])):
        yield i, r[:edge], s["head"]
        yield i, r[-edge:], s["tail"]
        if stride:
            yield i, r[::stride], s["every"]


def _rows(got: Tensor, summary: dict[str, Any], what: str) -> Tensor:
    assert list(got.shape) == summary["shape"], f"{what}: shape {list(got.shape)} != {summary['shape']}"
    return got.detach().cpu().double().reshape(len(summary["rows"]), -1)


def stored_max_diff(got: Tensor, summary: dict[str, Any], what: str = "output") -> float:
    """max |got - want| over the values the summary stores (first / last / every stride-th)."""
    return max(float((g - torch.tensor(w, dtype=torch.float64)).abs().max())
               for _, g, w in _stored(_rows(got, summary, what), summary))


def assert_matches_summary(got: Tensor, summary: dict[str, Any], tol: float, what: str = "output") -> float:
    """Fail unless ``got`` is consistent with ``|got - want| <= tol`` everywhere (see the module
    docstring); returns the largest difference seen in the stored values."""
    rows = _rows(got, summary, what)
    worst = 0.0
    for i, g, w in _stored(rows, summary):
        d = float((g - torch.tensor(w, dtype=torch.float64)).abs().max())
        worst = max(worst, d)
        assert d <= tol, f"{what} row {i}: stored values differ by {d:.3e} > {tol:.3e}"
    n = rows.shape[1]
    for i, (r, s) in enumerate(zip(rows, summary["rows"])):
        checks = {"maxabs": (float(r.abs().max()), tol), "sum": (float(r.sum()), n * tol),
                  "sumsq": (float((r * r).sum()), tol * (2 * math.sqrt(n * s["sumsq"]) + n * tol))}
        for k, (v, bound) in checks.items():
            assert abs(v - s[k]) <= bound, f"{what} row {i}: {k} {v!r} vs {s[k]!r} (bound {bound:.3e})"
    return worst


def dumps(obj: Any, indent: int = 0) -> str:
    """JSON for review: dicts one entry a line, nested lists one element a line unless short,
    flat lists on one line; floats as Python's shortest round-trip repr."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        body = ",\n".join(f"{inner}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in obj.items())
        return "{\n" + body + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in obj):
        one_line = json.dumps(obj)
        if "{" not in one_line and len(one_line) <= 100:  # e.g. [name, [shape]]
            return one_line
        body = ",\n".join(inner + dumps(v, indent + 1) for v in obj)
        return "[\n" + body + "\n" + pad + "]"
    return json.dumps(obj)
