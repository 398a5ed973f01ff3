"""Sparse, adaptive marching cubes: the dense extraction's mesh without the dense grid.

The grid is the dense one (N points per axis over [-1, 1]^3, N - 1 cells), and
the mesh is the same; only the field evaluations far from the surface are
skipped.

1. Octree culling. The cells are grouped into leaf blocks of ``block`` cells
   per axis (4 by default; clipped at the far faces when N - 1 is not a
   multiple of it). Starting from at most 4^3 big blocks, each block is
   evaluated at its center c only; it can hold the surface only if
   ``|f(c) - level| <= safety * L * r`` where r is the block's circumradius
   and L = 1 the Lipschitz constant of an SDF (``safety`` 1 by default:
   measured at 512^3 on a hash-grid field fitted to stanford-bunny, 1.5 gave
   the same mesh with 1.4x the evaluations, the closure below recovering the
   rest).
   Kept blocks split into their (up to) 8 children, down to the leaf blocks.
2. The grid points of the kept leaf blocks are evaluated, each point once
   (blocks share their faces), under no_grad, in chunks. Steps 2-3 run in
   torch on the field's device (sorted flat indices, torch.unique and
   searchsorted): the values never leave it on the torch marcher's path.
3. Closure: a field that is not an exact SDF (a fitted network, a gradient
   above 1) can be under-estimated by step 1, so a leaf block whose face is
   crossed by the surface pulls in its neighbour across that face, until no
   surface leaves the kept set. When culling keeps nothing although the
   field takes values on both sides of the level, it runs again with the
   safety doubled (up to 3 times). A surface that lies entirely in culled
   blocks is still missed: that is what ``safety`` is for.
4. Marching cubes on the crossed blocks, by one of two marchers with the
   same vertices (one per crossed grid edge, interpolated alike; but for a
   vertex within ``SNAP`` cells of a grid point, which only the second merges
   into the point) and, by default, the first:

   - 'torch' (:mod:`.marching`): vectorised torch on the device, every block
     at once; vertices are keyed by their global grid edge, so the seams
     weld with torch.unique, and only the vertices that round onto a grid
     point (where the field equals ``level`` there) are compared by position.
     Its triangles differ from scikit-image's where a cell allows several
     (a quad's diagonal, an ambiguous face). Measured at 512^3 on a hash-grid
     bunny (580k vertices, 2 CPU cores): 0.17 s against 1.66 s for the second
     (bench/results/marching.md).
   - 'skimage': scikit-image's marching cubes on the CPU, a group of up to
     ``GROUP``^3 neighbouring blocks per call (its ``mask`` limits the call
     to their cells). Each vertex is keyed by its global edge (doubled
     integer coordinates: 2 i on an axis the vertex sits on, 2 i + 1 on the
     axis of the edge it crosses), the blocks' copies along the seams merge
     with np.unique, faces are remapped and degenerate ones dropped. (A
     vertex on a grid point, where the field equals ``level``, is keyed by
     the point: its copies merge, within ``SNAP`` cells; vertices at equal
     positions merge at the end, as on the dense grid.)

With ``ranges`` (a mode of :mod:`..ranges`), step 1 keeps a block unless range
analysis certifies the field above or below the level over the whole block
(Sharp & Jacobson 2022), which needs no distance-field assumption: a thin part
that the center test would cull is kept. The closure and the retries are then
not needed (no block holding the surface is culled), and the statistics count
the range evaluations (``box_evaluations``) apart from the point evaluations.

Memory is checked before anything large is allocated, from what this path
holds (the evaluated blocks and the surface), not from the N^3 grid; then
again once the blocks and the crossed edges are known.

``evaluations`` counts every field evaluation of steps 1-3 (the gradient
evaluations for the normals, one per vertex as in the dense path, are not
counted); the dense path makes N^3.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from skimage.measure import marching_cubes
from torch import nn

from ..context import JobContext, JobError
from ..ranges import UNKNOWN, classify
from ..ranges.search import range_chunk
from .extraction import (
    BYTES_PER_VERTEX,
    FIXED_OVERHEAD,
    MIN_RESOLUTION,
    TYPICAL_VERTICES_PER_SLICE,
    Array,
    _check_device,
    _check_ram,
    _chunk_size,
    check_marcher,
    evaluate_points,
    finish_mesh,
    grid_points,
    host_mesh,
    march_with_fallback,
    no_surface_error,
)
from .marching import block_points, face_normals_at_vertices, march_blocks

GROUP = 8  # leaf blocks per axis in one marching-cubes call
DEFAULT_BLOCK = 2  # measured at 512^3 on a hash-grid field: 2.5M evaluations against 3.5M with 4
DEFAULT_SAFETY = 1.0  # exact for a true SDF; the closure (step 3) catches what a fitted field's steeper parts hide
# A vertex this close (in cells) to a grid point is keyed by the point: where the
# field equals ``level`` at a grid point, the blocks sharing it place their copies
# a float32 rounding apart (local index 0 + t vs 4 + t).
SNAP = 1e-5
LIPSCHITZ = 1.0  # an SDF's; ``safety`` covers fields that are only roughly one
# Per evaluated grid point: its flat index (8), value (4), the sort of np.unique
# and searchsorted (~24); per leaf block point: index (8) + value (4) + position (8).
BYTES_PER_POINT = 36
BYTES_PER_BLOCK_POINT = 20


def estimate_sparse_bytes(resolution: int, num_blocks: int, block: int, num_vertices: int | None = None) -> int:
    """RAM of the sparse path: ``num_blocks`` evaluated leaf blocks, the surface (a typical guess if not given)
    and a byte per leaf block of the whole grid (the set of blocks seen)."""
    n = int(resolution)
    vertices = num_vertices if num_vertices is not None else TYPICAL_VERTICES_PER_SLICE * n * n
    points = num_blocks * (block + 1) ** 3
    leaves = (-(-(n - 1) // block)) ** 3
    # Vertices: per-block copies (float64 positions, keys, normals) before the weld, then the dense path's arrays.
    return (BYTES_PER_POINT + BYTES_PER_BLOCK_POINT) * points + 2 * BYTES_PER_VERTEX * vertices + leaves + FIXED_OVERHEAD


class _GridValues:
    """Field values on a growing set of grid points, each evaluated once (sorted flat indices), on the device."""

    def __init__(self, field: nn.Module, n: int, device: torch.device, ctx: JobContext, chunk: int) -> None:
        self.field, self.n, self.device, self.ctx, self.chunk = field, n, device, ctx, chunk
        self.index = torch.empty(0, dtype=torch.int64, device=device)
        self.values = torch.empty(0, dtype=torch.float32, device=device)
        self.evaluations = 0

    def add(self, flat: torch.Tensor) -> None:
        """Evaluate the points of ``flat`` (flat grid indices) not evaluated yet."""
        flat = torch.unique(flat)
        pos = torch.searchsorted(self.index, flat).clamp_max(max(len(self.index) - 1, 0))
        new = flat[self.index[pos] != flat] if len(self.index) else flat
        if not len(new):
            return
        values = torch.empty(len(new), dtype=torch.float32, device=self.device)
        num_chunks = (len(new) + self.chunk - 1) // self.chunk
        self.ctx.progress(0, num_chunks, None, "evaluating the field near the surface")
        with torch.no_grad():
            for c, start in enumerate(range(0, len(new), self.chunk)):
                idx = new[start : start + self.chunk]
                values[start : start + len(idx)] = self.field(grid_points(idx, self.n)).float()
                self.ctx.progress(c + 1, num_chunks, None, "evaluating the field near the surface")
        if not bool(torch.isfinite(values).all()):
            raise JobError("the field evaluates to NaN or Inf; the checkpoint is broken")
        self.evaluations += len(new)
        self.index, order = torch.sort(torch.cat([self.index, new]))
        self.values = torch.cat([self.values, values])[order]

    def get(self, flat: torch.Tensor) -> torch.Tensor:
        return self.values[torch.searchsorted(self.index, flat)]


def _range_keep(field: nn.Module, lower: np.ndarray, upper: np.ndarray, level: float, mode: str, device: torch.device, ctx: JobContext) -> np.ndarray:
    """Which boxes (K,) range analysis cannot certify to lie on one side of ``level``, in chunks of
    :func:`~..ranges.search.range_chunk` boxes (larger on an accelerator)."""
    keep = np.empty(len(lower), dtype=bool)
    chunk = range_chunk(field, mode, device)
    for start in range(0, len(lower), chunk):
        lo = torch.as_tensor(lower[start : start + chunk], dtype=torch.float32, device=device)
        hi = torch.as_tensor(upper[start : start + chunk], dtype=torch.float32, device=device)
        keep[start : start + len(lo)] = (classify(field, lo, hi, level, mode) == UNKNOWN).cpu().numpy()
        ctx.progress(start + len(lo), len(lower), None, "certifying empty blocks")
    return keep


def _cull(
    field: nn.Module,
    n: int,
    block: int,
    level: float,
    safety: float,
    device: torch.device,
    ctx: JobContext,
    chunk: int | None,
    ranges: str | None = None,
) -> tuple[np.ndarray, int, float, float]:
    """Octree culling down to the leaf blocks; returns their coordinates (K, 3), the evaluations (points, or boxes
    with ``ranges``) and the value range seen (points only)."""
    m = n - 1  # cells per axis
    step = 2.0 / m
    leaves = -(-m // block)  # leaf blocks per axis
    depth = max(0, int(np.ceil(np.log2(leaves))) - 2)  # the top level has <= 4^3 blocks
    size = 1 << depth  # leaf blocks per block side at this level
    top = -(-leaves // size)
    blocks = np.stack(np.meshgrid(*[np.arange(top)] * 3, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.int64)
    evaluations, lo, hi = 0, np.inf, -np.inf
    children = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    while True:
        first = blocks * size * block  # cell ranges, clipped to the grid
        last = np.minimum((blocks + 1) * size * block, m)
        if ranges is not None:
            evaluations += len(blocks)
            blocks = blocks[_range_keep(field, first * step - 1.0, last * step - 1.0, level, ranges, device, ctx)]
            if size == 1 or not len(blocks):
                return blocks, evaluations, lo, hi
            size //= 2
            blocks = (blocks[:, None, :] * 2 + children[None]).reshape(-1, 3)
            blocks = blocks[(blocks * size < leaves).all(axis=1)]
            continue
        center = (first + last) * (0.5 * step) - 1.0
        radius = 0.5 * step * np.linalg.norm((last - first).astype(np.float64), axis=1)
        values = evaluate_points(field, center, device, ctx, chunk, "finding the surface")
        evaluations += len(values)
        if not np.isfinite(values).all():
            raise JobError("the field evaluates to NaN or Inf; the checkpoint is broken")
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
        blocks = blocks[np.abs(values.astype(np.float64) - level) <= safety * LIPSCHITZ * radius]
        if size == 1 or not len(blocks):
            return blocks, evaluations, lo, hi
        size //= 2
        blocks = (blocks[:, None, :] * 2 + children[None]).reshape(-1, 3)
        blocks = blocks[(blocks * size < leaves).all(axis=1)]


def _crossings(values: torch.Tensor, level: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Which blocks (K,) the surface crosses, and which of their faces (K, 6: -x, +x, -y, +y, -z, +z).

    ``values`` (K, B+1, B+1, B+1) may repeat a clipped block's last plane
    (clamped indices): repeated planes change neither answer.
    """
    inside = values > level
    crossed = inside.flatten(1).any(dim=1) & ~inside.flatten(1).all(dim=1)
    sides = [inside[:, 0], inside[:, -1], inside[:, :, 0], inside[:, :, -1], inside[:, :, :, 0], inside[:, :, :, -1]]
    faces = torch.stack([f.flatten(1).any(dim=1) & ~f.flatten(1).all(dim=1) for f in sides], dim=1)
    return crossed, faces


