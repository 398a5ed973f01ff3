"""Job ``fit_sdf``: fit a signed distance field (any method of fitting/sdf.py) to a mesh or a point cloud."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import numpy as np

from ..context import JobContext, JobError
from ..device import check_training_memory, resolve_device
from ..fileio import READ_TEXT
from ..fitting import sdf as sdf_fitting
from ..geometry.sampling import sample_surface
from ..geometry.validation import check_mesh, check_normals, check_points
from ..settings import presets
from ..settings.spec import params
from .registry import Arrays, Command, Positional, Result, job, preset_param
from .shared import OUTPUT, RETURN_CHECKPOINT, checkpoint_target, deliver, summary

PRESET = preset_param(
    f"Settings by purpose, filled in where not set: {', '.join(presets.SDF)} (method idf: {', '.join(presets.DISPLACEMENT)}); custom: none. "
    "On a CUDA device, fast and detailed take larger batches and tables",
    presets.SDF,
    presets.DISPLACEMENT,
)
JOB_PARAMS = (OUTPUT, RETURN_CHECKPOINT, PRESET)
# The job's settings: where the checkpoint goes and the preset, then the fit's own (fitting/sdf.py).
SPEC = replace(sdf_fitting.SPEC, params=params(JOB_PARAMS, sdf_fitting.SPEC.params))


def preset_table(given: dict[str, Any]) -> dict[str, presets.Preset]:
    """The presets of a fit: a displacement field's for method idf, else the SDF methods'."""
    return presets.DISPLACEMENT if str(given.get("method") or "").lower() == "idf" else presets.SDF


def surface_points(p: dict[str, Any], arrays: Arrays) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (and normals, when every source has them) from a mesh and/or a point cloud."""
    has_mesh = "vertices" in arrays or "faces" in arrays
    if not has_mesh and "points" not in arrays:
        raise JobError("fit_sdf needs a mesh (vertices + faces) or points")
    points: list[np.ndarray] = []
    normals: list[np.ndarray | None] = []
    if has_mesh:
        if "vertices" not in arrays or "faces" not in arrays:
            raise JobError("a mesh needs both vertices and faces")
        vertices, faces = check_mesh(arrays["vertices"], arrays["faces"])
        sampled, sampled_normals = sample_surface(vertices, faces, p["num_samples"], p["seed"])
        points.append(sampled)
        normals.append(sampled_normals)
    if "points" in arrays:
        cloud = check_points(arrays["points"])
        points.append(cloud)
        normals.append(check_normals(arrays["normals"], len(cloud)) if "normals" in arrays else None)
    elif "normals" in arrays:
        raise JobError("normals were given without points")
    given = [n for n in normals if n is not None]
    if len(given) < len(normals):
        return np.concatenate(points), None  # mixed sources: fit without normals
    return np.concatenate(points), np.concatenate(given)


def check_memory(p: dict[str, Any]) -> None:
    """Refuse up front a fit whose steps cannot fit in the device's memory (see device.check_training_memory)."""
    width = max(p.get(k) or 0 for k in ("width", "base_width", "detail_width"))
    depth = max(p.get(k) or 0 for k in ("depth", "base_depth", "detail_depth"))
    table = p["levels"] * p["features_per_level"] << p["log2_table_size"] if "log2_table_size" in p else 0
    check_training_memory(p["batch_size"], width, depth, resolve_device(p["device"]), "fit_sdf", weights=table)


def _read(args: argparse.Namespace, p: dict[str, Any]) -> tuple[dict[str, Any], Arrays]:
    from ..fileio import read_geometry

    return p, read_geometry(args.input)


def _write(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    print(
        f"fitted {result['method'].upper()} on {result['num_points']} points in {result['seconds']:.1f} s "
        f"({result['device']}), final loss {result['final_loss']:.5g}: {result['checkpoint_path']}"
    )
    print(f"stopped: {result['stop_reason']}")


CLI = Command(
    positionals=(Positional("input", f"point cloud or mesh to fit ({READ_TEXT})"),),
    output="checkpoint to write (.pt)",
    output_param="checkpoint_path",
    read=_read,
    write=_write,
    preset=presets.SDF_DEFAULT,
    options={
        "lr": "learning_rate",
        "tolerance": "convergence_tolerance",
        "base-only": ({"phase_base": 1.0, "phase_detail": 1.0}, "idf: fit the smooth base alone (a target for detail transfer)"),
    },
)


@job(SPEC, cli=CLI, presets=preset_table)
def fit_sdf(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Fit an SDF to the arrays ``points`` (+ ``normals``) and/or a mesh (``vertices``, ``faces``); write its
    checkpoint to ``checkpoint_path`` (or, with ``return_checkpoint``, send its bytes back as ``checkpoint``)."""
    started = time.monotonic()
    path, send_back = checkpoint_target(p, "fit_sdf", ctx)
    check_memory(p)
    points, normals = surface_points(p, arrays)
    names = {q.name for q in JOB_PARAMS}
    ckpt = sdf_fitting.fit_sdf(points, normals, {k: v for k, v in p.items() if k not in names}, ctx)
    ckpt["seconds"] = time.monotonic() - started
    path, out = deliver(ckpt, path, send_back)
    scaled = sorted(presets.device_settings(preset_table(p), p["preset"]))  # what the preset took for this device
    return {**summary(ckpt), "checkpoint_path": path, "device_settings": {k: p[k] for k in scaled}}, out
