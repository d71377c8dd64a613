"""Name -> class registries for configs that rebuild modules (not part of the public API).

Each registry is a private dict behind a read-only public view; its one public
``register_*`` function (``register_backbone``, ``register_noise_encoder``,
``register_audio_encoder``) adds to it through :func:`register`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, TypeVar

T = TypeVar("T", bound=type)


def new_registry(entries: dict[str, type]) -> tuple[dict[str, type], Mapping[str, type]]:
    """``(private dict, read-only view of it)``."""
    return entries, MappingProxyType(entries)


def register(registry: dict[str, type], name: str, cls: T, *, kind: str, function: str) -> T:
    """Add ``cls`` under ``name``; registering the same class again is a no-op, another class
    under a taken name is an error (a config naming it would silently change meaning)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{function}: the name must be a non-empty string, got {name!r}")
    if not isinstance(cls, type):
        raise TypeError(f"{function}: expected a class, got {cls!r}")
    old = registry.get(name)
    if old is not None and old is not cls:
        raise ValueError(f"{function}: the {kind} name {name!r} is taken by {old.__module__}.{old.__qualname__}; "
                         f"register {cls.__qualname__} under another name")
    registry[name] = cls
    return cls


def name_of(registry: Mapping[str, type], obj: object, *, kind: str, function: str) -> str:
    """The name ``type(obj)`` is registered under (for ``to_config``)."""
    for name, cls in registry.items():
        if type(obj) is cls:
            return name
    raise ValueError(f"{kind} {type(obj).__name__} is not registered; call sgmse_cfg.{function}(name, "
                     f"{type(obj).__name__}) to save and rebuild it from configs")
