"""The add-on's Blender classes, found where they are defined: a new operator or panel is a new module (or a class
in one), and no list names it. Each package's ``classes`` is what :func:`find` returns for it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterable


def find(package: str, path: Iterable[str], kinds: tuple[type, ...]) -> tuple[type, ...]:
    """Import every module of ``package`` (sub-packages are helpers, not searched) and return the classes of
    ``kinds`` defined in them (not imported into them), by module name and then in the order of their source."""
    found: list[type] = []
    for name in sorted(m.name for m in pkgutil.iter_modules(path) if not m.ispkg):
        module = importlib.import_module(f"{package}.{name}")
        own = [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__ and issubclass(c, kinds)]
        found += sorted(own, key=lambda c: inspect.getsourcelines(c)[1])
    return tuple(found)
