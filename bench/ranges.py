"""Range analysis: guaranteed extraction and ray casting against dense and Lipschitz baselines, and bound tightness.

1. Extraction on fields that are not distance fields:
   - an under-trained SIREN (3 x 64, 300 steps) of ``dragon-10k`` from ``../shared/data/meshes`` (thin parts),
   - ``steep``: an exact ReLU network of two slabs, one 0.02 thick with a field 20x steeper than a distance
     field (see ``tests/backend/test_backend_range_queries.py``).
   At each resolution: dense marching cubes, the sparse (Lipschitz, distance-field) culling and guaranteed
   culling (range analysis, affine_all). Reported: point and box evaluations, time, connected components
   and the reference's components the mesh misses (none of its vertices within 2 cells of the mesh). The
   reference is the guaranteed extraction at ``--reference``: it is the dense mesh of that grid (the tests
   check that guaranteed and dense give the same mesh), without evaluating every grid point.
2. Ray casting the ``steep`` field from a camera at 256 x 256: frustum casting with range analysis against
   sphere tracing with L = 1, against dense ray marching (4096 steps per ray across the cube, then bisection):
   missed pixels (a hit in the dense march that the method misses or puts more than 0.01 deeper) and time.
3. Bound tightness: mean width of the interval and affine ranges against the sampled range (9^3 grid per
   box) on 64 random boxes of decreasing size, for the SIREN.
Writes ``bench/results/ranges.md`` and ``.json``. ``--nerf`` instead extracts a radiance field's density surface
(the Fast model fitted to ``../shared/data/nerf/lego`` for 60 s at a quarter size) dense and guaranteed, into
``bench/results/ranges_nerf.md``.

    .venv/bin/python bench/ranges.py [--resolutions 128 256] [--reference 384] [--nerf]

On 2 CPU cores the guaranteed extraction of the SIREN costs about 0.2 ms per box (affine_all), so the defaults
are 128 and 256 against a 384^3 guaranteed reference (about 15 minutes). The issue's comparison, 256 and 512 against
a dense 1024^3 reference, is ``--resolutions 256 512 --reference 1024 --dense-reference --name ranges_512``
(about 45 minutes with one torch thread; ``bench/results/ranges_512.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from common import REPO, append_lines, save_results, write_table
from inr_blender.checkpoint import load_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fileio import read_geometry
from inr_blender.geometry.extraction import extract_mesh
from inr_blender.geometry.sampling import sample_surface
from inr_blender.geometry.sparse_extraction import extract_mesh_sparse
from inr_blender.jobs import JOBS
from inr_blender.ranges import field_range
from inr_blender.ranges.raycast import cast_camera, cube_rays, sphere_trace_camera

sys.path.insert(0, os.path.join(REPO, "tests", "backend"))
from test_backend_range_queries import steep_slabs  # noqa: E402

MESHES = os.path.join(REPO, "..", "shared", "data", "meshes")
RESULTS = os.path.join(REPO, "bench", "results")
CPU = torch.device("cpu")
MODE = "affine_all"


def under_trained_siren(work: str) -> torch.nn.Module:
    mesh = read_geometry(os.path.join(MESHES, "dragon-10k.obj"))
    points, normals = sample_surface(mesh["vertices"], mesh["faces"], 50_000, 0)
    path = os.path.join(work, "siren.pt")
    JOBS["fit_sdf"](
        {"method": "siren", "width": 64, "depth": 3, "iterations": 300, "convergence_tolerance": 0.0, "checkpoint_path": path, "device": "cpu"},
        {"points": points, "normals": normals},
        JobContext(),
    )
    return load_checkpoint(path)[0]


def components(vertices: np.ndarray, faces: np.ndarray) -> list[np.ndarray]:
    """The vertex indices of each connected component of a triangle mesh."""
    if not len(faces):
        return []
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(vertices),) * 2)
    count, labels = connected_components(graph, directed=False)
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.ravel()] = True
    return [c for c in (np.flatnonzero((labels == k) & used) for k in range(count)) if len(c)]


def missed(reference: tuple[np.ndarray, list[np.ndarray]], vertices: np.ndarray, tolerance: float) -> int:
    """Components of the reference none of whose vertices lies within ``tolerance`` of ``vertices``."""
    ref_vertices, parts = reference
    if not len(vertices):
        return len(parts)
    d = cKDTree(vertices).query(ref_vertices, workers=-1)[0]
    return sum(1 for c in parts if d[c].min() > tolerance)


def extraction(name: str, field: torch.nn.Module, resolutions: list[int], reference_resolution: int, dense_reference: bool = False) -> dict[str, Any]:
    ctx = JobContext()
    started = time.perf_counter()
    if dense_reference:
        v, f = extract_mesh(field, reference_resolution, CPU, ctx)[:2]
        stats = {"box_evaluations": 0, "evaluations": reference_resolution**3}
    else:
        v, f, _, stats = extract_mesh_sparse(field, reference_resolution, CPU, ctx, ranges=MODE)
    reference = (v, components(v, f))
    out: dict[str, Any] = {
        "reference": {
            "resolution": reference_resolution,
            "method": "dense" if dense_reference else "guaranteed",
            "components": len(reference[1]),
            "boxes": stats["box_evaluations"],
            "evaluations": stats["evaluations"],
            "seconds": time.perf_counter() - started,
        }
    }
    print(name, "reference", out["reference"], flush=True)
    for n in resolutions:
        runs: dict[str, Callable[[], tuple]] = {
            "dense": lambda n=n: (*extract_mesh(field, n, CPU, ctx)[:2], {"evaluations": n**3, "box_evaluations": 0}),
            "sparse (Lipschitz)": lambda n=n: (lambda r: (r[0], r[1], r[3]))(extract_mesh_sparse(field, n, CPU, ctx)),
            "guaranteed": lambda n=n: (lambda r: (r[0], r[1], r[3]))(extract_mesh_sparse(field, n, CPU, ctx, ranges=MODE)),
        }
        for method, run in runs.items():
            started = time.perf_counter()
            try:
                vertices, faces, stats = run()
            except JobError as exc:  # e.g. no surface found at all
                vertices, faces, stats = (
                    np.zeros((0, 3)),
                    np.zeros((0, 3), dtype=np.int64),
                    {"evaluations": 0, "box_evaluations": 0, "error": str(exc)},
                )
            seconds = time.perf_counter() - started
            entry = {
                "evaluations": int(stats["evaluations"]),
                "boxes": int(stats.get("box_evaluations", 0)),
                "seconds": seconds,
                "components": len(components(vertices, faces)),
                "missed": missed(reference, vertices, 2 * 2.0 / (n - 1)),
            }
            out[f"{method} {n}"] = entry
            print(name, method, n, entry, flush=True)
    return out


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """An OpenGL camera-to-world matrix at ``eye`` looking at ``target`` (z up)."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, -forward, eye
    return c2w


