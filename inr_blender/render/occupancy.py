"""An occupancy grid over the field's cube that lets the ray marcher skip empty space (Instant-NGP, nerfacc).

Each cell keeps an exponential moving average of the density at a random point
inside it. An update (every few training steps) evaluates every cell during
the warm-up, then a random quarter of the cells plus as many occupied ones;
the cell's value becomes max(decay * old, new). A cell is occupied when its
value times the marching step exceeds ``min(mean, threshold)`` (Instant-NGP
and nerfacc: optical thickness 0.01, decay 0.95, 256 warm-up steps).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class OccupancyGrid(nn.Module):
    """A ``resolution``^3 grid over [-1, 1]^3; ``occupied(x)`` looks points up."""

    values: torch.Tensor  # buffer (resolution^3,)
    mask: torch.Tensor  # buffer (resolution^3,) bool

    def __init__(self, resolution: int = 64) -> None:
        super().__init__()
        self.resolution = int(resolution)
        cells = self.resolution**3
        self.register_buffer("values", torch.zeros(cells))  # EMA of sigma * step
        self.register_buffer("mask", torch.ones(cells, dtype=torch.bool))  # everything is occupied before the first update

    def cell_index(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        ijk = ((x + 1.0) * 0.5 * r).long().clamp(0, r - 1)
        return (ijk[..., 0] * r + ijk[..., 1]) * r + ijk[..., 2]

    def occupied(self, x: torch.Tensor) -> torch.Tensor:
        """Whether the cells holding points ``x`` (..., 3) are occupied."""
        return self.mask[self.cell_index(x)]

    def cell_centres(self, index: torch.Tensor, jitter: bool = True) -> torch.Tensor:
        r = self.resolution
        ijk = torch.stack([index // (r * r), (index // r) % r, index % r], dim=-1).to(torch.float32)
        offset = torch.rand_like(ijk) if jitter else torch.full_like(ijk, 0.5)
        return (ijk + offset) / r * 2.0 - 1.0

    @torch.no_grad()
    def update(
        self,
        density: Callable[[torch.Tensor], torch.Tensor],
        step_size: float,
        warmup: bool,
        decay: float = 0.95,
        threshold: float = 0.01,
        chunk: int = 1 << 16,
    ) -> None:
        """Refresh cells from ``density`` (points in [-1, 1]^3 -> sigma); ``warmup`` evaluates every cell."""
        cells = self.values.numel()
        device = self.values.device
        if warmup:
            index = torch.arange(cells, device=device)
        else:
            quarter = max(1, cells // 4)
            uniform = torch.randint(cells, (quarter,), device=device)
            occupied = torch.nonzero(self.mask).squeeze(-1)
            if len(occupied) > quarter:
                occupied = occupied[torch.randint(len(occupied), (quarter,), device=device)]
            index = torch.cat([uniform, occupied])
        fresh = torch.empty(len(index), device=device)
        for start in range(0, len(index), chunk):
            part = index[start : start + chunk]
            fresh[start : start + chunk] = density(self.cell_centres(part)).float() * step_size
        values = self.values * decay
        values.scatter_reduce_(0, index, fresh, reduce="amax")  # a cell drawn twice keeps its larger value
        self.values.copy_(values)
        self.mask.copy_(self.values > min(float(self.values.mean()), threshold))

    @property
    def fraction(self) -> float:
        return float(self.mask.float().mean())
