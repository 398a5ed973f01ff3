"""Autograd (double backward) against finite differences (Neuralangelo) for the hash grid's gradients.

Fits the same shape with the same hash-grid settings and number of steps, taking the eikonal
and normal terms' gradients either way, and reports seconds per step and the quality of the
extracted mesh. Writes ``bench/results/gradients.md``.

    .venv/bin/python bench/gradients.py [--steps 300] [--shape ../shared/data/meshes/fandisk.obj]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from common import REPO, load_shape, write_table
from inr_blender.context import JobContext
from inr_blender.jobs import JOBS

SHAPE = os.path.join(REPO, "..", "shared", "data", "meshes", "fandisk.obj")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--shape", default=SHAPE)
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "gradients.md"))
    args = parser.parse_args()
    name, mesh = load_shape(args.shape)
    ctx = JobContext()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gradient in ("autograd", "finite_difference"):
            ckpt = os.path.join(tmp, f"{gradient}.pt")
            params = {"method": "hashgrid", "iterations": args.steps, "convergence_tolerance": 0, "gradient": gradient,
                      "checkpoint_path": ckpt, "device": "cpu"}
            started = time.perf_counter()
            fit, _ = JOBS["fit_sdf"](params, dict(mesh), ctx)
            seconds = time.perf_counter() - started
            _, out = JOBS["extract_mesh"]({"checkpoint_path": ckpt, "resolution": args.resolution, "space": "world", "device": "cpu"}, {}, ctx)
            m, _ = JOBS["metrics"]({}, {"vertices_a": mesh["vertices"], "faces_a": mesh["faces"], "vertices_b": out["vertices"], "faces_b": out["faces"]}, ctx)
            rows.append([gradient, f"{seconds:.1f}", f"{seconds / args.steps * 100:.1f}", f"{m['chamfer_l1_normalized']:.5f}",
                         f"{m['normal_consistency']:.4f}", f"{m['fscore']:.4f}"])
            print(rows[-1], flush=True)
    write_table(
        args.output,
        f"Hash-grid gradients: autograd vs central differences ({name}, {args.steps} steps, grid {args.resolution})",
        ["gradient", "fit s", "s / 100 steps", "Chamfer-L1 (/ radius)", "normal consistency", "F-score 1%"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
