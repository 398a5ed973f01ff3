"""Marching cubes in plain, vectorised torch, on whatever device the values are (CPU, CUDA, MPS).

The case table is generated here, not typed in. A cube's corner c sits at
offset (c & 1, c >> 1 & 1, c >> 2 & 1) (axes i, j, k); its edge e runs along
axis e // 4 from its lower corner. A corner is *above* when its value is
``> level``, as in scikit-image (which also places the vertex of an edge whose
end equals the level on that end). For each of the 256 configurations, each
cube face gets the segments between its crossed edges that separate the above
corners from the others; on an ambiguous face (two diagonal corners above)
each above corner is cut off on its own, a rule that depends on the face's
corner signs only, so two cells sharing a face agree and the mesh has no
cracks. Each segment is oriented with the above side on its left seen from
outside the cube; the segments chain into closed polygons whose fans (their
diagonals off the cube's faces) give triangles with normals toward larger
values (scikit-image's winding).

:func:`march_blocks` runs it on blocks of grid values (sparse extraction's
leaf blocks, or :func:`march_grid`'s crossed blocks of a dense grid): a vertex per crossed
grid edge, keyed by the edge (its lower grid point's flat index and axis) and
deduplicated with ``torch.unique``, so the blocks' seams weld without
comparing positions.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

CORNERS = np.array([(c & 1, c >> 1 & 1, c >> 2 & 1) for c in range(8)], dtype=np.int64)
# Edge e: (lower corner, upper corner); axis e // 4.
EDGES = np.array([(c, c | 1 << a) for a in range(3) for c in range(8) if not c >> a & 1], dtype=np.int64)
EDGE_AXIS = np.arange(12) // 4
# A vertex this close to an end of its edge (fraction of the edge) may round onto the grid point: see _weld_points.
NEAR_POINT = 1e-3
DENSE_BLOCK = 8  # cells per axis of the blocks a dense grid is marched in


def _faces() -> list[tuple[np.ndarray, list[int]]]:
    """The cube's 6 faces: outward normal and corners in cyclic order."""
    faces = []
    for a in range(3):
        u, v = (a + 1) % 3, (a + 2) % 3
        for side in (0, 1):
            normal = np.zeros(3)
            normal[a] = 2 * side - 1
            faces.append((normal, [side << a | bu << u | bv << v for bu, bv in ((0, 0), (1, 0), (1, 1), (0, 1))]))
    return faces


def _case_polygons(case: int, cut_above: bool = True) -> list[list[int]]:
    """The closed polygons (cube-edge indices, wound toward larger values) of configuration ``case``; an ambiguous
    face cuts off its above corners (``cut_above``, the table's rule), or its others."""
    above = [case >> c & 1 for c in range(8)]
    edge_of = {frozenset(map(int, e)): i for i, e in enumerate(EDGES)}
    middle = CORNERS[EDGES].mean(axis=1)  # edge midpoints: a stand-in for the vertices
    following: dict[int, int] = {}
    for normal, corners in _faces():
        ring = [edge_of[frozenset((corners[i], corners[(i + 1) % 4]))] for i in range(4)]  # edge i after corner i
        crossed = [i for i in range(4) if above[corners[i]] != above[corners[(i + 1) % 4]]]
        if len(crossed) == 2:
            segments = [(ring[crossed[0]], ring[crossed[1]])]
        else:  # 0, or 4 (ambiguous): cut each above corner off on its own (each other one, without cut_above)
            segments = [(ring[i - 1], ring[i]) for i in range(4) if len(crossed) == 4 and above[corners[i]] == cut_above]
        for p, q in segments:
            corner = EDGES[p][0] if above[EDGES[p][0]] else EDGES[p][1]  # the above end of p: on the segment's above side
            if np.dot(np.cross(normal, middle[q] - middle[p]), CORNERS[corner] - middle[p]) < 0:
                p, q = q, p
            assert p not in following, "two segments leave one edge"
            following[p] = q
    polygons = []
    while following:
        start = min(following)
        polygon = [start]
        while following[polygon[-1]] != start:
            polygon.append(following.pop(polygon[-1]))
        del following[polygon[-1]]
        polygons.append(polygon)
    return polygons


@functools.cache
def edge_faces() -> list[set[int]]:
    """The two cube faces (indices into the faces' list) each edge lies on."""
    return [{f for f, (_, corners) in enumerate(_faces()) if set(EDGES[e].tolist()) <= set(corners)} for e in range(12)]


