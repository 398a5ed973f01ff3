"""Job parameters checked against their defaults: the one place where types are coerced and ranges refused."""

from __future__ import annotations

from typing import Any

from .context import JobError


def refuse_unknown(params: dict[str, Any], known: set[str], job: str) -> None:
    """JobError naming every key of ``params`` that ``job`` does not know (a typo must not be ignored)."""
    unknown = sorted(set(params) - known)
    if unknown:
        raise JobError(f"unknown {job} parameter(s): {', '.join(unknown)}")


def coerce_params(params: dict[str, Any], defaults: dict[str, Any], positive: set[str], non_negative: set[str]) -> dict[str, Any]:
    """``defaults`` updated with the values in ``params`` of the same keys, coerced to the default's type.

    Strings stay strings, integers must be whole numbers, everything else
    becomes a float; keys in ``positive`` must be > 0 and keys in
    ``non_negative`` >= 0. Lists (e.g. colours) are passed through. A bad value
    raises JobError naming the parameter.
    """
    resolved = dict(defaults)
    for key, default in defaults.items():
        value = params.get(key)
        if value is None or key == "method":
            continue
        if isinstance(default, (list, tuple)):
            resolved[key] = value
            continue
        try:
            if isinstance(default, bool):
                value = bool(value)
            elif isinstance(default, str):
                value = str(value)
            elif isinstance(default, int):
                if float(value) != int(value):
                    raise ValueError
                value = int(value)
            else:
                value = float(value)
        except (TypeError, ValueError, OverflowError):
            kind = {int: "an integer", float: "a number"}.get(type(default), "a string")
            raise JobError(f"parameter {key} must be {kind}, got {value!r}") from None
        if key in positive and not value > 0 or key in non_negative and not value >= 0:
            raise JobError(f"parameter {key} must be {'positive' if key in positive else 'non-negative'}, got {value!r}")
        resolved[key] = value
    return resolved


def rgb_param(value: Any, key: str) -> list[float]:
    """An RGB colour: three numbers in [0, 1], or JobError naming ``key``."""
    try:
        rgb = [float(c) for c in value]
    except (TypeError, ValueError):
        rgb = []
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise JobError(f"parameter {key} must be three numbers in [0, 1], got {value!r}")
    return rgb
