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
