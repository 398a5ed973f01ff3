"""Iso-points (Wang Yifan et al. 2021): an explicit, evenly spread sample of a field's zero level set.

1. Projection: 8 x count uniform points of the domain take Newton steps onto
   the zero level (published: 10 iterations, tolerance 5e-5; each step
   clamped); the points that do not converge are discarded and counted, and an
   even subset of ``count`` of the others is kept.
2. Uniform resampling: tangential repulsion from the k nearest neighbours
   (published k = 8), then reprojection (:func:`.projection.repel`), with a
   step and a reach set by the points' mean spacing.
3. Upsampling (edge-aware, after Huang et al. 2013): new points at the
   midpoints of the widest gaps between neighbours of similar normal, then
   reprojected and (with resampling on) spread by the same repulsion. Gaps
   across a sharp edge (dissimilar normals) are not filled, so edges stay sharp
   while sparse regions fill up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field as dataclass_field
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from ..context import JobContext, JobError
from ..device import available_memory_bytes
from ..settings.isopoints import SPEC
from .projection import project, repel

# Starting points per iso-point. Projected uniform points pile up on some parts of a surface and rarely reach
# others (concave ones): on a kitten hash-grid field, the largest hole left by all converged points was 9.9% of
# the bounding radius from 2 starts per iso-point, 4.8% from 8 and 3.4% from 32; an even subset is then kept.
STARTS = 8
BYTES_PER_POINT = 4096  # projection, repulsion and k-d trees, measured generously per requested point
FLAT_GRADIENT = 1e-6


def check_memory(p: dict[str, Any]) -> None:
    """JobError when the iso-points of settings ``p`` would need more than half the memory available."""
    total = p["count"] + p["upsample"]
    needed, available = total * BYTES_PER_POINT, available_memory_bytes()
    if needed > available // 2:
        raise JobError(
            f"{total:,} iso-points need about {needed / 1e9:.1f} GB, more than half of the {available / 1e9:.1f} GB available: ask for fewer"
        )


@dataclass
class IsoPoints:
    """Points on the zero level (local frame), their unit normals and |f|, with what each step did."""

    points: np.ndarray
    normals: np.ndarray
    residual: np.ndarray
    stats: dict[str, Any] = dataclass_field(default_factory=dict)


def spacing(points: np.ndarray) -> tuple[float, float]:
    """Mean nearest-neighbour distance and its coefficient of variation (std / mean); zeros for fewer than 2 points."""
    if len(points) < 2:
        return 0.0, 0.0
    d = cKDTree(points).query(points, k=2, workers=-1)[0][:, 1]
    mean = float(d.mean())
    return mean, float(d.std()) / mean if mean > 0 else 0.0


def even_subset(points: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of ``count`` of ``points`` spread evenly: one per cell of a grid whose cell size is searched so
    that at least ``count`` cells are occupied, then ``count`` of those at random."""
    if len(points) <= count:
        return np.arange(len(points))
    lo, hi = 1e-6, float(np.ptp(points, axis=0).max()) or 1.0
    best = None
    for _ in range(30):  # the largest cell with enough occupied cells
        cell = 0.5 * (lo + hi)
        _, first = np.unique(np.floor(points / cell).astype(np.int64), axis=0, return_index=True)
        if len(first) >= count:
            best, lo = first, cell
        else:
            hi = cell
        if hi - lo < 1e-4 * hi:
            break
    if best is None:
        best = np.arange(len(points))
    return np.sort(np.random.default_rng(seed).choice(best, size=count, replace=False))


Projected = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # points, |f| there, grad f there (as project returns)


def _keep(projected: Projected, mask: torch.Tensor) -> Projected:
    return tuple(a[mask] for a in projected)  # type: ignore[return-value]


def _converged(projected: Projected, tolerance: float) -> torch.Tensor:
    q, residual, _ = projected
    return (residual < tolerance) & (q.abs().amax(dim=1) <= 1.0)


