"""What the benchmarks share: the test shape and the Markdown table they write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

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


def fit_and_measure(mesh: dict, params: dict, resolution: int, device: str = "cpu", inputs: dict | None = None) -> tuple[dict, float, dict]:
    """Fit a field to ``mesh`` (or to the arrays ``inputs``, e.g. noisy points) with the backend's jobs, extract it
    in world space and measure it against the mesh.

    Returns the fit job's result, the fit's wall time in seconds and the metrics.
    """
    ctx = JobContext()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "field.pt")
        started = time.perf_counter()
        fit, _ = JOBS["fit_sdf"]({**params, "checkpoint_path": ckpt, "device": device}, dict(inputs or mesh), ctx)
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
    with open(path + ".tmp", "w") as fh:
        fh.write("\n".join(lines))
    os.replace(path + ".tmp", path)
    print("\n".join(lines))


def run_worker_process(script: str, args: list[str]) -> dict[str, Any]:
    """Run ``script args --worker-result FILE`` in a fresh process; the JSON it wrote, or an ``error`` entry."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        rc = subprocess.call([sys.executable, os.path.abspath(script), *args, "--worker-result", out])
        if os.path.exists(out):
            with open(out) as fh:
                return json.load(fh)
        return {"error": f"worker exited with status {rc}"}


def load_results(path: str, settings: dict[str, Any], resume: bool) -> dict[str, dict[str, Any]]:
    """Earlier results to resume from (only when made with the same settings), else none."""
    if not resume or not os.path.exists(path):
        return {}
    with open(path) as fh:
        saved = json.load(fh)
    if saved.get("settings") != settings:
        sys.exit(f"--resume: {path} was made with {saved.get('settings')}, not {settings}; run without --resume to start over")
    return saved["results"]


def save_results(path: str, settings: dict[str, Any], results: dict[str, dict[str, Any]]) -> None:
    """Write the JSON file atomically (after every entry, so an interrupted run loses at most one)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump({"settings": settings, "results": results}, fh, indent=1)
    os.replace(path + ".tmp", path)


def append_lines(path: str, lines: list[str]) -> None:
    """Append (and print) Markdown lines below the table :func:`write_table` wrote."""
    with open(path) as fh:
        text = fh.read()
    with open(path + ".tmp", "w") as fh:
        fh.write(text + "\n".join(lines))
    os.replace(path + ".tmp", path)
    print("\n".join(lines))


def worker_entry(result_path: str, run, failed: dict[str, Any]) -> int:
    """A worker process's body: ``run()``'s result, or ``failed`` with the error, written as JSON to ``result_path``."""
    try:
        result = run()
    except Exception as exc:  # reported as a failed entry, the run goes on
        result = {**failed, "error": f"{type(exc).__name__}: {exc}"}
    with open(result_path + ".tmp", "w") as fh:
        json.dump(result, fh)
    os.replace(result_path + ".tmp", result_path)
    return 0
