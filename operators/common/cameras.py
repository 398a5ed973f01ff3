"""Blender cameras as pinhole cameras: camera-to-world matrices and intrinsics in pixels.

The intrinsics follow Blender's own view plane (``BKE_camera_params_compute_viewplane``,
which Cycles matches): the sensor size is the width unless the fit is VERTICAL;
the fit is horizontal when the image (times the pixel aspect) is at least as wide
as it is tall, or when set so; the lens shift is a fraction of the fitted side.
Pixels: u right, v down from the top-left corner; pixel (i, j) has its centre at
(i + 0.5, j + 0.5). The camera looks down its local -Z with +Y up (OpenGL,
NeRF-synthetic's ``transform_matrix``).
"""

from __future__ import annotations

import math

import numpy as np

import bpy
from mathutils import Matrix

from .bridge import InputError


def render_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """The size in pixels that a render of ``scene`` has: resolution times its percentage."""
    r = scene.render
    return int(r.resolution_x * r.resolution_percentage / 100), int(r.resolution_y * r.resolution_percentage / 100)


def check_perspective(cam: bpy.types.Object, purpose: str = "radiance fields need") -> None:
    """Refuse cameras that a pinhole model cannot describe (orthographic, panoramic): "... lens: ``purpose`` perspective cameras"."""
    if cam.type != "CAMERA":
        raise InputError(f"'{cam.name}' is a {cam.type.lower()}, not a camera")
    if cam.data.type != "PERSP":
        lens = {"ORTHO": "an orthographic", "PANO": "a panoramic"}.get(cam.data.type, f"a {cam.data.type.lower()}")
        raise InputError(f"'{cam.name}' has {lens} lens: {purpose} perspective cameras")


def intrinsics(scene: bpy.types.Scene, cam: bpy.types.Object) -> tuple[float, float, float, float, int, int]:
    """(fx, fy, cx, cy, width, height) in pixels of the perspective camera ``cam`` rendering ``scene``."""
    data = cam.data
    width, height = render_size(scene)
    if width < 1 or height < 1:
        raise InputError(f"the render resolution is {width}x{height} pixels: set at least 1x1")
    aspect_x, aspect_y = scene.render.pixel_aspect_x, scene.render.pixel_aspect_y
    ycor = aspect_y / aspect_x
    sensor = data.sensor_height if data.sensor_fit == "VERTICAL" else data.sensor_width
    fit = data.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspect_x * width >= aspect_y * height else "VERTICAL"
    viewfac = width if fit == "HORIZONTAL" else ycor * height
    fx = data.lens * viewfac / sensor
    fy = fx / ycor
    cx = 0.5 * width - data.shift_x * viewfac
    cy = 0.5 * height + data.shift_y * viewfac / ycor
    return fx, fy, cx, cy, width, height


def camera_to_world(cam: bpy.types.Object) -> np.ndarray:
    """The camera's world matrix without its scale (4, 4), float64."""
    location, rotation, _scale = cam.matrix_world.decompose()
    return np.array(Matrix.LocRotScale(location, rotation, None), dtype=np.float64)


def angle_x(fx: float, width: int) -> float:
    """The horizontal field of view (radians) of a focal length ``fx`` across ``width`` pixels."""
    return 2.0 * math.atan(0.5 * width / fx)


def scene_view(scene: bpy.types.Scene, purpose: str, max_side: int) -> tuple[bpy.types.Object, dict, np.ndarray]:
    """The scene's active camera as a view job's input: (camera, params ``width``/``height``/``intrinsics``, ``c2w``).

    Refuses a scene without a camera, a lens other than perspective (``purpose``: "... lens: <purpose>
    perspective cameras") and a view of more than ``max_side`` squared pixels.
    """
    cam = scene.camera
    if cam is None:
        raise InputError("the scene has no active camera: set one (Ctrl+Numpad 0 on a camera)")
    check_perspective(cam, purpose)
    fx, fy, cx, cy, width, height = intrinsics(scene, cam)
    if width * height > max_side * max_side:
        raise InputError(f"{width}x{height} pixels is too large a view")
    return cam, {"width": width, "height": height, "intrinsics": [fx, fy, cx, cy]}, camera_to_world(cam).astype(np.float32)
