"""Earlier keyword names kept working after a rename (the toolkit's one way to do it)."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar

__all__ = ["keyword_alias"]

_F = TypeVar("_F", bound=Callable[..., Any])


def keyword_alias(**aliases: str) -> Callable[[_F], _F]:
    """Decorator: accept each ``old=`` keyword as the parameter it was renamed to.

    ``@keyword_alias(sr="sample_rate")`` lets callers keep writing ``f(x, sr=16000)``;
    positional calls are unchanged, and giving a parameter under both names raises
    ``TypeError``. Works for functions and methods.
    """

    def deco(fn: _F) -> _F:
        names = list(inspect.signature(fn).parameters)
        for new in aliases.values():
            if new not in names:
                raise ValueError(f"{fn.__qualname__} has no parameter {new!r} to alias")
        position = {new: names.index(new) for new in aliases.values()}

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in aliases.items():
                if old in kwargs:
                    if new in kwargs or len(args) > position[new]:
                        raise TypeError(f"{fn.__name__}(): give {new} or its earlier name {old}, not both")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
