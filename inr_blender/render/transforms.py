"""transforms.json (NeRF-synthetic, instant-ngp, nerfstudio): cameras, image paths and the scene box.

numpy and the standard library only, so that Blender's side (which reads views itself for a remote
worker) parses the file with the same code as the backend.

Read here:

- ``frames``: ``file_path`` (relative to the json file; without an extension, .png, .jpg and .jpeg
  are tried) and ``transform_matrix`` (camera-to-world, Blender/OpenGL convention; a 3x4 matrix
  is completed; a scale is removed);
- intrinsics: ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h`` (instant-ngp, nerfstudio), for the file
  or per frame, or ``camera_angle_x`` (and ``camera_angle_y``) as in NeRF-synthetic; when ``w``/``h``
  differ from the image's size the intrinsics are scaled to it;
- the scene box: our own ``aabb`` ([[x0, y0, z0], [x1, y1, z1]]), else instant-ngp's ``aabb_scale``
  (with its ``scale``/``offset``: instant-ngp's unit cube, scaled by ``aabb_scale``, mapped back to
  the file's coordinates), else NeRF-synthetic's [-1.5, 1.5]^3.

Refused with a reason (JobError): a file without frames, distortion coefficients other than zero,
camera models other than pinhole, missing images, malformed matrices or focal lengths, JSON nested deeper than
:data:`MAX_DEPTH`.

``resolve`` (a remote worker's sandbox, :meth:`inr_blender.sandbox.Sandbox.input`) maps every path read, the
file's and each image's, to the real path it may read, or raises JobError: frames cannot name images outside the
folders the worker reads.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..context import JobError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
PINHOLE_MODELS = {"PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL"}  # accepted when undistorted
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
SYNTHETIC_HALF_EXTENT = 1.5  # NeRF-synthetic scenes lie in [-1.5, 1.5]^3 (instant-ngp's unit cube at scale 0.33)
MAX_DEPTH = 32  # nesting of arrays and objects in a transforms file (its own structure needs 5)
Resolve = Callable[[str], str]  # a path to read -> the real path, or JobError


@dataclass
class Frame:
    image_path: str
    c2w: np.ndarray  # (4, 4) float64, rotation without scale
    camera: dict[str, Any]  # the file's camera keys updated with the frame's
    where: str  # "transforms.json frame 3", for messages


@dataclass
class TransformsFile:
    path: str
    frames: list[Frame]
    aabb: np.ndarray  # (2, 3)


def _as_is(path: str) -> str:
    return path


def find_transforms(path: str, resolve: Resolve | None = None) -> str:
    """The transforms file at ``path``, or in the folder ``path`` (transforms.json, else transforms_train.json)."""
    path = resolve(path or "") if resolve else os.path.expanduser(path or "")
    if os.path.isdir(path):
        for name in ("transforms.json", "transforms_train.json"):
            candidate = resolve(os.path.join(path, name)) if resolve else os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise JobError(f"no transforms.json in {path}")
    if not os.path.isfile(path):
        raise JobError(f"transforms file not found: {path or '(none)'}")
    return path


def _number(meta: dict[str, Any], key: str, where: str) -> float | None:
    if key not in meta or meta[key] is None:
        return None
    try:
        value = float(meta[key])
    except (TypeError, ValueError):
        raise JobError(f"{where}: {key} must be a number, got {meta[key]!r}") from None
    if not math.isfinite(value):
        raise JobError(f"{where}: {key} is {value}")
    return value


def _check_camera(meta: dict[str, Any], where: str) -> None:
    model = meta.get("camera_model")
    if model is not None and str(model).upper() not in PINHOLE_MODELS:
        raise JobError(f"{where}: camera model {model!r} is not supported (only pinhole cameras, without distortion)")
    for key in DISTORTION_KEYS:
        value = _number(meta, key, where)
        if value:
            raise JobError(
                f"{where}: distortion {key}={value:g} is not supported; undistort the images first (only pinhole cameras without distortion)"
            )


def _image_file(folder: str, file_path: Any, where: str, resolve: Resolve) -> str:
    if not isinstance(file_path, str) or not file_path:
        raise JobError(f"{where} has no file_path")
    path = os.path.normpath(os.path.join(folder, file_path))
    for candidate in (path, *(path + ext for ext in IMAGE_EXTENSIONS)):
        try:
            real = resolve(candidate)
        except JobError as exc:  # outside what may be read: the same words whether it exists or not
            raise JobError(f"{where}: {exc}") from None
        if os.path.isfile(real):
            return real
    raise JobError(f"{where}: image not found: {path}")


def camera_matrix(value: Any, where: str) -> np.ndarray:
    """A camera-to-world matrix from JSON (4x4 or 3x4), finite, with its rotation's scale removed."""
    try:
        m = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise JobError(f"{where}: transform_matrix is not a 4x4 matrix of numbers") from None
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise JobError(f"{where}: transform_matrix must be a finite 4x4 matrix, got shape {m.shape}")
    rotation = m[:3, :3]
    scale = np.linalg.norm(rotation, axis=0)
    if (scale < 1e-9).any() or abs(np.linalg.det(rotation / scale)) < 0.5:
        raise JobError(f"{where}: transform_matrix has a degenerate rotation")
    m[:3, :3] = rotation / scale  # scaled camera objects keep their orientation
    return m


