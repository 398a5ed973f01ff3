"""Peak memory of extraction with the torch marcher against the estimate that refuses it or falls back.

For each grid size and shape, a fresh process measures one extraction. Dense (``--path dense``): it fills an N^3
grid of the shape's function (slab by slab, so that making it costs no more than the grid), then counts its
crossings and marches it as ``extract_mesh`` does (``march_grid`` and the grid normals). Sparse: the whole
``extract_mesh_sparse`` with the function as the field (without gradient normals, whose chunks are bounded). On
the CPU the peak is the process's resident set (``VmHWM`` after resetting it through ``/proc/self/clear_refs``),
on CUDA torch's peak allocation, beyond what was there before. A least-squares fit gives bytes per point held and
per vertex; the table compares each peak with ``estimate_torch_march_bytes`` or ``estimate_sparse_bytes``.

    .venv/bin/python bench/march_memory.py [--path dense|sparse] [--device cpu|cuda] [--sizes 128 256 384] [--output FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import torch
from scipy.optimize import nnls

from common import REPO, append_lines, run_worker_process, worker_entry, write_table
from inr_blender.context import JobContext
from inr_blender.geometry.extraction import (
    BYTES_PER_VERTEX,
    FIXED_OVERHEAD,
    TORCH_BYTES_PER_POINT,
    TORCH_BYTES_PER_VERTEX,
    count_crossings,
    estimate_torch_march_bytes,
)
from inr_blender.geometry.marching import face_normals_at_vertices, march_grid
from inr_blender.geometry.sparse_extraction import BYTES_PER_BLOCK_POINT, BYTES_PER_POINT, estimate_sparse_bytes, extract_mesh_sparse

SHAPES = {
    "sphere": lambda p: p.norm(dim=-1) - 0.5,
    # Bumps: more surface per grid slice than the sphere.
    "bumpy sphere": lambda p: p.norm(dim=-1) - 0.6 - 0.08 * torch.sin(14 * p[..., 0]) * torch.sin(14 * p[..., 1]) * torch.sin(14 * p[..., 2]),
    # A gyroid: surface through the whole cube, about 10x the sphere's vertices; divided by 20 for a slope near 1,
    # as the sparse path's culling assumes.
    "gyroid": lambda p: (
        (
            torch.sin(12 * p[..., 0]) * torch.cos(12 * p[..., 1])
            + torch.sin(12 * p[..., 1]) * torch.cos(12 * p[..., 2])
            + torch.sin(12 * p[..., 2]) * torch.cos(12 * p[..., 0])
        )
        / 20.0
    ),
}


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


class _Shape(torch.nn.Module):
    """One of :data:`SHAPES` as a field, for the sparse path."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return SHAPES[self.name](p)


