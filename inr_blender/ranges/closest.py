"""Closest points on a field's zero level by branch and bound over boxes (any field with range rules).

For a batch of queries at once, each query owns a set of candidate boxes (the domain cube [-1, 1]^3 at first).
Each round drops the boxes that range analysis certifies one-signed and the boxes farther from their query than
its upper bound U, then splits the others into 8 until they are smaller than ``tolerance``. U is sound without a
distance-field assumption: the field is evaluated at every box centre, and for the nearest centre with f > 0 and
the nearest with f < 0 the segment joining them holds a zero; bisection on the sign brackets it, and the farther
end of the final bracket bounds the distance (near the foot point, so U exceeds the true distance by O(h^2)).
The closest point reported is that bracketed zero (when one was found; else the centre of the query's nearest
leaf box); the true distance lies in [lower, upper].
A query almost equidistant from a large part of the surface (the centre of a sphere) keeps many leaves: at most
``max_leaves`` per query are refined, the nearest ones; ``lower`` stays sound (it counts the dropped boxes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field as dataclass_field

import torch
from torch import Tensor, nn

from ..context import JobContext, JobError
from .search import field_values, unknown_boxes

DEFAULT_TOLERANCE = 1e-3  # leaf size (local units)
MAX_LEAVES = 2048  # candidate boxes refined per query and round
QUERY_CHUNK = 256


@dataclass
class ClosestPoints:
    """``closest`` (N, 3), ``distance`` (N,) = |query - closest|, the certified bounds ``lower``/``upper`` (N,) of the
    distance to the zero level (inside the cube), and statistics."""

    closest: Tensor
    distance: Tensor
    lower: Tensor
    upper: Tensor
    stats: dict = dataclass_field(default_factory=dict)


def closest_points(
    field: nn.Module,
    queries: Tensor,
    mode: str = "affine_all",
    tolerance: float = DEFAULT_TOLERANCE,
    max_leaves: int = MAX_LEAVES,
    ctx: JobContext | None = None,
) -> ClosestPoints:
    """Closest points of the zero level of ``field`` (inside [-1, 1]^3) to ``queries`` (N, 3), local frame."""
    started = time.monotonic()
    ctx = ctx or JobContext()
    if queries.ndim != 2 or queries.shape[1] != 3 or not len(queries):
        raise JobError(f"closest points need query points (N, 3) with N > 0, got shape {tuple(queries.shape)}")
    if not torch.isfinite(queries).all():
        raise JobError("the query points contain NaN or Inf")
    if not tolerance > 0:
        raise JobError(f"tolerance must be positive, got {tolerance:g}")
    queries = queries.double()
    parts: list[tuple[Tensor, Tensor, Tensor]] = []
    stats: dict[str, float] = {"box_evaluations": 0, "point_evaluations": 0}
    for start in range(0, len(queries), QUERY_CHUNK):
        ctx.progress(start, len(queries), None, "closest points")
        parts.append(_chunk(field, queries[start : start + QUERY_CHUNK], mode, tolerance, max_leaves, stats, ctx))
    closest, lower, upper = (torch.cat(p) for p in zip(*parts))
    if torch.isinf(lower).all():
        raise JobError("range analysis certifies that the field has no surface (zero level) inside its domain [-1, 1]^3")
    missing = torch.isinf(lower)
    closest[missing] = float("nan")
    distance = (closest - queries).norm(dim=1)
    stats.update(queries=len(queries), no_surface=int(missing.sum()), seconds=time.monotonic() - started)
    return ClosestPoints(closest.float(), distance.float(), lower.float(), upper.float(), stats)


def _chunk(field: nn.Module, q: Tensor, mode: str, tolerance: float, max_leaves: int, stats: dict, ctx: JobContext) -> tuple[Tensor, Tensor, Tensor]:
    n, device = len(q), q.device
    owner = torch.arange(n, device=device)
    lo, hi = -torch.ones(n, 3, dtype=torch.float64, device=device), torch.ones(n, 3, dtype=torch.float64, device=device)
    best = torch.full((2, n), float("inf"), dtype=torch.float64, device=device)  # nearest centre with f > 0, f < 0
    ends = torch.zeros(2, n, 3, dtype=torch.float64, device=device)  # and where they are
    upper = torch.full((n,), float("inf"), dtype=torch.float64, device=device)
    zero = torch.full((n, 3), float("nan"), dtype=torch.float64, device=device)  # the surface point that gave ``upper``
    dropped = torch.full((n,), float("inf"), dtype=torch.float64, device=device)  # nearest box dropped by the cap
    leaves: tuple[Tensor, ...] = (owner[:0], lo[:0], hi[:0])
    while len(owner):
        ctx.check_cancel()  # a round can take seconds (thousands of boxes per query): the helpers check each chunk too
        near = (q[owner] - q[owner].clamp(lo, hi)).norm(dim=1)  # the box's distance from its query
        keep = near <= upper[owner]
        keep[keep.clone()] = unknown_boxes(field, lo[keep].float(), hi[keep].float(), mode, ctx=ctx)
        stats["box_evaluations"] += int((near <= upper[owner]).sum())
        owner, lo, hi, near = owner[keep], lo[keep], hi[keep], near[keep]
        centre = (lo + hi) / 2
        f = field_values(field, centre.float(), ctx=ctx).double()
        stats["point_evaluations"] += len(f)
        d = (centre - q[owner]).norm(dim=1)
        for row, side in ((0, f > 0), (1, f < 0)):
            best[row].scatter_reduce_(0, owner[side], d[side], "amin")
            at = side & (d == best[row][owner])
            ends[row, owner[at]] = centre[at]
        _bisect_upper(field, q, ends, best, upper, zero, stats, ctx)
        keep = near <= upper[owner]
        owner, lo, hi, near = owner[keep], lo[keep], hi[keep], near[keep]
        owner, lo, hi, near = _cap(owner, lo, hi, near, max_leaves, dropped)
        leaf = (hi - lo).amax(dim=1) <= tolerance
        leaves = tuple(torch.cat([a, b[leaf]]) for a, b in zip(leaves, (owner, lo, hi)))
        owner, lo, hi = _octants(owner[~leaf], lo[~leaf], hi[~leaf])
    owner, lo, hi = leaves
    near = (q[owner] - q[owner].clamp(lo, hi)).norm(dim=1)
    keep = near <= upper[owner]
    owner, lo, hi, near = owner[keep], lo[keep], hi[keep], near[keep]
    lower = torch.full((n,), float("inf"), dtype=torch.float64, device=device)
    lower.scatter_reduce_(0, owner, near, "amin")
    closest = torch.full((n, 3), float("nan"), dtype=torch.float64, device=device)
    first = near == lower[owner]
    closest[owner[first]] = ((lo + hi) / 2)[first]
    closest = torch.where(torch.isfinite(upper)[:, None], zero, closest)  # a zero of the field when one was bracketed
    return closest, torch.minimum(lower, dropped), upper


def _bisect_upper(
    field: nn.Module, q: Tensor, ends: Tensor, best: Tensor, upper: Tensor, zero: Tensor, stats: dict, ctx: JobContext, steps: int = 30
) -> None:
    """Bisect between each query's nearest positive and negative centres; the bracket around their zero bounds
    the distance to the surface from above: lower ``upper`` (and set ``zero``) where it is nearer."""
    both = torch.isfinite(best).all(dim=0).nonzero().squeeze(1)
    if not len(both):
        return
    a, b = ends[0, both].clone(), ends[1, both].clone()  # f(a) > 0 > f(b)
    for _ in range(steps):
        mid = (a + b) / 2
        positive = field_values(field, mid.float(), ctx=ctx).double() > 0
        a, b = torch.where(positive[:, None], mid, a), torch.where(positive[:, None], b, mid)
    stats["point_evaluations"] += steps * len(both)
    bound = torch.maximum((a - q[both]).norm(dim=1), (b - q[both]).norm(dim=1))
    better = bound < upper[both]
    upper[both[better]] = bound[better]
    zero[both[better]] = ((a + b) / 2)[better]


def _cap(owner: Tensor, lo: Tensor, hi: Tensor, near: Tensor, cap: int, dropped: Tensor):
    """Keep each query's ``cap`` nearest boxes; the nearest dropped distance goes into ``dropped``."""
    order = torch.argsort(near)
    order = order[torch.argsort(owner[order], stable=True)]
    owner, lo, hi, near = owner[order], lo[order], hi[order], near[order]
    counts = torch.bincount(owner, minlength=len(dropped))
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(owner), device=owner.device) - starts[owner]
    over = rank >= cap
    if over.any():
        dropped.scatter_reduce_(0, owner[over], near[over], "amin")
    return owner[~over], lo[~over], hi[~over], near[~over]


def _octants(owner: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The 8 children of each box."""
    mid = (lo + hi) / 2
    bits = torch.cartesian_prod(*[torch.tensor([0, 1], device=lo.device)] * 3).bool()  # (8, 3)
    clo = torch.where(bits, mid[:, None], lo[:, None]).reshape(-1, 3)
    chi = torch.where(bits, hi[:, None], mid[:, None]).reshape(-1, 3)
    return owner.repeat_interleave(8), clo, chi
