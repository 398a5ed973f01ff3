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
from .checkpoint import checkpoint_bytes, load_checkpoint, read_checkpoint, save_checkpoint
from .context import JobContext, JobError
from .device import available_memory_bytes, mps_available, resolve_device
from .fitting import fit_sdf, resolve_params
from .fitting import nerf as nerf_fitting
from .fitting import completion, shape_space, transfer
from .fitting.loop import downsample_history
from .fields import build_field
from .fields.deepsdf import LatentShape, ShapeSpace
from .fields.displacement import DisplacementField, TransferredDetail
from .params import rgb_param
from .geometry import interpolation, isopoints, skeleton
from .geometry.extraction import MIN_RESOLUTION, extract_mesh
from .geometry.sparse_extraction import DEFAULT_SAFETY, extract_mesh_sparse
from .ranges import MODES as RANGE_MODES
from .geometry.metrics import compare_meshes
from .geometry.sampling import sample_surface, to_world
from .geometry.validation import check_mesh, check_normals, check_points
from .render.dataset import load_transforms, views_from_arrays
from .render.renderer import RenderSettings, render_image
from .render.surface import DEFAULT_THRESHOLD, DensitySurface, vertex_colours

Arrays = dict[str, np.ndarray]
# Range analysis for guaranteed extraction: the mode that stays tight on published-size networks (the others
# fold every neuron's error into intervals that |W| amplifies layer after layer; see inr_blender/ranges).
DEFAULT_RANGE_MODE = "affine_all"
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


def _checkpoint_target(params: dict[str, Any], job: str) -> tuple[str, bool]:
    """(path, send_back): where a fit's checkpoint goes; refused before training if it could not be written.

    With ``return_checkpoint`` (for a remote worker) nothing is written on this
    machine: the checkpoint file's bytes come back as the uint8 array ``checkpoint``.
    """
    send_back = bool(params.pop("return_checkpoint", False))
    path = params.get("checkpoint_path") or ""
    if not isinstance(path, str) or not (path or send_back):
        raise JobError(f"{job} needs a checkpoint_path to write the field to")
    if not send_back:
        _check_writable(path)
    return path, send_back


def _deliver(ckpt: dict[str, Any], path: str, send_back: bool) -> tuple[str, Arrays]:
    """Write the checkpoint (returns its absolute path), or return its bytes as the array ``checkpoint``."""
    if send_back:
        return path, {"checkpoint": np.frombuffer(checkpoint_bytes(ckpt), dtype=np.uint8)}
    return save_checkpoint(ckpt, path), {}


