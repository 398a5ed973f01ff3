"""Guaranteed queries on a field by range analysis (inr_blender/ranges): ``raycast_view``, ``closest_points``,
``check_intersection``. A radiance field is queried at its density surface."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..context import JobContext, JobError
from ..device import resolve_device
from ..geometry.sampling import to_world
from ..geometry.validation import check_mesh
from ..ranges import closest, intersection, raycast
from ..render.cameras import to_local_cameras
from ..render.surface import DensitySurface
from ..settings.spec import Param, Spec, params
from .registry import Arrays, Result, job
from .shared import BACKGROUND, CAMERA, CHECKPOINT, RANGE_MODE, SPACE, THRESHOLD, camera, density_threshold, is_radiance, load_field

QUERY = (CHECKPOINT, RANGE_MODE, THRESHOLD)


def query_field(
    p: dict[str, Any], arrays: Arrays, ctx: JobContext, device: torch.device, key: str = "checkpoint"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A field whose zero level the queries search: an SDF as is, a radiance field's density surface."""
    field, ckpt = load_field(p, arrays, ctx, device, key)
    if is_radiance(ckpt):
        field = DensitySurface(field, density_threshold(p, ckpt))
    return field, ckpt


RAYCAST = Spec(
    "raycast_view",
    params(
        QUERY,
        CAMERA,
        replace(SPACE, default="world", help="world: c2w and depths in world space; local: in the field's frame"),
        Param(
            "method",
            "ranges",
            "ranges: frustum casting with range analysis (first hits guaranteed on any field); "
            "sphere_tracing: steps of |f| / lipschitz (sound on distance fields only)",
            choices=("ranges", "sphere_tracing"),
        ),
        Param("tolerance", raycast.DEFAULT_TOLERANCE, "ranges: the leaf segment along a ray (local units)", positive=True),
        Param("lipschitz", 1.0, "sphere_tracing: the field's Lipschitz bound", positive=True),
        BACKGROUND,
    ),
    help="Cast a camera's rays against a field's zero level",
)