def dense_march(field: torch.nn.Module, c2w: torch.Tensor, intrinsics: torch.Tensor, size: int, steps: int = 4096) -> np.ndarray:
    """First-hit distance per pixel by marching ``steps`` samples per ray through the cube (inf: no sign change)."""
    _, _, origins, dirs, near, far, length = cube_rays(c2w, intrinsics, size, size)
    unit = dirs / length[:, None]
    t0, t1 = (near * length).float(), (far * length).float()
    result = np.full(len(origins), np.inf)
    for start in range(0, len(origins), 2048):
        sl = slice(start, start + 2048)
        s = torch.linspace(0, 1, steps)[None, :]
        t = t0[sl, None] + (t1[sl] - t0[sl])[:, None] * s
        x = origins[sl, None, :].float() + unit[sl, None, :].float() * t[..., None]
        with torch.no_grad():
            v = field(x.reshape(-1, 3)).reshape(t.shape)
        change = (v[:, :-1] > 0) != (v[:, 1:] > 0)
        any_change = change.any(dim=1)
        first = change.float().argmax(dim=1)
        hit_t = t.gather(1, first[:, None])[:, 0]
        meets = (far[sl] > near[sl]).numpy()  # rays that miss the cube have near > far
        result[start : start + len(t)] = np.where(any_change.numpy() & meets, hit_t.numpy(), np.inf)
    return result.reshape(size, size)


def raycasting(size: int = 256) -> dict[str, Any]:
    field = steep_slabs()
    c2w = torch.tensor(look_at(np.array([2.2, -1.6, 1.1]), np.array([0.0, 0.0, -0.1])), dtype=torch.float64)
    focal = size / (2 * np.tan(np.radians(25)))
    intrinsics = torch.tensor([focal, focal, size / 2, size / 2], dtype=torch.float64)
    started = time.perf_counter()
    truth = dense_march(field, c2w, intrinsics, size)
    out: dict[str, Any] = {"dense march": {"seconds": time.perf_counter() - started, "hits": int(np.isfinite(truth).sum())}}
    for name, run in (
        ("ranges", lambda: cast_camera(field, c2w, intrinsics, size, size, MODE)),
        ("sphere tracing (L = 1)", lambda: sphere_trace_camera(field, c2w, intrinsics, size, size, 1.0)),
    ):
        started = time.perf_counter()
        hits = run()
        seconds = time.perf_counter() - started
        t = np.where(hits.hit.numpy(), hits.t.numpy(), np.inf)
        wrong = np.isfinite(truth) & ~(t <= truth + 0.01)
        out[name] = {"seconds": seconds, "hits": int(np.isfinite(t).sum()), "missed": int(wrong.sum())}
        print("raycast", name, out[name], flush=True)
    return out


def tightness(field: torch.nn.Module, sizes=(0.1, 0.03, 0.01, 0.003, 0.001), boxes: int = 64) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, 9)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)
    for h in sizes:
        centers = torch.tensor(rng.uniform(-0.7, 0.7, size=(boxes, 3)), dtype=torch.float32)
        with torch.no_grad():
            values = field((centers[:, None, :] + h * grid[None]).reshape(-1, 3)).reshape(boxes, -1)
        row = {"sampled": float((values.max(dim=1).values - values.min(dim=1).values).mean())}
        for mode in ("interval", "affine_fixed", "affine_truncate", "affine_append", "affine_all"):
            lo, hi = field_range(field, centers - h, centers + h, mode)
            row[mode] = float((hi - lo).mean())
        out[str(h)] = row
        print("tightness", h, row, flush=True)
    return out


