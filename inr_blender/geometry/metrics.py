"""Surface comparison metrics between two triangle meshes, under one fixed protocol.

The protocol (mesh a is the reference, mesh b the candidate):

1. Normalisation. Both meshes are mapped by the same similarity,
   ``x -> (x - c) / r``, where ``(c, r)`` is the bounding sphere of the
   *reference's* vertices: ``c`` the centre of its axis-aligned bounding box and
   ``r`` the largest distance from ``c`` to a vertex. (This sphere encloses the
   mesh; it is at most sqrt(3)/2 ~ 1.15 times wider than the minimal one, and
   exact for shapes symmetric about their box centre, e.g. a sphere.) The
   reference then lies in the unit ball, and every metric below is in these
   normalised units: a distance of 0.01 is 1% of the reference's radius.
2. Sampling. ``num_samples`` (100k by default) points are drawn uniformly by
   area on each surface, each with the unit normal of the face it lies on; the
   reference uses ``seed`` and the candidate ``seed + 1``, so results are
   reproducible but the two samplings are independent.
3. Matching. One KD-tree nearest-neighbour query per direction (a -> b and
   b -> a); every metric is computed from those two queries.

Metrics (``d_ab``: distance of each reference sample to the nearest candidate
sample, ``d_ba`` the reverse):

- ``chamfer_l1``: 0.5 * (mean d_ab + mean d_ba), in world units (kept for
  continuity); ``chamfer_l1_normalized`` the same in normalised units.
- ``chamfer_l2``: 0.5 * (mean d_ab^2 + mean d_ba^2), in world units squared;
  ``chamfer_l2_normalized`` in normalised units (= chamfer_l2 / r^2).
- ``normal_consistency``: mean over both directions of |cos| between a sample's
  normal and its nearest neighbour's normal (orientation-blind: flipped winding
  does not lower it).
- ``precision``: fraction of candidate samples within ``fscore_threshold`` of the
  reference samples; ``recall``: fraction of reference samples within it of the
  candidate samples; ``fscore`` = 2PR / (P + R) (0 when both are 0).
  ``fscore_threshold`` is 0.01 (1% of the radius).
- ``hausdorff``: max(max d_ab, max d_ba), normalised.
- ``radius``: r, in world units.

Sample-to-sample distances have a noise floor: with N samples on a surface of
area A, the nearest sample is on average ~0.5 * sqrt(A / N) away even on the
same surface. For the unit sphere (A = 4 pi) and N = 100k that is ~0.0056 in
Chamfer-L1, and about 8% of the samples of an identical surface lie farther
than 1% of the radius, so the F-score of a mesh against itself is ~0.92, not 1.
Scores of different meshes are comparable only at the same ``num_samples``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .sampling import face_areas_and_normals, sample_surface

FSCORE_THRESHOLD = 0.01  # F-score threshold, in units of the reference's bounding radius


@dataclass
class SurfaceSamples:
    """Area-uniform samples of the reference (a) and the candidate (b), in normalised units, with nearest-neighbour data."""

    points_a: np.ndarray
    normals_a: np.ndarray
    points_b: np.ndarray
    normals_b: np.ndarray
    dist_ab: np.ndarray  # from each a-sample to the nearest b-sample
    idx_ab: np.ndarray
    dist_ba: np.ndarray  # from each b-sample to the nearest a-sample
    idx_ba: np.ndarray
    radius: float  # bounding-sphere radius of the reference, world units (the unit of length here)
    center: np.ndarray  # bounding-sphere centre of the reference, world coordinates


def bounding_sphere(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre of the bounding box of ``vertices`` and the largest distance from it to a vertex."""
    v = np.asarray(vertices, dtype=np.float64)
    center = (v.min(axis=0) + v.max(axis=0)) / 2.0
    return center, float(np.linalg.norm(v - center, axis=1).max())


def sample_pair(
    vertices_a: np.ndarray, faces_a: np.ndarray, vertices_b: np.ndarray, faces_b: np.ndarray, num_samples: int = 100_000, seed: int = 0
) -> SurfaceSamples:
    """Normalise both meshes by a's bounding sphere, sample them, and match every sample to its nearest neighbour on the other."""
    center, radius = bounding_sphere(vertices_a)
    scale = radius if radius > 0 else 1.0  # a mesh with area has radius > 0; sampling refuses the rest
    va = (np.asarray(vertices_a, dtype=np.float64) - center) / scale
    vb = (np.asarray(vertices_b, dtype=np.float64) - center) / scale
    pa, na = sample_surface(va, faces_a, num_samples, seed)
    pb, nb = sample_surface(vb, faces_b, num_samples, None if seed is None else seed + 1)
    dist_ab, idx_ab = cKDTree(pb).query(pa, workers=-1)
    dist_ba, idx_ba = cKDTree(pa).query(pb, workers=-1)
    return SurfaceSamples(pa, na, pb, nb, dist_ab, idx_ab, dist_ba, idx_ba, radius, center)


