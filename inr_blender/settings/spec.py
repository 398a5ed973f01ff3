"""Declared parameters: the one place where a job's or a method's settings are typed, bounded, defaulted and checked.

Torch-free, like everything in :mod:`inr_blender.settings`: the Blender side imports it
to read defaults, bounds and help text, the CLI builds its options from it, and the worker
resolves every job's parameters through :meth:`Spec.resolve` exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from ..context import JobError

# Sizes no machine has the memory (or the user the patience) for, refused up front by the params that declare them
# as their maximum; what fits one machine and not another is checked against its memory where the work is planned.
MAX_SAMPLES = 10_000_000  # points drawn on a surface, samples of a metric
MAX_BATCH = 1 << 20  # points, rays or samples per training step
MAX_WIDTH = 4096  # hidden units of a layer
MAX_DEPTH = 64  # hidden layers

_KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}


@dataclass(frozen=True)
class Param:
    """One parameter: its name, default, type (``kind``, from the default unless given), bounds and help.

    ``minimum``/``maximum`` are inclusive, ``positive`` means > 0. ``choices`` restricts a string.
    ``length`` fixes a list's length (its items are floats, each within ``minimum``/``maximum``).
    ``default=None`` means "not set" (the job or method decides); the value is then passed on as None.
    ``label`` is the UI name.
    """

    name: str
    default: Any
    help: str = ""
    kind: type | None = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    choices: tuple[str, ...] | None = None
    length: int | None = None
    label: str = ""
    cli: bool = True  # offered as a command-line option

    @property
    def type(self) -> type:
        if self.kind is not None:
            return self.kind
        if self.default is None:
            return str
        return list if isinstance(self.default, (list, tuple)) else type(self.default)

    def with_default(self, default: Any) -> Param:
        """The same parameter with another default (a method's own value of a shared setting)."""
        return replace(self, default=default)

    def coerce(self, value: Any) -> Any:
        """``value`` as this parameter's type, checked against its bounds; JobError naming it otherwise."""
        if value is None:
            return None
        kind = self.type
        try:
            if kind is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("true", "1", "yes")
                else:
                    value = bool(value)
            elif kind is int:
                if isinstance(value, bool) or float(value) != int(value):
                    raise ValueError
                value = int(value)
            elif kind is float:
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
                if not math.isfinite(value):
                    raise JobError(f"parameter {self.name} must be finite, got {value}")
            elif kind is str:
                if not isinstance(value, str):
                    raise ValueError
            elif kind is list:
                value = [float(v) for v in value]
                if not all(math.isfinite(v) for v in value):
                    raise ValueError
                if self.length is not None and len(value) != self.length:
                    raise ValueError
        except (TypeError, ValueError, OverflowError):
            what = f"{self.length} numbers" if kind is list and self.length else _KIND_WORDS.get(kind, str(kind))
            raise JobError(f"parameter {self.name} must be {what}, got {value!r}") from None
        self.check_bounds(value)
        return value

    def check_bounds(self, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            raise JobError(f"parameter {self.name} must be {alternatives(self.choices)}, got {value!r}")
        if isinstance(value, list) and (self.minimum is not None or self.maximum is not None):  # bounds of each item
            lo, hi = (-math.inf if self.minimum is None else self.minimum), (math.inf if self.maximum is None else self.maximum)
            if not all(lo <= v <= hi for v in value):
                count = f"{self.length} numbers" if self.length else "numbers"
                raise JobError(f"parameter {self.name} must be {count} in [{lo:g}, {hi:g}], got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.positive and not value > 0:
                raise JobError(f"parameter {self.name} must be positive, got {value!r}")
            if self.minimum == 0 and value < 0:
                raise JobError(f"parameter {self.name} must be non-negative, got {value!r}")
            if self.minimum is not None and value < self.minimum:
                raise JobError(f"parameter {self.name} must be at least {number(self.minimum)}, got {value!r}")
            if self.maximum is not None and value > self.maximum:
                raise JobError(f"parameter {self.name} must be at most {number(self.maximum)}, got {value!r}")


def number(value: float) -> str:
    """A bound as people write it: 1048576 rather than 1.04858e+06, 0.5 as 0.5."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def alternatives(choices: Iterable[str]) -> str:
    """'a', 'b' or 'c'."""
    quoted = [repr(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def params(*items: Param | Iterable[Param]) -> tuple[Param, ...]:
    """A flat tuple of parameters from parameters and groups of them; a later one of the same name wins."""
    flat: dict[str, Param] = {}
    for item in items:
        for p in [item] if isinstance(item, Param) else item:
            flat[p.name] = p
    return tuple(flat.values())


def defaults(items: Iterable[Param]) -> dict[str, Any]:
    """``{name: default}`` of ``items``."""
    return {p.name: p.default for p in items}


@dataclass(frozen=True)
class Variants:
    """Parameters that depend on one choice (an SDF ``method``, a NeRF ``model``): ``key`` picks a set from ``sets()``.

    ``sets`` is called at resolution time, so methods registered later (from a test, a plug-in) count.
    """

    key: str
    sets: Callable[[], Mapping[str, tuple[Param, ...]]]
    default: str
    what: str = ""  # "SDF method": how an error names the choice
    help: str = ""


@dataclass(frozen=True)
class Spec:
    """A job's declared parameters: ``resolve`` turns what a caller sent into the complete, checked settings.

    ``check`` runs on the resolved settings for rules across parameters. ``passthrough`` names keys
    taken as they are (paths the job reads itself, structured values it checks itself).
    """

    name: str
    params: tuple[Param, ...] = ()
    help: str = ""
    variants: Variants | None = None
    check: Callable[[dict[str, Any]], None] | None = None
    passthrough: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def variant_params(self, choice: str) -> tuple[Param, ...]:
        """The parameters of variant ``choice`` on top of the common ones."""
        assert self.variants is not None
        return params(self.params, self.variants.sets()[choice])

    def all_params(self) -> tuple[Param, ...]:
        """Every parameter any variant knows (the CLI's options)."""
        if self.variants is None:
            return self.params
        return params(self.params, *self.variants.sets().values())

    def defaults(self, choice: str | None = None) -> dict[str, Any]:
        """The defaults (of variant ``choice``, or the default variant)."""
        if self.variants is None:
            return defaults(self.params)
        choice = choice or self.variants.default
        return {self.variants.key: choice, **defaults(self.variant_params(choice))}

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The complete settings: defaults updated with ``given``, each coerced and checked; unknown keys refused."""
        given = dict(given)
        active = self.params
        resolved: dict[str, Any] = {}
        if self.variants is not None:
            key, sets = self.variants.key, self.variants.sets()
            choice = given.pop(key, None) or self.variants.default
            if not isinstance(choice, str) or choice.lower() not in sets:
                raise JobError(f"unknown {self.variants.what or key} {choice!r}; choose one of {', '.join(sets)}")
            resolved[key] = choice.lower()
            active = params(self.params, sets[resolved[key]])
            known = {p.name for s in sets.values() for p in s}  # another variant's settings are ignored, not refused
        else:
            known = set()
        names = {p.name for p in active}
        unknown = sorted(set(given) - names - known - set(self.passthrough))
        if unknown:
            raise JobError(f"unknown {self.name} parameter(s): {', '.join(unknown)}")
        for p in active:
            value = given.get(p.name)
            resolved[p.name] = p.default if value is None else p.coerce(value)
        for key in self.passthrough:
            if key in given:
                resolved[key] = given[key]
        if self.check is not None:
            self.check(resolved)
        return resolved


T = TypeVar("T")


@dataclass(frozen=True)
class Declared:
    """A fitting variant (an SDF method, a radiance model) as the Blender side, the CLI and the fit know it
    without torch: its name, UI label, help, parameters, and the rules across its resolved settings."""

    name: str
    label: str
    help: str
    params: tuple[Param, ...]
    check: Callable[[dict[str, Any]], None] | None = None  # may also fill derived values


class Registry(Generic[T]):
    """Named things registered where they are defined (``@registry.register("name")``), looked up by name."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            self.add(name, item)
            return item

        return add

    def add(self, name: str, item: T) -> None:
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._items[name] = item

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise JobError(f"unknown {self.what} {name!r}; choose one of {', '.join(self._items)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self._items)

    def items(self):
        return self._items.items()

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)
