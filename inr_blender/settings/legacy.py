"""Parameter checks of the old kind, kept for ``fitting/nerf.py`` alone until it declares a ``SPEC`` (then delete).

Each is a thin wrapper over :class:`.spec.Param`, so messages and rules are the same as every other job's.
"""

from __future__ import annotations

from typing import Any

from .spec import Param, Spec


def refuse_unknown(params: dict[str, Any], known: set[str], job: str) -> None:
    """JobError naming every key of ``params`` that ``job`` does not know."""
    Spec(job, passthrough=tuple(known)).resolve(params)


def coerce_params(params: dict[str, Any], defaults: dict[str, Any], positive: set[str], non_negative: set[str]) -> dict[str, Any]:
    """``defaults`` updated with ``params`` of the same keys, coerced to the default's type and bounded."""
    declared = [Param(k, v, kind=list if isinstance(v, (list, tuple)) else None, positive=k in positive,
                      minimum=0 if k in non_negative else None) for k, v in defaults.items() if k != "method"]
    given = {k: v for k, v in params.items() if k in defaults and k != "method"}
    return {**defaults, **Spec("legacy", tuple(declared)).resolve(given)}


def rgb_param(value: Any, key: str) -> list[float]:
    """An RGB colour: three numbers in [0, 1], or JobError naming ``key``."""
    return Param(key, None, kind=list, length=3, minimum=0.0, maximum=1.0).coerce(value)
