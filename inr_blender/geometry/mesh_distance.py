"""Signed distances to triangle meshes that need not be watertight: generalised winding numbers for the sign.

- :func:`winding_numbers`: the generalised winding number (Jacobson 2013) of each query, the sum of the
  triangles' signed solid angles over 4 pi (Van Oosterom & Strackee's formula). It is 1 inside a closed, outward
  oriented mesh and 0 outside, and degrades gracefully on holes, cracks and overlapping parts (the chairs of a
  shape collection): inside is taken as w > 1/2. Far clusters of triangles count as dipoles (Barill 2018).
- :func:`unsigned_distances`: the distance to the closest triangle, exact on the candidate triangles that the
  ``k`` surface samples nearest to the query lie on (a k-d tree on a dense area-weighted sample), so a query far
  from any triangle's samples may see a slightly larger distance than the true one.
- :func:`signed_distances`: both together, negative inside.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from ..context import JobContext
from .sampling import sample_surface_faces

PAIRS_PER_CHUNK = 2_000_000  # query x triangle pairs per torch evaluation (about 150 MB in float64)
LEAF_TRIANGLES = 64  # triangles per cluster of the fast winding numbers
FAR_RATIO = 2.0  # a cluster farther than this many radii counts as a dipole (Barill 2018 uses 2)


def winding_numbers(
    vertices: np.ndarray,
    faces: np.ndarray,
    queries: np.ndarray,
    ctx: JobContext | None = None,
    leaf_size: int = LEAF_TRIANGLES,
    beta: float = FAR_RATIO,
) -> np.ndarray:
    """Generalised winding number (Q,) of each query point with respect to the triangles.

    Barnes-Hut as in Barill 2018 ("fast winding numbers"), to first order: the triangles are split into clusters
    of at most ``leaf_size`` (median splits of their centroids); a cluster farther than ``beta`` times its radius
    from a query contributes its dipole, the sum of its area-weighted normals seen from its area-weighted centroid;
    nearer clusters contribute each triangle's exact solid angle (``beta`` inf: every triangle exactly).
    """
    v, f = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    q = np.asarray(queries, dtype=np.float64)
    tri = v[f]  # (F, 3, 3)
    clusters = _clusters(tri.mean(axis=1), np.arange(len(f)), leaf_size)
    out = np.zeros(len(q))
    for n, members in enumerate(clusters):
        t = tri[members]
        area_normal = 0.5 * np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])  # (m, 3)
        weight = np.linalg.norm(area_normal, axis=1)
        centroid = t.mean(axis=1)
        center = (centroid * weight[:, None]).sum(0) / weight.sum() if weight.sum() > 0 else centroid.mean(0)
        radius = float(np.linalg.norm(t - center, axis=2).max())
        offset = center - q  # (Q, 3)
        dist = np.linalg.norm(offset, axis=1)
        far = dist > beta * radius
        if far.any():
            out[far] += (offset[far] @ area_normal.sum(0)) / (4.0 * math.pi * dist[far] ** 3)
        near = np.flatnonzero(~far)
        if len(near):
            out[near] += _solid_angles(torch.as_tensor(t), torch.as_tensor(q[near]))
        if ctx is not None:
            ctx.progress(n + 1, len(clusters), None, "winding numbers")
    return out


def _clusters(centroids: np.ndarray, members: np.ndarray, leaf_size: int) -> list[np.ndarray]:
    """Triangle index sets of at most ``leaf_size``, by median splits along the widest axis of their centroids."""
    if len(members) <= leaf_size:
        return [members]
    c = centroids[members]
    axis = int(np.argmax(c.max(axis=0) - c.min(axis=0)))
    order = members[np.argsort(c[:, axis], kind="stable")]
    half = len(order) // 2
    return _clusters(centroids, order[:half], leaf_size) + _clusters(centroids, order[half:], leaf_size)


def _solid_angles(tri: torch.Tensor, q: torch.Tensor) -> np.ndarray:
    """Sum over the triangles (F, 3, 3) of their signed solid angles / 4 pi at each query (Q, 3) (Van Oosterom)."""
    out = np.empty(len(q))
    step = max(1, PAIRS_PER_CHUNK // max(1, len(tri)))
    for start in range(0, len(q), step):
        d = tri[None] - q[start : start + step, None, None, :]  # (C, F, 3, 3): corners relative to the query
        a, b, c = d[:, :, 0], d[:, :, 1], d[:, :, 2]
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        det = (a * torch.cross(b, c, dim=-1)).sum(-1)
        den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
        out[start : start + step] = (2.0 * torch.atan2(det, den)).sum(dim=1).numpy() / (4.0 * math.pi)
    return out


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest points (N, 3) on triangles (a, b, c) (each (N, 3)) to points p (N, 3), by Voronoi regions (Ericson)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp, cp = p - b, p - c
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v, w = vb / denom, vc / denom
        out = a + ab * v[:, None] + ac * w[:, None]  # inside the face
        t_ab, t_ac = d1 / (d1 - d3), d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    regions = [  # later regions take precedence, from edges to vertices (the vertex tests are the strictest)
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * np.nan_to_num(t_ab)[:, None]),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * np.nan_to_num(t_ac)[:, None]),
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), b + (c - b) * np.nan_to_num(t_bc)[:, None]),
        ((d1 <= 0) & (d2 <= 0), a),
        ((d3 >= 0) & (d4 <= d3), b),
        ((d6 >= 0) & (d5 <= d6), c),
    ]
    for mask, point in regions:
        out = np.where(mask[:, None], point, out)
    return np.where(np.isfinite(out), out, a)  # degenerate triangles: their first corner


def unsigned_distances(
    vertices: np.ndarray, faces: np.ndarray, queries: np.ndarray, k: int = 16, samples: int = 200_000, seed: int = 0
) -> np.ndarray:
    """Distance (Q,) from each query to the mesh: exact over the triangles of its ``k`` nearest surface samples."""
    v, f = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    q = np.asarray(queries, dtype=np.float64)
    points, _, face_of = sample_surface_faces(v, f, max(samples, 4 * len(f)), seed)
    k = min(k, len(points))
    _, idx = cKDTree(np.concatenate([points, v])).query(q, k=k, workers=-1)
    idx = idx.reshape(len(q), k)
    vertex_face = np.zeros(len(v), dtype=np.int64)
    vertex_face[f.ravel()] = np.repeat(np.arange(len(f)), 3)  # a vertex sample stands for one face it belongs to
    candidates = np.concatenate([face_of, vertex_face])[idx]  # (Q, k)
    best = np.full(len(q), np.inf)
    for j in range(k):
        tri = v[f[candidates[:, j]]]
        closest = _closest_on_triangles(q, tri[:, 0], tri[:, 1], tri[:, 2])
        best = np.minimum(best, np.linalg.norm(q - closest, axis=1))
    return best


def oriented_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The faces, each once and wound consistently outward, for winding numbers.

    Meshes of collections are often double-sided (every triangle twice, once each way) or wound
    inconsistently: winding numbers then cancel to 0 inside. Here vertices at the same position are
    merged, degenerate faces and reversed or repeated twins dropped (the first kept), the faces of each
    patch (connected through edges shared by exactly two faces) wound like their neighbours, and each
    patch turned outward (positive enclosed volume). Returns faces (F', 3) into ``vertices``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    scale = float(np.ptp(v, axis=0).max()) if len(v) else 1.0
    _, weld = np.unique(np.round(v / (scale * 1e-7 or 1.0)).astype(np.int64), axis=0, return_inverse=True)
    w = weld.reshape(-1)[f]  # faces on welded vertices
    keep = (w[:, 0] != w[:, 1]) & (w[:, 1] != w[:, 2]) & (w[:, 2] != w[:, 0])
    _, first = np.unique(np.sort(w, axis=1), axis=0, return_index=True)  # one face per vertex triple, either winding
    keep &= np.isin(np.arange(len(f)), first)
    f, w = f[keep], w[keep]
    if not len(f):
        return f
    # directed edges of every face; an undirected edge shared by exactly two faces links them
    a, b = w, np.roll(w, -1, axis=1)
    lo, hi = np.minimum(a, b).ravel(), np.maximum(a, b).ravel()
    forward = (a < b).ravel()  # this face runs the edge from its lower to its higher vertex
    owner = np.repeat(np.arange(len(f)), 3)
    order = np.lexsort((hi, lo))
    lo, hi, forward, owner = lo[order], hi[order], forward[order], owner[order]
    same_edge = (lo[1:] == lo[:-1]) & (hi[1:] == hi[:-1])
    start = np.flatnonzero(same_edge & ~np.r_[False, same_edge[:-1]] & ~np.r_[same_edge[1:], False])  # exactly 2
    i, j = owner[start], owner[start + 1]
    flip = (forward[start] == forward[start + 1]).astype(np.int8)  # both run it the same way: one must turn
    graph = coo_matrix((np.r_[flip, flip] + 1, (np.r_[i, j], np.r_[j, i])), shape=(len(f), len(f))).tocsr()
    count, labels = connected_components(graph, directed=False)
    turned = np.zeros(len(f), dtype=bool)
    for root in np.unique(labels, return_index=True)[1]:
        nodes, parents = breadth_first_order(graph, root, directed=False)
        nodes = nodes[1:]
        parent = parents[nodes]
        flips = np.asarray(graph[parent, nodes]).ravel() == 2  # the tree edges' relations, looked up at once
        for node, up, flip in zip(nodes.tolist(), parent.tolist(), flips.tolist()):  # parents come before children
            turned[node] = turned[up] ^ flip
    f = np.where(turned[:, None], f[:, ::-1], f)
    tri = v[f]
    volume = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
    inward = np.bincount(labels, weights=volume, minlength=count) < 0
    return np.where(inward[labels][:, None], f[:, ::-1], f)


def signed_distances(vertices: np.ndarray, faces: np.ndarray, queries: np.ndarray, ctx: JobContext | None = None) -> np.ndarray:
    """Signed distance (Q,) to the mesh, negative where the generalised winding number of its
    :func:`oriented_faces` exceeds 1/2."""
    distance = unsigned_distances(vertices, faces, queries)
    inside = winding_numbers(vertices, oriented_faces(vertices, faces), queries, ctx) > 0.5
    return np.where(inside, -distance, distance)
