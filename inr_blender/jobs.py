"""The jobs the worker (and the CLI) can run: name -> function(params, arrays, ctx).

Each job takes JSON-able ``params`` and named numpy ``arrays`` and returns
``(result_params, result_arrays)``. Bad input raises JobError with a reason
for the user; cancellation raises Cancelled from ``ctx.progress``.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .checkpoint import checkpoint_bytes, load_checkpoint, save_checkpoint
from .context import JobContext, JobError
from .device import available_memory_bytes, mps_available, resolve_device
from .fitting import fit_sdf, resolve_params
from .geometry.extraction import MIN_RESOLUTION, extract_mesh
from .geometry.sparse_extraction import DEFAULT_SAFETY, extract_mesh_sparse
from .geometry.metrics import compare_meshes
from .geometry.sampling import sample_surface, to_world
from .geometry.validation import check_mesh, check_normals, check_points

Arrays = dict[str, np.ndarray]
Job = Callable[[dict[str, Any], Arrays, JobContext], tuple[dict[str, Any], Arrays]]


def _int_param(params: dict[str, Any], key: str, default: int, minimum: int) -> int:
    value = params.get(key, default)
    try:
        if float(value) != int(value):
            raise ValueError
        value = int(value)
    except (TypeError, ValueError):
        raise JobError(f"parameter {key} must be an integer, got {value!r}") from None
    if value < minimum:
        raise JobError(f"parameter {key} must be at least {minimum}, got {value}")
    return value


def job_info(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """What the backend is and can use."""
    device = resolve_device(params.get("device", "auto"))
    return {
        "backend_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
        "mps_available": mps_available(),
        "memory_bytes": available_memory_bytes(),
    }, {}


def _surface_points(params: dict[str, Any], arrays: Arrays) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (and normals, when every source has them) from a mesh and/or a point cloud."""
    has_mesh = "vertices" in arrays or "faces" in arrays
    if not has_mesh and "points" not in arrays:
        raise JobError("fit_sdf needs a mesh (vertices + faces) or points")
    points, normals = [], []
    if has_mesh:
        if "vertices" not in arrays or "faces" not in arrays:
            raise JobError("a mesh needs both vertices and faces")
        vertices, faces = check_mesh(arrays["vertices"], arrays["faces"])
        count = _int_param(params, "num_samples", 100_000, 1)
        p, n = sample_surface(vertices, faces, count, _int_param(params, "seed", 0, 0))
        points.append(p)
        normals.append(n)
    if "points" in arrays:
        p = check_points(arrays["points"])
        points.append(p)
        normals.append(check_normals(arrays["normals"], len(p)) if "normals" in arrays else None)
    elif "normals" in arrays:
        raise JobError("normals were given without points")
    if any(n is None for n in normals):
        return np.concatenate(points), None  # mixed sources: fit without normals
    return np.concatenate(points), np.concatenate(normals)


def _check_writable(path: str) -> None:
    """Refuse, before training, a checkpoint path that could not be written afterwards."""
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        if os.path.exists(folder):
            raise JobError(f"cannot write the checkpoint to {path}: {folder} is not a folder")
        folder = os.path.dirname(folder)
    if not os.access(folder, os.W_OK):
        raise JobError(f"cannot write the checkpoint to {path}: {folder} is not writable")


