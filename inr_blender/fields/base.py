"""What every consumer of a scalar field may ask of it, whatever its network.

A :class:`Field` maps points (N, 3) of its local cube [-1, 1]^3 to values (N,), zero on the surface and
negative inside. Extraction, range queries, skeletons and iso-points work on any such module; these
attributes tell them what the values mean:

- ``is_distance``: the values are distances (|f(x)| is at most the distance to the surface, Lipschitz 1),
  so culling by |f| (sparse extraction, sphere tracing) cannot lose surface. An occupancy logit or a
  density is not.
- ``output``: 'sdf' (signed distances), 'occupancy' (minus a logit: zero at probability 1/2) or
  'density' (a threshold minus a radiance field's density).
- :meth:`smooth_base`: the smooth base of a displacement field (the surface before detail), None otherwise.

Modules that are not :class:`Field` (a test's analytic shape) are taken as distance fields; use the
functions :func:`is_distance_field` and :func:`smooth_base` to ask any module.
"""

from __future__ import annotations

from torch import nn

from ..types import Points, Values

OUTPUTS = ("sdf", "occupancy", "density")


class Field(nn.Module):
    """A scalar field: ``forward(x: (N, 3)) -> (N,)``, zero on the surface, negative inside."""

    is_distance: bool = True
    output: str = "sdf"

    def forward(self, x: Points) -> Values:  # pragma: no cover - every field defines it
        raise NotImplementedError

    def smooth_base(self) -> nn.Module | None:
        """The smooth base of a displacement field; None for a field without one."""
        return None


def is_distance_field(field: nn.Module) -> bool:
    """Whether culling ``field`` by |value| is sound (see :class:`Field`); other modules count as distances."""
    return bool(getattr(field, "is_distance", True)) if isinstance(field, Field) else True


def smooth_base(field: nn.Module) -> nn.Module | None:
    """``field``'s smooth base (displacement fields), or None."""
    return field.smooth_base() if isinstance(field, Field) else None


def linear_layers(layers: nn.ModuleList) -> list[nn.Linear]:
    """The layers of a ModuleList of ``nn.Linear`` (weight-normalised ones too), typed as such (its items are
    typed ``Module``); a TypeError if it holds anything else."""
    linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
    if len(linears) != len(layers):
        raise TypeError(f"expected only nn.Linear layers, got {', '.join(type(layer).__name__ for layer in layers)}")
    return linears
