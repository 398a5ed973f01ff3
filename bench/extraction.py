"""Sparse against dense marching cubes on one fitted field: evaluations, time and agreement.

Fits a field to a shape (spot.obj from the shared data, else an icosphere; the Fast preset's
hash grid by default, or IGR 4x256 with --method igr), then extracts it with both methods at
each resolution. Dense runs only up to --dense-max (its
evaluation count beyond that is N^3 by construction). Writes ``bench/results/extraction.md``.

    .venv/bin/python bench/extraction.py [--resolutions 128 256 512] [--dense-max 256] [--method hashgrid]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from scipy.spatial import cKDTree

from common import DEFAULT_SHAPE, REPO, load_shape, write_table
from inr_blender.context import JobContext
from inr_blender.jobs import JOBS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--method", choices=["hashgrid", "igr"], default="hashgrid")
    parser.add_argument("--dense-max", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--shape", default=DEFAULT_SHAPE)
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "extraction.md"))
    args = parser.parse_args()
    name, mesh = load_shape(args.shape)
    ctx = JobContext()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "field.pt")
        fit = dict(method=args.method, iterations=args.steps, batch_size=2048, checkpoint_path=ckpt, device="cpu")
        if args.method == "igr":
            fit.update(width=256, depth=4)
        JOBS["fit_sdf"](fit, dict(mesh), ctx)
        for n in args.resolutions:
            result = {}
            for method in ("sparse", "dense"):
                if method == "dense" and n > args.dense_max:
                    result[method] = (n**3, None, None)
                    continue
                started = time.perf_counter()
                info, out = JOBS["extract_mesh"]({"checkpoint_path": ckpt, "resolution": n, "method": method, "device": "cpu"}, {}, ctx)
                result[method] = (info["evaluations"], time.perf_counter() - started, out["vertices"])
            (se, st, sv), (de, dt, dv) = result["sparse"], result["dense"]
            if dv is not None:
                gap = max(cKDTree(dv).query(sv)[0].max(), cKDTree(sv).query(dv)[0].max())
                agree = f"{len(sv)} vs {len(dv)} vertices, max gap {gap:.1e}"
            else:
                agree = f"{len(sv)} vertices (dense not run)"
            rows.append((n, se, de, de / se, st, dt, agree))
            print(rows[-1][:6], agree, flush=True)
    write_table(
        args.output,
        f"Sparse vs dense extraction ({name}, {'hash grid (Fast preset)' if args.method == 'hashgrid' else 'IGR 4x256'} after {args.steps} steps)",
        ["grid points / axis", "sparse evaluations", "dense evaluations", "fewer by", "sparse s", "dense s", "agreement"],
        [[str(r[0]), f"{r[1]:,}", f"{r[2]:,}", f"{r[3]:.1f}x", f"{r[4]:.1f}", "-" if r[5] is None else f"{r[5]:.1f}", r[6]] for r in rows],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