def job_fit_sdf(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Fit an SDF (any method of fitting/sdf.py) and write its checkpoint to ``checkpoint_path`` (or send it back)."""
    started = time.monotonic()
    params = dict(params)
    path, send_back = _checkpoint_target(params, "fit_sdf")
    p = resolve_params({k: v for k, v in params.items() if k != "checkpoint_path"})  # fail fast, before sampling
    points, normals = _surface_points(params, arrays)
    ckpt = fit_sdf(points, normals, p, ctx)
    ckpt["seconds"] = time.monotonic() - started
    path, result_arrays = _deliver(ckpt, path, send_back)
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
        "isopoint_refreshes": ckpt["isopoint_refreshes"],
    }, result_arrays


def job_extract_mesh(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Marching cubes of a fitted field, in its local frame or in world space.

    The field comes from ``checkpoint_path``, or from the uint8 array
    ``checkpoint`` (the file's bytes) when a client sends it to a remote worker.
    ``method`` is 'sparse' (the default: evaluates the field near the surface
    only, with the margin ``safety``), 'dense' (the whole grid) or 'guaranteed'
    (culls by range analysis in ``range_mode``, so on any field, distance field
    or not, nothing that crosses the grid is lost; ``box_evaluations`` counts
    its range evaluations). ``part`` 'base' extracts a displacement field's smooth base
    ('detailed', the default: the field itself). The result reports ``evaluations``, the field evaluations made.
    """
    started = time.monotonic()
    resolution = _int_param(params, "resolution", 128, MIN_RESOLUTION)
    level = _float_param(params, "level", 0.0)
    space = params.get("space", "local")
    if space not in ("local", "world"):
        raise JobError(f"space must be 'local' or 'world', got {space!r}")
    method = params.get("method", "sparse")
    if method not in ("sparse", "dense", "guaranteed"):
        raise JobError(f"method must be 'sparse', 'dense' or 'guaranteed', got {method!r}")
    range_mode = params.get("range_mode", DEFAULT_RANGE_MODE)
    if range_mode not in RANGE_MODES:
        raise JobError(f"range_mode must be one of {', '.join(RANGE_MODES)}, got {range_mode!r}")
    safety = _float_param(params, "safety", DEFAULT_SAFETY)
    if not safety > 0:
        raise JobError(f"parameter safety must be positive, got {safety:g}")
    part = params.get("part", "detailed")
    if part not in ("detailed", "base"):
        raise JobError(f"part must be 'detailed' or 'base', got {part!r}")
    device = resolve_device(params.get("device", "auto"))
    source = arrays["checkpoint"] if "checkpoint" in arrays else params.get("checkpoint_path", "")
    field, ckpt = load_checkpoint(source, device)
    center, scale = ckpt["center"], float(ckpt["scale"])
    if isinstance(field, ShapeSpace):  # one shape of the space: by index, or any code
        field, center, scale = _space_member(field, ckpt, params, arrays)
    if getattr(field, "decoder", None) is not None and field.decoder.output == "occupancy":
        method = "dense" if method == "sparse" else method  # logits are no distances: no Lipschitz culling
    if part == "base":  # the smooth base of a displacement field (or of a transferred-detail field)
        if not isinstance(field, (DisplacementField, TransferredDetail)):
            raise JobError("only a displacement field has a base to extract")
        field = field.base if isinstance(field, DisplacementField) else field.target_base
    radiance = _is_radiance(ckpt)
    if radiance:  # the density's iso-surface; sparse culling assumes a distance field, so dense
        threshold = _float_param(params, "threshold", ckpt.get("density_threshold", DEFAULT_THRESHOLD))
        if not threshold > 0:
            raise JobError(f"parameter threshold must be a positive density, got {threshold:g}")
        radiance_field, field, level = field, DensitySurface(field, threshold), 0.0
        method = "dense" if method == "sparse" else method
    box_evaluations = 0
    if method in ("sparse", "guaranteed"):
        vertices, faces, normals, stats = extract_mesh_sparse(
            field, resolution, device, ctx, level=level, safety=safety, ranges=range_mode if method == "guaranteed" else None)
        evaluations, box_evaluations = stats["evaluations"], stats["box_evaluations"]
    else:
        no_surface = _density_range_error(threshold) if radiance else None
        vertices, faces, normals = extract_mesh(field, resolution, device, ctx, level=level, no_surface=no_surface)
        evaluations = resolution**3
    result_arrays = {"vertices": vertices, "faces": faces, "normals": normals}
    if radiance:
        result_arrays["colors"] = vertex_colours(radiance_field, vertices, normals, device, ctx)
    if space == "world":
        result_arrays["vertices"] = to_world(vertices, center, scale).astype(np.float32)
    return (
        {"num_vertices": len(vertices), "num_faces": len(faces), "center": center, "scale": scale, "method": method,
         "evaluations": int(evaluations), "box_evaluations": int(box_evaluations), "seconds": time.monotonic() - started},
        result_arrays,
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


def _density_range_error(threshold: float):
    """The no-surface error of a radiance field, whose extracted values are ``threshold - density``."""
    def error(lo: float, hi: float) -> JobError:
        return JobError(f"the radiance field's density stays between {threshold - hi:.3g} and {threshold - lo:.3g} "
                        f"inside its cube, never crossing the threshold {threshold:g}: choose a threshold in that range")
    return error


def _is_radiance(ckpt: dict[str, Any]) -> bool:
    return ckpt.get("format") == nerf_fitting.CHECKPOINT_FORMAT


def _float_param(params: dict[str, Any], key: str, default: float) -> float:
    value = params.get(key, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise JobError(f"parameter {key} must be a number, got {value!r}") from None
    if not np.isfinite(value):
        raise JobError(f"parameter {key} must be finite, got {value}")
    return value


def job_extract_skeleton(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """The skeletal complex (medial axis) of a fitted SDF, in its local frame or in world space.

    Params: the checkpoint (as for extract_mesh), ``space``, ``device`` and the
    skeleton parameters of :mod:`.geometry.skeleton` (``delta``,
    ``num_surface_samples``, ``time_limit``, ...; lengths are fractions of the
    shape's longest half-extent). Arrays back: ``vertices`` (V, 3), ``radius``
    (V,), ``edges`` (E, 2, every edge of the complex), ``triangles`` (T, 3) and
    ``surface_samples`` (M, 3). The result reports each stage's time, the counts,
    and whether the cover is optimal.
    """
    started = time.monotonic()
    space, device, skeleton_params, field, ckpt = _sdf_job(params, arrays, skeleton.resolve_params, "skeletons")
    result = skeleton.skeletonize(field, device, skeleton_params, ctx)
    center, scale = ckpt["center"], float(ckpt["scale"])
    vertices, radius, surface = result.vertices, result.radii, result.surface
    if space == "world":
        vertices, surface, radius = to_world(vertices, center, scale), to_world(surface, center, scale), radius * scale
    return (
        {**result.stats, "center": center, "scale": scale, "space": space, "seconds": time.monotonic() - started},
        {"vertices": vertices.astype(np.float32), "radius": radius.astype(np.float32),
         "edges": result.edges.astype(np.int32), "triangles": result.triangles.astype(np.int32),
         "surface_samples": surface.astype(np.float32)},
    )


def job_sample_isopoints(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Iso-points of a fitted SDF: an evenly spread sample of its zero level, in its local frame or in world space.

    Params: the checkpoint (as for extract_mesh), ``space``, ``device`` and the
    parameters of :mod:`.geometry.isopoints` (``count``, ``resample``,
    ``upsample``, ...). Arrays back: ``points`` (N, 3), unit ``normals`` (N, 3) and
    ``residual`` (N,) = |f| after projection (in the field's local units).
    """
    started = time.monotonic()
    space, device, iso_params, field, ckpt = _sdf_job(params, arrays, isopoints.resolve_params, "iso-points")
    result = isopoints.sample_isopoints(field, device, iso_params, ctx)
    center, scale = ckpt["center"], float(ckpt["scale"])
    points = to_world(result.points, center, scale) if space == "world" else result.points
    return (
        {**result.stats, "center": center, "scale": scale, "space": space, "seconds": time.monotonic() - started},
        {"points": points.astype(np.float32), "normals": result.normals.astype(np.float32),
         "residual": result.residual.astype(np.float32)},
    )


def _sdf_job(
    params: dict[str, Any], arrays: Arrays, resolve: Callable[[dict[str, Any]], dict[str, Any]], what: str
) -> tuple[str, torch.device, dict[str, Any], torch.nn.Module, dict[str, Any]]:
    """(space, device, the job's own params resolved by ``resolve``, field, checkpoint) of a job on an SDF field.

    The params are checked before the checkpoint is loaded; a radiance field is refused for ``what``.
    """
    params = dict(params)
    space = params.pop("space", "local")
    if space not in ("local", "world"):
        raise JobError(f"space must be 'local' or 'world', got {space!r}")
    device = resolve_device(params.pop("device", "auto"))
    path = params.pop("checkpoint_path", "")
    resolved = resolve(params)
    field, ckpt = load_checkpoint(arrays["checkpoint"] if "checkpoint" in arrays else path, device)
    if _is_radiance(ckpt):
        raise JobError(f"this field is a radiance field (NeRF): {what} need a signed distance field")
    return space, device, resolved, field, ckpt


def job_transfer_detail(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """The detail of a displacement field on the base of another SDF: a new field checkpoint (see fitting/transfer.py).

    Params: ``source_checkpoint`` and ``target_checkpoint`` (paths; or the uint8
    arrays of the same names, the files' bytes, from a remote client),
    ``checkpoint_path`` (or ``return_checkpoint``), and the transfer's
    ``strength``, ``nu``, ``mode`` ('projected' or 'aligned') and ``projection_steps``.
    """
    params = dict(params)
    path, send_back = _checkpoint_target(params, "transfer_detail")
    sources = {role: arrays.get(role, params.pop(role, "")) for role in ("source_checkpoint", "target_checkpoint")}
    params.pop("checkpoint_path", None)
    params.pop("device", None)
    transfer.resolve_params(params)  # fail fast, before reading the fields
    ckpt = transfer.transfer_detail(read_checkpoint(sources["source_checkpoint"]), read_checkpoint(sources["target_checkpoint"]), params)
    path, result_arrays = _deliver(ckpt, path, send_back)
    return {"checkpoint_path": path, "center": ckpt["center"], "scale": ckpt["scale"], "method": ckpt["method"],
            **{k: ckpt["params"][k] for k in ("strength", "nu", "mode")}}, result_arrays


def job_fit_nerf(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Fit a radiance field (``model`` 'fast' or 'classic') to posed images; write or send back its checkpoint.

    The views come from ``transforms_path`` (a transforms.json file or its
    folder, read on the worker's machine) or from the arrays ``images`` (N, H, W,
    3|4), ``c2w`` (N, 4, 4) and ``intrinsics`` (N, 4: fx, fy, cx, cy) with the
    optional param ``aabb``. See :mod:`.fitting.nerf` for the other parameters.
    """
    started = time.monotonic()
    params = dict(params)
    path, send_back = _checkpoint_target(params, "fit_nerf")
    p = nerf_fitting.resolve_params(params)  # fail fast, before reading images
    if params.get("transforms_path"):
        ctx.progress(0, 1, None, "reading the views")
        views = load_transforms(str(params["transforms_path"]), p["background"], p["downscale"])
    elif "images" in arrays:
        missing = [k for k in ("c2w", "intrinsics") if k not in arrays]
        if missing:
            raise JobError(f"fit_nerf: images were sent without {' and '.join(missing)}")
        views = views_from_arrays(arrays["images"], arrays["c2w"], arrays["intrinsics"], params.get("aabb"), p["background"], p["downscale"])
    else:
        raise JobError("fit_nerf needs views: a transforms_path, or images with c2w and intrinsics")
    ckpt = nerf_fitting.fit_nerf(views, p, ctx)
    ckpt["seconds"] = time.monotonic() - started
    path, result_arrays = _deliver(ckpt, path, send_back)
    keys = ("model", "center", "scale", "aabb", "psnr", "ssim", "train_psnr", "iterations_run", "stop_reason",
            "loss_history", "eval_history", "final_loss", "num_views", "num_holdout", "width", "height", "device",
            "seconds", "train_seconds", "density_threshold")
    return {"checkpoint_path": path, **{k: ckpt[k] for k in keys}}, result_arrays


def _camera(params: dict[str, Any], arrays: Arrays, job: str, max_side: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(width, height, c2w 4x4, intrinsics [fx, fy, cx, cy]) of a view job, checked."""
    width = _int_param(params, "width", 0, 1)
    height = _int_param(params, "height", 0, 1)
    if width * height > max_side * max_side:
        raise JobError(f"a {width}x{height} view is too large (at most {max_side}x{max_side} pixels)")
    if "c2w" not in arrays:
        raise JobError(f"{job} needs the camera matrix c2w")
    c2w = np.asarray(arrays["c2w"], dtype=np.float64)
    if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
        raise JobError(f"c2w must be a finite 4x4 matrix, got shape {c2w.shape}")
    try:
        intrinsics = np.asarray(params.get("intrinsics"), dtype=np.float64)
    except (TypeError, ValueError):
        intrinsics = np.zeros(0)
    if intrinsics.shape != (4,) or not np.isfinite(intrinsics).all() or (intrinsics[:2] <= 0).any():
        raise JobError("intrinsics must be [fx, fy, cx, cy] with positive focal lengths")
    return width, height, c2w, intrinsics


def job_render_nerf_view(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Render a radiance field from the camera ``c2w`` (array, 4x4, OpenGL convention) with ``intrinsics`` [fx, fy, cx, cy].

    Returns arrays ``rgb`` (H, W, 3), ``alpha`` (H, W) and ``depth`` (H, W:
    z-depth in world units, 0 where nothing was hit), top row first.
    """
    started = time.monotonic()
    width, height, c2w, intrinsics = _camera(params, arrays, "render_nerf_view", 16384)
    device = resolve_device(params.get("device", "auto"))
    source = arrays["checkpoint"] if "checkpoint" in arrays else params.get("checkpoint_path", "")
    field, ckpt = load_checkpoint(source, device)
    if not _is_radiance(ckpt):
        raise JobError("this field is not a radiance field (NeRF): render views of radiance fields only")
    background = rgb_param(params.get("background", ckpt.get("background", [1.0, 1.0, 1.0])), "background")
    center, scale = np.asarray(ckpt["center"], dtype=np.float64), float(ckpt["scale"])
    local = nerf_fitting.to_local_cameras(c2w, center, scale)
    local[:3, :3] /= np.linalg.norm(local[:3, :3], axis=0)
    render = ckpt["render"]
    settings = RenderSettings(kind=render["kind"], step=float(render["step"]), coarse=int(render["coarse"]), fine=int(render["fine"]))

    def progress(done: int, total: int) -> None:
        ctx.progress(done, total, None, "rendering")

    out = render_image(
        field, settings, torch.as_tensor(local, dtype=torch.float32, device=device),
        torch.as_tensor(intrinsics, dtype=torch.float32, device=device), width, height,
        torch.tensor(background, dtype=torch.float32, device=device), progress=progress,
    )
    return (
        {"width": width, "height": height, "seconds": time.monotonic() - started},
        {"rgb": out["rgb"].cpu().numpy().astype(np.float32), "alpha": out["alpha"].cpu().numpy().astype(np.float32),
         "depth": (out["depth"] * scale).cpu().numpy().astype(np.float32)},
    )


def _range_params(params: dict[str, Any]) -> str:
    mode = params.get("range_mode", DEFAULT_RANGE_MODE)
    if mode not in RANGE_MODES:
        raise JobError(f"range_mode must be one of {', '.join(RANGE_MODES)}, got {mode!r}")
    return mode


def _query_field(source: Any, params: dict[str, Any], device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A field whose zero level the range queries search: an SDF as is, a radiance field's density surface
    (``threshold`` - density, at the param ``threshold`` or the checkpoint's ``density_threshold``)."""
    field, ckpt = load_checkpoint(source, device)
    if _is_radiance(ckpt):
        threshold = _float_param(params, "threshold", ckpt.get("density_threshold", DEFAULT_THRESHOLD))
        if not threshold > 0:
            raise JobError(f"parameter threshold must be a positive density, got {threshold:g}")
        field = DensitySurface(field, threshold)
    return field, ckpt


def _source(params: dict[str, Any], arrays: Arrays, key: str = "checkpoint") -> Any:
    return arrays[key] if key in arrays else params.get(f"{key}_path", "")


def job_raycast_view(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Cast the rays of a camera (``c2w`` array 4x4, OpenGL convention; ``intrinsics`` [fx, fy, cx, cy]; ``width``,
    ``height``) against a field's zero level inside its domain cube (see :mod:`.ranges.raycast`).

    ``method`` 'ranges' (default: frustum casting with range analysis in ``range_mode``, first hits guaranteed on
    any field; ``tolerance``, the leaf segment in local units, default 1e-3) or 'sphere_tracing' (step |f| / ``lipschitz``,
    default 1: sound on distance fields only). A radiance field is cast against its density surface at ``threshold``.
    Arrays back (top row first): ``depth`` (H, W: distance along the ray in world units; inf where the ray misses),
    ``normal`` (H, W, 3: unit gradient at the hit, facing the camera; 0 where missed), ``shaded`` (H, W, 3 in [0, 1]:
    Lambert with a headlight and ambient 0.15, ``background`` where missed) and ``hit`` (H, W uint8).
    ``space`` 'local' takes ``c2w`` in the field's local frame and gives depths in its units (default 'world').
    """
    from .ranges.raycast import DEFAULT_TOLERANCE, cast_camera, shade, sphere_trace_camera

    width, height, c2w, intrinsics = _camera(params, arrays, "raycast_view", 8192)
    method = params.get("method", "ranges")
    if method not in ("ranges", "sphere_tracing"):
        raise JobError(f"method must be 'ranges' or 'sphere_tracing', got {method!r}")
    mode = _range_params(params)
    lipschitz = _float_param(params, "lipschitz", 1.0)
    tolerance = _float_param(params, "tolerance", DEFAULT_TOLERANCE)
    if not (lipschitz > 0 and tolerance > 0):
        raise JobError("parameters lipschitz and tolerance must be positive")
    background = rgb_param(params.get("background", [1.0, 1.0, 1.0]), "background")
    device = resolve_device(params.get("device", "auto"))
    space = _space(params, "world")
    field, ckpt = _query_field(_source(params, arrays), params, device)
    center, scale = np.asarray(ckpt["center"], dtype=np.float64), float(ckpt["scale"])
    if space == "local":  # the camera is already in the field's frame, and depths stay in its units
        local, scale = np.array(c2w, dtype=np.float64), 1.0
    else:
        local = nerf_fitting.to_local_cameras(c2w, center, scale)
    norms = np.linalg.norm(local[:3, :3], axis=0)
    if not (norms > 1e-12).all():
        raise JobError("c2w's rotation is singular")
    local[:3, :3] /= norms
    cam = torch.as_tensor(local, dtype=torch.float64, device=device), torch.as_tensor(intrinsics, device=device)
    if method == "ranges":
        hits = cast_camera(field, *cam, width, height, mode=mode, tolerance=tolerance, ctx=ctx)
    else:
        hits = sphere_trace_camera(field, *cam, width, height, lipschitz=lipschitz, ctx=ctx)
    shaded = shade(hits, background=tuple(background))
    return (
        {"width": width, "height": height, "method": method, "range_mode": mode if method == "ranges" else None,
         **{k: v for k, v in hits.stats.items() if k != "seconds"}, "seconds": hits.stats["seconds"]},
        {"depth": (hits.t * scale).cpu().numpy().astype(np.float32), "normal": hits.normal.cpu().numpy().astype(np.float32),
         "shaded": shaded.cpu().numpy().astype(np.float32), "hit": hits.hit.cpu().numpy().astype(np.uint8)},
    )


def _space(params: dict[str, Any], default: str = "local") -> str:
    space = params.get("space", default)
    if space not in ("local", "world"):
        raise JobError(f"space must be 'local' or 'world', got {space!r}")
    return space


def job_closest_points(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Closest points of a field's zero level (inside its domain cube) to the array ``points`` (N, 3), by branch and
    bound over boxes with range analysis (see :mod:`.ranges.closest`); any field with range rules.

    Params: the checkpoint, ``space`` ('local' or 'world': the points' and results' frame), ``tolerance`` (leaf box
    size in that space's units; default 1e-3 local units), ``range_mode``. Arrays back: ``closest`` (N, 3),
    ``distance`` (N,) and the certified bounds ``lower``/``upper`` (N,) of the true distance.
    """
    from .ranges.closest import DEFAULT_TOLERANCE, closest_points

    space, mode = _space(params), _range_params(params)
    if "points" not in arrays:
        raise JobError("closest_points needs the query array points (N, 3)")
    points = np.asarray(arrays["points"], dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not len(points):
        raise JobError(f"closest_points needs query points (N, 3) with N > 0, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise JobError("the query points contain NaN or Inf")
    device = resolve_device(params.get("device", "auto"))
    field, ckpt = _query_field(_source(params, arrays), params, device)
    center, scale = np.asarray(ckpt["center"], dtype=np.float64), float(ckpt["scale"])
    factor = scale if space == "world" else 1.0
    tolerance = _float_param(params, "tolerance", DEFAULT_TOLERANCE * factor)
    if not tolerance > 0:
        raise JobError(f"parameter tolerance must be positive, got {tolerance:g}")
    if space == "world":
        points = (points - center) / scale
    result = closest_points(field, torch.as_tensor(points, device=device), mode=mode, tolerance=tolerance / factor, ctx=ctx)
    closest = result.closest.cpu().numpy().astype(np.float64)
    if space == "world":
        closest = to_world(closest, center, scale)
    return (
        {**result.stats, "space": space, "center": ckpt["center"], "scale": scale, "range_mode": mode},
        {"closest": closest.astype(np.float32), "distance": (result.distance.cpu().numpy() * factor).astype(np.float32),
         "lower": (result.lower.cpu().numpy() * factor).astype(np.float32), "upper": (result.upper.cpu().numpy() * factor).astype(np.float32)},
    )


def job_check_intersection(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Whether a field's zero level meets another field's or a triangle mesh's, inside a region (see :mod:`.ranges.intersection`).

    The first field is the checkpoint; the second the ``other_checkpoint`` (path param ``other_checkpoint_path``
    or uint8 array), or a mesh (arrays ``vertices`` in ``space``, ``faces``). ``region`` [[x, y, z], [x, y, z]] in
    ``space`` (default: the first field's domain cube), ``max_depth`` (default 6), ``range_mode``. The second field
    sits where the two checkpoints' (center, scale) put it, unless ``other_matrix`` (4x4 nested list) gives its
    placement: the affine map from its local frame to the first field's local frame (any rotation and scale,
    non-uniform too). Returns ``verdict`` ('disjoint', 'intersecting' or 'unknown'), ``witness`` ([x, y, z] or None),
    ``num_boxes``; arrays ``lower``/``upper`` (K, 3: the remaining boxes, in ``space``) and ``witness_pair`` (2, 3)
    when found.
    """
    from .ranges.intersection import DEFAULT_DEPTH, field_mesh_intersect, fields_intersect

    space, mode = _space(params), _range_params(params)
    max_depth = _int_param(params, "max_depth", DEFAULT_DEPTH, 0)
    has_other = "other_checkpoint" in arrays or params.get("other_checkpoint_path")
    has_mesh = "vertices" in arrays or "faces" in arrays
    if bool(has_other) == bool(has_mesh):
        raise JobError("check_intersection needs exactly one second surface: other_checkpoint(_path), or a mesh (vertices + faces)")
    device = resolve_device(params.get("device", "auto"))
    field, ckpt = _query_field(_source(params, arrays), params, device)
    center, scale = np.asarray(ckpt["center"], dtype=np.float64), float(ckpt["scale"])
    to_local = (lambda x: (np.asarray(x, dtype=np.float64) - center) / scale) if space == "world" else (lambda x: np.asarray(x, dtype=np.float64))
    region = None
    if params.get("region") is not None:
        try:
            corners = np.asarray(params["region"], dtype=np.float64).reshape(2, 3)
        except (TypeError, ValueError):
            raise JobError("region must be [[x, y, z], [x, y, z]] (lower and upper corners)") from None
        region = tuple(torch.as_tensor(c) for c in to_local(corners))
    if has_mesh:
        if "vertices" not in arrays or "faces" not in arrays:
            raise JobError("a mesh needs both vertices and faces")
        if params.get("other_matrix") is not None:
            raise JobError("other_matrix places a second field; a mesh's vertices come in space")
        vertices, faces = check_mesh(arrays["vertices"], arrays["faces"])
        result = field_mesh_intersect(field, torch.as_tensor(to_local(vertices)), torch.as_tensor(faces.astype(np.int64)),
                                      region, mode=mode, max_depth=max_depth, ctx=ctx)
    else:
        other, other_ckpt = _query_field(_source(params, arrays, "other_checkpoint"), params, device)
        if params.get("other_matrix") is None:
            frames = [(torch.as_tensor(np.asarray(c["center"], dtype=np.float64)), float(c["scale"])) for c in (ckpt, other_ckpt)]
        else:  # the second's local frame -> the first's: the first's local frame plays the world
            try:
                matrix = np.asarray(params["other_matrix"], dtype=np.float64).reshape(4, 4)
            except (TypeError, ValueError):
                raise JobError("other_matrix must be a 4x4 matrix (nested lists of numbers)") from None
            frames = [torch.eye(4, dtype=torch.float64), torch.as_tensor(matrix)]
        result = fields_intersect(field, other, frames[0], frames[1], region, mode=mode, max_depth=max_depth, ctx=ctx)
    back = (lambda x: to_world(x.cpu().numpy().astype(np.float64), center, scale)) if space == "world" else (lambda x: x.cpu().numpy())
    out = {"lower": back(result.lower).astype(np.float32), "upper": back(result.upper).astype(np.float32)}
    if result.witness_pair is not None:
        out["witness_pair"] = back(result.witness_pair).astype(np.float32)
    witness = None if result.witness is None else back(result.witness[None])[0].tolist()
    return {"verdict": result.verdict, "witness": witness, "num_boxes": len(result.lower), "space": space,
            "range_mode": mode, **result.stats}, out


def _space_member(space: ShapeSpace, ckpt: dict[str, Any], params: dict[str, Any], arrays: Arrays
                  ) -> tuple[LatentShape, list[float], float]:
    """(the shape, its world center, scale) a job on a shape space asks for: ``shape`` (index) or the array ``code``."""
    if "code" in arrays:
        code = np.asarray(arrays["code"], dtype=np.float32).reshape(-1)
        if len(code) != space.codes.embedding_dim or not np.isfinite(code).all():
            raise JobError(f"code must be {space.codes.embedding_dim} finite numbers, got {len(code)}")
        return LatentShape(space.decoder, torch.as_tensor(code, device=space.codes.weight.device)).eval(), ckpt["center"], float(ckpt["scale"])
    if params.get("shape") is None:
        raise JobError(f"the field is a shape space of {space.num_shapes} shapes: pick a shape (parameter shape) or send a code")
    k = _shape_index(space, params["shape"])
    return space.shape(k).eval(), ckpt["centers"][k], float(ckpt["scales"][k])


def _shape_index(space: ShapeSpace, value: Any, key: str = "shape") -> int:
    """A checked shape index of ``space``."""
    k = _int_param({key: value}, key, 0, -(1 << 62))  # an integer; a negative one is out of range below
    if not 0 <= k < space.num_shapes:
        raise JobError(f"shape {k} is out of range: the space has {space.num_shapes} shapes (0 to {space.num_shapes - 1})")
    return k


def _load_space(params: dict[str, Any], arrays: Arrays, device: torch.device) -> tuple[ShapeSpace, dict[str, Any]]:
    space, ckpt = load_checkpoint(_source(params, arrays), device)
    if not isinstance(space, ShapeSpace):
        raise JobError("the checkpoint is not a shape space: fit one with Fit Shape Space (fit_shape_space)")
    return space, ckpt


def job_fit_shape_space(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Fit a shape space (DeepSDF auto-decoder, or occupancy) to K >= 2 meshes packed in ``vertices``/``faces`` with
    ``vertex_counts``/``face_counts`` (world space, faces indexed per shape); write or send back its checkpoint.

    ``names`` (K) label the shapes. ``error_resolution`` > 0 (64) measures each shape: its decoded mesh at that
    resolution against the input mesh, Chamfer-L1 in world units (``errors``; None for a shape whose decoded field
    has no surface yet).
    Runs data-parallel under torchrun (see fitting/shape_space.py); only rank 0 writes.
    """
    params = dict(params)
    path, send_back = _checkpoint_target(params, "fit_shape_space")
    shape_space.resolve_params(params)
    names = params.get("names") or [f"shape {k}" for k in range(len(np.asarray(arrays.get("vertex_counts", []))))]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise JobError("names must be a list of strings, one per shape")
    error_resolution = _int_param(params, "error_resolution", 64, 0)
    if 0 < error_resolution < MIN_RESOLUTION:
        raise JobError(f"error_resolution must be 0 (no errors) or at least {MIN_RESOLUTION}, got {error_resolution}")
    meshes = shape_space.split_meshes(arrays, names)
    ckpt = shape_space.fit_shape_space(meshes, names, params, ctx)
    errors = []
    if error_resolution and int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 measures
        device = torch.device(ckpt["device"])
        space = build_field(ckpt["config"])
        space.load_state_dict(ckpt["state_dict"])
        space = space.to(device).eval()
        for k, (v, f) in enumerate(meshes):
            ctx.progress(k, len(meshes), None, f"measuring shape {k + 1} of {len(meshes)}")
            try:
                verts, faces, _ = extract_mesh(space.shape(k), error_resolution, device, ctx)
            except JobError:  # the decoded shape has no surface yet
                errors.append(None)
                continue
            world = to_world(verts, ckpt["centers"][k], ckpt["scales"][k])
            errors.append(float(compare_meshes(v, f, world, faces, 20_000, 0, ("chamfer",))["chamfer_l1"]))
    ckpt["errors"] = errors
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: the other ranks trained the same weights
        return {"checkpoint_path": "", "rank": int(os.environ["RANK"])}, {}
    path, result_arrays = _deliver(ckpt, path, send_back)
    keys = ("names", "centers", "scales", "center", "scale", "errors", "loss_history", "final_loss", "iterations_run",
            "stop_reason", "seconds", "device", "method", "world_size")
    return {"checkpoint_path": path, "latent_size": ckpt["config"]["latent_size"], "num_shapes": len(meshes),
            **{k: ckpt[k] for k in keys}}, result_arrays


def job_reconstruct_shape(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Complete a partial scan with a shape space: optimise a new code (decoder frozen), then extract its mesh.

    Arrays, in the space's local frame: ``points`` (N, 3), optional ``normals`` (N, 3) and ``free_points`` (M, 3)
    (see fitting/completion.py). Returns the mesh (local frame), the ``code``, and the mean |f| at the scan points
    (``fit_error``). ``output_checkpoint_path``: also write the completed shape as a field checkpoint of its own
    (with ``return_checkpoint``, for a remote worker: its bytes come back as the array ``checkpoint`` instead).
    """
    started = time.monotonic()
    if "points" not in arrays or not len(np.asarray(arrays["points"]).reshape(-1)):
        raise JobError("the scan has no points: select a point cloud or a mesh with vertices")
    resolution = _int_param(params, "resolution", 128, MIN_RESOLUTION)
    params = dict(params)
    send_back = bool(params.pop("return_checkpoint", False))
    out_path = params.get("output_checkpoint_path") or ""
    if out_path and not send_back:
        _check_writable(out_path)
    device = resolve_device(params.get("device", "auto"))
    space, ckpt = _load_space(params, arrays, device)
    normals = None
    if "normals" in arrays:
        normals = check_normals(arrays["normals"], len(np.asarray(arrays["points"]).reshape(-1, 3)), "scan normals")
    shape, record = completion.complete_shape(space, arrays["points"], normals, arrays.get("free_points"), params, ctx)
    vertices, faces, mesh_normals = extract_mesh(shape, resolution, device, ctx)
    result = {"fit_error": record["fit_error"], "loss_history": downsample_history(record["losses"]),
              "final_loss": record["losses"][-1], "stop_reason": record["stop_reason"], "num_vertices": len(vertices),
              "num_faces": len(faces), "center": [0.0, 0.0, 0.0], "scale": 1.0, "checkpoint_path": "",
              "iterations_run": len(record["losses"]), "device": str(device)}
    result_arrays: Arrays = {}
    if out_path or send_back:
        config = {"kind": "latent_shape", "space": ckpt["config"]}
        shape_ckpt = {"format": "inr_blender.latent_shape", "method": ckpt.get("method", "deepsdf"), "config": config,
                      "state_dict": {k: v.detach().cpu() for k, v in shape.state_dict().items()},
                      "center": [0.0, 0.0, 0.0], "scale": 1.0, "loss_history": result["loss_history"],
                      "final_loss": result["final_loss"], "iterations_run": len(record["losses"]),
                      "stop_reason": record["stop_reason"], "device": str(device)}
        result["checkpoint_path"], result_arrays = _deliver(shape_ckpt, out_path, send_back)
    result["seconds"] = time.monotonic() - started
    return result, {**result_arrays, "code": shape.code.detach().cpu().numpy(), "vertices": vertices, "faces": faces,
                    "normals": mesh_normals}


def job_interpolate_shapes(params: dict[str, Any], arrays: Arrays, ctx: JobContext) -> tuple[dict[str, Any], Arrays]:
    """Meshes (local frame) of ``count`` codes on the segment from shape ``a`` to shape ``b`` (or arrays ``code_a``,
    ``code_b``), packed with ``vertex_counts``/``face_counts``; with ``correspond`` also the first mesh carried
    through them (``key_vertices``, ``key_error``, ``shape_keys_ok``; see geometry/interpolation.py)."""
    started = time.monotonic()
    count = _int_param(params, "count", 5, 2)
    resolution = _int_param(params, "resolution", 96, MIN_RESOLUTION)
    device = resolve_device(params.get("device", "auto"))
    space, ckpt = _load_space(params, arrays, device)
    ends, frames, picked = [], [], []
    for key in ("a", "b"):
        if f"code_{key}" in arrays:
            member, center, scale = _space_member(space, ckpt, {}, {"code": arrays[f"code_{key}"]})
        else:
            if params.get(key) is None:
                raise JobError("interpolation needs two shapes: parameters a and b (shape indices) or codes")
            picked.append(_shape_index(space, params[key], key))
            member, center, scale = space.shape(picked[-1]), ckpt["centers"][picked[-1]], float(ckpt["scales"][picked[-1]])
        ends.append(member.code.detach())
        frames.append((np.asarray(center, dtype=np.float64), scale))
    if len(picked) == 2 and picked[0] == picked[1]:
        raise JobError("pick two different shapes to interpolate between")
    seq = interpolation.interpolate(space, ends[0], ends[1], count, resolution, device, ctx,
                                    correspond=bool(params.get("correspond", True)))
    out = {"vertices": np.concatenate([m[0] for m in seq.meshes]).astype(np.float32),
           "faces": np.concatenate([m[1] for m in seq.meshes]).astype(np.int32),
           "vertex_counts": np.array([len(m[0]) for m in seq.meshes], dtype=np.int64),
           "face_counts": np.array([len(m[1]) for m in seq.meshes], dtype=np.int64),
           "t": seq.t.astype(np.float32), "volumes": seq.volumes.astype(np.float64)}
    if seq.key_vertices is not None:
        out["key_vertices"], out["key_error"] = seq.key_vertices.astype(np.float32), seq.key_error.astype(np.float32)
    centers = [((1 - t) * frames[0][0] + t * frames[1][0]).tolist() for t in seq.t]
    scales = [float((1 - t) * frames[0][1] + t * frames[1][1]) for t in seq.t]
    return {"shape_keys_ok": bool(seq.ok), "notes": seq.notes, "centers": centers, "scales": scales, "count": count,
            "seconds": time.monotonic() - started}, out


JOBS: dict[str, Job] = {
    "info": job_info,
    "fit_sdf": job_fit_sdf,
    "extract_mesh": job_extract_mesh,
    "metrics": job_metrics,
    "evaluate_field": job_evaluate_field,
    "extract_skeleton": job_extract_skeleton,
    "sample_isopoints": job_sample_isopoints,
    "transfer_detail": job_transfer_detail,
    "fit_nerf": job_fit_nerf,
    "render_nerf_view": job_render_nerf_view,
    "raycast_view": job_raycast_view,
    "closest_points": job_closest_points,
    "check_intersection": job_check_intersection,
    "fit_shape_space": job_fit_shape_space,
    "reconstruct_shape": job_reconstruct_shape,
    "interpolate_shapes": job_interpolate_shapes,
}