@job(RAYCAST)
def raycast_view(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Cast the rays of a camera (``c2w`` array 4x4, OpenGL convention; ``intrinsics`` [fx, fy, cx, cy]; ``width``,
    ``height``) against a field's zero level inside its domain cube (see :mod:`inr_blender.ranges.raycast`).

    Arrays back (top row first): ``depth`` (H, W: distance along the ray; inf where the ray misses), ``normal``
    (H, W, 3: unit gradient at the hit, facing the camera; 0 where missed), ``shaded`` (H, W, 3 in [0, 1]: Lambert
    with a headlight and ambient 0.15, ``background`` where missed) and ``hit`` (H, W uint8).
    """
    width, height, c2w, intrinsics = camera(p, arrays, "raycast_view", 8192)
    device = resolve_device(p["device"])
    field, ckpt = query_field(p, arrays, ctx, device)
    center, scale = np.asarray(ckpt["center"], dtype=np.float64), float(ckpt["scale"])
    if p["space"] == "local":  # the camera is already in the field's frame, and depths stay in its units
        local, scale = np.array(c2w, dtype=np.float64), 1.0
    else:
        local = to_local_cameras(c2w, center, scale)
    norms = np.linalg.norm(local[:3, :3], axis=0)
    if not (norms > 1e-12).all():
        raise JobError("c2w's rotation is singular")
    local[:3, :3] /= norms
    cam = torch.as_tensor(local, dtype=torch.float64, device=device), torch.as_tensor(intrinsics, device=device)
    method, mode = p["method"], p["range_mode"]
    if method == "ranges":
        hits = raycast.cast_camera(field, *cam, width, height, mode=mode, tolerance=p["tolerance"], ctx=ctx)
    else:
        hits = raycast.sphere_trace_camera(field, *cam, width, height, lipschitz=p["lipschitz"], ctx=ctx)
    shaded = raycast.shade(hits, background=tuple(p["background"]))
    return (
        {
            "width": width,
            "height": height,
            "method": method,
            "range_mode": mode if method == "ranges" else None,
            **{k: v for k, v in hits.stats.items() if k != "seconds"},
            "seconds": hits.stats["seconds"],
        },
        {
            "depth": (hits.t * scale).cpu().numpy().astype(np.float32),
            "normal": hits.normal.cpu().numpy().astype(np.float32),
            "shaded": shaded.cpu().numpy().astype(np.float32),
            "hit": hits.hit.cpu().numpy().astype(np.uint8),
        },
    )


CLOSEST = Spec(
    "closest_points",
    params(
        QUERY,
        SPACE,
        Param(
            "tolerance", None, f"Leaf box size in the space's units (default {closest.DEFAULT_TOLERANCE:g} local units)", kind=float, positive=True
        ),
    ),
    help="Closest points of a field's zero level to query points, with certified bounds",
)


@job(CLOSEST)
def closest_points(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Closest points of a field's zero level (inside its domain cube) to the array ``points`` (N, 3), by branch and
    bound over boxes with range analysis (see :mod:`inr_blender.ranges.closest`); any field with range rules.

    ``space`` is the points' and results' frame. Arrays back: ``closest`` (N, 3), ``distance`` (N,) and the
    certified bounds ``lower``/``upper`` (N,) of the true distance.
    """
    if "points" not in arrays:
        raise JobError("closest_points needs the query array points (N, 3)")
    points = np.asarray(arrays["points"], dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not len(points):
        raise JobError(f"closest_points needs query points (N, 3) with N > 0, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise JobError("the query points contain NaN or Inf")
    device = resolve_device(p["device"])
    field, ckpt = query_field(p, arrays, ctx, device)
    center, scale = np.asarray(ckpt["center"], dtype=np.float64), float(ckpt["scale"])
    world = p["space"] == "world"
    factor = scale if world else 1.0
    tolerance = closest.DEFAULT_TOLERANCE if p["tolerance"] is None else p["tolerance"] / factor
    if world:
        points = (points - center) / scale
    result = closest.closest_points(field, torch.as_tensor(points, device=device), mode=p["range_mode"], tolerance=tolerance, ctx=ctx)
    found = result.closest.cpu().numpy().astype(np.float64)
    if world:
        found = to_world(found, center, scale)
    scaled = lambda t: (t.cpu().numpy() * factor).astype(np.float32)  # noqa: E731
    return (
        {**result.stats, "space": p["space"], "center": ckpt["center"], "scale": scale, "range_mode": p["range_mode"]},
        {"closest": found.astype(np.float32), "distance": scaled(result.distance), "lower": scaled(result.lower), "upper": scaled(result.upper)},
    )


INTERSECTION = Spec(
    "check_intersection",
    params(
        QUERY,
        SPACE,
        Param("other_checkpoint_path", "", "The second field's checkpoint (or the array other_checkpoint; or send a mesh)"),
        Param("max_depth", intersection.DEFAULT_DEPTH, "Subdivisions of the region", minimum=0),
    ),
    passthrough=("region", "other_matrix"),
    help="Whether a field's zero level meets another field's or a mesh's",
)


def _matrix(value: Any, shape: tuple[int, ...], message: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64).reshape(shape)
    except (TypeError, ValueError):
        raise JobError(message) from None


@job(INTERSECTION)
def check_intersection(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Whether a field's zero level meets another field's or a triangle mesh's inside a region (see
    :mod:`inr_blender.ranges.intersection`).

    The second surface is the ``other_checkpoint`` (path or uint8 array), or a mesh (arrays ``vertices`` in
    ``space``, ``faces``). ``region`` [[x, y, z], [x, y, z]] in ``space`` (default: the first field's domain cube).
    The second field sits where the two checkpoints' (center, scale) put it, unless ``other_matrix`` (4x4 nested
    list) gives the affine map from its local frame to the first field's. Returns ``verdict`` ('disjoint',
    'intersecting' or 'unknown'), ``witness`` ([x, y, z] or None), ``num_boxes``; arrays ``lower``/``upper`` (K, 3:
    the remaining boxes, in ``space``) and ``witness_pair`` (2, 3) when found.
    """
    space, mode, max_depth = p["space"], p["range_mode"], p["max_depth"]
    has_other = "other_checkpoint" in arrays or p["other_checkpoint_path"]
    has_mesh = "vertices" in arrays or "faces" in arrays
    if bool(has_other) == bool(has_mesh):
        raise JobError("check_intersection needs exactly one second surface: other_checkpoint(_path), or a mesh (vertices + faces)")
    device = resolve_device(p["device"])
    field, ckpt = query_field(p, arrays, ctx, device)
    center, scale = np.asarray(ckpt["center"], dtype=np.float64), float(ckpt["scale"])
    to_local = (lambda x: (np.asarray(x, dtype=np.float64) - center) / scale) if space == "world" else (lambda x: np.asarray(x, dtype=np.float64))
    region: tuple[torch.Tensor, torch.Tensor] | None = None
    if p.get("region") is not None:
        corners = _matrix(p["region"], (2, 3), "region must be [[x, y, z], [x, y, z]] (lower and upper corners)")
        lower, upper = (torch.as_tensor(c) for c in to_local(corners))
        region = (lower, upper)
    if has_mesh:
        if "vertices" not in arrays or "faces" not in arrays:
            raise JobError("a mesh needs both vertices and faces")
        if p.get("other_matrix") is not None:
            raise JobError("other_matrix places a second field; a mesh's vertices come in space")
        vertices, faces = check_mesh(arrays["vertices"], arrays["faces"])
        result = intersection.field_mesh_intersect(
            field, torch.as_tensor(to_local(vertices)), torch.as_tensor(faces.astype(np.int64)), region, mode=mode, max_depth=max_depth, ctx=ctx
        )
    else:
        other, other_ckpt = query_field(p, arrays, ctx, device, "other_checkpoint")
        if p.get("other_matrix") is None:
            frames: list[intersection.Frame] = [
                (torch.as_tensor(np.asarray(c["center"], dtype=np.float64)), float(c["scale"])) for c in (ckpt, other_ckpt)
            ]
        else:  # the second's local frame -> the first's: the first's local frame plays the world
            matrix = _matrix(p["other_matrix"], (4, 4), "other_matrix must be a 4x4 matrix (nested lists of numbers)")
            frames = [torch.eye(4, dtype=torch.float64), torch.as_tensor(matrix)]
        result = intersection.fields_intersect(field, other, frames[0], frames[1], region, mode=mode, max_depth=max_depth, ctx=ctx)
    back = (lambda x: to_world(x.cpu().numpy().astype(np.float64), center, scale)) if space == "world" else (lambda x: x.cpu().numpy())
    out = {"lower": back(result.lower).astype(np.float32), "upper": back(result.upper).astype(np.float32)}
    if result.witness_pair is not None:
        out["witness_pair"] = back(result.witness_pair).astype(np.float32)
    witness = None if result.witness is None else back(result.witness[None])[0].tolist()
    return {"verdict": result.verdict, "witness": witness, "num_boxes": len(result.lower), "space": space, "range_mode": mode, **result.stats}, out