def chamfer(s: SurfaceSamples) -> dict[str, float]:
    """Chamfer-L1 (mean of the two directed mean distances) and Chamfer-L2 (same, squared distances).

    The ``_normalized`` values are in units of the reference's bounding radius;
    the plain ones are converted back to world units.
    """
    l1 = 0.5 * (float(s.dist_ab.mean()) + float(s.dist_ba.mean()))
    l2 = 0.5 * (float(np.square(s.dist_ab).mean()) + float(np.square(s.dist_ba).mean()))
    r = s.radius if s.radius > 0 else 1.0
    return {"chamfer_l1": l1 * r, "chamfer_l2": l2 * r**2, "chamfer_l1_normalized": l1, "chamfer_l2_normalized": l2}


def normal_consistency(s: SurfaceSamples) -> dict[str, float]:
    """Mean over both directions of |cos| between each sample's normal and its nearest neighbour's, and the
    same pairs' mean angle in degrees (``normal_angle``: the normal error of Wang Yifan et al. 2022)."""
    cos_ab = np.abs(np.einsum("ij,ij->i", s.normals_a, s.normals_b[s.idx_ab]))
    cos_ba = np.abs(np.einsum("ij,ij->i", s.normals_b, s.normals_a[s.idx_ba]))
    angle = lambda cos: float(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))).mean())  # noqa: E731
    return {"normal_consistency": 0.5 * (float(cos_ab.mean()) + float(cos_ba.mean())), "normal_angle": 0.5 * (angle(cos_ab) + angle(cos_ba))}


def fscore(s: SurfaceSamples, threshold: float = FSCORE_THRESHOLD) -> dict[str, float]:
    """Precision (candidate samples near the reference), recall (the reverse) and their harmonic mean, at ``threshold`` (normalised)."""
    precision = float((s.dist_ba <= threshold).mean())
    recall = float((s.dist_ab <= threshold).mean())
    f = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"fscore": f, "precision": precision, "recall": recall, "fscore_threshold": float(threshold)}


def hausdorff(s: SurfaceSamples) -> dict[str, float]:
    """Two-sided Hausdorff distance between the sample sets (normalised)."""
    return {"hausdorff": max(float(s.dist_ab.max()), float(s.dist_ba.max()))}


METRICS: dict[str, Callable[[SurfaceSamples], dict[str, float]]] = {
    "chamfer": chamfer,
    "normal_consistency": normal_consistency,
    "fscore": fscore,
    "hausdorff": hausdorff,
}


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


def sample_complex(vertices: np.ndarray, edges: np.ndarray, triangles: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Points on a skeletal complex: every vertex, plus ``count`` points spread over its edges and triangles by
    measure (length for edges, area for triangles, each set taking a share in proportion to its own element count)."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    t = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    parts = [v]
    total = len(e) + len(t)
    if len(e):
        length = np.linalg.norm(v[e[:, 1]] - v[e[:, 0]], axis=1)
        if length.sum() > 0:
            k = rng.choice(len(e), size=count * len(e) // total, p=length / length.sum())
            s = rng.random(len(k))[:, None]
            parts.append(v[e[k, 0]] + s * (v[e[k, 1]] - v[e[k, 0]]))
    if len(t):
        areas, _ = face_areas_and_normals(v, t)
        if areas.sum() > 0:
            parts.append(sample_surface(v, t, count * len(t) // total, seed)[0])
    return np.concatenate(parts)


def skeleton_distances(a: np.ndarray, b: np.ndarray, diagonal: float) -> dict[str, float]:
    """Distances between two sampled skeletons (reference ``a``, candidate ``b``) as percentages of ``diagonal``.

    ``hausdorff_ab`` is the largest distance from a sample of a to b (b misses part of a), ``hausdorff_ba`` the
    reverse (b has parts a lacks, e.g. spurious branches); ``hausdorff`` is their maximum. ``chamfer_ab``,
    ``chamfer_ba`` are the mean distances and ``chamfer`` their mean.
    """
    d_ab, _ = cKDTree(b).query(a, workers=-1)
    d_ba, _ = cKDTree(a).query(b, workers=-1)
    pct = 100.0 / diagonal
    return {
        "hausdorff_ab": float(d_ab.max()) * pct,
        "hausdorff_ba": float(d_ba.max()) * pct,
        "hausdorff": max(float(d_ab.max()), float(d_ba.max())) * pct,
        "chamfer_ab": float(d_ab.mean()) * pct,
        "chamfer_ba": float(d_ba.mean()) * pct,
        "chamfer": 0.5 * (float(d_ab.mean()) + float(d_ba.mean())) * pct,
    }