def upsample(
    field: nn.Module,
    projected: Projected,
    add: int,
    k: int = 8,
    similarity: float = 0.9,
    iterations: int = 10,
    tolerance: float = 5e-5,
) -> Projected:
    """The points with up to ``add`` more: midpoints of the widest gaps to a neighbour of similar normal
    (cos >= ``similarity``), reprojected. Stops early when no gap is left to fill."""
    target = len(projected[0]) + int(add)
    while len(projected[0]) < target:
        q, _, g = projected
        normal = torch.nn.functional.normalize(g, dim=1).cpu().numpy()
        qn = q.cpu().numpy()
        dist, idx = cKDTree(qn).query(qn, k=min(k, len(qn) - 1) + 1, workers=-1)
        dist, idx = dist[:, 1:], idx[:, 1:]
        similar = np.einsum("nd,nkd->nk", normal, normal[idx]) >= similarity
        gap = np.where(similar, dist, -1.0)
        partner = gap.argmax(axis=1)
        width = gap[np.arange(len(qn)), partner]
        # each pair once; the widest gaps first, at most half the points per round
        pairs = np.sort(np.stack([np.arange(len(qn)), idx[np.arange(len(qn)), partner]], axis=1), axis=1)
        order = np.argsort(-width)
        pairs, width = pairs[order], width[order]
        _, first = np.unique(pairs, axis=0, return_index=True)
        first = np.sort(first)
        pairs, width = pairs[first][width[first] > 0], width[first][width[first] > 0]
        take = min(target - len(q), max(1, len(qn) // 2), len(pairs))
        if take == 0:
            break
        mid = torch.as_tensor(0.5 * (qn[pairs[:take, 0]] + qn[pairs[:take, 1]]), dtype=q.dtype, device=q.device)
        new = project(field, mid, iterations)
        new = _keep(new, _converged(new, tolerance))
        if len(new[0]) == 0:
            break
        projected = tuple(torch.cat([a, b]) for a, b in zip(projected, new))  # type: ignore[assignment]
    return projected


def _resample(field: nn.Module, projected: Projected, p: dict[str, Any], ctx: JobContext) -> tuple[Projected, int]:
    """Uniform resampling, reprojection, and the points that then failed to converge (dropped, counted)."""
    q, _, g = projected
    if p["resample_steps"] == 0 or len(q) <= p["k"]:
        return projected, 0
    # step and reach from the points' own mean spacing h: alpha = 0.4 h, sigma = (2 h)^2 (measured on a
    # sphere, 2000 points, 10 steps: spacing CV 0.56 -> 0.155; Clemot & Digne's values for 3 neighbours,
    # alpha = 0.1 sqrt(D / n), sigma = 16 D / n, gave 0.34)
    h, _ = spacing(q.cpu().numpy())
    q, _, _ = repel(field, q, g, p["resample_steps"], p["k"], 0.4 * h, (2.0 * h) ** 2, ctx=ctx)
    projected = project(field, q, p["iterations"])
    keep = _converged(projected, p["tolerance"])
    return _keep(projected, keep), int((~keep).sum())


def sample_isopoints(field: nn.Module, device: torch.device, p: dict[str, Any], ctx: JobContext) -> IsoPoints:
    """Iso-points of ``field`` (see the module docstring); JobError when there is no surface to sample.

    ``p``: the settings of :data:`inr_blender.settings.isopoints.SPEC`, resolved (this does not check them again);
    those missing take their defaults (a caller inside the backend may give only what it changes).
    """
    p = {**SPEC.defaults(), **p}
    check_memory(p)
    started = time.monotonic()
    generator = torch.Generator(device="cpu").manual_seed(int(p["seed"]))
    start = (torch.rand(STARTS * p["count"], 3, generator=generator) * 2.0 - 1.0).to(device)
    ctx.progress(0, 1, None, "projecting points onto the surface")
    projected = project(field, start, p["iterations"])
    keep = _converged(projected, p["tolerance"])
    if not bool(keep.any()):
        if not bool((projected[2].norm(dim=1) > FLAT_GRADIENT).any()):
            raise JobError("the field's gradient vanishes everywhere in its domain: Newton steps cannot reach a surface")
        raise JobError(f"the field has no surface in its domain: no point converged onto its zero level (|f| < {p['tolerance']:g}) inside [-1, 1]^3")
    projected = _keep(projected, keep)
    discarded = len(start) - len(projected[0])  # did not converge (or left the domain)
    if len(projected[0]) > p["count"]:
        chosen = even_subset(projected[0].cpu().numpy(), p["count"], int(p["seed"]))
        projected = _keep(projected, torch.as_tensor(chosen, device=device))
    if p["resample"]:
        projected, lost = _resample(field, projected, p, ctx)
        discarded += lost
    before = len(projected[0])
    if p["upsample"] > 0 and before > 2:
        ctx.progress(0, 1, None, "upsampling")
        projected = upsample(field, projected, p["upsample"], p["k"], p["normal_similarity"], p["iterations"], p["tolerance"])
        if p["resample"]:  # the inserted points repel the dense areas too
            projected, lost = _resample(field, projected, p, ctx)
            discarded += lost
    q, residual, g = projected
    points = q.cpu().numpy().astype(np.float64)
    mean, cv = spacing(points)
    stats = {
        "num_points": int(len(points)),
        "num_started": int(len(start)),
        "num_discarded": int(discarded),
        "num_upsampled": int(len(points) - before),
        "spacing_cv": cv,
        "spacing_mean": mean,
        "mean_residual": float(residual.mean()) if len(residual) else 0.0,
        "seconds_sampling": time.monotonic() - started,
    }
    return IsoPoints(points, torch.nn.functional.normalize(g, dim=1).cpu().numpy(), residual.cpu().numpy(), stats)