def frame_intrinsics(camera: dict[str, Any], width: int, height: int, where: str) -> np.ndarray:
    """(fx, fy, cx, cy) in pixels of an image of ``width`` x ``height`` (scaled from the declared ``w``/``h``)."""
    declared_w, declared_h = _number(camera, "w", where) or width, _number(camera, "h", where) or height
    fx, fy = _number(camera, "fl_x", where), _number(camera, "fl_y", where)
    if fx is None:
        angle_x = _number(camera, "camera_angle_x", where)
        if angle_x is None:
            raise JobError(f"{where} has no focal length (fl_x or camera_angle_x)")
        if not 0 < angle_x < math.pi:
            raise JobError(f"{where}: camera_angle_x must be between 0 and pi, got {angle_x:g}")
        fx = 0.5 * declared_w / math.tan(0.5 * angle_x)
        angle_y = _number(camera, "camera_angle_y", where)
        if fy is None and angle_y:
            fy = 0.5 * declared_h / math.tan(0.5 * angle_y)
    fy = fx if fy is None else fy
    if fx <= 0 or fy <= 0:
        raise JobError(f"{where}: focal lengths must be positive")
    cx, cy = _number(camera, "cx", where), _number(camera, "cy", where)
    cx = declared_w / 2 if cx is None else cx
    cy = declared_h / 2 if cy is None else cy
    sx, sy = width / declared_w, height / declared_h
    return np.array([fx * sx, fy * sy, cx * sx, cy * sy], dtype=np.float64)


def scene_box(meta: dict[str, Any], where: str) -> np.ndarray:
    """The scene box: ``aabb``, else instant-ngp's ``aabb_scale``, else NeRF-synthetic's [-1.5, 1.5]^3."""
    if meta.get("aabb") is not None:
        try:
            box = np.asarray(meta["aabb"], dtype=np.float64)
        except (TypeError, ValueError):
            box = np.zeros(0)
        if box.shape != (2, 3) or not np.isfinite(box).all() or (box[1] <= box[0]).any():
            raise JobError(f"{where}: aabb must be [[x0, y0, z0], [x1, y1, z1]] with x0 < x1, y0 < y1, z0 < z1")
        return box
    aabb_scale = _number(meta, "aabb_scale", where) or 1.0
    if aabb_scale <= 0:
        raise JobError(f"{where}: aabb_scale must be positive, got {aabb_scale:g}")
    if "scale" in meta or "offset" in meta:  # instant-ngp: ngp = file * scale + offset; its unit cube's centre is 0.5
        scale = _number(meta, "scale", where) or 0.33
        offset = np.asarray(meta.get("offset", [0.5, 0.5, 0.5]), dtype=np.float64)
        center = (0.5 - offset) / scale
        half = 0.5 * aabb_scale / scale
    else:
        center, half = np.zeros(3), SYNTHETIC_HALF_EXTENT * aabb_scale
    return np.stack([center - half, center + half])


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of a JSON value, counted up to ``limit`` + 1 (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_transforms(path: str, resolve: Resolve | None = None) -> TransformsFile:
    """Parse the transforms file at ``path`` (or in the folder ``path``): frames, their cameras, the scene box.
    ``resolve``: the check of each path read (see the module's docstring)."""
    path = find_transforms(path, resolve)
    where = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except RecursionError:
        raise JobError(f"cannot read {path}: its JSON is nested too deeply") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, and numbers too long to convert
        raise JobError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if _depth(meta, MAX_DEPTH) > MAX_DEPTH:
        raise JobError(f"cannot read {path}: its JSON is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(meta, dict):
        raise JobError(f"{where} is not a transforms file (a JSON object with frames)")
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise JobError(f"{where} has no frames list")
    if not frames:
        raise JobError(f"{where} has zero frames")
    _check_camera(meta, where)
    folder = os.path.dirname(os.path.abspath(path))
    parsed = []
    for k, frame in enumerate(frames):
        fwhere = f"{where} frame {k}"
        if not isinstance(frame, dict):
            raise JobError(f"{fwhere} is not an object")
        _check_camera(frame, fwhere)
        parsed.append(
            Frame(
                _image_file(folder, frame.get("file_path"), fwhere, resolve or _as_is),
                camera_matrix(frame.get("transform_matrix"), fwhere),
                {**meta, **frame},
                fwhere,
            )
        )
    return TransformsFile(path, parsed, scene_box(meta, where))
