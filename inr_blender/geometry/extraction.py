"""Dense marching cubes over a field's local domain [-1, 1]^3.

The field is evaluated on an N^3 grid in chunks under ``torch.no_grad``, the
surface is extracted by a marcher ('torch': :mod:`.marching` on the field's
device; 'skimage': scikit-image on the CPU), and vertex normals come from the
field's gradient (outward, since fields are negative inside), on the device.

Memory is checked twice, before anything large is allocated: from the grid
size and a typical surface size, then, once the grid is known, from the exact
number of grid edges the surface crosses (one marching-cubes vertex each).
The torch marcher's arrays are checked against the device's free memory (the
RAM on the CPU); 'auto' takes it where they fit, scikit-image on the host
otherwise.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from skimage.measure import marching_cubes
from torch import nn

from ..context import JobContext, JobError
from ..device import available_memory_bytes, device_free_memory_bytes
from ..fields.grad import value_and_gradient
from .marching import face_normals_at_vertices, march_grid

MIN_RESOLUTION = 8
# Measured with scikit-image 0.26: about 175 bytes per output vertex at the peak
# of marching_cubes (its output included); our own arrays add the rest.
BYTES_PER_VERTEX = 320
TYPICAL_VERTICES_PER_SLICE = 8  # V ~ 8 N^2 for a detailed shape (a sphere of radius 0.5 gives ~1.2 N^2)
FIXED_OVERHEAD = 256 << 20  # interpreter, torch, the network and chunk buffers
# The dense torch marcher's peak (bench/march_memory.py, bench/results/march_memory.md): per grid point its value
# (4.4 bytes fitted), per vertex its key, position, faces and the crossed blocks' arrays (about 460 bytes fitted;
# a surface through every block, a gyroid, is the worst case measured).
TORCH_BYTES_PER_POINT = 6
TORCH_BYTES_PER_VERTEX = 600
MARCHERS = ("auto", "torch", "skimage")  # marching cubes: on the field's device, or scikit-image's on the CPU

Array = np.ndarray | torch.Tensor


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def estimate_extraction_bytes(resolution: int, num_vertices: int | None = None) -> int:
    """RAM needed to extract at ``resolution`` (grid values + marching cubes + outputs).

    Without ``num_vertices`` the surface size is a generous typical guess.
    """
    n = int(resolution)
    vertices = num_vertices if num_vertices is not None else TYPICAL_VERTICES_PER_SLICE * n * n
    return 4 * n**3 + BYTES_PER_VERTEX * vertices + FIXED_OVERHEAD


def estimate_torch_march_bytes(resolution: int, num_vertices: int | None = None) -> int:
    """Memory the torch marcher needs on its device for an N^3 grid (the grid values included)."""
    n = int(resolution)
    vertices = num_vertices if num_vertices is not None else TYPICAL_VERTICES_PER_SLICE * n * n
    return TORCH_BYTES_PER_POINT * n**3 + TORCH_BYTES_PER_VERTEX * vertices


def _free_bytes(device: torch.device) -> int | None:
    """Free memory where ``device``'s arrays live: the accelerator's, or the RAM."""
    return device_free_memory_bytes(device) if device.type != "cpu" else available_memory_bytes()


def _check_ram(resolution: int, needed: int) -> None:
    available = available_memory_bytes()
    if available and needed > available:
        raise JobError(f"resolution {resolution} needs about {_gb(needed)}, the backend machine has {_gb(available)} available")


def _check_device(resolution: int, needed: int, device: torch.device) -> None:
    """Refuse ``resolution`` when arrays of ``needed`` bytes on ``device`` would not fit: the RAM for the CPU."""
    if device.type == "cpu":
        return _check_ram(resolution, needed)
    free = device_free_memory_bytes(device)
    if free and needed > free:
        raise JobError(f"resolution {resolution} needs about {_gb(needed)} on the {device.type} device, which has {_gb(free)} free")


def check_marcher(marcher: str) -> str:
    """``marcher``, if it is one of :data:`MARCHERS`."""
    if marcher not in MARCHERS:
        raise JobError(f"marcher must be one of {', '.join(MARCHERS)}, got {marcher!r}")
    return marcher


def resolve_dense_marcher(marcher: str, resolution: int, device: torch.device) -> str:
    """'torch' or 'skimage' for the dense path. 'auto': the torch marcher on ``device`` where its arrays (a typical
    surface's) fit in half its free memory, scikit-image on the host otherwise."""
    if check_marcher(marcher) != "auto":
        return marcher
    free = _free_bytes(device)
    return "torch" if free is None or 2 * estimate_torch_march_bytes(resolution) <= free else "skimage"


T = TypeVar("T")


def march_with_fallback(requested: str, marcher: str, run: Callable[[str], T]) -> tuple[T, str]:
    """``run(marcher)`` and the marcher that ran. Where the torch marcher meets an op its device lacks
    (NotImplementedError: MPS under some torch and macOS versions), 'auto' falls back to scikit-image's on the host
    with a warning; a marcher asked for by name fails with one line."""
    try:
        return run(marcher), marcher
    except NotImplementedError as exc:
        if marcher != "torch" or requested != "auto":
            raise JobError(f"the {marcher} marcher cannot run on this device ({exc}); choose the marcher skimage") from None
        warnings.warn(f"the torch marcher cannot run on this device ({exc}); scikit-image's runs instead", RuntimeWarning, stacklevel=2)
        return run("skimage"), "skimage"


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


def grid_values(
    field: nn.Module, resolution: int, device: torch.device, ctx: JobContext, chunk: int | None = None, store: torch.device | None = None
) -> torch.Tensor:
    """Field values (float32) on the N^3 grid over [-1, 1]^3, indexed [x, y, z], kept on ``store`` (default: ``device``)."""
    n = int(resolution)
    total = n**3
    chunk = _chunk_size(field, device, chunk, with_grad=False)
    values = torch.empty(total, dtype=torch.float32, device=store or device)
    num_chunks = (total + chunk - 1) // chunk
    ctx.progress(0, num_chunks, None, "evaluating the field")
    with torch.no_grad():
        for c, start in enumerate(range(0, total, chunk)):
            idx = torch.arange(start, min(start + chunk, total), device=device, dtype=torch.int64)
            values[start : start + len(idx)] = field(grid_points(idx, n)).float()
            ctx.progress(c + 1, num_chunks, None, "evaluating the field")
    return values.reshape(n, n, n)


def evaluate_grid(field: nn.Module, resolution: int, device: torch.device, ctx: JobContext, chunk: int | None = None) -> np.ndarray:
    """Field values on the N^3 grid over [-1, 1]^3, indexed [x, y, z], float32, on the host."""
    return grid_values(field, resolution, device, ctx, chunk, store=torch.device("cpu")).numpy()


def count_crossings(values: np.ndarray | torch.Tensor, level: float) -> int:
    """Number of grid edges whose ends lie on both sides of ``level`` (= marching-cubes vertices), on the values'
    device."""
    values = torch.as_tensor(values)
    count = torch.zeros((), dtype=torch.int64, device=values.device)
    previous = None
    for plane in values:  # slab by slab: no N^3 temporaries
        inside = plane > level
        count += torch.count_nonzero(inside[1:, :] != inside[:-1, :]) + torch.count_nonzero(inside[:, 1:] != inside[:, :-1])
        if previous is not None:
            count += torch.count_nonzero(inside != previous)
        previous = inside
    return int(count)


def vertex_normals(field: nn.Module, vertices: torch.Tensor, ctx: JobContext) -> torch.Tensor:
    """Unit gradients of the field at ``vertices`` (local frame, on the field's device), float32; zeros where the
    gradient vanishes."""
    chunk = _chunk_size(field, vertices.device, None, with_grad=True)
    out = torch.zeros_like(vertices)
    num_chunks = max(1, (len(vertices) + chunk - 1) // chunk)
    for c, start in enumerate(range(0, len(vertices), chunk)):
        _, g = value_and_gradient(field, vertices[start : start + chunk])
        g = g.detach()
        norm = g.norm(dim=1, keepdim=True)
        out[start : start + len(g)] = torch.where(norm > 1e-12, g / norm.clamp_min(1e-12), torch.zeros_like(g))
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
    marcher: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extract the ``level`` set of ``field`` over [-1, 1]^3 in the local frame.

    Returns vertices (V, 3) float32, faces (F, 3) int32 wound so that their
    normals point outward (toward larger values), and unit vertex normals
    (V, 3) float32. Raises JobError if the memory is insufficient or the field
    has no ``level`` crossing inside the domain (``no_surface(lo, hi)``, when given, words that error).
    ``marcher``: 'torch', 'skimage' or 'auto' (see :func:`resolve_dense_marcher`).
    """
    n = int(resolution)
    if n < MIN_RESOLUTION:
        raise JobError(f"resolution must be at least {MIN_RESOLUTION}, got {n}")
    requested, marcher = marcher, resolve_dense_marcher(marcher, n, device)
    on_device = marcher == "torch"
    if on_device:
        _check_device(n, estimate_torch_march_bytes(n), device)
    else:
        _check_ram(n, estimate_extraction_bytes(n))
    field.eval()
    values = grid_values(field, n, device, ctx, chunk, store=None if on_device else torch.device("cpu"))
    lo, hi = (float(v) for v in torch.aminmax(values))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise JobError("the field evaluates to NaN or Inf; the checkpoint is broken")
    nothing = no_surface(lo, hi) if no_surface else no_surface_error(level, lo, hi)
    if not lo < level < hi:
        raise nothing
    ctx.progress(0, 1, None, "marching cubes")
    crossings = count_crossings(values, level)
    run = functools.partial(_march_dense, values=values, level=level, crossings=crossings, device=device)
    (verts, faces, grid_normals), _ = march_with_fallback(requested, marcher, run)
    del run, values
    ctx.progress(1, 1, None, "marching cubes")
    if not len(faces):  # nothing but degenerate triangles: the field only touches the level
        raise nothing
    return finish_mesh(field, verts, faces, grid_normals, device, ctx)


def _march_dense(marcher: str, values: torch.Tensor, level: float, crossings: int, device: torch.device) -> tuple[Array, Array, Callable[[], Array]]:
    """The dense grid's surface by ``marcher``: vertices in [-1, 1]^3, faces and a function giving the grid normals
    (tensors on the values' device for 'torch', host arrays for 'skimage'); memory checked first."""
    n = values.shape[0]
    step = 2.0 / (n - 1)
    if marcher == "torch":
        _check_device(n, estimate_torch_march_bytes(n, crossings), device)
        tv, tf = march_grid(values, level, scale=step, offset=-1.0)
        return tv, tf, lambda: face_normals_at_vertices(tv, tf)
    _check_ram(n, estimate_extraction_bytes(n, crossings))
    verts, faces, mc_normals, _ = marching_cubes(values.cpu().numpy(), level=level, spacing=(step,) * 3, allow_degenerate=False)
    return (verts - 1.0).astype(np.float32), faces, lambda: mc_normals


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
    verts: Array,
    faces: Array,
    mc_normals: Array | Callable[[], Array],
    device: torch.device,
    ctx: JobContext,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normals from the field's gradient, faces wound outward, grid normals (``mc_normals``, or a function that
    computes them) where the gradient vanishes; computed on ``device``, returned on the host (vertices and normals
    float32, faces int32)."""
    v = torch.as_tensor(verts, dtype=torch.float32, device=device)
    f = torch.as_tensor(faces, device=device).to(torch.int64)
    normals = vertex_normals(field, v, ctx)
    # Orient the triangles like the gradient (outward), whatever the marcher's convention.
    tri = v[f]
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    agreement = (cross * normals[f].sum(dim=1)).sum(dim=1, dtype=torch.float64).sum()
    del tri, cross
    missing = ~normals.any(dim=1)
    if bool(missing.any()):  # flat spots of the field: fall back to the grid normals, same orientation
        grid = torch.as_tensor(mc_normals() if callable(mc_normals) else mc_normals, dtype=torch.float32, device=device)
        sign = 1.0 if float((grid[~missing] * normals[~missing]).sum(dtype=torch.float64)) >= 0 else -1.0
        normals[missing] = sign * grid[missing]
    if float(agreement) < 0.0:
        f = f.flip(1)
    return host_mesh(v, f, normals)


def host_mesh(verts: Array, faces: Array, normals: Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A mesh's arrays on the host: vertices and normals float32, faces int32."""

    def host(a: Array, dtype: type) -> np.ndarray:
        return np.ascontiguousarray(torch.as_tensor(a).cpu().numpy(), dtype=dtype)

    return host(verts, np.float32), host(faces, np.int32), host(normals, np.float32)