def _march_groups(blocks: np.ndarray, values: np.ndarray, block: int, m: int, level: float, ctx: JobContext):
    """Marching cubes over groups of up to ``GROUP``^3 crossed leaf blocks, one call per group.

    Each group's blocks are copied into one volume, and scikit-image's ``mask``
    restricts the call to their cells (every corner of such a cell belongs to
    its block, so the filler elsewhere never reaches the mesh). Yields the
    group's cell origin (3,) and its vertices (in the group's index
    coordinates), faces and grid normals.
    """
    group_of = blocks // GROUP
    order = np.lexsort(group_of.T[::-1])
    blocks, values, group_of = blocks[order], values[order], group_of[order]
    starts = np.flatnonzero(np.r_[True, (np.diff(group_of, axis=0) != 0).any(axis=1)])
    ends = np.r_[starts[1:], len(blocks)]
    filler = np.float32(level + 1.0)
    ctx.progress(0, len(starts), None, "marching cubes")
    for k, (a, b) in enumerate(zip(starts, ends)):
        origin = group_of[a] * GROUP * block
        shape = np.minimum(origin + GROUP * block, m) - origin + 1
        volume = np.full(shape, filler, dtype=np.float32)
        mask = np.zeros(shape, dtype=bool)
        for leaf, vals in zip(blocks[a:b] * block - origin, values[a:b]):
            s = np.minimum(leaf + origin + block, m) - origin - leaf + 1  # a clipped block's real size
            volume[leaf[0] : leaf[0] + s[0], leaf[1] : leaf[1] + s[1], leaf[2] : leaf[2] + s[2]] = vals[: s[0], : s[1], : s[2]]
            # scikit-image computes the cell whose far corner is masked in (measured with 0.26).
            mask[leaf[0] + 1 : leaf[0] + s[0], leaf[1] + 1 : leaf[1] + s[1], leaf[2] + 1 : leaf[2] + s[2]] = True
        try:
            verts, faces, mc_normals, _ = marching_cubes(volume, level=level, mask=mask, allow_degenerate=False)
        except (RuntimeError, ValueError):  # touches the level only at grid points: no triangle here
            continue
        ctx.progress(k + 1, len(starts), None, "marching cubes")
        if len(faces):
            yield origin, verts, faces, mc_normals


