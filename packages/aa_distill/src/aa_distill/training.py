"""Pieces of a distillation run that a training loop composes: the student's prediction
window, per-tone validation metrics and the end-of-run summary.

A student is trained and validated on the last second of each tone (``sample_rate``
samples): :func:`predict_last_second` runs it without padding over just the input that
second depends on. :func:`validation_metrics` scores it against the bandlimited teacher
targets of a :class:`SineToneDataset`, tone by tone, and averages the per-tone values (the
dB metrics as the mean of per-tone dB, the paper's convention).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from .bandlimit import bandlimit
from .distill_loss import DistillationLoss
from .losses import asr
from .precision import amp_forward
from .tones import SineToneDataset

#: :func:`validation_metrics`' keys -> what they are (all means over the validation tones).
VALIDATION_METRICS: dict[str, str] = {
    "loss": "distillation loss (linear, the per-tone total of DistillationLoss)",
    "esr_db": "ESR-T (dB): ESR against the bandlimited teacher, after the lowpass",
    "nmr_db": "NMR-T (dB): NMR against the bandlimited teacher, after the lowpass",
    "dc_db": "DC (dB): DC error against the bandlimited teacher, after the lowpass",
    "nmr_s_db": "NMR-S (dB): NMR of the raw output against its own bandlimited version (aliasing)",
    "asr_db": "ASR (dB): alias energy / bandlimited energy of the raw output",
}

# summary labels of the dB metrics, in the order the summary shows them
_SUMMARY_LABELS = (("esr_db", "ESR-T (dB)"), ("nmr_db", "NMR-T (dB)"),
                   ("nmr_s_db", "NMR-S (dB, aliasing)"), ("asr_db", "ASR (dB)"),
                   ("dc_db", "DC (dB)"))


def predict_last_second(model: torch.nn.Module, x: torch.Tensor, sample_rate: int,
                        receptive_field: int, *, amp: str | None = None) -> torch.Tensor:
    """A NAM-style model's output over the last second of ``x``: ``[B, sample_rate]``.

    ``x`` is ``[B, T]`` with ``T >= sample_rate + receptive_field - 1`` (the tones' warm-up
    covers it); only its last ``sample_rate + receptive_field - 1`` samples are used, in a
    valid convolution (``model(..., pad_start=False)``), so no output depends on padding.
    ``model`` may be wrapped (e.g. in ``DistributedDataParallel``), hence the explicit
    ``receptive_field`` (samples) of the model it wraps.

    ``amp="bf16"`` runs the forward under bfloat16 autocast (:func:`amp_forward`: float32
    ``x`` and parameters, the output cast back to float32, so the loss that follows is
    computed in float32 as without it); ``None`` (default) is the plain run in ``x``'s dtype.
    """
    return amp_forward(model, x[:, -(sample_rate + receptive_field - 1):], amp=amp, pad_start=False)


def _db(v: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(v.double().clamp_min(1e-30))


@torch.no_grad()
def validation_metrics(student: torch.nn.Module, data: SineToneDataset,
                       loss_fn: DistillationLoss, *, lam: float | None = None,
                       indices: torch.Tensor | None = None, batch_size: int = 16,
                       device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float32,
                       reduce_sums: Callable[[torch.Tensor], torch.Tensor] | None = None
                       ) -> dict[str, float]:
    """Mean per-tone validation metrics of ``student`` (a NAM-style model with
    ``receptive_field``) on ``data`` at ``data.sample_rate`` Hz: ``{key: value}`` for the keys
    of :data:`VALIDATION_METRICS`.

    Each tone is scored once: its prediction (:func:`predict_last_second`, the model run in
    ``dtype`` on ``device``) goes through ``loss_fn`` at ``lam`` (``None``: the loss's own λ),
    which must be built with ``reduction="none"`` (per-tone total and ESR / NMR / DC after the
    lowpass), and through :func:`bandlimit` for its own aliasing (NMR-S with the loss's NMR,
    ASR with :func:`asr` on the same :class:`BandlimitResult`). ``"loss"`` is the mean of the
    per-tone totals; the ``*_db`` keys are means of per-tone ``10 log10`` values (floored at
    -300 dB), accumulated in float64.

    ``indices`` (``[n]``) restricts the tones (e.g. one process's shard; default all) and
    ``batch_size`` sets how many run at once (the metrics do not depend on it).
    ``reduce_sums``, when given, receives the float64 CPU vector ``[len(VALIDATION_METRICS)
    + 1]`` of per-metric sums and the tone count before the means are taken, and returns
    the vector to use: pass a cross-process sum (e.g. ``torch.distributed.all_reduce``) to
    average over every process's tones. The student's train / eval mode is restored.
    The student runs without autocast, in ``dtype``, even when it is trained with
    ``amp="bf16"``: validation scores the float32 model that is exported and played.
    """
    if loss_fn.reduction != "none":
        raise ValueError(f"validation_metrics needs a DistillationLoss with reduction='none' (per "
                         f"tone), got reduction={loss_fn.reduction!r}")
    fs, rf = data.sample_rate, student.receptive_field
    idx = torch.arange(len(data)) if indices is None else torch.as_tensor(indices)
    sums = torch.zeros(len(VALIDATION_METRICS) + 1, dtype=torch.float64)
    was_training = student.training
    student.eval()
    try:
        for b in idx.split(batch_size):
            x, target, f0 = data.batch(b, device=device, dtype=dtype)
            pred = predict_last_second(student, x, fs, rf)
            total, terms = loss_fn(pred, target, f0, lam=lam)
            own = bandlimit(pred, f0, fs)
            per_tone = (total.double(), _db(terms["esr"]), _db(terms["nmr"]), _db(terms["dc"]),
                        _db(loss_fn.nmr(pred, own.bandlimited)[0]), _db(asr(own)))
            sums += torch.stack([v.sum() for v in per_tone]
                                + [torch.tensor(float(len(b)), dtype=torch.float64,
                                                device=total.device)]).cpu()
    finally:
        student.train(was_training)
    if reduce_sums is not None:
        sums = reduce_sums(sums)
    return {k: float(sums[i] / sums[-1]) for i, k in enumerate(VALIDATION_METRICS)}


def distillation_summary(metrics: Mapping[str, float], *, teacher: str, epochs_run: int,
                         best_epoch: int, student: str, prefix: str = "valid_") -> str:
    """The end-of-run summary table as text (two aligned columns, one row per line, no
    trailing newline).

    ``metrics`` holds the best epoch's validation metrics, keyed ``prefix + key`` for the
    keys of :data:`VALIDATION_METRICS` (missing ones are left out; no ``loss`` reads
    ``n/a``); ``best_epoch`` is 0-based (shown 1-based); ``teacher`` and ``student`` are
    shown as given (a name and the exported file).
    """
    loss = metrics.get(prefix + "loss")
    rows = [("teacher", teacher), ("epochs run", str(epochs_run)), ("best epoch", str(best_epoch + 1)),
            ("valid loss", f"{loss:.4g}" if loss is not None else "n/a")]
    rows += [(f"best {label}", f"{metrics[prefix + key]:.2f}") for key, label in _SUMMARY_LABELS
             if prefix + key in metrics]
    rows.append(("student", student))
    w = max(len(k) for k, _ in rows)
    return "\n".join(["summary (validation: mean over tones after the lowpass; NMR-S on the raw output)",
                      *(f"  {k:<{w}}  {v}" for k, v in rows)])
