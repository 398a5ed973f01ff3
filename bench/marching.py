"""The two marchers of extraction on the same grid values of one field: time and agreement.

Sparse (the default): loads a checkpoint, finds its surface's crossed leaf
blocks once (steps 1-3 of geometry/sparse_extraction.py), then times
scikit-image's and the torch marcher (marching cubes and welding) on them,
``--repeat`` times each. ``--dense``: evaluates the whole grid once and times
scikit-image's marching cubes against ``march_grid`` on it. Optionally
(``--whole``) the whole ``extract_mesh`` job with each marcher. Prints the
results (the machine's load average with them) and writes them as a table
(``--output``; with ``--dense``, ``marching_dense.md`` beside it).

    .venv/bin/python bench/marching.py CHECKPOINT [--resolution 512] [--dense] [--device cpu] [--repeat 3] [--whole]
        [--threads N] [--output bench/results/marching.md]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from common import REPO, write_table
from inr_blender.context import JobContext
from inr_blender.device import resolve_device
from inr_blender.geometry.extraction import grid_values
from inr_blender.geometry.marching import march_grid
from inr_blender.geometry.sparse_extraction import DEFAULT_BLOCK, DEFAULT_SAFETY, _march, surface_blocks
from inr_blender.jobs import JOBS
from inr_blender.jobs.shared import load_field


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _best(run, repeat: int, device: torch.device) -> tuple[float, list[float], object]:
    """The best of ``repeat`` timed calls of ``run``, all the times and the last result."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        _sync(device)
        times.append(time.perf_counter() - started)
    return min(times), times, result


def _whole_job(args: argparse.Namespace, method: str, marcher: str, ctx: JobContext) -> tuple[float, int]:
    """Seconds and vertices of the whole extract_mesh job with ``method`` and ``marcher``."""
    p = {"checkpoint_path": args.checkpoint, "resolution": args.resolution, "method": method, "space": "world", "device": args.device}
    started = time.perf_counter()
    result, _ = JOBS["extract_mesh"]({**p, "marcher": marcher}, {}, ctx)
    return time.perf_counter() - started, result["num_vertices"]


def dense(field: torch.nn.Module, args: argparse.Namespace, device: torch.device, ctx: JobContext) -> int:
    """The dense path's marchers on one evaluated N^3 grid: scikit-image's on the host, torch's on ``device``."""
    n = args.resolution
    started = time.perf_counter()
    values = grid_values(field, n, device, ctx)
    _sync(device)
    print(f"load average {os.getloadavg()}; device {device}, torch threads {torch.get_num_threads()}")
    print(f"the {n}^3 grid: {time.perf_counter() - started:.2f} s")
    step = 2.0 / (n - 1)
    runs = {
        "skimage": lambda: marching_cubes(values.cpu().numpy(), level=0.0, spacing=(step,) * 3, allow_degenerate=False)[:2],
        "torch": lambda: tuple(a.cpu().numpy() for a in march_grid(values, 0.0, scale=step, offset=-1.0)),
    }
    rows, meshes = [], {}
    for name, run in runs.items():
        best, times, (verts, faces) = _best(run, args.repeat, device)
        meshes[name] = verts - (1.0 if name == "skimage" else 0.0), faces
        row = [name, f"{best:.3f}", str(len(np.unique(verts, axis=0))), str(len(faces)), "-"]
        if args.whole:
            seconds, _ = _whole_job(args, "dense", name, ctx)
            row[4] = f"{seconds:.2f}"
        rows.append(row)
        print(f"{name}: marching {best:.3f} s (all {', '.join(f'{t:.3f}' for t in times)}), {row[2]} vertices, {len(faces)} faces; job {row[4]} s")
    (vs, _), (vt, _) = meshes["skimage"], meshes["torch"]
    print(f"vertex sets: max gap {max(cKDTree(vs).query(vt)[0].max(), cKDTree(vt).query(vs)[0].max()):.1e}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    write_table(
        args.output.replace("marching.md", "marching_dense.md"),
        f"Marchers of dense extraction at {n}^3, device {device} (load average {load})",
        ["marcher", "marching s (best)", "distinct vertices", "faces", "whole dense extract_mesh job s"],
        rows,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--whole", action="store_true", help="also time the whole extract_mesh job with each marcher")
    parser.add_argument("--dense", action="store_true", help="the dense path instead (writes marching_dense.md)")
    parser.add_argument("--threads", type=int, default=0, help="torch's CPU threads (0: its default)")
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "marching.md"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    ctx = JobContext()
    field, _ = load_field({"checkpoint_path": args.checkpoint}, {}, ctx, device)
    field.eval()
    if args.dense:
        return dense(field, args, device, ctx)
    n, block = args.resolution, DEFAULT_BLOCK
    started = time.perf_counter()
    blocks, values, stats = surface_blocks(field, n, device, ctx, 0.0, None, block, DEFAULT_SAFETY, None)
    _sync(device)
    print(f"load average {os.getloadavg()}; device {device}, torch threads {torch.get_num_threads()}")
    print(f"steps 1-3: {time.perf_counter() - started:.2f} s, {stats['blocks_crossed']} crossed blocks of {block}^3 cells")
    meshes, rows = {}, []
    for name in ("skimage", "torch"):
        best, times, mesh = _best(lambda name=name: _march(name, blocks, values, block, n - 1, 0.0, ctx), args.repeat, device)
        assert mesh is not None
        meshes[name] = mesh
        rows.append([name, f"{best:.3f}", str(len(mesh[0])), str(len(mesh[1])), "-"])
        print(
            f"{name}: marching + welding {best:.3f} s (best of {args.repeat}; all {', '.join(f'{t:.3f}' for t in times)}), "
            f"{len(mesh[0])} vertices, {len(mesh[1])} faces"
        )
    (vs, _, _), (vt, ft, _) = meshes["skimage"], meshes["torch"]
    started = time.perf_counter()
    meshes["torch"][2]()
    print(f"torch's grid normals (a preview's, or where the gradient vanishes): {time.perf_counter() - started:.3f} s")
    gap = max(cKDTree(vs).query(vt)[0].max(), cKDTree(vt).query(vs)[0].max())
    edges = np.sort(ft[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    print(f"vertex sets: max gap {gap:.1e}; torch mesh: every edge in two faces: {bool((counts == 2).all())}")
    if args.whole:
        for name in ("skimage", "torch"):
            seconds, vertices = _whole_job(args, "sparse", name, ctx)
            print(f"whole extract_mesh job, marcher {name}: {seconds:.2f} s, {vertices} vertices")
            rows[("skimage", "torch").index(name)][4] = f"{seconds:.2f}"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    write_table(
        args.output,
        f"Marchers of sparse extraction at {n}^3, {stats['blocks_crossed']:,} crossed blocks, device {device} (load average {load})",
        ["marcher", "marching + welding s (best)", "vertices", "faces", "whole extract_mesh job s"],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
