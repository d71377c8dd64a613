"""Per-band parameters packed into one flat tensor, with a per-band (reference) state dict.

Band-split layers hold one small weight per band. Keeping 31 separate ``nn.Linear`` modules
forces a Python loop over bands in forward and backward; packing them into one flat
``Parameter`` lets a layer gather all bands' weights with a single index operation. The
state dict, however, keeps one key per band (``fc1.weight``, ``fc2.weight``, ...) with the
per-band shapes, so checkpoints of per-band implementations load with plain
``load_state_dict`` and ours load into them.

Each band's tensor is a contiguous slice of the flat parameter: ``state_dict()`` returns views
(sharing storage, like any module's state dict).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn


class PackedPerBandModule(nn.Module):
    """Base class: register "ragged" per-band parameters with :meth:`_add_ragged`.

    Every ragged group has one tensor per band; band ``i`` (0-based) appears in the state
    dict as ``key_template.format(i + 1)`` with its own shape. Keys are emitted band by band
    in the order the groups were registered (band 1's groups, then band 2's, ...).
    """

    def __init__(self) -> None:
        super().__init__()
        self._ragged: dict[str, tuple[str, list[tuple[int, ...]], list[int]]] = {}
        self._num_ragged_bands: int | None = None

    def _add_ragged(self, name: str, key_template: str, shapes: Sequence[Sequence[int]]) -> nn.Parameter:
        shapes = [tuple(int(d) for d in s) for s in shapes]
        if self._num_ragged_bands is None:
            self._num_ragged_bands = len(shapes)
        elif len(shapes) != self._num_ragged_bands:
            raise ValueError(f"{name}: {len(shapes)} band shapes, expected {self._num_ragged_bands}")
        offsets = [0]
        for s in shapes:
            offsets.append(offsets[-1] + math.prod(s))
        param = nn.Parameter(torch.empty(offsets[-1]))
        self.register_parameter(name, param)
        self._ragged[name] = (key_template, shapes, offsets)
        return param

    def band_tensor(self, name: str, band: int) -> torch.Tensor:
        """Band ``band``'s (0-based) tensor of ragged group ``name``, as a view of the flat parameter."""
        _, shapes, offsets = self._ragged[name]
        flat = getattr(self, name)
        return flat[offsets[band]:offsets[band + 1]].view(shapes[band])

    # -- state dict in the per-band layout ---------------------------------------------------
    def _save_to_state_dict(self, destination, prefix, keep_vars):  # noqa: D401 (torch hook)
        rest: OrderedDict[str, torch.Tensor] = OrderedDict()
        super()._save_to_state_dict(rest, prefix, keep_vars)
        for band in range(self._num_ragged_bands or 0):
            for name, (template, _, _) in self._ragged.items():
                t = self.band_tensor(name, band)
                destination[prefix + template.format(band + 1)] = t if keep_vars else t.detach()
        for key, value in rest.items():
            if key[len(prefix):] not in self._ragged:
                destination[key] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        handled: list[str] = []
        for name, (template, shapes, offsets) in self._ragged.items():
            packed_key = prefix + name
            if packed_key in state_dict:  # already in packed form: the default loader takes it
                continue
            keys = [prefix + template.format(b + 1) for b in range(len(shapes))]
            present = {k: state_dict.pop(k) for k in keys if k in state_dict}
            bad = [k for b, k in enumerate(keys) if k in present and (not isinstance(present[k], torch.Tensor)
                                                                        or tuple(present[k].shape) != shapes[b])]
            for k in bad:
                b = keys.index(k)
                if not isinstance(present[k], torch.Tensor):  # torch's own wording for a non-tensor entry
                    error_msgs.append(f"While copying the parameter named \"{k}\", expected torch.Tensor from "
                                      f"checkpoint but received {type(present[k])}")
                    continue
                error_msgs.append(
                    f"size mismatch for {k}: copying a param with shape {tuple(present[k].shape)} from "
                    f"checkpoint, the shape in current model is {shapes[b]} (band {b + 1} of "
                    f"{len(shapes)}; check num_channel and the band widths)")
            if bad:
                handled.append(packed_key)
            elif len(present) == len(keys):  # the whole group: let the default loader copy it
                state_dict[packed_key] = torch.cat([present[k].reshape(-1) for k in keys])
            else:  # partial (strict=False) or absent: copy what is there, name what is missing
                handled.append(packed_key)
                flat = getattr(self, name)
                with torch.no_grad():
                    for b, k in enumerate(keys):
                        if k in present:
                            flat[offsets[b]:offsets[b + 1]].copy_(present[k].reshape(-1))
                        else:
                            missing_keys.append(k)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        for k in handled:
            if k in missing_keys:
                missing_keys.remove(k)

    # -- helpers for vectorised compute --------------------------------------------------------
    def _uniform_per_band_(self, name: str, bounds: Sequence[float]) -> None:
        """In-place U(-bound_b, bound_b) init of each band of ``name`` (one vectorised draw)."""
        _, shapes, offsets = self._ragged[name]
        flat = getattr(self, name)
        sizes = torch.tensor([offsets[b + 1] - offsets[b] for b in range(len(shapes))])
        scale = torch.repeat_interleave(torch.tensor(bounds, dtype=flat.dtype, device=flat.device),
                                        sizes.to(flat.device), output_size=offsets[-1])
        with torch.no_grad():
            flat.uniform_(-1.0, 1.0).mul_(scale)