def nerf_extraction(resolution: int, work: str) -> list[list[str]]:
    """Rows of the density-surface extraction of a 60-second Fast NeRF of lego, dense and guaranteed."""
    path = os.path.join(work, "lego.pt")
    JOBS["fit_nerf"](
        {
            "transforms_path": os.path.join(REPO, "..", "shared", "data", "nerf", "lego"),
            "checkpoint_path": path,
            "model": "fast",
            "max_seconds": 60,
            "downscale": 4,
            "device": "cpu",
        },
        {},
        JobContext(),
    )
    rows = []
    for method in ("dense", "guaranteed"):
        started = time.perf_counter()
        result, arrays = JOBS["extract_mesh"](
            {"checkpoint_path": path, "resolution": resolution, "method": method, "device": "cpu"}, {}, JobContext()
        )
        seconds = time.perf_counter() - started
        parts = components(arrays["vertices"], arrays["faces"])
        rows.append(
            [
                f"{method} {resolution}",
                f"{result['evaluations']:,}",
                f"{result['box_evaluations']:,}",
                f"{seconds:.1f} s",
                str(len(arrays["vertices"])),
                str(len(parts)),
            ]
        )
        print("nerf", rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--reference", type=int, default=384)
    parser.add_argument(
        "--dense-reference", action="store_true", help="the reference is dense marching cubes (the issue's), not the guaranteed extraction"
    )
    parser.add_argument("--name", default="ranges", help="result files bench/results/NAME.md and .json")
    parser.add_argument("--nerf", action="store_true", help="only the radiance field's density surface (ranges_nerf.md)")
    args = parser.parse_args()
    if args.nerf:
        with tempfile.TemporaryDirectory() as work:
            rows = nerf_extraction(96, work)
        write_table(
            os.path.join(RESULTS, "ranges_nerf.md"),
            "Range analysis: a Fast NeRF's density surface (lego, 60 s fit)",
            ["method", "point evaluations", "box evaluations", "time", "vertices", "components"],
            rows,
        )
        return
    with tempfile.TemporaryDirectory() as work:
        siren = under_trained_siren(work)
        results: dict[str, Any] = {
            "extraction": {
                "SIREN (dragon, under-trained)": extraction("siren", siren, args.resolutions, args.reference, args.dense_reference),
                "steep slabs": extraction("steep", steep_slabs(), args.resolutions, args.reference, args.dense_reference),
            }
        }
        results["raycast"] = raycasting()
        results["tightness"] = tightness(siren)
    rows = []
    for field, r in results["extraction"].items():
        ref = r["reference"]
        rows.append(
            [
                field,
                f"reference ({ref.get('method', 'guaranteed')} {ref['resolution']})",
                f"{ref['evaluations']:,}",
                f"{ref['boxes']:,}",
                f"{ref['seconds']:.1f} s",
                str(ref["components"]),
                "-",
            ]
        )
        for key, e in r.items():
            if key != "reference":
                rows.append([field, key, f"{e['evaluations']:,}", f"{e['boxes']:,}", f"{e['seconds']:.1f} s", str(e["components"]), str(e["missed"])])
    md = os.path.join(RESULTS, f"{args.name}.md")
    write_table(
        md,
        f"Range analysis: extraction ({MODE} for the guaranteed culling; torch threads: {torch.get_num_threads()})",
        ["field", "method", "point evaluations", "box evaluations", "time", "components", "missed components"],
        rows,
    )
    lines = ["", "## Ray casting the steep slabs (256 x 256)", "", "| method | hits | missed pixels | time |", "|---|---|---|---|"]
    for name, e in results["raycast"].items():
        lines.append(f"| {name} | {e['hits']:,} | {e.get('missed', '-')} | {e['seconds']:.2f} s |")
    lines += [
        "",
        "## Bound tightness (SIREN, mean width over 64 boxes)",
        "",
        "| box half-width | sampled | interval | affine_fixed | affine_truncate | affine_append | affine_all |",
        "|---|---|---|---|---|---|---|",
    ]
    for h, row in results["tightness"].items():
        lines.append(
            f"| {h} | {row['sampled']:.4g} | "
            + " | ".join(f"{row[m]:.4g}" for m in ("interval", "affine_fixed", "affine_truncate", "affine_append", "affine_all"))
            + " |"
        )
    save_results(
        os.path.join(RESULTS, f"{args.name}.json"),
        {
            "resolutions": args.resolutions,
            "reference": args.reference,
            "dense_reference": args.dense_reference,
            "mode": MODE,
            "threads": torch.get_num_threads(),
        },
        results,
    )
    append_lines(md, lines + [""])


if __name__ == "__main__":
    main()
