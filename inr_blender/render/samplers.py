"""Where to evaluate a field along rays: stratified, hierarchical (inverse-CDF) and occupancy-grid marching.

Every sampler returns distances ``t`` (R, K) along unit-direction rays and the
segment lengths ``deltas`` (R, K) that :func:`.volume.composite` integrates.
"""

from __future__ import annotations

import torch

from .occupancy import OccupancyGrid


def stratified(near: torch.Tensor, far: torch.Tensor, count: int, perturb: bool) -> torch.Tensor:
    """``count`` distances per ray in [near, far]: one uniform draw per equal bin (bin centres without ``perturb``)."""
    edges = torch.linspace(0.0, 1.0, count + 1, device=near.device)
    lower, upper = edges[:-1], edges[1:]
    u = torch.rand(len(near), count, device=near.device) if perturb else torch.full((len(near), count), 0.5, device=near.device)
    s = lower + (upper - lower) * u
    return near[:, None] + (far - near)[:, None] * s


def deltas_of(t: torch.Tensor, last: float = 1e10) -> torch.Tensor:
    """Segment lengths t_{i+1} - t_i, the last one ``last`` (NeRF's 1e10: the ray ends in the background)."""
    return torch.cat([t[:, 1:] - t[:, :-1], torch.full_like(t[:, :1], last)], dim=-1)


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, count: int, perturb: bool) -> torch.Tensor:
    """NeRF's hierarchical sampling: ``count`` draws from the piecewise-constant pdf of ``weights`` (R, B) over ``bins`` (R, B + 1)."""
    weights = weights + 1e-5  # no zero-probability bin
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)], dim=-1)
    if perturb:
        u = torch.rand(len(bins), count, device=bins.device)
    else:
        u = torch.linspace(0.0, 1.0, count, device=bins.device).expand(len(bins), count)
    u = u.contiguous()
    above = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[-1] - 1)
    below = above - 1
    cdf_lo, cdf_hi = cdf.gather(1, below), cdf.gather(1, above)
    bin_lo, bin_hi = bins.gather(1, below), bins.gather(1, above)
    span = torch.where(cdf_hi - cdf_lo < 1e-5, torch.ones_like(cdf_lo), cdf_hi - cdf_lo)
    return bin_lo + (u - cdf_lo) / span * (bin_hi - bin_lo)


def march(
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    step: float,
    grid: OccupancyGrid,
    perturb: bool,
    max_steps: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Instant-NGP's marching: fixed steps of ``step`` from ``near`` to ``far`` (local units), kept where the grid is occupied.

    Returns ``t`` (R, K) and ``mask`` (R, K), the kept samples packed to the
    left of each row (K = the most any ray keeps), the segment length
    ``step``-filled ``deltas``, and the number of samples kept (read back with K,
    in the one transfer the packing needs). Rays that keep nothing have an all-False row.
    """
    span = (far - near).clamp_min(0.0)
    steps = min(max_steps, max(1, int(torch.ceil(span.max() / step).item()) if len(span) else 1))
    offset = torch.rand(len(near), 1, device=near.device) if perturb else torch.full((len(near), 1), 0.5, device=near.device)
    t = near[:, None] + (torch.arange(steps, device=near.device)[None, :] + offset) * step  # (R, S)
    inside = t < far[:, None]
    points = origins[:, None, :] + directions[:, None, :] * t[..., None]
    keep = inside & grid.occupied(points)
    count = keep.sum(dim=-1)
    most, kept = torch.stack([count.max(), count.sum()]).tolist() if len(count) else (0, 0)
    width = max(1, int(most))
    # Pack the kept samples to the left: slot = number of kept samples before it in its row.
    slot = torch.cumsum(keep, dim=-1) - 1
    rows = torch.arange(len(near), device=near.device)[:, None].expand_as(keep)
    packed_t = torch.zeros(len(near), width, device=near.device, dtype=t.dtype)
    packed_t[rows[keep], slot[keep]] = t[keep]
    mask = torch.arange(width, device=near.device)[None, :] < count[:, None]
    deltas = torch.where(mask, torch.full_like(packed_t, step), torch.zeros_like(packed_t))
    return packed_t, mask, deltas, int(kept)
