"""Points on a field's level set: Newton projection and tangential repulsion.

Shared by iso-points and, through them, the neural skeleton's surface samples. Everything
works in the field's local frame, where the domain is [-1, 1]^3.

- :func:`project` moves points onto the level set with Newton steps
  q <- q - (f(q) - level) grad f / |grad f|^2, each step clamped in length.
- :func:`repel` spreads points evenly over the level set: each point moves away
  from its k nearest neighbours within the tangent plane, then is projected back.

:mod:`.isopoints` builds its even samples of a surface from both.
"""

from __future__ import annotations

import torch
from scipy.spatial import cKDTree
from torch import nn

from ..context import JobContext
from ..fields.grad import value_and_gradient

CHUNK = 1 << 15  # points per field evaluation with gradients


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Newton-project ``points`` (N, 3) onto {f = level}; return the points, their final |f - level| and grad f there.

    Each step's length is clamped to ``max_step`` so that a point where the
    gradient nearly vanishes cannot jump across the domain.
    """
    q = points.detach().clone()
    for _ in range(max(1, int(iterations))):
        f, g = values_and_gradients(field, q)
        step = g * ((f - level) / g.square().sum(dim=1).clamp_min(1e-12))[:, None]
        length = step.norm(dim=1, keepdim=True)
        q = q - step * (max_step / length.clamp_min(max_step))
    f, g = values_and_gradients(field, q)
    return q, (f - level).abs(), g


def repel(
    field: nn.Module,
    points: torch.Tensor,
    grad: torch.Tensor,
    steps: int,
    k: int,
    alpha: float,
    sigma: float,
    level: float = 0.0,
    ctx: JobContext | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spread points on the level set: ``steps`` rounds of tangential repulsion, each followed by 2 Newton steps.

    ``grad`` is grad f at ``points``. Each point moves by -alpha * sum_j exp(-d_j^2 / sigma) t_j, where t_j
    is the unit direction to its j-th nearest neighbour projected into the tangent plane. Returns what
    :func:`project` returns for the final points.
    """
    q, residual, g = points.detach().clone(), None, grad
    if len(q) <= k:
        return project(field, q, 1, level=level)
    for s in range(int(steps)):
        normal = torch.nn.functional.normalize(g, dim=1)
        dist, idx = cKDTree(q.cpu().numpy()).query(q.cpu().numpy(), k=k + 1, workers=-1)
        dist = torch.as_tensor(dist[:, 1:], dtype=q.dtype, device=q.device)
        idx = torch.as_tensor(idx[:, 1:], device=q.device)
        direction = q[idx] - q[:, None, :]
        direction = direction - (direction * normal[:, None, :]).sum(-1, keepdim=True) * normal[:, None, :]
        direction = torch.nn.functional.normalize(direction, dim=2) * torch.exp(-dist.square() / sigma)[..., None]
        q, residual, g = project(field, q - alpha * direction.sum(dim=1), iterations=2, level=level)
        if ctx is not None:
            ctx.progress(s + 1, int(steps), None, "spreading points evenly")
    if residual is None:
        return project(field, q, 1, level=level)
    return q, residual, g
