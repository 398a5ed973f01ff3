"""What several jobs share: their common params, where a checkpoint goes and comes from, cameras,
members of a shape space. One home each; the jobs import them."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..checkpoint import checkpoint_bytes, is_checkpoint, load_checkpoint, save_checkpoint
from ..context import JobContext, JobError
from ..fields.deepsdf import LatentShape, ShapeSpace
from ..fitting import nerf as nerf_fitting
from ..geometry.extraction import MIN_RESOLUTION
from ..outputs import check_output
from ..ranges import MODES as RANGE_MODES
from ..settings.spec import Param
from .registry import Arrays, Positional

# The checkpoint a job reads: this path, or the uint8 array ``checkpoint`` (the file's bytes, from a remote client).
CHECKPOINT = Param("checkpoint_path", "", "The field's checkpoint (.pt); or send its bytes as the array checkpoint")
# The CLI's first argument of the jobs on one field's checkpoint.
FIELD_ARGUMENT = Positional("field", "checkpoint (.pt)", "checkpoint_path")
# Where a fit writes its checkpoint; with ``return_checkpoint`` (a remote worker) its bytes come back instead.
OUTPUT = Param("checkpoint_path", "", "The checkpoint to write (.pt)")
RETURN_CHECKPOINT = Param(
    "return_checkpoint", False, "Send the checkpoint's bytes back (array checkpoint) instead of writing it on the worker's machine", cli=False
)
SPACE = Param("space", "local", "The frame of the geometry in and out: the field's local frame or world space", choices=("local", "world"))
# Range analysis: the mode that stays tight on published-size networks (the others fold every neuron's error into
# intervals that |W| amplifies layer after layer; see inr_blender/ranges).
RANGE_MODE = Param("range_mode", "affine_all", "The range arithmetic that bounds the field over boxes", choices=tuple(RANGE_MODES))
THRESHOLD = Param("threshold", None, "Radiance fields: the density of the surface (default: the checkpoint's)", kind=float, positive=True)
RESOLUTION = Param("resolution", 128, "Marching-cubes grid along each axis", minimum=MIN_RESOLUTION, label="Resolution")
BACKGROUND = Param("background", [1.0, 1.0, 1.0], "RGB in [0, 1] where no surface is hit", kind=list, length=3, minimum=0.0, maximum=1.0)


def is_radiance(ckpt: dict[str, Any]) -> bool:
    return ckpt.get("format") == nerf_fitting.CHECKPOINT_FORMAT


def reader(ctx: JobContext) -> Callable[[str], str] | None:
    """What a job passes to readers of files that name other files (transforms.json): the sandbox's check of each
    path it reads (a remote worker), or None (anywhere)."""
    return None if ctx.sandbox is None else ctx.sandbox.input


def input_path(ctx: JobContext, path: str) -> str:
    """The file a job reads for a client's ``path``: inside a remote worker's sandbox (JobError, without saying
    whether it exists, when outside), or as given."""
    return ctx.sandbox.input(path) if ctx.sandbox is not None and path else path


def source(p: dict[str, Any], arrays: Arrays, ctx: JobContext, key: str = "checkpoint", param: str = "") -> Any:
    """The checkpoint named ``key``: its bytes in ``arrays[key]``, else the path ``p[param]`` (default
    ``key + '_path'``), through the sandbox (:func:`input_path`)."""
    if key in arrays:
        return arrays[key]
    return input_path(ctx, p.get(param or f"{key}_path") or "")


def load_field(
    p: dict[str, Any], arrays: Arrays, ctx: JobContext, device: torch.device, key: str = "checkpoint"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(field, checkpoint dict) of the checkpoint a job names (see :func:`source`), checked (checkpoint.check_frame)."""
    return load_checkpoint(source(p, arrays, ctx, key), device)


