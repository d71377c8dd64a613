"""Private helper for the frozen dataclasses that describe what a function did or used."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


class AsDictMixin:
    """Adds :meth:`as_dict` to a dataclass (a plain base class: it has no fields of its own)."""

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain ``dict`` (:func:`dataclasses.asdict`, nested values copied)."""
        return asdict(self)  # type: ignore[call-overload]
