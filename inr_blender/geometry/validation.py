"""Checks on incoming geometry arrays, with one-line reasons for the user."""

from __future__ import annotations

import numpy as np

from ..context import JobError


def check_points(points: np.ndarray, name: str = "points") -> np.ndarray:
    """A finite, non-empty (N, 3) float64 array, or JobError."""
    arr = np.asarray(points)
    if arr.dtype.kind not in "fiu":
        raise JobError(f"{name} must be numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise JobError(f"{name} must have shape (N, 3), got {arr.shape}")
    if len(arr) == 0:
        raise JobError(f"{name} is empty")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise JobError(f"{name} contains NaN or Inf coordinates ({int(bad.sum())} of {len(arr)} rows)")
    return arr.astype(np.float64, copy=False)


def check_normals(normals: np.ndarray, count: int, name: str = "normals") -> np.ndarray:
    """Finite (count, 3) normals rescaled to unit length, or JobError."""
    arr = check_points(normals, name)
    if len(arr) != count:
        raise JobError(f"{name} has {len(arr)} rows but there are {count} points")
    length = np.linalg.norm(arr, axis=1)
    zero = length < 1e-12
    if zero.any():
        raise JobError(f"{name} contains {int(zero.sum())} zero-length vectors")
    return arr / length[:, None]


def check_mesh(vertices: np.ndarray, faces: np.ndarray, name: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Finite vertices and in-range (F, 3) integer faces, or JobError."""
    v = check_points(vertices, f"{name} vertices")
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3:
        raise JobError(f"{name} faces must have shape (F, 3) (triangles), got {f.shape}")
    if len(f) == 0:
        raise JobError(f"{name} has no faces")
    if f.dtype.kind not in "iu":
        raise JobError(f"{name} faces must be integers, got dtype {f.dtype}")
    if f.min() < 0 or f.max() >= len(v):
        raise JobError(f"{name} faces index vertices outside 0..{len(v) - 1}")
    return v, f.astype(np.int64, copy=False)