def job_fit_sdf(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Fit an SDF (IGR, SIREN or hash grid) and write its checkpoint to ``checkpoint_path``.

    With ``return_checkpoint`` (for a remote worker) nothing is written on this
    machine: the checkpoint file's bytes come back as the uint8 array ``checkpoint``.
    """
    started = time.monotonic()
    params = dict(params)
    send_back = bool(params.pop("return_checkpoint", False))
    path = params.get("checkpoint_path") or ""
    if not isinstance(path, str) or not (path or send_back):
        raise JobError("fit_sdf needs a checkpoint_path to write the field to")
    resolve_params(params)  # fail fast on bad parameters, before sampling
    if not send_back:
        _check_writable(path)
    points, normals = _surface_points(params, arrays)
    ckpt = fit_sdf(points, normals, params, ctx)
    ckpt["seconds"] = time.monotonic() - started
    result_arrays: Arrays = {}
    if send_back:
        result_arrays["checkpoint"] = np.frombuffer(checkpoint_bytes(ckpt), dtype=np.uint8)
    else:
        path = save_checkpoint(ckpt, path)
    return {
        "checkpoint_path": path,
        "center": ckpt["center"],
        "scale": ckpt["scale"],
        "loss_history": ckpt["loss_history"],
        "final_loss": ckpt["final_loss"],
        "iterations_run": ckpt["iterations_run"],
        "stop_reason": ckpt["stop_reason"],
        "seconds": ckpt["seconds"],
        "device": ckpt["device"],
        "num_points": ckpt["num_points"],
        "method": ckpt["method"],
        "has_normals": ckpt["has_normals"],
    }, result_arrays


def job_extract_mesh(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Marching cubes of a fitted field, in its local frame or in world space.

    The field comes from ``checkpoint_path``, or from the uint8 array
    ``checkpoint`` (the file's bytes) when a client sends it to a remote worker.
    ``method`` is 'sparse' (the default: evaluates the field near the surface
    only, with the margin ``safety``) or 'dense' (the whole grid); both give
    the same mesh. The result reports ``evaluations``, the field evaluations made.
    """
    started = time.monotonic()
    resolution = _int_param(params, "resolution", 128, MIN_RESOLUTION)
    try:
        level = float(params.get("level", 0.0))
    except (TypeError, ValueError):
        raise JobError(f"parameter level must be a number, got {params.get('level')!r}") from None
    space = params.get("space", "local")
    if space not in ("local", "world"):
        raise JobError(f"space must be 'local' or 'world', got {space!r}")
    method = params.get("method", "sparse")
    if method not in ("sparse", "dense"):
        raise JobError(f"method must be 'sparse' or 'dense', got {method!r}")
    try:
        safety = float(params.get("safety", DEFAULT_SAFETY))
    except (TypeError, ValueError):
        raise JobError(f"parameter safety must be a number, got {params.get('safety')!r}") from None
    if not safety > 0:
        raise JobError(f"parameter safety must be positive, got {safety:g}")
    device = resolve_device(params.get("device", "auto"))
    source = arrays["checkpoint"] if "checkpoint" in arrays else params.get("checkpoint_path", "")
    field, ckpt = load_checkpoint(source, device)
    if method == "sparse":
        vertices, faces, normals, stats = extract_mesh_sparse(field, resolution, device, ctx, level=level, safety=safety)
        evaluations = stats["evaluations"]
    else:
        vertices, faces, normals = extract_mesh(field, resolution, device, ctx, level=level)
        evaluations = resolution**3
    center, scale = ckpt["center"], float(ckpt["scale"])
    if space == "world":
        vertices = to_world(vertices, center, scale).astype(np.float32)
    return (
        {"num_vertices": len(vertices), "num_faces": len(faces), "center": center, "scale": scale,
         "method": method, "evaluations": int(evaluations), "seconds": time.monotonic() - started},
        {"vertices": vertices, "faces": faces, "normals": normals},
    )


def job_metrics(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Chamfer-L1/L2, normal consistency, F-score at 1% and Hausdorff of mesh b against the reference mesh a.

    The protocol (normalisation by a's bounding sphere, 100k area-uniform samples
    per surface, fixed seed) is in ``geometry.metrics``; the result keys are
    radius, chamfer_l1, chamfer_l2 (world units), chamfer_l1_normalized,
    chamfer_l2_normalized, normal_consistency, fscore, precision, recall,
    fscore_threshold and hausdorff (units of the reference's radius).
    """
    for key in ("vertices_a", "faces_a", "vertices_b", "faces_b"):
        if key not in arrays:
            raise JobError(f"metrics needs the array {key}")
    va, fa = check_mesh(arrays["vertices_a"], arrays["faces_a"], "mesh a")
    vb, fb = check_mesh(arrays["vertices_b"], arrays["faces_b"], "mesh b")
    ctx.progress(0, 1, None, "sampling surfaces")
    result = compare_meshes(va, fa, vb, fb, _int_param(params, "num_samples", 100_000, 1), _int_param(params, "seed", 0, 0))
    ctx.progress(1, 1, None, "done")
    return result, {}


def job_evaluate_field(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Extract a field in world space and measure it against the reference mesh it was fitted to.

    Arrays: ``vertices``/``faces`` of the reference (world space), and ``checkpoint`` bytes
    when the checkpoint is not named by ``checkpoint_path``. Returns the metrics' keys plus
    the extracted mesh's size.
    """
    for key in ("vertices", "faces"):
        if key not in arrays:
            raise JobError(f"evaluate_field needs the reference mesh array {key}")
    extract_keys = ("checkpoint_path", "resolution", "level", "device", "method", "safety")
    extracted, mesh = job_extract_mesh(
        {**{k: params[k] for k in extract_keys if k in params}, "space": "world"},
        {"checkpoint": arrays["checkpoint"]} if "checkpoint" in arrays else {},
        ctx,
    )
    metrics, _ = job_metrics(
        {k: params[k] for k in ("num_samples", "seed") if k in params},
        {"vertices_a": arrays["vertices"], "faces_a": arrays["faces"], "vertices_b": mesh["vertices"], "faces_b": mesh["faces"]},
        ctx,
    )
    return {**metrics, "num_vertices": extracted["num_vertices"], "num_faces": extracted["num_faces"]}, {}


JOBS: dict[str, Job] = {
    "info": job_info,
    "fit_sdf": job_fit_sdf,
    "extract_mesh": job_extract_mesh,
    "metrics": job_metrics,
    "evaluate_field": job_evaluate_field,
}
