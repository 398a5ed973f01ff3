"""Iso-points: how evenly they sample a fitted surface, and whether fitting with them helps.

1. Uniformity (3 shapes of ``../shared/data/meshes``): a hash-grid field (the Fast preset, 300 steps, 100k
   points with normals) is sampled with 5000 iso-points three ways: raw projected points, resampled
   (the default), and resampled then upsampled by 5000 more. Reported: the coefficient of variation of
   the nearest-neighbour spacing, the largest hole (the largest distance from 200k area-uniform samples
   of the mesh to the nearest iso-point, in % of the bounding radius) and the mean |f| (local units).
2. Fitting (5 shapes with thin parts or fine detail): 20k points, displaced by 1% of the bounding radius
   along random directions (normals from the clean faces); SIREN (500 steps) and the Fast preset's hash
   grid (500 steps, no early stop), each with and without iso-points (the defaults: 2000 iso-points,
   first extracted after 300 steps, refreshed every 1000), same steps. Chamfer-L1 (in units of the
   bounding radius) and normal consistency against the clean mesh on the shared protocol
   (``geometry/metrics.py``), meshes extracted at 256.

Writes ``bench/results/isopoints.md`` and ``.json``.

    .venv/bin/python bench/isopoints.py [--skip-fitting]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from common import REPO, append_lines, fit_and_measure, save_results, write_table
from inr_blender.context import JobContext
from inr_blender.fileio import read_geometry
from inr_blender.geometry.metrics import bounding_sphere
from inr_blender.geometry.sampling import sample_surface
from inr_blender.jobs import JOBS
from inr_blender.settings import presets

MESHES = os.path.join(REPO, "..", "shared", "data", "meshes")
RESULTS = os.path.join(REPO, "bench", "results")
UNIFORMITY_SHAPES = ("spot.obj", "fandisk.obj", "kitten.obj")
FITTING_SHAPES = ("armadillo.obj", "dragon-10k.obj", "fertility.off", "rocker-arm.obj", "screwdriver.off")
FAST = {**presets.SDF["fast"].values, "convergence_tolerance": 0.0}  # the Fast preset, run to its last step
SIREN = {"method": "siren", "iterations": 500, "convergence_tolerance": 0.0}
ISO = {"isopoints": 2000}  # with the defaults' warm-up (300) and refresh (1000)


def uniformity(shape: str) -> dict[str, Any]:
    mesh = read_geometry(os.path.join(MESHES, shape))
    points, normals = sample_surface(mesh["vertices"], mesh["faces"], 100_000, 0)
    dense, _ = sample_surface(mesh["vertices"], mesh["faces"], 200_000, 1)
    _, radius = bounding_sphere(mesh["vertices"])
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.pt")
        JOBS["fit_sdf"]({**FAST, "iterations": 300, "checkpoint_path": path}, {"points": points, "normals": normals}, JobContext())
        for name, params in (("raw", {"resample": False}), ("resampled", {}), ("upsampled", {"upsample": 5000})):
            started = time.perf_counter()
            result, arrays = JOBS["sample_isopoints"]({"checkpoint_path": path, "space": "world", "count": 5000, **params}, {}, JobContext())
            seconds = time.perf_counter() - started
            hole = cKDTree(arrays["points"]).query(dense, workers=-1)[0].max() / radius * 100.0
            out[name] = {
                "points": result["num_points"],
                "spacing_cv": result["spacing_cv"],
                "hole": float(hole),
                "mean_residual": result["mean_residual"],
                "discarded": result["num_discarded"],
                "seconds": seconds,
            }
            print(shape, name, out[name], flush=True)
    return out


def fitting(shape: str) -> dict[str, Any]:
    mesh = read_geometry(os.path.join(MESHES, shape))
    points, normals = sample_surface(mesh["vertices"], mesh["faces"], 20_000, 0)
    _, radius = bounding_sphere(mesh["vertices"])
    rng = np.random.default_rng(1)
    direction = rng.normal(size=points.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    noisy = points + 0.01 * radius * direction
    out = {}
    for method, base in (("SIREN", SIREN), ("hash grid", FAST)):
        for label, extra in (("without", {}), ("with", ISO)):
            fit, seconds, metrics = fit_and_measure(mesh, {**base, **extra}, 256, inputs={"points": noisy, "normals": normals})
            out[f"{method} {label}"] = {
                "chamfer": metrics["chamfer_l1_normalized"],
                "normals": metrics["normal_consistency"],
                "seconds": seconds,
                "steps": fit["iterations_run"],
            }
            print(shape, method, label, out[f"{method} {label}"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-fitting", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"uniformity": {s: uniformity(s) for s in UNIFORMITY_SHAPES}}
    md = os.path.join(RESULTS, "isopoints.md")
    rows = []
    for shape, r in results["uniformity"].items():
        for name, v in r.items():
            rows.append(
                [
                    shape,
                    name,
                    str(v["points"]),
                    f"{v['spacing_cv']:.3f}",
                    f"{v['hole']:.2f}%",
                    f"{v['mean_residual']:.1e}",
                    str(v["discarded"]),
                    f"{v['seconds']:.1f} s",
                ]
            )
    write_table(
        md,
        "Iso-points: uniformity (5000 iso-points of a Fast hash-grid field)",
        ["shape", "iso-points", "points", "spacing CV", "largest hole", "mean abs(f)", "did not converge", "time"],
        rows,
    )
    factors = [r["raw"]["spacing_cv"] / r["resampled"]["spacing_cv"] for r in results["uniformity"].values()]
    lines = [
        "",
        f"Resampling lowers the spacing CV by {', '.join(f'{f:.2f}x' for f in factors)} "
        f"(target: at least 2x; {'met' if min(factors) >= 2 else 'missed'}).",
        "",
    ]
    if not args.skip_fitting:
        results["fitting"] = {s: fitting(s) for s in FITTING_SHAPES}
        lines += [
            "## Fitting with iso-points (20k points, 1% noise, 500 steps each)",
            "",
            "| shape | method | Chamfer-L1 without | with | change | normal consistency without | with | time without / with |",
            "|---|---|---|---|---|---|---|---|",
        ]
        better = {"SIREN": 0, "hash grid": 0}
        for shape, r in results["fitting"].items():
            for method in ("SIREN", "hash grid"):
                a, b = r[f"{method} without"], r[f"{method} with"]
                change = (b["chamfer"] - a["chamfer"]) / a["chamfer"]
                better[method] += change <= -0.10
                lines.append(
                    f"| {shape} | {method} | {a['chamfer']:.5f} | {b['chamfer']:.5f} | {change:+.1%} | "
                    f"{a['normals']:.4f} | {b['normals']:.4f} | {a['seconds']:.0f} / {b['seconds']:.0f} s |"
                )
        lines += [
            "",
            "Target: Chamfer-L1 at least 10% better with iso-points on at least 3 of 5 shapes: "
            + "; ".join(f"{m}: {n} of 5 ({'met' if n >= 3 else 'missed'})" for m, n in better.items())
            + ".",
            "",
        ]
    save_results(os.path.join(RESULTS, "isopoints.json"), {"uniformity_shapes": UNIFORMITY_SHAPES, "fitting_shapes": FITTING_SHAPES}, results)
    append_lines(md, lines)


if __name__ == "__main__":
    main()
