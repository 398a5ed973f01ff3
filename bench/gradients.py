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

from common import REPO, fit_and_measure, load_shape, write_table

SHAPE = os.path.join(REPO, "..", "shared", "data", "meshes", "fandisk.obj")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--shape", default=SHAPE)
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "gradients.md"))
    args = parser.parse_args()
    name, mesh = load_shape(args.shape)
    rows = []
    for gradient in ("autograd", "finite_difference"):
        params = {"method": "hashgrid", "iterations": args.steps, "convergence_tolerance": 0, "gradient": gradient}
        _, seconds, m = fit_and_measure(mesh, params, args.resolution)
        rows.append(
            [
                gradient,
                f"{seconds:.1f}",
                f"{seconds / args.steps * 100:.1f}",
                f"{m['chamfer_l1_normalized']:.5f}",
                f"{m['normal_consistency']:.4f}",
                f"{m['fscore']:.4f}",
            ]
        )
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
