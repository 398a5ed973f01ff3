"""Analytic fields for the skeleton and iso-point tests, in a field's local frame.

The Smooth* ones are the exact SDF of their shape with the kink on the medial axis rounded off
(the distance to the axis d becomes sqrt(d^2 + eps^2); a box's max over faces
becomes a log-sum-exp), so that, like a field trained with the TV term, its
gradient norm dips to a minimum on the medial axis.
"""

from __future__ import annotations

import torch
from torch import nn


class SmoothSphere(nn.Module):
    """A ball of ``radius`` around ``center``: medial axis = the centre."""

    def __init__(self, radius: float = 0.6, center=(0.0, 0.0, 0.0), eps: float = 0.05) -> None:
        super().__init__()
        self.radius, self.eps = radius, eps
        self.register_buffer("center", torch.tensor(center, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((x - self.center).square().sum(-1) + self.eps**2) - self.radius


class SmoothCapsule(nn.Module):
    """Points within ``radius`` of the segment a-b: medial axis = the segment."""

    def __init__(self, a=(-0.4, 0.0, 0.0), b=(0.4, 0.0, 0.0), radius: float = 0.3, eps: float = 0.05) -> None:
        super().__init__()
        self.radius, self.eps = radius, eps
        self.register_buffer("a", torch.tensor(a, dtype=torch.float32))
        self.register_buffer("b", torch.tensor(b, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ab = self.b - self.a
        t = ((x - self.a) @ ab / ab.dot(ab)).clamp(0.0, 1.0)
        d2 = (x - self.a - t[:, None] * ab).square().sum(-1)
        return torch.sqrt(d2 + self.eps**2) - self.radius


class SmoothBox(nn.Module):
    """An axis-aligned box of half-extents ``half``: the max over the faces' q_i = |x_i| - h_i, smoothed."""

    def __init__(self, half=(0.6, 0.4, 0.2), sharpness: float = 60.0, eps: float = 0.01) -> None:
        super().__init__()
        self.sharpness, self.eps = sharpness, eps
        self.register_buffer("extent", torch.tensor(half, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.sqrt(x.square() + self.eps**2) - self.extent
        return torch.logsumexp(self.sharpness * q, dim=-1) / self.sharpness


class Sphere(nn.Module):
    """The exact SDF of a sphere (no smoothing: its gradient is undefined at the centre)."""

    def __init__(self, radius: float = 0.6, center=(0.0, 0.0, 0.0)) -> None:
        super().__init__()
        self.radius = radius
        self.register_buffer("center", torch.tensor(center, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center).norm(dim=-1) - self.radius


class Cube(nn.Module):
    """The exact SDF of the cube [-h, h]^3, sharp edges included."""

    def __init__(self, half: float = 0.5) -> None:
        super().__init__()
        self.half = half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.abs() - self.half
        return q.clamp_min(0).norm(dim=-1) + q.amax(dim=-1).clamp_max(0)


class Constant(nn.Module):
    """The same value everywhere: no surface, and a gradient that vanishes."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full(x.shape[:1], self.value) + 0.0 * x.sum(-1)


def bumpy_sphere(count: int, radius: float = 0.5, amplitude: float = 0.02, frequency: float = 20.0, seed: int = 0):
    """``count`` points (numpy, (N, 3)) of the surface r(u) = radius + bumps(u) over unit directions u, their unit
    normals, and ``bumps``, the function u -> amplitude * sin(f u_x) sin(f u_y) sin(f u_z) (numpy)."""
    import numpy as np

    def bumps(u):
        return amplitude * np.sin(frequency * u[:, 0]) * np.sin(frequency * u[:, 1]) * np.sin(frequency * u[:, 2])

    u = np.random.default_rng(seed).normal(size=(count, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    x = torch.tensor(u * (radius + bumps(u))[:, None], requires_grad=True)
    d = x / x.norm(dim=1, keepdim=True)
    implicit = x.norm(dim=1) - radius - amplitude * torch.sin(frequency * d[:, 0]) * torch.sin(frequency * d[:, 1]) * torch.sin(frequency * d[:, 2])
    (g,) = torch.autograd.grad(implicit.sum(), x)
    return x.detach().numpy(), (g / g.norm(dim=1, keepdim=True)).numpy(), bumps


def _capsule_surface(a, b, radius: float, count: int, rng):
    """``count`` points uniform by area on the capsule of ``radius`` around the segment a-b, and their unit normals."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    axis = b - a
    length = float(np.linalg.norm(axis))
    side, caps = 2 * np.pi * radius * length, 4 * np.pi * radius**2
    on_side = rng.random(count) < side / (side + caps)
    n = rng.normal(size=(count, 3))
    t = np.where(on_side, rng.random(count), 0.0)
    n[on_side] -= np.outer(n[on_side] @ axis / length**2, axis)  # perpendicular to the axis on the side
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    caps_end = ~on_side & (n @ axis > 0)  # a cap's hemisphere faces away from the segment
    t[caps_end] = 1.0
    return a + t[:, None] * axis + radius * n, n


def _segment_distance(x, a, b):
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ab = b - a
    t = np.clip((x - a) @ ab / ab.dot(ab), 0.0, 1.0)
    return np.linalg.norm(x - a - t[:, None] * ab, axis=1)


# A camel-like animal (local frame, about 1.6 long): a body, a neck and a head, four legs, and a thin tail whose
# radius (0.02) is two or three cells of the Fast preset's finest grid level (2/256).
CAMEL = (
    ((-0.35, 0.0, 0.15), (0.3, 0.0, 0.15), 0.2),  # body
    ((0.3, 0.0, 0.2), (0.5, 0.0, 0.55), 0.08),  # neck
    ((0.5, 0.0, 0.55), (0.72, 0.0, 0.5), 0.08),  # head
    ((-0.3, 0.1, 0.0), (-0.3, 0.1, -0.6), 0.05),  # legs
    ((-0.3, -0.1, 0.0), (-0.3, -0.1, -0.6), 0.05),
    ((0.25, 0.1, 0.0), (0.25, 0.1, -0.6), 0.05),
    ((0.25, -0.1, 0.0), (0.25, -0.1, -0.6), 0.05),
    ((-0.5, 0.0, 0.2), (-0.75, 0.0, -0.2), 0.02),  # tail
)
CAMEL_TAIL = CAMEL[-1]


def capsules_cloud(capsules=CAMEL, count: int = 30000, seed: int = 0):
    """Points (N, 3) uniform by area on the boundary of a union of capsules ((a, b, radius), ...) and their unit
    normals: each capsule's samples that lie inside no other capsule."""
    import numpy as np

    rng = np.random.default_rng(seed)
    areas = np.array([2 * np.pi * r * np.linalg.norm(np.subtract(b, a)) + 4 * np.pi * r * r for a, b, r in capsules])
    points, normals = [], []
    for i, ((a, b, r), share) in enumerate(zip(capsules, areas / areas.sum(), strict=True)):
        p, n = _capsule_surface(a, b, r, max(64, int(count * share)), rng)
        outside = np.ones(len(p), dtype=bool)
        for j, (a2, b2, r2) in enumerate(capsules):
            if j != i:
                outside &= _segment_distance(p, a2, b2) > r2
        points.append(p[outside])
        normals.append(n[outside])
    return np.concatenate(points), np.concatenate(normals)


def torus_knot_cloud(count: int = 30000, p: int = 2, q: int = 3, tube: float = 0.08, seed: int = 0):
    """Points (N, 3) on a tube of radius ``tube`` around the (p, q) torus knot (about 1.6 across), their unit normals,
    and the knot's curve (M, 3): a surface of genus 1 with holes the field must leave empty."""
    import numpy as np
    from scipy.spatial import cKDTree

    t = np.linspace(0.0, 2 * np.pi, 20000, endpoint=False)
    r = 0.5 + 0.25 * np.cos(q * t)
    curve = np.stack([r * np.cos(p * t), r * np.sin(p * t), -0.25 * np.sin(q * t)], axis=1)
    tangent = np.roll(curve, -1, axis=0) - np.roll(curve, 1, axis=0)
    rng = np.random.default_rng(seed)
    speed = np.linalg.norm(tangent, axis=1)
    k = rng.choice(len(curve), size=count, p=speed / speed.sum())  # uniform along the curve's length
    d = rng.normal(size=(count, 3))
    d -= (d * tangent[k]).sum(1, keepdims=True) * tangent[k] / speed[k, None] ** 2
    points = curve[k] + tube * d / np.linalg.norm(d, axis=1, keepdims=True)
    _, nearest = cKDTree(curve).query(points)  # the normal points away from the nearest point of the curve
    normals = points - curve[nearest]
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return curve[nearest] + tube * normals, normals, curve
