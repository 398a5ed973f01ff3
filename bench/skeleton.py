"""Neural skeletons against plain Coverage Axis on teddy, with its Q-MAT medial axis as the ground truth.

Input: 20k points with normals sampled on ``../shared/data/skeletons/teddy/teddy.off`` (seed 0), clean and with
Gaussian noise of 1% of the bounding-box diagonal on the positions (the normals stay those of the faces).

- neural: ``fit_sdf`` (method neural_skeleton, defaults) then ``extract_skeleton`` (defaults), as the
  extension runs them; end-to-end time = both jobs.
- Coverage Axis: the same number of surface samples (2000) drawn from the input points, the inner Voronoi
  vertices of those samples as candidates (``voronoi_candidates``), then the same merge, set cover and
  regular triangulation (``geometry.skeleton.finish``) with the same delta.

Both skeletons and the ground truth (``teddy_mat.ma``) are sampled (vertices, plus 20k points on edges and
triangles) and compared: one-sided Hausdorff (gt->ours: parts missed; ours->gt: spurious parts), two-sided
Hausdorff and Chamfer, in % of the bounding-box diagonal; plus vertex counts, connected components, the
smallest medial radius (a branch that reaches the surface has radii near 0) and each stage's time.
Writes ``bench/results/skeleton.md`` / ``.json`` and ``skeleton/teddy.png``.

    .venv-bench/bin/python bench/skeleton.py [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch
from scipy import sparse

from common import REPO, append_lines, save_results, write_table
from inr_blender.context import JobContext
from inr_blender.fileio import read_geometry, read_ma
from inr_blender.geometry import skeleton as sk
from inr_blender.geometry.metrics import sample_complex, skeleton_distances
from inr_blender.geometry.sampling import normalization, sample_surface, to_local, to_world
from inr_blender.jobs import JOBS
from inr_blender.settings import skeleton as skeleton_settings

TEDDY = os.path.join(REPO, "..", "shared", "data", "skeletons", "teddy")
RESULTS = os.path.join(REPO, "bench", "results")
NUM_POINTS = 20_000
NOISE = 0.01  # of the bounding-box diagonal
COMPLEX_SAMPLES = 20_000


def components(n: int, edges: np.ndarray) -> int:
    graph = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return int(sparse.csgraph.connected_components(graph, directed=False)[0])


def fit(points: np.ndarray, normals: np.ndarray, path: str, device: str) -> float:
    """Fit the neural-skeleton field (the method's defaults) to ``path``; its wall time."""
    started = time.perf_counter()
    JOBS["fit_sdf"]({"method": "neural_skeleton", "checkpoint_path": path, "device": device}, {"points": points, "normals": normals}, JobContext())
    return time.perf_counter() - started


def neural(path: str, fit_seconds: float, delta: float, device: str) -> dict[str, Any]:
    started = time.perf_counter()
    stats, arrays = JOBS["extract_skeleton"]({"checkpoint_path": path, "space": "world", "device": device, "delta": delta}, {}, JobContext())
    total = fit_seconds + time.perf_counter() - started
    return {
        "vertices": arrays["vertices"],
        "radius": arrays["radius"],
        "edges": arrays["edges"],
        "triangles": arrays["triangles"],
        "stats": stats,
        "times": {
            "fit": fit_seconds,
            "surface": stats["seconds_surface"],
            "candidates": stats["seconds_trace"],
            "cover": stats["seconds_cover"],
            "connect": stats["seconds_connect"],
            "total": total,
        },
    }


def coverage_axis(points: np.ndarray, normals: np.ndarray, delta: float, seed: int = 0) -> dict[str, Any]:
    p = skeleton_settings.SPEC.resolve({"delta": delta})
    started = time.perf_counter()
    center, scale = normalization(points)
    pick = np.random.default_rng(seed).choice(len(points), size=min(p["num_surface_samples"], len(points)), replace=False)
    surface = to_local(points[pick], center, scale)
    candidates = sk.voronoi_candidates(surface, normals[pick])
    candidate_seconds = time.perf_counter() - started
    stats: dict[str, Any] = {}
    result = sk.finish(candidates, surface, p, JobContext(), stats)
    total = time.perf_counter() - started
    return {
        "vertices": to_world(result.vertices, center, scale),
        "radius": result.radii * scale,
        "edges": result.edges,
        "triangles": result.triangles,
        "stats": stats,
        "times": {
            "fit": 0.0,
            "surface": 0.0,
            "candidates": candidate_seconds,
            "cover": stats["seconds_cover"],
            "connect": stats["seconds_connect"],
            "total": total,
        },
    }


def measure(run: dict[str, Any], reference: np.ndarray, diagonal: float) -> dict[str, Any]:
    samples = sample_complex(run["vertices"], run["edges"], run["triangles"], COMPLEX_SAMPLES)
    return {
        **skeleton_distances(reference, samples, diagonal),
        "vertices": int(len(run["vertices"])),
        "edges": int(len(run["edges"])),
        "triangles": int(len(run["triangles"])),
        "components": components(len(run["vertices"]), np.asarray(run["edges"]).reshape(-1, 2)),
        "min_radius": float(np.min(run["radius"])) * 100.0 / diagonal,
        "optimal": bool(run["stats"]["optimal"]),
        "candidates": int(run["stats"]["num_candidates"]),
        "times": run["times"],
    }


def plot(path: str, reference: dict[str, np.ndarray], runs: dict[str, dict[str, Any]], surface: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection

    panels = [("ground truth (Q-MAT)", reference["vertices"], reference["edges"], reference["faces"])]
    panels += [(name, r["vertices"], np.asarray(r["edges"]).reshape(-1, 2), np.asarray(r["triangles"]).reshape(-1, 3)) for name, r in runs.items()]
    up = [0, 2, 1]  # teddy's up axis is y: show it vertical
    cols = 3
    fig = plt.figure(figsize=(4.5 * cols, 4.5 * ((len(panels) + cols - 1) // cols)))
    lo, hi = surface.min(axis=0)[up], surface.max(axis=0)[up]
    for k, (name, v, e, t) in enumerate(panels):
        v = v[:, up]
        ax = fig.add_subplot((len(panels) + cols - 1) // cols, cols, k + 1, projection="3d")
        ax.scatter(*surface[::10][:, up].T, s=0.3, c="0.8")
        if len(t):
            ax.add_collection3d(Poly3DCollection(v[t], facecolor="tab:orange", edgecolor="none", alpha=0.6))
        if len(e):
            ax.add_collection3d(Line3DCollection(v[e], colors="tab:red", linewidths=0.6))
        ax.scatter(*v.T, s=3, c="k")
        ax.set_xlim(lo[0], hi[0]), ax.set_ylim(lo[1], hi[1]), ax.set_zlim(lo[2], hi[2])
        ax.set_box_aspect(hi - lo)
        ax.view_init(elev=15, azim=-70)
        ax.set_axis_off()
        ax.set_title(f"{name}: {len(v)} vertices", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--deltas", type=float, nargs="+", default=[skeleton_settings.SPEC.defaults()["delta"], 0.04])
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    mesh = read_geometry(os.path.join(TEDDY, "teddy.off"))
    truth = read_ma(os.path.join(TEDDY, "teddy_mat.ma"))
    diagonal = float(np.linalg.norm(mesh["vertices"].max(axis=0) - mesh["vertices"].min(axis=0)))
    reference = sample_complex(truth["vertices"], truth["edges"], truth["faces"], COMPLEX_SAMPLES)
    clean, normals = sample_surface(mesh["vertices"], mesh["faces"], NUM_POINTS, 0)
    noisy = clean + np.random.default_rng(1).normal(scale=NOISE * diagonal, size=clean.shape)
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for noise_name, points in (("clean", clean), ("1% noise", noisy)):
            path = os.path.join(tmp, "field.pt")
            print(f"fitting the neural skeleton's field, {noise_name}", flush=True)
            fit_seconds = fit(points, normals, path, args.device)
            for delta in args.deltas:
                # the defaults bind this iteration's values (each run is called before the loop moves on)
                for method, run in (
                    ("neural skeleton", lambda p=path, s=fit_seconds, d=delta: neural(p, s, d, args.device)),
                    ("Coverage Axis", lambda x=points, d=delta: coverage_axis(x, normals, d)),
                ):
                    key = f"{method}, {noise_name}, {delta:g}"
                    print(f"running {key}", flush=True)
                    runs[key] = run()
                    results[key] = measure(runs[key], reference, diagonal)
                    print(results[key], flush=True)
    settings = {"num_points": NUM_POINTS, "noise": NOISE, "device": args.device, **skeleton_settings.SPEC.defaults(), "deltas": args.deltas}
    save_results(os.path.join(RESULTS, "skeleton.json"), settings, results)
    shown = [k for k in runs if k.endswith(f", {args.deltas[0]:g}")]
    shown += [f"neural skeleton, 1% noise, {args.deltas[-1]:g}"] if len(args.deltas) > 1 else []
    plot(os.path.join(RESULTS, "skeleton", "teddy.png"), truth, {k: runs[k] for k in shown}, clean)

    header = [
        "input",
        "delta",
        "method",
        "Hausdorff (2-sided)",
        "Hausdorff gt→ours",
        "Hausdorff ours→gt",
        "Chamfer",
        "vertices",
        "edges / triangles",
        "components",
        "least radius",
        "cover",
        "time: fit / surface / candidates / cover / connect",
        "total",
    ]
    rows = []
    for key, r in results.items():
        method, noise_name, delta = key.split(", ")
        t = r["times"]
        rows.append(
            [
                noise_name,
                delta,
                method,
                f"{r['hausdorff']:.2f}%",
                f"{r['hausdorff_ab']:.2f}%",
                f"{r['hausdorff_ba']:.2f}%",
                f"{r['chamfer']:.2f}%",
                str(r["vertices"]),
                f"{r['edges']} / {r['triangles']}",
                str(r["components"]),
                f"{r['min_radius']:.2f}%",
                "optimal" if r["optimal"] else "time limit",
                f"{t['fit']:.1f} / {t['surface']:.1f} / {t['candidates']:.1f} / {t['cover']:.1f} / {t['connect']:.2f} s",
                f"{t['total']:.1f} s",
            ]
        )
    md = os.path.join(RESULTS, "skeleton.md")
    write_table(md, "Skeletons of teddy: neural skeleton against Coverage Axis (Voronoi candidates)", header, rows)
    lines = [
        "Distances in % of the bounding-box diagonal; the skeletons are sampled with 20k points on their edges and",
        f"triangles. Delta is a fraction of the half-extent (default {skeleton_settings.SPEC.defaults()['delta']}); "
        f"{skeleton_settings.SPEC.defaults()['num_surface_samples']} surface samples. The neural field is fitted once per input and its",
        "time counts in every row's total (fit + extraction).",
        "",
        "Targets:",
    ]
    for delta in args.deltas:
        n_clean, c_clean = results[f"neural skeleton, clean, {delta:g}"], results[f"Coverage Axis, clean, {delta:g}"]
        n_noisy = results[f"neural skeleton, 1% noise, {delta:g}"]
        growth = n_noisy["hausdorff"] / n_clean["hausdorff"]
        lines += [
            f"- delta {delta:g}: two-sided Hausdorff at most 3% on teddy: {n_clean['hausdorff']:.2f}% "
            f"({'met' if n_clean['hausdorff'] <= 3 else 'missed'});",
            f"  at most Coverage Axis's error ({c_clean['hausdorff']:.2f}%) with at most its vertices ({c_clean['vertices']}): "
            f"{n_clean['hausdorff']:.2f}% with {n_clean['vertices']} "
            f"({'met' if n_clean['hausdorff'] <= c_clean['hausdorff'] and n_clean['vertices'] <= c_clean['vertices'] else 'missed'});",
            f"  under 2 minutes end to end: {n_clean['times']['total']:.1f} s ({'met' if n_clean['times']['total'] < 120 else 'missed'});",
            f"  with 1% noise, one connected complex and Hausdorff grown at most 2x: {n_noisy['components']} component(s), "
            f"{growth:.2f}x, spurious parts up to {n_noisy['hausdorff_ba']:.2f}% from the true axis "
            f"({'met' if n_noisy['components'] == 1 and growth <= 2 else 'missed'}).",
        ]
    append_lines(md, lines + ["", "![skeletons](skeleton/teddy.png)", ""])


if __name__ == "__main__":
    main()