def _weld_skimage(blocks: np.ndarray, values: np.ndarray, block: int, m: int, level: float, ctx: JobContext):
    """scikit-image's marching cubes over the crossed blocks, welded: vertices in [-1, 1]^3, faces, grid normals
    (None when nothing but degenerate triangles came out)."""
    all_keys, all_verts, all_faces, all_normals, count = [], [], [], [], 0
    for origin, verts, faces, mc_normals in _march_groups(blocks, values, block, m, level, ctx):
        g = verts.astype(np.float64) + origin  # global index coordinates
        r = np.round(g)
        on_grid = np.abs(g - r) < SNAP
        key = np.where(on_grid, 2 * r, 2 * np.floor(g) + 1).astype(np.int64)
        all_keys.append((key[:, 0] * (2 * m + 1) + key[:, 1]) * (2 * m + 1) + key[:, 2])
        all_verts.append(g)
        all_faces.append(faces.astype(np.int64) + count)
        all_normals.append(mc_normals)
        count += len(verts)
    if not all_keys:
        return None
    keys, first, inverse = np.unique(np.concatenate(all_keys), return_index=True, return_inverse=True)
    del keys, all_keys
    step = 2.0 / m
    verts = ((np.concatenate(all_verts)[first].astype(np.float32) * step).astype(np.float32) - 1.0).astype(np.float32)
    mc_normals = np.concatenate(all_normals)[first]
    faces = inverse.reshape(-1)[np.concatenate(all_faces)]
    # Like the dense path (scikit-image merges them too): one vertex per position.
    verts, first, inverse = np.unique(verts, axis=0, return_index=True, return_inverse=True)
    mc_normals, faces = mc_normals[first], inverse.reshape(-1)[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    used = np.zeros(len(verts), dtype=bool)
    used[faces.ravel()] = True
    if not used.all():  # vertices of degenerate faces only
        verts, mc_normals, faces = verts[used], mc_normals[used], (np.cumsum(used) - 1)[faces]
    return verts, faces, mc_normals


def _march(
    marcher: str, blocks: torch.Tensor, values: torch.Tensor, block: int, m: int, level: float, ctx: JobContext
) -> tuple[Array, Array, Callable[[], Array]] | None:
    """Step 4 by ``marcher``: vertices in [-1, 1]^3 (float32), faces and a function that gives the grid normals
    (the torch marcher computes them only then: the faces' area-weighted normals, toward larger values), as tensors
    on the blocks' device (torch) or host arrays (skimage); None when nothing but degenerate triangles came out."""
    if marcher == "torch":
        ctx.progress(0, 1, None, "marching cubes")
        tv, tf = march_blocks(values, blocks * block, block, m, level, scale=2.0 / m, offset=-1.0)
        ctx.progress(1, 1, None, "marching cubes")
        if not len(tf):
            return None
        return tv, tf, lambda: face_normals_at_vertices(tv, tf)
    mesh = _weld_skimage(blocks.cpu().numpy(), values.cpu().numpy(), block, m, level, ctx)
    if mesh is None:
        return None
    verts, faces, mc_normals = mesh
    return verts, faces, lambda: mc_normals


def resolve_marcher(marcher: str) -> str:
    """'torch' or 'skimage' for ``marcher``. 'auto' is the torch marcher on every device: on the CPU too it is
    the faster (bench/results/marching.md: 512^3 hash-grid bunny, 2 cores, 0.17 s against scikit-image's 1.66 s)."""
    return "torch" if check_marcher(marcher) == "auto" else marcher


def surface_blocks(
    field: nn.Module,
    n: int,
    device: torch.device,
    ctx: JobContext,
    level: float,
    chunk: int | None,
    block: int,
    safety: float,
    ranges: str | None,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Steps 1-3: the leaf blocks (K, 3) the surface crosses and their grid values (K, B+1, B+1, B+1), on the device,
    with the statistics (and ``range``, the values seen); raises when there is no surface."""
    m = n - 1
    leaves = -(-m // block)
    kept, evaluations, lo, hi = _cull(field, n, block, level, safety, device, ctx, chunk, ranges)
    box_evaluations = 0
    if ranges is not None:  # the culling evaluated boxes, not points
        box_evaluations, evaluations = evaluations, 0
        if not len(kept):
            raise JobError(f"the field has no surface in its domain: range analysis certifies it never reaches the level {level:g}")
    for _ in range(3 if ranges is None else 0):  # a field much steeper than a distance field can hide every block
        if len(kept) or not lo <= level <= hi:
            break
        safety *= 2.0
        kept, more, lo2, hi2 = _cull(field, n, block, level, safety, device, ctx, chunk)
        evaluations, lo, hi = evaluations + more, min(lo, lo2), max(hi, hi2)
    _check_device(n, estimate_sparse_bytes(n, len(kept), block), device)  # steps 2-3 hold their values there

    grid = _GridValues(field, n, device, ctx, _chunk_size(field, device, chunk, with_grad=False))
    known = torch.zeros(leaves**3, dtype=torch.bool, device=device)  # leaf blocks seen, by flat index
    todo = torch.as_tensor(kept, dtype=torch.int64, device=device).reshape(-1, 3)
    known[(todo[:, 0] * leaves + todo[:, 1]) * leaves + todo[:, 2]] = True
    crossed_blocks, crossed_values, evaluated = [], [], 0
    offsets = torch.tensor([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=torch.int64, device=device)
    while len(todo):  # evaluate the blocks, then pull in the neighbours the surface runs into
        flat = block_points(todo * block, block, m, n)
        grid.add(flat.reshape(-1))
        values = grid.get(flat)
        del flat
        crossed, faces = _crossings(values, level)
        evaluated += len(todo)
        todo, values = todo[crossed], values[crossed]
        crossed_blocks.append(todo)
        crossed_values.append(values)
        neighbours = (todo[:, None, :] + offsets[None])[faces[crossed]]
        neighbours = neighbours[((neighbours >= 0) & (neighbours < leaves)).all(dim=1)]
        key = torch.unique((neighbours[:, 0] * leaves + neighbours[:, 1]) * leaves + neighbours[:, 2])
        key = key[~known[key]]
        known[key] = True
        todo = torch.stack([key // (leaves * leaves), key // leaves % leaves, key % leaves], dim=1)
    del known
    if len(grid.values):  # every point evaluated, the crossed blocks' included
        lo, hi = min(lo, float(grid.values.min())), max(hi, float(grid.values.max()))
    if not sum(len(b) for b in crossed_blocks):
        raise no_surface_error(level, lo, hi)
    blocks, values = torch.cat(crossed_blocks), torch.cat(crossed_values)
    stats = {
        "evaluations": int(evaluations + grid.evaluations),
        "box_evaluations": int(box_evaluations),
        "blocks_evaluated": evaluated,
        "blocks_crossed": len(blocks),
        "block": block,
        "range": (lo, hi),
    }
    return blocks, values, stats


def extract_mesh_sparse(
    field: nn.Module,
    resolution: int,
    device: torch.device,
    ctx: JobContext,
    level: float = 0.0,
    chunk: int | None = None,
    block: int = DEFAULT_BLOCK,
    safety: float = DEFAULT_SAFETY,
    ranges: str | None = None,
    gradient_normals: bool = True,
    marcher: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The dense :func:`extract_mesh`'s mesh (same grid, same vertices), evaluating only near the surface.

    Returns vertices, faces and normals as the dense path does, and a dict of
    statistics: ``evaluations`` (field evaluations at points), ``box_evaluations``
    (range evaluations of blocks, with ``ranges``), ``blocks_evaluated`` and
    ``blocks_crossed`` (leaf blocks evaluated, crossed by the surface), ``block``
    (their size in cells) and ``marcher`` (the one used). ``ranges``: cull by range analysis in this
    mode (see the module docstring) instead of the distance-field test. ``gradient_normals`` off (a preview) skips
    the gradient pass: the normals are the grid's and the faces keep the marcher's winding (toward larger values).
    ``marcher``: 'torch' (:mod:`.marching`, on ``device``), 'skimage' (on the CPU) or 'auto' (see
    :func:`resolve_marcher`).
    """
    n = int(resolution)
    if n < MIN_RESOLUTION:
        raise JobError(f"resolution must be at least {MIN_RESOLUTION}, got {n}")
    if not block >= 1:
        raise JobError(f"the block size must be at least 1 cell, got {block}")
    if not safety > 0:
        raise JobError(f"the safety factor must be positive, got {safety}")
    requested, marcher = marcher, resolve_marcher(marcher)
    m = n - 1
    block = min(int(block), m)
    _check_device(n, estimate_sparse_bytes(n, 0, block), device)
    field.eval()
    blocks, values, stats = surface_blocks(field, n, device, ctx, level, chunk, block, safety, ranges)
    inside = values > level  # crossed grid edges bound the vertices (seam edges count twice)
    crossings = sum(int(torch.count_nonzero(torch.diff(inside.to(torch.int8), dim=a))) for a in (1, 2, 3))
    del inside
    needed = estimate_sparse_bytes(n, stats["blocks_evaluated"], block, crossings)
    if marcher == "torch":  # the marcher's arrays live on the device
        _check_device(n, needed, device)
    else:
        _check_ram(n, needed)

    run = functools.partial(_march, blocks=blocks, values=values, block=block, m=m, level=level, ctx=ctx)
    mesh, marcher = march_with_fallback(requested, marcher, run)
    del run, values
    if mesh is None:
        raise no_surface_error(level, *stats.pop("range"))
    verts, faces, grid_normals = mesh
    if gradient_normals:
        verts, faces, normals = finish_mesh(field, verts, faces, grid_normals, device, ctx)
    else:
        verts, faces, normals = host_mesh(verts, faces, grid_normals())
    stats.pop("range", None)
    stats["marcher"] = marcher
    return verts, faces, normals, stats