def load_sdf(p: dict[str, Any], arrays: Arrays, ctx: JobContext, device: torch.device, what: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """:func:`load_field`, refusing a radiance field and a shape space for ``what``."""
    field, ckpt = load_field(p, arrays, ctx, device)
    if is_radiance(ckpt):
        raise JobError(f"this field is a radiance field (NeRF): {what} need a signed distance field")
    if isinstance(field, ShapeSpace):
        raise JobError(
            f"this field is a shape space of {field.num_shapes} shapes: {what} need one signed distance field "
            "(write one shape's field with reconstruct_shape's output_checkpoint_path)"
        )
    return field, ckpt


def density_threshold(p: dict[str, Any], ckpt: dict[str, Any]) -> float:
    """The density of a radiance field's surface: the param ``threshold``, else the checkpoint's."""
    from ..render.surface import DEFAULT_THRESHOLD

    return p["threshold"] if p.get("threshold") is not None else float(ckpt.get("density_threshold", DEFAULT_THRESHOLD))


def checkpoint_output(path: str, ctx: JobContext) -> str:
    """The file to write a new checkpoint to for a client's ``path`` (inside a remote worker's sandbox), refused
    before the work if it could not be written afterwards or would replace something that is not a checkpoint: a
    folder, another kind of file."""
    full = check_output(ctx.sandbox.output(path) if ctx.sandbox is not None else path, what="the checkpoint")
    if os.path.isfile(full) and not is_checkpoint(full):
        raise JobError(f"cannot write the checkpoint to {path}: a file that is not a field checkpoint is there (choose another name)")
    return full


def checkpoint_target(p: dict[str, Any], job: str, ctx: JobContext, key: str = "checkpoint_path", required: bool = True) -> tuple[str, bool]:
    """(path, send_back): where a job's checkpoint goes (``p[key]``, see :func:`checkpoint_output`), refused before
    the work if it could not be written. With ``return_checkpoint`` (a remote worker) nothing is written here: the
    bytes come back instead (and the path, the client's, only labels them). ``required`` False: no path and no
    send-back means no checkpoint (path '')."""
    send_back = bool(p.get("return_checkpoint"))
    path = p.get(key) or ""
    if required and not (path or send_back):
        raise JobError(f"{job} needs a {key} to write the field to")
    if path and not send_back:
        path = checkpoint_output(path, ctx)
    return path, send_back


def deliver(ckpt: dict[str, Any], path: str, send_back: bool) -> tuple[str, Arrays]:
    """Write the checkpoint (returns its absolute path), or return its bytes as the array ``checkpoint``."""
    if send_back:
        return path, {"checkpoint": np.frombuffer(checkpoint_bytes(ckpt), dtype=np.uint8)}
    return save_checkpoint(ckpt, path), {}


def summary(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A fit's result: its checkpoint's plain entries (numbers, strings, lists), not the network (tensors, configs)."""
    return {k: v for k, v in ckpt.items() if v is None or isinstance(v, (bool, int, float, str, list, tuple))}


def camera(p: dict[str, Any], arrays: Arrays, job: str, max_side: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(width, height, c2w 4x4, intrinsics [fx, fy, cx, cy]) of a view job, checked (params ``width``, ``height``,
    ``intrinsics`` of :data:`CAMERA`; the array ``c2w``)."""
    width, height = p["width"], p["height"]
    if width is None or height is None:
        raise JobError(f"{job} needs the image's width and height")
    if width * height > max_side * max_side:
        raise JobError(f"a {width}x{height} view is too large (at most {max_side}x{max_side} pixels)")
    if "c2w" not in arrays:
        raise JobError(f"{job} needs the camera matrix c2w")
    c2w = np.asarray(arrays["c2w"], dtype=np.float64)
    if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
        raise JobError(f"c2w must be a finite 4x4 matrix, got shape {c2w.shape}")
    intrinsics = np.asarray(p["intrinsics"] or [0.0] * 4, dtype=np.float64)
    if (intrinsics[:2] <= 0).any():
        raise JobError("intrinsics must be [fx, fy, cx, cy] with positive focal lengths")
    return width, height, c2w, intrinsics


CAMERA = (
    Param("width", None, "Image width in pixels", kind=int, minimum=1),
    Param("height", None, "Image height in pixels", kind=int, minimum=1),
    Param("intrinsics", None, "[fx, fy, cx, cy] in pixels", kind=list, length=4, cli=False),
)


def shape_index(space: ShapeSpace, k: int) -> int:
    """``k`` if it is a shape of ``space``, else JobError."""
    if not 0 <= k < space.num_shapes:
        raise JobError(f"shape {k} is out of range: the space has {space.num_shapes} shapes (0 to {space.num_shapes - 1})")
    return k


def space_member(space: ShapeSpace, ckpt: dict[str, Any], shape: int | None, code: np.ndarray | None) -> tuple[LatentShape, list[float], float]:
    """(the shape, its world center, scale) a job on a shape space asks for: the shape ``shape``, or any ``code``."""
    if code is not None:
        code = np.asarray(code, dtype=np.float32).reshape(-1)
        if len(code) != space.codes.embedding_dim or not np.isfinite(code).all():
            raise JobError(f"code must be {space.codes.embedding_dim} finite numbers, got {len(code)}")
        member = LatentShape(space.decoder, torch.as_tensor(code, device=space.codes.weight.device)).eval()
        return member, ckpt["center"], float(ckpt["scale"])
    if shape is None:
        raise JobError(f"the field is a shape space of {space.num_shapes} shapes: pick a shape (parameter shape) or send a code")
    k = shape_index(space, shape)
    return space.shape(k).eval(), ckpt["centers"][k], float(ckpt["scales"][k])


def load_space(p: dict[str, Any], arrays: Arrays, ctx: JobContext, device: torch.device) -> tuple[ShapeSpace, dict[str, Any]]:
    """The shape space a job names (as :func:`load_field`), or JobError."""
    space, ckpt = load_field(p, arrays, ctx, device)
    if not isinstance(space, ShapeSpace):
        raise JobError("the checkpoint is not a shape space: fit one with Fit Shape Space (fit_shape_space)")
    return space, ckpt
