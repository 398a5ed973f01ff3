"""What live previews cost a fit (issue 20): the same SDF fit through a real local worker with previews off, every
2 s (the UI's default) and every 0.5 s, the configurations interleaved round by round (each round starting with the
next one, so that each runs first, second and third); the median of the rounds.

    python bench/preview_cost.py [--shape mesh.obj] [--steps 400] [--rounds 3] [--width 256] [--batch 4096]

The fit runs a fixed number of steps (no convergence stop), so every configuration does the same training work; the
client takes every preview as Blender's operator does. Writes bench/results/preview_cost.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from common import DEFAULT_SHAPE, REPO, load_shape, write_table
from inr_blender.wire.client import Backend, BackendConfig

CONFIGS = (("off", 0.0), ("every 2 s", 2.0), ("every 0.5 s", 0.5))


def fit_once(backend: Backend, mesh: dict, args: argparse.Namespace, every: float, folder: str, steps: int = 0) -> tuple[float, int, float, int]:
    """(fit seconds, previews made, seconds they took in the worker, previews the client received)."""
    params = {
        "method": "igr",
        "iterations": steps or args.steps,
        "width": args.width,
        "depth": 4,
        "batch_size": args.batch,
        "num_samples": 30000,
        "convergence_tolerance": 0.0,
        "device": "cpu",
        "preview_every": every,
        "checkpoint_path": os.path.join(folder, "field.pt"),
    }
    received = []
    outcome = backend.submit("fit_sdf", params, mesh).wait(on_preview=lambda event, arrays: received.append(len(arrays["vertices"])))
    if outcome.status != "finished":
        raise SystemExit(f"the fit failed: {outcome.message}")
    r = outcome.params
    return float(r["seconds"]), int(r["previews"]), float(r["preview_seconds"]), len(received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default=DEFAULT_SHAPE)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=int, default=256, help="hidden units of the 4 layers (Fit SDF's default 256)")
    parser.add_argument("--batch", type=int, default=4096, help="points per step (IGR's default 4096)")
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "preview_cost.md"))
    args = parser.parse_args()
    name, mesh = load_shape(args.shape)
    runs: dict[str, list[tuple[float, int, float, int]]] = {label: [] for label, _ in CONFIGS}
    with tempfile.TemporaryDirectory() as folder:
        backend = Backend(BackendConfig(python=sys.executable, log_dir=folder)).start()
        try:
            fit_once(backend, mesh, args, 0.0, folder, steps=5)  # warm-up: the worker's first fit imports what Adam needs (seconds)
            for k in range(args.rounds):
                for label, every in CONFIGS[k % len(CONFIGS) :] + CONFIGS[: k % len(CONFIGS)]:  # each takes each place
                    runs[label].append(fit_once(backend, mesh, args, every, folder))
                    print(f"round {k + 1}, previews {label}: {runs[label][-1]}", flush=True)
        finally:
            backend.close()
    base = statistics.median(r[0] for r in runs["off"])
    rows = []
    for label, _ in CONFIGS:
        seconds = [r[0] for r in runs[label]]
        median = statistics.median(seconds)
        rows.append(
            [
                label,
                " / ".join(f"{s:.1f}" for s in seconds),
                f"{median:.1f}",
                f"{(median / base - 1) * 100:+.1f}%",
                f"{statistics.median(r[1] for r in runs[label]):.0f}",
                f"{statistics.median(r[2] for r in runs[label]):.2f}",
                f"{statistics.median(r[2] / r[0] for r in runs[label]) * 100:.1f}%",
                f"{statistics.median(r[3] for r in runs[label]):.0f}",
            ]
        )
    header = ["previews", "fit seconds (rounds)", "median", "slowdown", "previews made", "seconds in previews", "share", "received"]
    title = f"Preview cost: IGR {args.width}x4, {args.steps} steps of {args.batch} points on {name}, 64^3 preview surfaces, local worker, 2 CPU cores"
    write_table(args.output, title, header, rows)


if __name__ == "__main__":
    main()