def _start(device: torch.device) -> int:
    """The memory in use now, and the peak reset to it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/clear_refs", "w") as fh:  # resets VmHWM to the resident set
        fh.write("5")
    return _status_bytes("VmRSS")


def _peak(device: torch.device, before: int) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return _status_bytes("VmHWM") - before


def worker(path: str, n: int, shape: str, device: torch.device) -> dict:
    """One extraction in this process: its peak memory beyond what was there before it, the estimate, the points it
    held (dense: the grid; sparse: its evaluated blocks' points) and the vertices."""
    if path == "sparse":
        field = _Shape(shape)
        extract_mesh_sparse(field, 16, device, JobContext(), gradient_normals=False)  # kernels and tables first
        before = _start(device)
        verts, faces, _, stats = extract_mesh_sparse(field, n, device, JobContext(), gradient_normals=False)
        peak = _peak(device, before)
        points = stats["blocks_evaluated"] * (stats["block"] + 1) ** 3
        estimate = estimate_sparse_bytes(n, stats["blocks_evaluated"], stats["block"], len(verts)) - FIXED_OVERHEAD
        return {"n": n, "shape": shape, "vertices": len(verts), "points": points, "peak": peak, "estimate": estimate}
    march_grid(torch.randn(9, 9, 9, device=device), 0.0)  # kernels and tables first
    axis = torch.linspace(-1.0, 1.0, n, device=device)
    before = _start(device)
    values = torch.empty((n, n, n), dtype=torch.float32, device=device)
    for i in range(n):  # slab by slab: no N^3 temporaries
        p = torch.stack(torch.meshgrid(axis[i : i + 1], axis, axis, indexing="ij"), dim=-1)
        values[i] = SHAPES[shape](p)[0]
    crossings = count_crossings(values, 0.0)
    verts, faces = march_grid(values, 0.0, scale=2.0 / (n - 1), offset=-1.0)
    face_normals_at_vertices(verts, faces)
    peak = _peak(device, before)
    estimate = estimate_torch_march_bytes(n, crossings)
    return {"n": n, "shape": shape, "vertices": len(verts), "points": n**3, "peak": peak, "estimate": estimate}


def fit(rows: list[dict]) -> tuple[float, float]:
    """Bytes per point held and per vertex that fit the peaks best (non-negative least squares)."""
    a = np.array([[r["points"], r["vertices"]] for r in rows], dtype=np.float64)
    b = np.array([r["peak"] for r in rows], dtype=np.float64)
    (per_point, per_vertex), _ = nnls(a, b)
    return float(per_point), float(per_vertex)


USES = {
    "dense": f"{TORCH_BYTES_PER_POINT} bytes per grid point and {TORCH_BYTES_PER_VERTEX} per crossed edge "
    "(estimate_torch_march_bytes, inr_blender/geometry/extraction.py)",
    "sparse": f"{BYTES_PER_POINT + BYTES_PER_BLOCK_POINT} bytes per evaluated block point, {2 * BYTES_PER_VERTEX} per vertex and "
    "one per leaf block (estimate_sparse_bytes without its fixed overhead, inr_blender/geometry/sparse_extraction.py)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="dense", choices=("dense", "sparse"), help="the extraction path measured")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384])
    parser.add_argument("--output", help="default: bench/results/march_memory.md (dense) or march_memory_sparse.md")
    parser.add_argument("--worker", nargs=2, metavar=("N", "SHAPE"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.worker:
        return worker_entry(args.worker_result, lambda: worker(args.path, int(args.worker[0]), args.worker[1], device), {})
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")
    output = args.output or os.path.join(REPO, "bench", "results", "march_memory" + ("_sparse" if args.path == "sparse" else "") + ".md")
    rows = []
    for n in args.sizes:
        for shape in SHAPES:
            result = run_worker_process(__file__, ["--path", args.path, "--device", args.device, "--worker", str(n), shape])
            if "error" in result:
                sys.exit(f"{n}^3 {shape}: {result['error']}")
            rows.append(result)
            print(f"{n}^3 {shape}: {result['vertices']} vertices, peak {result['peak'] / 2**20:.0f} MB", flush=True)
    per_point, per_vertex = fit(rows)
    mb = 2**20
    table = [
        [
            f"{r['n']}^3",
            r["shape"],
            f"{r['points']:,}",
            str(r["vertices"]),
            f"{r['peak'] / mb:.0f}",
            f"{r['estimate'] / mb:.0f}",
            f"{r['estimate'] / r['peak']:.2f}",
        ]
        for r in rows
    ]
    where = "peak resident set" if device.type == "cpu" else "torch's peak allocation"
    held = "grid points" if args.path == "dense" else "evaluated block points"
    write_table(
        output,
        f"{args.path.capitalize()} extraction, torch marcher: peak memory against the estimate (device {device.type}, {where})",
        ["grid", "shape", held, "vertices", "peak MB", "estimate MB", "estimate / peak"],
        table,
    )
    covered = all(r["estimate"] >= r["peak"] for r in rows)
    append_lines(
        output,
        [
            "",
            f"Non-negative least-squares fit: {per_point:.1f} bytes per {held[:-1]} + {per_vertex:.0f} bytes per vertex; "
            f"the estimate uses {USES[args.path]}.",
            f"The estimate covers every measured peak: {'yes' if covered else 'no'}."
            + ("" if covered else f" Smallest ratio {min(float(t[-1]) for t in table):.2f}."),
            f"torch {torch.__version__}; {os.cpu_count()} CPUs{'' if device.type == 'cpu' else ', ' + torch.cuda.get_device_name(device)}.",
            "",
        ],
    )
    return 0 if covered and math.isfinite(per_point) else 1


if __name__ == "__main__":
    sys.exit(main())
