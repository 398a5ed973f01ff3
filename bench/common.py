"""What the benchmarks share: the test shape and the Markdown table they write."""

from __future__ import annotations

import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from inr_blender.context import JobContext  # noqa: E402
from inr_blender.fileio import read_geometry  # noqa: E402
from inr_blender.geometry.primitives import icosphere  # noqa: E402
from inr_blender.jobs import JOBS  # noqa: E402

DEFAULT_SHAPE = os.path.join(REPO, "..", "shared", "data", "meshes", "spot.obj")


def load_shape(path: str) -> tuple[str, dict]:
    """A named triangle mesh: the file when present, else an icosphere (shared data absent)."""
    if path and os.path.exists(path):
        mesh = read_geometry(path)
        return os.path.basename(path), {"vertices": mesh["vertices"], "faces": mesh["faces"]}
    v, f = icosphere(1.0, 4)
    return "icosphere (shared data absent)", {"vertices": v, "faces": f}


def fit_and_measure(mesh: dict, params: dict, resolution: int, device: str = "cpu") -> tuple[dict, float, dict]:
    """Fit a field to ``mesh`` with the backend's jobs, extract it in world space and measure it against the mesh.

    Returns the fit job's result, the fit's wall time in seconds and the metrics.
    """
    ctx = JobContext()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "field.pt")
        started = time.perf_counter()
        fit, _ = JOBS["fit_sdf"]({**params, "checkpoint_path": ckpt, "device": device}, dict(mesh), ctx)
        seconds = time.perf_counter() - started
        _, out = JOBS["extract_mesh"]({"checkpoint_path": ckpt, "resolution": resolution, "space": "world", "device": device}, {}, ctx)
    pair = {"vertices_a": mesh["vertices"], "faces_a": mesh["faces"], "vertices_b": out["vertices"], "faces_b": out["faces"]}
    metrics, _ = JOBS["metrics"]({"num_samples": 100_000}, pair, ctx)
    return fit, seconds, metrics


def write_table(path: str, title: str, header: list[str], rows: list[list[str]]) -> None:
    """Write (and print) a Markdown table with the command that produced it."""
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", f"Command: `python {' '.join(sys.argv)}`", ""]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))