def _fan(polygon: list[int]) -> list[tuple[int, int, int]]:
    """A fan of ``polygon`` whose diagonals join edges on no common cube face.

    A polygon through both segments of an ambiguous face holds four edges of
    that face; a diagonal between two of them would lie in the face, where
    the neighbouring cell may draw it too (an edge of four triangles). Its
    lowest apex without such a diagonal is taken (one exists for every case).
    """
    faces = edge_faces()
    n = len(polygon)
    for apex in sorted(range(n), key=lambda i: polygon[i]):  # by edge index: a reversed polygon gets the same fan
        ring = polygon[apex:] + polygon[:apex]
        if all(not faces[ring[0]] & faces[ring[i]] for i in range(2, n - 1)):
            return [(ring[0], ring[i], ring[i + 1]) for i in range(1, n - 1)]
    raise AssertionError(f"no fan of {polygon} keeps its diagonals off the cube's faces")


def case_triangles(case: int, cut_above: bool = True) -> list[tuple[int, int, int]]:
    """The triangles (cube-edge indices) of configuration ``case``: fans of its polygons (see :func:`_fan`)."""
    return [t for polygon in _case_polygons(case, cut_above) for t in _fan(polygon)]


@functools.cache
def case_table() -> tuple[np.ndarray, np.ndarray]:
    """Triangles per configuration (256,) and their cube edges (256, T, 3), padded with -1; generated once."""
    triangles = [case_triangles(case) for case in range(256)]
    count = np.array([len(t) for t in triangles], dtype=np.int64)
    table = np.full((256, int(count.max()), 3), -1, dtype=np.int64)
    for case, tris in enumerate(triangles):
        if tris:
            table[case, : len(tris)] = tris
    return count, table


