"""Pinhole cameras in the Blender/OpenGL convention, and the rays through their pixels.

A camera is a camera-to-world matrix ``c2w`` (4, 4) whose camera looks down its
local -Z with +Y up and +X right (Blender's camera objects, NeRF-synthetic's
``transform_matrix``), plus intrinsics ``(fx, fy, cx, cy)`` in pixels. Pixel
(i, j) is column i from the left and row j from the top; its centre is at
(i + 0.5, j + 0.5), as in nerfstudio.
"""

from __future__ import annotations

import numpy as np
import torch


def camera_directions(u: torch.Tensor, v: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-space directions (z = -1) through image points (u right, v down, in pixels); intrinsics (..., 4)."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    return torch.stack([(u - cx) / fx, -(v - cy) / fy, -torch.ones_like(u)], dim=-1)


def rays_from_pixels(
    c2w: torch.Tensor, intrinsics: torch.Tensor, i: torch.Tensor, j: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World rays through pixel centres (i, j) of cameras ``c2w`` (R, 4, 4) / ``intrinsics`` (R, 4).

    Returns origins (R, 3), unit directions (R, 3) and ``z_scale`` (R,): the
    camera-space depth per unit of distance along the ray (distance t is at
    z-depth t * z_scale).
    """
    d_cam = camera_directions(i.to(c2w.dtype) + 0.5, j.to(c2w.dtype) + 0.5, intrinsics.to(c2w.dtype))
    d_world = torch.einsum("rij,rj->ri", c2w[:, :3, :3], d_cam)
    norm = d_world.norm(dim=-1, keepdim=True)
    return c2w[:, :3, 3].expand_as(d_world), d_world / norm, (1.0 / norm).squeeze(-1)


def image_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays of every pixel of one camera, row by row from the top: (H*W, 3), (H*W, 3), (H*W,)."""
    j, i = torch.meshgrid(torch.arange(height, device=c2w.device), torch.arange(width, device=c2w.device), indexing="ij")
    n = width * height
    return rays_from_pixels(c2w[None].expand(n, 4, 4), intrinsics[None].expand(n, 4), i.reshape(-1), j.reshape(-1))


def project_points(c2w: np.ndarray, intrinsics: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (u right, v down, pixels from the top-left corner) and z-depth of world ``points`` (N, 3)."""
    w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
    p = np.asarray(points, dtype=np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    fx, fy, cx, cy = np.asarray(intrinsics, dtype=np.float64)
    depth = -p[:, 2]
    return np.stack([cx + fx * p[:, 0] / depth, cy - fy * p[:, 1] / depth], axis=-1), depth


def ray_box(origins: torch.Tensor, directions: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the box [lo, hi] (slab test); exit <= entry when they miss."""
    inv = 1.0 / torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t0, t1 = (lo - origins) * inv, (hi - origins) * inv
    near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    return near, far


def local_frame(aabb: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (3,) and half-size of the cube around the scene box ``aabb`` (2, 3): world = centre + scale * local,
    local in [-1, 1]^3."""
    aabb = np.asarray(aabb, dtype=np.float64)
    return 0.5 * (aabb[0] + aabb[1]), float(0.5 * (aabb[1] - aabb[0]).max())


def to_local_cameras(c2w: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """Camera matrices (..., 4, 4) in the field's local frame (rotation kept, position moved and scaled)."""
    local = np.array(c2w, dtype=np.float64, copy=True)
    local[..., :3, 3] = (local[..., :3, 3] - center) / scale
    return local
