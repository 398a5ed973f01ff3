"""Connected components of a triangle mesh, and the removal of those that are not part of the input (debris).

A fitted field can close small surfaces where the input has none: blobs floating in a hole, specks just
off the surface. :func:`drop_debris` drops a component when fewer than ``KEEP_FRACTION`` of its vertices
lie within ``tolerance`` of the input points (a sample of them kept with the field, in its local frame):
every part of the true surface lies on them, a blob of any size does not. It also drops specks: a
component with fewer than ``SPECK_FRACTION`` of the largest one's vertices. Those can lie within a point
spacing of the input (measured on the Fast preset's Suzanne: ten bubbles of 6 to 32 vertices, 0.06% of
the head's 55,728 at most, in the narrow gaps between the eyes and their sockets), where a distance test
cannot tell them from the surface. A real part kept apart from the rest (an eye: ~3% of a head) stays.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

KEEP_FRACTION = 0.5  # a component stays when at least this fraction of its vertices lie near the input ...
SPECK_FRACTION = 0.002  # ... and it has at least this fraction of the largest component's vertices
SPACINGS = 3.0  # the tolerance: this many of the points' typical spacings ...
CELLS = 2.0  # ... and at least this many grid cells (a coarse grid places vertices a cell off)


def vertex_components(num_vertices: int, faces: np.ndarray) -> tuple[int, np.ndarray]:
    """The number of connected components and each vertex's component label (V,), linked by the faces' edges."""
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    rows = np.concatenate([f[:, 0], f[:, 1]])
    cols = np.concatenate([f[:, 1], f[:, 2]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(num_vertices, num_vertices))
    count, labels = connected_components(graph, directed=False)
    return int(count), labels


def point_spacing(points: np.ndarray) -> float:
    """The points' typical spacing: the 90th percentile of their nearest-neighbour distances."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return 0.0
    dist, _ = cKDTree(points).query(points, k=2, workers=-1)
    return float(np.percentile(dist[:, 1], 90))


def debris_tolerance(points: np.ndarray, resolution: int) -> float:
    """How far (local units) a vertex of a real part may lie from the nearest of ``points`` on a grid of ``resolution``."""
    return max(SPACINGS * point_spacing(points), CELLS * 2.0 / (max(int(resolution), 2) - 1))


def drop_debris(
    vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray, points: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The mesh without the components of which less than ``KEEP_FRACTION`` of the vertices lie within
    ``tolerance`` of ``points`` or that are specks (see the module); and how many components were dropped.
    Vertices are renumbered in order. When no component would stay, the mesh is returned whole."""
    if len(faces) == 0 or len(points) == 0:
        return vertices, faces, normals, 0
    count, labels = vertex_components(len(vertices), faces)
    near = cKDTree(np.asarray(points, dtype=np.float64)).query(vertices, k=1, distance_upper_bound=tolerance, workers=-1)[0] <= tolerance
    size = np.bincount(labels, minlength=count)
    covered = np.bincount(labels, weights=near.astype(np.float64), minlength=count)
    keep_component = (covered >= KEEP_FRACTION * np.maximum(size, 1)) & (size >= SPECK_FRACTION * size.max())
    dropped = int(np.count_nonzero(~keep_component))
    if dropped == 0 or dropped == count:
        return vertices, faces, normals, 0
    keep = keep_component[labels]
    index = np.cumsum(keep) - 1
    kept_faces = faces[keep[faces[:, 0]]]
    return vertices[keep], index[kept_faces].astype(faces.dtype), normals[keep], dropped