@functools.cache
def _block_tables(block: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Tables for blocks of ``block`` cells per axis. A block's edges have slots s = a (B+1)^3 + lower point's
    flat index (axis a; the last plane along a unused): per case the triangles' slots relative to the cell's lower
    corner's, per slot its axis and lower point, per cell its lower corner's slot."""
    b1 = block + 1
    count, table = case_table()
    corner = CORNERS[EDGES[:, 0]]
    delta = EDGE_AXIS * b1**3 + (corner[:, 0] * b1 + corner[:, 1]) * b1 + corner[:, 2]
    slots = np.arange(3 * b1**3)
    point = np.stack(np.unravel_index(slots % b1**3, (b1,) * 3), axis=1)
    cells = np.stack(np.unravel_index(np.arange(block**3), (block,) * 3), axis=1)
    triangles = np.where(table >= 0, delta[np.maximum(table, 0)], 0)
    arrays = (count, triangles, slots // b1**3, point, (cells[:, 0] * b1 + cells[:, 1]) * b1 + cells[:, 2])
    return tuple(torch.as_tensor(a, dtype=torch.int64, device=device) for a in arrays)


def march_blocks(
    values: torch.Tensor,
    origins: torch.Tensor,
    block: int,
    cells_per_axis: int,
    level: float = 0.0,
    scale: float = 1.0,
    offset: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``level`` surface over blocks of grid values, welded; on the values' device.

    ``values`` (K, B+1, B+1, B+1): the grid values of K blocks of ``block`` = B
    cells per axis, with cell origins ``origins`` (K, 3) in a grid of
    ``cells_per_axis`` = m cells per axis; a block reaching past the grid
    repeats its last plane (clamped indices), and its cells past the grid make
    nothing. Returns vertices (V, 3) float32, ``index * scale + offset`` for
    global grid coordinates ``index`` (each on its grid edge, interpolated
    linearly as scikit-image does), and faces (F, 3) int64 wound toward larger
    values, without degenerate faces or unused vertices.
    """
    device = values.device
    count, tri_slots, slot_axis, slot_point, cell_slot = _block_tables(int(block), device)
    b, m = int(block), int(cells_per_axis)
    b1, n, k = b + 1, m + 1, values.shape[0]
    values = values.to(torch.float32)
    origins = origins.to(device=device, dtype=torch.int64)
    above = values > level
    if k == 0 or not bool(above.any()) or bool(above.all()):
        return torch.zeros((0, 3), dtype=torch.float32, device=device), torch.zeros((0, 3), dtype=torch.int64, device=device)
    room = m - origins  # cells to the grid's far faces; fewer than B: a clipped block
    clipped = (room < b).any(dim=1).nonzero(as_tuple=True)[0]

    # Crossed edges (K, slots), keyed by their lower grid point's flat index and axis, deduplicated.
    crossed = torch.zeros((k, 3, b1, b1, b1), dtype=torch.bool, device=device)
    crossed[:, 0, :b] = above[:, 1:] != above[:, :-1]
    crossed[:, 1, :, :b] = above[:, :, 1:] != above[:, :, :-1]
    crossed[:, 2, :, :, :b] = above[:, :, :, 1:] != above[:, :, :, :-1]
    crossed = crossed.reshape(k, -1)
    if len(clipped):  # edges past the grid (their far end past its last plane) make nothing
        ends = slot_point + torch.nn.functional.one_hot(slot_axis, 3)
        crossed[clipped] &= (ends[None] <= room[clipped, None]).all(dim=2)
    where = crossed.reshape(-1).nonzero(as_tuple=True)[0]
    del crossed
    block_of, slot = where // len(slot_axis), where % len(slot_axis)
    corner = (origins[:, 0] * n + origins[:, 1]) * n + origins[:, 2]
    local = (slot_point[:, 0] * n + slot_point[:, 1]) * n + slot_point[:, 2]
    keys = (corner[block_of] + local[slot]) * 4 + slot_axis[slot]
    keys, inverse = torch.unique(keys.to(torch.int32) if n**3 * 4 < 2**31 else keys, return_inverse=True)
    vertex_of = torch.full((k * len(slot_axis),), -1, dtype=torch.int32 if len(keys) < 2**31 else torch.int64, device=device)
    vertex_of[where] = inverse.to(vertex_of.dtype)

    # One copy of each vertex (the copies share their grid values, so any will do).
    first = torch.empty(len(keys), dtype=torch.int64, device=device).scatter_(0, inverse, torch.arange(len(inverse), device=device))
    block_of, slot = block_of[first], slot[first]
    del first, inverse, where
    axis, point = slot_axis[slot], slot_point[slot]
    flat = values.reshape(-1)
    at = block_of * b1**3 + (point[:, 0] * b1 + point[:, 1]) * b1 + point[:, 2]
    f0 = flat[at]
    f1 = flat[at + torch.tensor([b1 * b1, b1, 1], device=device)[axis]]
    step = torch.nn.functional.one_hot(axis, 3)
    t = (level - f0) / (f1 - f0)
    verts = ((origins[block_of] + point).to(torch.float32) + step * t[:, None]) * scale + offset
    del f0, f1, flat, at, block_of, slot, point, step

    # Cells: configuration, then their triangles' slots -> vertex indices.
    case = above.to(torch.uint8)  # corner c's bit: c = dx + 2 dy + 4 dz
    case = case[:, :-1] | case[:, 1:] << 1
    case = case[:, :, :-1] | case[:, :, 1:] << 2
    case = case[:, :, :, :-1] | case[:, :, :, 1:] << 4
    if len(clipped):
        cells = torch.stack(torch.meshgrid(*[torch.arange(b, device=device)] * 3, indexing="ij"), dim=-1)
        case[clipped] *= (cells[None] < room[clipped, None, None, None]).all(dim=-1).to(torch.uint8)
    cell = ((case > 0) & (case < 255)).reshape(-1).nonzero(as_tuple=True)[0]
    case = case.reshape(-1)[cell].to(torch.int64)
    base = cell // b**3 * len(slot_axis) + cell_slot[cell % b**3]
    per_cell = count[case]
    owner = torch.repeat_interleave(per_cell)
    nth = torch.arange(len(owner), device=device) - (torch.cumsum(per_cell, 0) - per_cell)[owner]
    faces = vertex_of[base[owner, None] + tri_slots.view(-1, 3)[case[owner] * tri_slots.shape[1] + nth]].to(torch.int64)
    del vertex_of, owner, nth, case, base, per_cell, cell
    verts, faces = _weld_points(verts, faces, keys.to(torch.int64), t, n, scale, offset)
    return _drop_degenerate(verts, faces)


def _weld_points(
    verts: torch.Tensor, faces: torch.Tensor, keys: torch.Tensor, t: torch.Tensor, n: int, scale: float, offset: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge the vertices that round onto a grid point (where the field equals the level there, or nearly).

    Vertices of distinct edges coincide only there: two edges share at most
    their common grid point, and any other point of one is at least a cell
    fraction ``NEAR_POINT`` away from the other's line. So only the vertices
    within ``NEAR_POINT`` of an edge end are compared with that point, at the
    returned precision (after ``scale`` and ``offset``); those equal to it
    become one. The others are left unused (dropped later).
    """
    idx = ((t < NEAR_POINT) | (t > 1.0 - NEAR_POINT)).nonzero(as_tuple=True)[0]
    if not len(idx):
        return verts, faces
    point, axis = keys[idx] // 4, keys[idx] % 4
    point = point + (t[idx] > 0.5) * torch.where(axis == 0, n * n, torch.where(axis == 1, n, 1))  # the nearer end
    grid = torch.stack([point // (n * n), point // n % n, point % n], dim=1).to(torch.float32) * scale + offset
    on_point = (verts[idx] == grid).all(dim=1)
    idx, point = idx[on_point], point[on_point]
    if not len(idx):
        return verts, faces
    _, group = torch.unique(point, return_inverse=True)
    keep = torch.empty(int(group.max()) + 1, dtype=torch.int64, device=verts.device).scatter_(0, group, idx)
    remap = torch.arange(len(verts), device=verts.device)
    remap[idx] = keep[group]
    return verts, remap[faces]


def _drop_degenerate(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Faces with a repeated vertex dropped, then the vertices no face uses (renumbered)."""
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    used = torch.zeros(len(verts), dtype=torch.bool, device=verts.device)
    used[faces.reshape(-1)] = True
    if bool(used.all()):
        return verts, faces
    return verts[used], (torch.cumsum(used.to(torch.int64), 0) - 1)[faces]


def face_normals_at_vertices(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit area-weighted sums of the faces' normals at each vertex (toward larger values); zeros where they cancel."""
    tri = verts[faces]
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    normals = torch.zeros_like(verts)
    for corner in range(3):
        normals.index_add_(0, faces[:, corner], cross)
    norm = normals.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, normals / norm.clamp_min(1e-30), torch.zeros_like(normals))


def block_points(origins: torch.Tensor, block: int, m: int, n: int) -> torch.Tensor:
    """Flat grid indices (K, B+1, B+1, B+1) of the blocks of ``block`` = B cells per axis with cell origins
    ``origins`` (K, 3) in an N^3 grid (``m`` = N - 1 cells per axis), clamped to the grid."""
    o = torch.arange(block + 1, dtype=torch.int64, device=origins.device)
    i = torch.clamp_max(origins[:, 0, None] + o, m)[:, :, None, None]
    j = torch.clamp_max(origins[:, 1, None] + o, m)[:, None, :, None]
    k = torch.clamp_max(origins[:, 2, None] + o, m)[:, None, None, :]
    return (i * n + j) * n + k


def _block_reduce(x: torch.Tensor, axis: int, block: int, reduce: str) -> torch.Tensor:
    """``x`` (N points along ``axis``) reduced ('amax' or 'amin') over each block's B + 1 points along it: block b
    holds points bB .. min(bB + B, N - 1). Views and small results only (no copy of ``x``)."""
    m, b = x.shape[axis] - 1, block
    whole = m // b  # blocks whose B + 1 points all lie in the grid
    parts = []
    if whole:
        first = getattr(x.narrow(axis, 0, whole * b).unflatten(axis, (whole, b)), reduce)(axis + 1)
        last = x[(slice(None),) * axis + (slice(b, whole * b + 1, b),)]  # their last points: B, 2B, ..., whole B
        parts.append(torch.maximum(first, last) if reduce == "amax" else torch.minimum(first, last))
    if whole * b < m:  # a last block clipped by the grid
        parts.append(getattr(x.narrow(axis, whole * b, m - whole * b + 1), reduce)(axis, keepdim=True))
    return torch.cat(parts, dim=axis)


def crossed_grid_blocks(values: torch.Tensor, block: int, level: float = 0.0) -> torch.Tensor:
    """Cell origins (K, 3) of the blocks of ``block`` cells per axis of a dense (N, N, N) grid that ``level`` crosses
    (some of their grid points above it, some not), from the blocks' maxima and minima."""
    hi, lo = values, values
    for axis in range(3):
        hi, lo = _block_reduce(hi, axis, block, "amax"), _block_reduce(lo, axis, block, "amin")
    return ((hi > level) & (lo <= level)).nonzero() * block


def march_grid(
    values: torch.Tensor, level: float = 0.0, scale: float = 1.0, offset: float = 0.0, block: int = DENSE_BLOCK
) -> tuple[torch.Tensor, torch.Tensor]:
    """Marching cubes of a dense (N, N, N) grid: vertices ``index * scale + offset`` and faces, as
    :func:`march_blocks` gives them. Only the blocks of ``block`` cells per axis that the level crosses are
    marched, so the arrays beyond the grid scale with the surface, not the grid."""
    n = values.shape[0]
    if tuple(values.shape) != (n, n, n) or n < 2:
        raise ValueError(f"expected a cubic grid of at least 2 points per axis, got shape {tuple(values.shape)}")
    m = n - 1
    block = min(int(block), m)
    origins = crossed_grid_blocks(values, block, level)
    return march_blocks(values.reshape(-1)[block_points(origins, block, m, n)], origins, block, m, level, scale, offset)
