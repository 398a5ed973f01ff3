"""Surface comparison metrics between two triangle meshes.

Both meshes are sampled uniformly by area; each metric is a function of the two
samples and their nearest-neighbour distances, registered in ``METRICS`` so
that more (F-score, normal consistency, Hausdorff) slot in beside Chamfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.spatial import cKDTree

from .sampling import sample_surface


@dataclass
class SurfaceSamples:
    """Area-uniform samples of the reference (a) and the candidate (b), with nearest-neighbour data."""

    points_a: np.ndarray
    normals_a: np.ndarray
    points_b: np.ndarray
    normals_b: np.ndarray
    dist_ab: np.ndarray  # from each a-sample to the nearest b-sample
    idx_ab: np.ndarray
    dist_ba: np.ndarray  # from each b-sample to the nearest a-sample
    idx_ba: np.ndarray
    radius: float  # bounding-sphere radius of the reference


def bounding_radius(vertices: np.ndarray) -> float:
    """Radius of the sphere about the bounding-box centre that encloses ``vertices``."""
    v = np.asarray(vertices, dtype=np.float64)
    center = (v.min(axis=0) + v.max(axis=0)) / 2.0
    return float(np.linalg.norm(v - center, axis=1).max())


def sample_pair(
    vertices_a: np.ndarray, faces_a: np.ndarray, vertices_b: np.ndarray, faces_b: np.ndarray, num_samples: int = 100_000, seed: int = 0
) -> SurfaceSamples:
    """Sample both meshes and match every sample to its nearest neighbour on the other."""
    pa, na = sample_surface(vertices_a, faces_a, num_samples, seed)
    pb, nb = sample_surface(vertices_b, faces_b, num_samples, None if seed is None else seed + 1)
    dist_ab, idx_ab = cKDTree(pb).query(pa, workers=-1)
    dist_ba, idx_ba = cKDTree(pa).query(pb, workers=-1)
    return SurfaceSamples(pa, na, pb, nb, dist_ab, idx_ab, dist_ba, idx_ba, bounding_radius(vertices_a))


def chamfer(s: SurfaceSamples) -> dict[str, float]:
    """Chamfer-L1 (mean of the two directed mean distances) and Chamfer-L2 (same, squared distances).

    The normalised variants divide by the reference's bounding radius (L1) and
    its square (L2), so they do not depend on the model's units.
    """
    l1 = 0.5 * (float(s.dist_ab.mean()) + float(s.dist_ba.mean()))
    l2 = 0.5 * (float(np.square(s.dist_ab).mean()) + float(np.square(s.dist_ba).mean()))
    r = s.radius if s.radius > 0 else 1.0
    return {"chamfer_l1": l1, "chamfer_l2": l2, "chamfer_l1_normalized": l1 / r, "chamfer_l2_normalized": l2 / r**2}


METRICS: dict[str, Callable[[SurfaceSamples], dict[str, float]]] = {"chamfer": chamfer}


def compare_meshes(
    vertices_a: np.ndarray,
    faces_a: np.ndarray,
    vertices_b: np.ndarray,
    faces_b: np.ndarray,
    num_samples: int = 100_000,
    seed: int = 0,
    metrics: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """All (or the named) metrics of mesh b against reference mesh a, plus ``radius``."""
    s = sample_pair(vertices_a, faces_a, vertices_b, faces_b, num_samples, seed)
    result: dict[str, float] = {"radius": s.radius}
    for name in metrics or tuple(METRICS):
        result.update(METRICS[name](s))
    return result
