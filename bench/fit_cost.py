"""Cost and quality of an SDF fit by network size: the published IGR network beside smaller ones.

For each configuration, fit the same shape for the same number of steps through the
backend's own jobs, extract at a fixed grid and measure Chamfer-L1 against the input.
Writes a Markdown table (default ``bench/results/fit_cost.md``).

    .venv/bin/python bench/fit_cost.py [--steps 300] [--shape ../shared/data/meshes/spot.obj]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from inr_blender.context import JobContext  # noqa: E402
from inr_blender.fileio import read_geometry  # noqa: E402
from inr_blender.geometry.primitives import icosphere  # noqa: E402
from inr_blender.jobs import JOBS  # noqa: E402

CONFIGS = [  # (label, method, width, depth, batch)
    ("IGR published 512x8", "igr", 512, 8, 2048),
    ("IGR 256x6", "igr", 256, 6, 2048),
    ("IGR 256x4", "igr", 256, 4, 2048),
    ("IGR 128x4", "igr", 128, 4, 2048),
    ("SIREN published 256x3", "siren", 256, 3, 2048),
]


def load_shape(path: str) -> tuple[str, dict]:
    if path and os.path.exists(path):
        mesh = read_geometry(path)
        return os.path.basename(path), {"vertices": mesh["vertices"], "faces": mesh["faces"]}
    v, f = icosphere(1.0, 4)
    return "icosphere (shared data absent)", {"vertices": v, "faces": f}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--shape", default=os.path.join(REPO, "..", "shared", "data", "meshes", "spot.obj"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "fit_cost.md"))
    args = parser.parse_args()
    name, mesh = load_shape(args.shape)
    ctx = JobContext()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, method, width, depth, batch in CONFIGS:
            ckpt = os.path.join(tmp, f"{method}-{width}x{depth}.pt")
            params = dict(method=method, iterations=args.steps, width=width, depth=depth, batch_size=batch, checkpoint_path=ckpt, device=args.device, num_samples=50000)
            started = time.perf_counter()
            fit, _ = JOBS["fit_sdf"](params, dict(mesh), ctx)
            fit_s = time.perf_counter() - started
            _, out = JOBS["extract_mesh"]({"checkpoint_path": ckpt, "resolution": args.resolution, "space": "world", "device": args.device}, {}, ctx)
            m, _ = JOBS["metrics"]({"num_samples": 100000}, {"vertices_a": mesh["vertices"], "faces_a": mesh["faces"], "vertices_b": out["vertices"], "faces_b": out["faces"]}, ctx)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows.append((label, batch, fit_s / args.steps * 100, fit["final_loss"], m["chamfer_l1_normalized"], rss, fit["device"]))
            print(f"{label}: {rows[-1][2]:.1f} s/100 steps, Chamfer-L1 {m['chamfer_l1_normalized']:.4f}", flush=True)
    lines = [
        f"# SDF fit cost by network size ({name}, {args.steps} steps, grid {args.resolution})",
        "",
        "| configuration | batch | s / 100 steps | final loss | Chamfer-L1 (/ radius) | peak RSS so far (MB) | device |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.4g} | {r[4]:.4f} | {r[5]:.0f} | {r[6]} |" for r in rows]
    lines += ["", f"Command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`", ""]
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
