"""A radiance field's surface: the iso-surface of its density, coloured by the field.

:class:`DensitySurface` turns the density into the scalar field the SDF
extraction expects (negative inside: ``threshold - sigma``), so the same
marching cubes and gradient normals serve both. Vertex colours are the
field's colour seen from outside, along the inward normal.
"""

from __future__ import annotations

from typing import Protocol, cast

import numpy as np
import torch
from torch import nn

from ..context import JobContext
from ..fields.base import Field
from ..fields.nerf import ClassicNeRF, FastNeRF
from ..types import Points, Values

SURFACE_QUANTILE = 0.25
DEFAULT_THRESHOLD = 25.0  # density (per unit of the field's local cube) used when none can be estimated


class _Density(Protocol):
    """What a density surface asks of its field: a radiance field's (ClassicNeRF's, FastNeRF's) density."""

    def density(self, x: Points) -> Values: ...


class DensitySurface(Field):
    """``threshold - sigma(x)``: negative where the density exceeds ``threshold`` (no distance: no Lipschitz culling)."""

    is_distance = False
    output = "density"

    def __init__(self, field: nn.Module, threshold: float) -> None:
        super().__init__()
        self.field = field
        self.threshold = float(threshold)

    def forward(self, x: Points) -> Values:
        # Any module is accepted (range analysis refuses the ones without a density rule); evaluated, it must
        # be a radiance field.
        return self.threshold - cast(_Density, self.field).density(x)


@torch.no_grad()
def surface_density(field: nn.Module, settings, origins: torch.Tensor, directions: torch.Tensor, background: torch.Tensor) -> float:
    """The density the renders see as the surface: the lower quartile, over rays that end on something
    (opacity > 0.9), of the density at each ray's expected depth (a quartile, not the median, so that the
    less dense of several objects keeps its surface). It adapts to sharp fields (high densities) and to
    soft, under-trained ones (low); DEFAULT_THRESHOLD when no ray hits anything."""
    from .renderer import render_rays

    assert isinstance(field, (ClassicNeRF, FastNeRF)), f"a radiance field has the surface density, not {type(field).__name__}"
    out = render_rays(field, settings, origins, directions, background)
    hit = out["acc"] > 0.9
    if int(hit.sum()) < 16:
        return DEFAULT_THRESHOLD
    points = origins[hit] + directions[hit] * (out["depth"][hit] / out["acc"][hit])[:, None]
    return float(torch.quantile(field.density(points.clamp(-1.0, 1.0)), SURFACE_QUANTILE))


@torch.no_grad()
def vertex_colours(
    field: nn.Module, vertices: np.ndarray, normals: np.ndarray, device: torch.device, ctx: JobContext, chunk: int = 1 << 15
) -> np.ndarray:
    """RGB (V, 3) float32 in [0, 1] of each vertex, viewed from outside along its normal (the ray runs along -normal)."""
    out = np.zeros((len(vertices), 3), dtype=np.float32)
    total = max(1, (len(vertices) + chunk - 1) // chunk)
    for c, start in enumerate(range(0, len(vertices), chunk)):
        x = torch.as_tensor(vertices[start : start + chunk], dtype=torch.float32, device=device)
        n = torch.as_tensor(normals[start : start + chunk], dtype=torch.float32, device=device)
        d = -n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        _, rgb = field(x, d)
        out[start : start + len(x)] = rgb.float().cpu().numpy()
        ctx.progress(c + 1, total, None, "colouring vertices")
    return out
