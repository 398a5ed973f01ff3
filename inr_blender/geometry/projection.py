"""Points on a field's level set: Newton projection and tangential repulsion.

Shared by the neural skeleton (its surface samples) and iso-points. Everything
works in the field's local frame, where the domain is [-1, 1]^3.

- :func:`project` moves points onto the level set with Newton steps
  q <- q - (f(q) - level) grad f / |grad f|^2, each step clamped in length.
- :func:`repel` spreads points evenly over the level set: each point moves away
  from its k nearest neighbours within the tangent plane, then is projected back.
- :func:`surface_samples` does both, starting from uniform points of the domain.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from ..context import JobContext, JobError
from ..fields.grad import value_and_gradient

CHUNK = 1 << 15  # points per field evaluation with gradients
DOMAIN_DIAGONAL = 2.0 * math.sqrt(3.0)


def values_and_gradients(field: nn.Module, points: torch.Tensor, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """f (N,) and grad f (N, 3) at ``points``, detached, evaluated in chunks."""
    values, grads = [], []
    for start in range(0, len(points), chunk):
        f, g = value_and_gradient(field, points[start : start + chunk])
        values.append(f.detach())
        grads.append(g.detach())
    if not values:
        return points.new_zeros(0), points.new_zeros(0, 3)
    return torch.cat(values), torch.cat(grads)


def project(
    field: nn.Module, points: torch.Tensor, iterations: int = 10, max_step: float = 0.1, level: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton-project ``points`` (N, 3) onto {f = level}; return the points and their final |f - level|.

    Each step's length is clamped to ``max_step`` so that a point where the
    gradient nearly vanishes cannot jump across the domain.
    """
    q = points.detach().clone()
    for _ in range(max(1, int(iterations))):
        f, g = values_and_gradients(field, q)
        r = f - level
        step = g * (r / g.square().sum(dim=1).clamp_min(1e-12))[:, None]
        length = step.norm(dim=1, keepdim=True)
        q = q - step * (max_step / length.clamp_min(max_step))
    f, _ = values_and_gradients(field, q)
    residual = (f - level).abs()
    return q, residual


def repel(
    field: nn.Module, points: torch.Tensor, steps: int = 50, k: int = 3, alpha: float | None = None,
    sigma: float | None = None, level: float = 0.0, ctx: JobContext | None = None,
) -> torch.Tensor:
    """Spread points on the level set: ``steps`` rounds of tangential repulsion, each followed by 2 Newton steps.

    Each point moves by -alpha * sum_j exp(-d_j^2 / sigma) t_j, where t_j is the
    unit direction to its j-th nearest neighbour projected into the tangent
    plane. Defaults scale with the point count n over the domain's diagonal D:
    alpha = 0.1 sqrt(D / n), sigma = 16 D / n (Clémot & Digne's values).
    """
    n = len(points)
    if n <= k:
        return points
    alpha = 0.1 * math.sqrt(DOMAIN_DIAGONAL / n) if alpha is None else alpha
    sigma = 16.0 * DOMAIN_DIAGONAL / n if sigma is None else sigma
    q = points.detach().clone()
    for s in range(int(steps)):
        _, g = values_and_gradients(field, q)
        normal = torch.nn.functional.normalize(g, dim=1)
        dist, idx = cKDTree(q.cpu().numpy()).query(q.cpu().numpy(), k=k + 1, workers=-1)
        dist = torch.as_tensor(dist[:, 1:], dtype=q.dtype, device=q.device)
        idx = torch.as_tensor(idx[:, 1:], device=q.device)
        direction = q[idx] - q[:, None, :]
        direction = direction - (direction * normal[:, None, :]).sum(-1, keepdim=True) * normal[:, None, :]
        direction = torch.nn.functional.normalize(direction, dim=2) * torch.exp(-dist.square() / sigma)[..., None]
        q, _ = project(field, q - alpha * direction.sum(dim=1), iterations=2, level=level)
        if ctx is not None:
            ctx.progress(s + 1, int(steps), None, "spreading surface samples")
    return q


def surface_samples(
    field: nn.Module, count: int, device: torch.device, seed: int = 0, iterations: int = 10,
    repulsion_steps: int = 50, tolerance: float = 1e-3, level: float = 0.0, ctx: JobContext | None = None,
) -> np.ndarray:
    """About ``count`` evenly spread points on {f = level} inside [-1, 1]^3 (local frame), float64 (M, 3).

    Starts from 2 * count uniform points, projects them, keeps those that
    converged (|f - level| < ``tolerance``) inside the domain, takes ``count`` of
    them at random and spreads them with :func:`repel`. Raises JobError if none
    converges: the field has no surface in its domain.
    """
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    start = (torch.rand(2 * int(count), 3, generator=generator) * 1.9 - 0.95).to(device)
    if ctx is not None:
        ctx.progress(0, 1, None, "projecting points onto the surface")
    q, residual = project(field, start, iterations, level=level)
    keep = (residual < tolerance) & (q.abs().amax(dim=1) <= 1.0)
    if not bool(keep.any()):
        raise JobError("the field has no surface in its domain: no point projects onto its zero level inside [-1, 1]^3")
    q = q[keep]
    if len(q) > count:
        q = q[torch.randperm(len(q), generator=generator)[: int(count)].to(device)]
    if repulsion_steps > 0:
        q = repel(field, q, repulsion_steps, level=level, ctx=ctx)
        q, residual = project(field, q, 1, level=level)
        q = q[(residual < tolerance) & (q.abs().amax(dim=1) <= 1.0)]
    return q.cpu().numpy().astype(np.float64)
