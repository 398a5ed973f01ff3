"""Peak memory of the dense path's torch marcher against the estimate extraction uses to refuse or fall back.

For each grid size and shape, a fresh process fills an N^3 grid of an exact SDF (slab by slab, so that making it
costs no more than the grid), then counts its crossings and marches it as ``extract_mesh`` does (``march_grid``,
and the grid normals). On the CPU the peak is the process's resident set (``VmHWM`` after resetting it through
``/proc/self/clear_refs``), on CUDA torch's peak allocation; the grid's own 4 bytes a point are counted in both.
A least-squares fit gives bytes per grid point and per vertex; the table compares each peak with
``estimate_torch_march_bytes``.

    .venv/bin/python bench/march_memory.py [--device cpu|cuda] [--sizes 128 256 384] [--output bench/results/march_memory.md]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import torch

from common import REPO, append_lines, run_worker_process, worker_entry, write_table
from inr_blender.geometry.extraction import TORCH_BYTES_PER_POINT, TORCH_BYTES_PER_VERTEX, count_crossings, estimate_torch_march_bytes
from inr_blender.geometry.marching import face_normals_at_vertices, march_grid

SHAPES = {
    "sphere": lambda p: p.norm(dim=-1) - 0.5,
    # Bumps: more surface per grid slice than the sphere.
    "bumpy sphere": lambda p: p.norm(dim=-1) - 0.6 - 0.08 * torch.sin(14 * p[..., 0]) * torch.sin(14 * p[..., 1]) * torch.sin(14 * p[..., 2]),
    # A gyroid: surface through the whole cube, about 10x the sphere's vertices.
    "gyroid": lambda p: (
        torch.sin(12 * p[..., 0]) * torch.cos(12 * p[..., 1])
        + torch.sin(12 * p[..., 1]) * torch.cos(12 * p[..., 2])
        + torch.sin(12 * p[..., 2]) * torch.cos(12 * p[..., 0])
    ),
}


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def worker(n: int, shape: str, device: torch.device) -> dict:
    """One grid in this process: its peak memory beyond what was there before the grid, and its vertex count."""
    march_grid(torch.randn(9, 9, 9, device=device), 0.0)  # the block tables and kernels, before the baseline
    axis = torch.linspace(-1.0, 1.0, n, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = _status_kb("VmRSS")
    values = torch.empty((n, n, n), dtype=torch.float32, device=device)
    for i in range(n):  # slab by slab: no N^3 temporaries
        p = torch.stack(torch.meshgrid(axis[i : i + 1], axis, axis, indexing="ij"), dim=-1)
        values[i] = SHAPES[shape](p)[0]
    if device.type == "cpu":
        with open("/proc/self/clear_refs", "w") as fh:  # the peak so far: the grid
            fh.write("5")
    crossings = count_crossings(values, 0.0)
    verts, faces = march_grid(values, 0.0, scale=2.0 / (n - 1), offset=-1.0)
    normals = face_normals_at_vertices(verts, faces)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        peak = _status_kb("VmHWM") - before
    del normals
    return {"n": n, "shape": shape, "vertices": len(verts), "faces": len(faces), "crossings": crossings, "peak": peak}


def fit(rows: list[dict]) -> tuple[float, float]:
    """Bytes per grid point and per vertex that fit the peaks best (least squares)."""
    a = np.array([[r["n"] ** 3, r["vertices"]] for r in rows], dtype=np.float64)
    b = np.array([r["peak"] for r in rows], dtype=np.float64)
    (per_point, per_vertex), *_ = np.linalg.lstsq(a, b, rcond=None)
    return float(per_point), float(per_vertex)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384])
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "march_memory.md"))
    parser.add_argument("--worker", nargs=2, metavar=("N", "SHAPE"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.worker:
        return worker_entry(args.worker_result, lambda: worker(int(args.worker[0]), args.worker[1], device), {})
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")
    rows = []
    for n in args.sizes:
        for shape in SHAPES:
            result = run_worker_process(__file__, ["--device", args.device, "--worker", str(n), shape])
            if "error" in result:
                sys.exit(f"{n}^3 {shape}: {result['error']}")
            rows.append(result)
            print(f"{n}^3 {shape}: {result['vertices']} vertices, peak {result['peak'] / 2**20:.0f} MB", flush=True)
    per_point, per_vertex = fit(rows)
    mb = 2**20
    table = []
    for r in rows:
        estimate = estimate_torch_march_bytes(r["n"], r["crossings"])
        table.append([f"{r['n']}^3", r["shape"], str(r["vertices"]), f"{r['peak'] / mb:.0f}", f"{estimate / mb:.0f}", f"{estimate / r['peak']:.2f}"])
    where = "peak resident set" if device.type == "cpu" else "torch's peak allocation"
    write_table(
        args.output,
        f"Dense torch marcher: peak memory against the estimate (device {device.type}, {where})",
        ["grid", "shape", "vertices", "peak MB", "estimate MB", "estimate / peak"],
        table,
    )
    covered = all(estimate_torch_march_bytes(r["n"], r["crossings"]) >= r["peak"] for r in rows)
    append_lines(
        args.output,
        [
            "",
            f"Least-squares fit: {per_point:.1f} bytes per grid point + {per_vertex:.0f} bytes per vertex; the estimate uses "
            f"{TORCH_BYTES_PER_POINT} and {TORCH_BYTES_PER_VERTEX} (inr_blender/geometry/extraction.py), with the crossed "
            f"edges as its vertex count.",
            f"The estimate covers every measured peak: {'yes' if covered else 'no'}."
            + ("" if covered else f" Smallest ratio {min(float(t[-1]) for t in table):.2f}."),
            f"torch {torch.__version__}; {os.cpu_count()} CPUs{'' if device.type == 'cpu' else ', ' + torch.cuda.get_device_name(device)}.",
            "",
        ],
    )
    return 0 if covered and math.isfinite(per_point) else 1


if __name__ == "__main__":
    sys.exit(main())
