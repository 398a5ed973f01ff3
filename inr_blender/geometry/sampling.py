"""Point sampling: mesh surfaces, per-point scales, and training samples.

Also the normalisation into a field's local frame: world = center + scale * local,
with the data's bounding box centred at the origin and its longest half-extent
mapped to ``DATA_EXTENT`` (0.8), inside the field's domain [-1, 1]^3.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..context import JobError

DATA_EXTENT = 0.8  # the data's longest half-extent in the local frame


def face_areas_and_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face areas (F,) and unit normals (F, 3) from the winding (zero for degenerate faces)."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[np.asarray(faces, dtype=np.int64)]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(cross, axis=1)
    normals = np.divide(cross, length[:, None], out=np.zeros_like(cross), where=length[:, None] > 0)
    return 0.5 * length, normals


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` points uniformly by area on a triangle mesh.

    Returns points (count, 3) and the unit normals of the faces they lie on
    (count, 3), both float64. A mesh with zero total area is refused.
    """
    points, normals, _ = sample_surface_faces(vertices, faces, count, seed)
    return points, normals


def sample_surface_faces(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`sample_surface`'s points and normals, and the index (count,) of the face each lies on."""
    areas, normals = face_areas_and_normals(vertices, faces)
    total = float(areas.sum())
    if not np.isfinite(total) or total <= 0.0:
        raise JobError("degenerate mesh: its total surface area is zero")
    rng = np.random.default_rng(seed)
    face_idx = rng.choice(len(areas), size=int(count), p=areas / total)
    u, w = rng.random(count), rng.random(count)
    flip = u + w > 1.0  # fold the unit square onto the triangle
    u[flip], w[flip] = 1.0 - u[flip], 1.0 - w[flip]
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)[face_idx]]
    points = tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + w[:, None] * (tri[:, 2] - tri[:, 0])
    return points, normals[face_idx], face_idx


def knn_sigma(points: np.ndarray, k: int = 50) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour (itself excluded), shape (N,).

    IGR uses k=50 as the per-point scale of its near-surface Gaussian samples.
    With fewer than k+1 points, the farthest neighbour is used.
    """
    points = np.asarray(points, dtype=np.float64)
    k = min(int(k), len(points) - 1)
    if k < 1:
        raise JobError("need at least two points to estimate point spacing")
    dist, _ = cKDTree(points).query(points, k=k + 1, workers=-1)
    return dist[:, -1]


def normalization(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Center and scale of the local frame for ``points``: world = center + scale * local."""
    points = np.asarray(points, dtype=np.float64)
    lo, hi = points.min(axis=0), points.max(axis=0)
    half = float((hi - lo).max()) / 2.0
    if not half > 0.0:
        raise JobError("degenerate input: all points are identical")
    return (lo + hi) / 2.0, half / DATA_EXTENT


def to_local(points: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """World coordinates to the field's local frame."""
    return (np.asarray(points, dtype=np.float64) - np.asarray(center)) / scale


def to_world(points: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """Local-frame coordinates to world coordinates."""
    return np.asarray(points, dtype=np.float64) * scale + np.asarray(center)


def near_surface_samples(points: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """One Gaussian perturbation per point, with per-point standard deviation ``sigma`` (N,)."""
    return points + torch.randn_like(points) * sigma[:, None]


def uniform_samples(count: int, half_width: float, device: torch.device) -> torch.Tensor:
    """``count`` points uniform in the cube [-half_width, half_width]^3."""
    return (torch.rand(count, 3, device=device) * 2.0 - 1.0) * half_width


class SignedDistanceEstimate:
    """Signed distances to an oriented point cloud: distance to the nearest point, sign of the mean of
    (q - p_i) . n_i over the k nearest points (positive outside). Reliable away from the cloud (a few
    point spacings or more), where the surface terms of a fit give no signal."""

    def __init__(self, points: np.ndarray, normals: np.ndarray, k: int = 8) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.normals = np.asarray(normals, dtype=np.float64)
        self.tree = cKDTree(self.points)
        self.k = max(1, min(int(k), len(self.points)))

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        return self.with_nearest(queries)[0]

    def with_nearest(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The signed distances and the index of each query's nearest point (one k-d tree query)."""
        queries = np.asarray(queries, dtype=np.float64)
        dist, idx = self.tree.query(queries, k=self.k, workers=-1)
        dist, idx = dist.reshape(len(queries), self.k), idx.reshape(len(queries), self.k)
        side = np.einsum("qkd,qkd->qk", queries[:, None, :] - self.points[idx], self.normals[idx]).mean(axis=1)
        return np.where(side >= 0, 1.0, -1.0) * dist[:, 0], idx[:, 0]


def far_samples(estimate: SignedDistanceEstimate, count: int, min_distance: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points of [-1, 1]^3 at least ``min_distance`` from the cloud, with their estimated signed distances."""
    queries = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(int(count), 3))
    sd = estimate(queries)
    keep = np.abs(sd) >= min_distance
    return queries[keep], sd[keep]


def near_surface_signs(
    estimate: SignedDistanceEstimate, sigma: np.ndarray, count: int, min_distance: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` near-surface samples drawn as a fit draws them (a random point of the cloud plus a Gaussian of
    that point's ``sigma``, see :func:`near_surface_samples`) and their sign from ``estimate`` (one k-d tree
    query): +1 outside, -1 inside, 0 (unknown) closer than ``min_distance`` to the cloud."""
    rng = np.random.default_rng(seed)
    index = rng.integers(len(estimate.points), size=int(count))
    queries = estimate.points[index] + rng.normal(size=(int(count), 3)) * np.asarray(sigma, dtype=np.float64)[index, None]
    sd = estimate(queries)
    return queries, np.where(np.abs(sd) >= min_distance, np.sign(sd), 0.0)
