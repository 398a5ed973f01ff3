"""Cost and quality of an SDF fit by network size: the published IGR network beside smaller ones.

For each configuration, fit the same shape for the same number of steps through the
backend's own jobs, extract at a fixed grid and measure Chamfer-L1 against the input.
Writes a Markdown table (default ``bench/results/fit_cost.md``).

    .venv/bin/python bench/fit_cost.py [--steps 300] [--shape ../shared/data/meshes/spot.obj] [--only "Hash grid" "IGR 128x4"]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

from common import DEFAULT_SHAPE, REPO, fit_and_measure, load_shape, write_table

CONFIGS = [  # (label, method, width, depth, batch)
    ("IGR published 512x8", "igr", 512, 8, 2048),
    ("IGR 256x6", "igr", 256, 6, 2048),
    ("IGR 256x4", "igr", 256, 4, 2048),
    ("IGR 128x4", "igr", 128, 4, 2048),
    ("SIREN published 256x3", "siren", 256, 3, 2048),
    ("Hash grid (defaults, MLP 64x2)", "hashgrid", 64, 2, 2048),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--shape", default=DEFAULT_SHAPE)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", nargs="+", default=[], metavar="TEXT", help="only the configurations whose label contains one of these")
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "fit_cost.md"))
    args = parser.parse_args()
    configs = [c for c in CONFIGS if not args.only or any(text in c[0] for text in args.only)]
    if not configs:
        parser.error(f"--only matches no configuration; the labels: {', '.join(c[0] for c in CONFIGS)}")
    name, mesh = load_shape(args.shape)
    rows = []
    for label, method, width, depth, batch in configs:
        params = dict(method=method, iterations=args.steps, width=width, depth=depth, batch_size=batch, num_samples=50000)
        fit, fit_s, m = fit_and_measure(mesh, params, args.resolution, args.device)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append((label, batch, fit_s / args.steps * 100, fit["final_loss"], m["chamfer_l1_normalized"], rss, fit["device"]))
        print(f"{label}: {rows[-1][2]:.1f} s/100 steps, Chamfer-L1 {m['chamfer_l1_normalized']:.4f}", flush=True)
    write_table(
        args.output,
        f"SDF fit cost by network size ({name}, {args.steps} steps, grid {args.resolution})",
        ["configuration", "batch", "s / 100 steps", "final loss", "Chamfer-L1 (/ radius)", "peak RSS so far (MB)", "device"],
        [[r[0], str(r[1]), f"{r[2]:.1f}", f"{r[3]:.4g}", f"{r[4]:.4f}", f"{r[5]:.0f}", r[6]] for r in rows],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
