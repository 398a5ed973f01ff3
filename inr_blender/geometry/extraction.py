"""Dense marching cubes over a field's local domain [-1, 1]^3.

The field is evaluated on an N^3 grid in chunks under ``torch.no_grad``, the
surface is extracted with scikit-image, and vertex normals come from the
field's gradient (outward, since fields are negative inside).

Memory is checked twice, before anything large is allocated: from the grid
size and a typical surface size, then, once the grid is known, from the exact
number of grid edges the surface crosses (one marching-cubes vertex each).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from skimage.measure import marching_cubes
from torch import nn

from ..context import JobContext, JobError
from ..device import available_memory_bytes, device_free_memory_bytes
from ..fields.grad import value_and_gradient

MIN_RESOLUTION = 8
# Measured with scikit-image 0.26: about 175 bytes per output vertex at the peak
# of marching_cubes (its output included); our own arrays add the rest.
BYTES_PER_VERTEX = 320
TYPICAL_VERTICES_PER_SLICE = 8  # V ~ 8 N^2 for a detailed shape (a sphere of radius 0.5 gives ~1.2 N^2)
FIXED_OVERHEAD = 256 << 20  # interpreter, torch, the network and chunk buffers


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def estimate_extraction_bytes(resolution: int, num_vertices: int | None = None) -> int:
    """RAM needed to extract at ``resolution`` (grid values + marching cubes + outputs).

    Without ``num_vertices`` the surface size is a generous typical guess.
    """
    n = int(resolution)
    vertices = num_vertices if num_vertices is not None else TYPICAL_VERTICES_PER_SLICE * n * n
    return 4 * n**3 + BYTES_PER_VERTEX * vertices + FIXED_OVERHEAD


def _check_ram(resolution: int, needed: int) -> None:
    available = available_memory_bytes()
    if available and needed > available:
        raise JobError(f"resolution {resolution} needs about {_gb(needed)}, the backend machine has {_gb(available)} available")


def _chunk_size(field: nn.Module, device: torch.device, requested: int | None, with_grad: bool) -> int:
    """Points per evaluation chunk, small enough for the device's free memory."""
    width = max((m.out_features for m in field.modules() if isinstance(m, nn.Linear)), default=256)
    layers = sum(1 for m in field.modules() if isinstance(m, nn.Linear))
    # no_grad keeps ~3 activations alive; a backward pass keeps every layer's.
    per_point = 4 * width * ((layers + 2) * 3 if with_grad else 3) + 64
    chunk = requested or (1 << 20 if device.type != "cpu" else 1 << 14)
    free = device_free_memory_bytes(device)
    if free is not None:
        fit = int(free * 0.5) // per_point
        if fit < 1024:
            raise JobError(f"the {device.type} device has only {_gb(free)} free, too little to evaluate the field")
        chunk = min(chunk, fit)
    return max(1024, chunk // 4 if with_grad else chunk)


def evaluate_grid(field: nn.Module, resolution: int, device: torch.device, ctx: JobContext, chunk: int | None = None) -> np.ndarray:
    """Field values on the N^3 grid over [-1, 1]^3, indexed [x, y, z], float32."""
    n = int(resolution)
    total = n**3
    chunk = _chunk_size(field, device, chunk, with_grad=False)
    values = np.empty(total, dtype=np.float32)
    num_chunks = (total + chunk - 1) // chunk
    ctx.progress(0, num_chunks, None, "evaluating the field")
    with torch.no_grad():
        for c, start in enumerate(range(0, total, chunk)):
            idx = torch.arange(start, min(start + chunk, total), device=device, dtype=torch.int64)
            values[start : start + len(idx)] = field(grid_points(idx, n)).float().cpu().numpy()
            ctx.progress(c + 1, num_chunks, None, "evaluating the field")
    return values.reshape(n, n, n)


def count_crossings(values: np.ndarray, level: float) -> int:
    """Number of grid edges whose ends lie on both sides of ``level`` (= marching-cubes vertices)."""
    count = 0
    previous = None
    for plane in values:  # slab by slab: no N^3 temporaries
        inside = plane > level
        count += int(np.count_nonzero(inside[1:, :] != inside[:-1, :]))
        count += int(np.count_nonzero(inside[:, 1:] != inside[:, :-1]))
        if previous is not None:
            count += int(np.count_nonzero(inside != previous))
        previous = inside
    return count


def vertex_normals(field: nn.Module, vertices: np.ndarray, device: torch.device, ctx: JobContext) -> np.ndarray:
    """Unit gradients of the field at ``vertices`` (local frame), float32; zeros where the gradient vanishes."""
    chunk = _chunk_size(field, device, None, with_grad=True)
    out = np.zeros((len(vertices), 3), dtype=np.float32)
    num_chunks = max(1, (len(vertices) + chunk - 1) // chunk)
    for c, start in enumerate(range(0, len(vertices), chunk)):
        pts = torch.as_tensor(vertices[start : start + chunk], dtype=torch.float32, device=device)
        _, g = value_and_gradient(field, pts)
        g = g.detach()
        norm = g.norm(dim=1, keepdim=True)
        out[start : start + len(pts)] = torch.where(norm > 1e-12, g / norm.clamp_min(1e-12), torch.zeros_like(g)).cpu().numpy()
        ctx.progress(c + 1, num_chunks, None, "computing normals")
    return out


def extract_mesh(
    field: nn.Module,
    resolution: int,
    device: torch.device,
    ctx: JobContext,
    level: float = 0.0,
    chunk: int | None = None,
    no_surface=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extract the ``level`` set of ``field`` over [-1, 1]^3 in the local frame.

    Returns vertices (V, 3) float32, faces (F, 3) int32 wound so that their
    normals point outward (toward larger values), and unit vertex normals
    (V, 3) float32. Raises JobError if the memory is insufficient or the field
    has no ``level`` crossing inside the domain (``no_surface(lo, hi)``, when given, words that error).
    """
    n = int(resolution)
    if n < MIN_RESOLUTION:
        raise JobError(f"resolution must be at least {MIN_RESOLUTION}, got {n}")
    _check_ram(n, estimate_extraction_bytes(n))
    field.eval()
    values = evaluate_grid(field, n, device, ctx, chunk)
    lo, hi = float(values.min()), float(values.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise JobError("the field evaluates to NaN or Inf; the checkpoint is broken")
    if not lo < level < hi:
        raise (no_surface or (lambda a, b: no_surface_error(level, a, b)))(lo, hi)
    ctx.progress(0, 1, None, "marching cubes")
    _check_ram(n, estimate_extraction_bytes(n, count_crossings(values, level)))
    step = 2.0 / (n - 1)
    verts, faces, mc_normals, _ = marching_cubes(values, level=level, spacing=(step, step, step), allow_degenerate=False)
    del values
    verts = (verts - 1.0).astype(np.float32)
    faces = faces.astype(np.int32)
    ctx.progress(1, 1, None, "marching cubes")
    return finish_mesh(field, verts, faces, mc_normals, device, ctx)


def grid_points(idx: torch.Tensor, resolution: int) -> torch.Tensor:
    """Local coordinates (float32) of the points with flat indices ``idx`` on the N^3 grid.

    Every extraction path computes grid points here, so equal indices give
    bit-identical points (hence identical field values).
    """
    n = int(resolution)
    step = 2.0 / (n - 1)
    ijk = torch.stack([idx // (n * n), (idx // n) % n, idx % n], dim=1)
    return ijk.to(torch.float32) * step - 1.0


def evaluate_points(
    field: nn.Module,
    points: np.ndarray,
    device: torch.device,
    ctx: JobContext,
    chunk: int | None = None,
    message: str = "evaluating the field",
) -> np.ndarray:
    """Field values (float32) at ``points`` (P, 3) in the local frame; chunked, under no_grad."""
    chunk = _chunk_size(field, device, chunk, with_grad=False)
    total = len(points)
    values = np.empty(total, dtype=np.float32)
    num_chunks = max(1, (total + chunk - 1) // chunk)
    ctx.progress(0, num_chunks, None, message)
    with torch.no_grad():
        for c, start in enumerate(range(0, total, chunk)):
            pts = torch.as_tensor(points[start : start + chunk], dtype=torch.float32, device=device)
            values[start : start + len(pts)] = field(pts).float().cpu().numpy()
            ctx.progress(c + 1, num_chunks, None, message)
    return values


def no_surface_error(level: float, lo: float, hi: float) -> JobError:
    return JobError(
        f"the field has no surface at level {level:g} inside the domain [-1, 1]^3 "
        f"(its values there range from {lo:.4g} to {hi:.4g}); nothing to extract"
    )


def finish_mesh(
    field: nn.Module,
    verts: np.ndarray,
    faces: np.ndarray,
    mc_normals: np.ndarray | Callable[[], np.ndarray],
    device: torch.device,
    ctx: JobContext,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normals from the field's gradient, faces wound outward, grid normals (``mc_normals``, or a function that
    computes them) where the gradient vanishes."""
    normals = vertex_normals(field, verts, device, ctx)
    # Orient the triangles like the gradient (outward), whatever the library's convention.
    tri = verts[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if float(np.einsum("ij,ij->", cross, normals[faces].sum(axis=1))) < 0.0:
        faces = np.ascontiguousarray(faces[:, ::-1])
    missing = ~normals.any(axis=1)
    if missing.any():  # flat spots of the field: fall back to the grid normals, same orientation
        mc_normals = mc_normals() if callable(mc_normals) else mc_normals
        sign = 1.0 if float(np.einsum("ij,ij->", mc_normals[~missing], normals[~missing])) >= 0 else -1.0
        normals[missing] = sign * mc_normals[missing]
    return verts, faces, normals
