"""Render View: the active radiance field seen from the scene's camera, into Blender images (colour and depth)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import bpy
from bpy.props import StringProperty

from .bridge import InputError
from .cameras import camera_to_world, check_perspective, intrinsics
from .client import JobOutcome
from .field import FieldJobOperator, active_field


def image_for(name: str, width: int, height: int, float_buffer: bool, colorspace: str) -> bpy.types.Image:
    """The image ``name`` at ``width`` x ``height`` (created, or reused and resized)."""
    image = bpy.data.images.get(name)
    if image is not None and (image.source != "GENERATED" or bool(image.is_float) != float_buffer):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=float_buffer)
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    image.colorspace_settings.name = colorspace
    return image


def set_pixels(image: bpy.types.Image, rgba_top_first: np.ndarray) -> None:
    """Write (H, W, 4) pixels given top row first (Blender's rows run bottom to top)."""
    image.pixels.foreach_set(np.ascontiguousarray(rgba_top_first[::-1], dtype=np.float32).ravel())
    image.update()


def save_png(rgba_top_first: np.ndarray, path: str) -> None:
    """Write (H, W, 4) sRGB pixels to a PNG through a temporary image (the view image stays generated)."""
    height, width = rgba_top_first.shape[:2]
    image = bpy.data.images.new("INR save", width, height, alpha=True)
    try:
        set_pixels(image, rgba_top_first)
        image.filepath_raw = path
        image.file_format = "PNG"
        try:
            image.save()
        except RuntimeError as exc:
            raise InputError(f"cannot save the view to {path}: {str(exc).strip().splitlines()[-1]}") from None
    finally:
        bpy.data.images.remove(image)


class INR_OT_render_nerf_view(FieldJobOperator, bpy.types.Operator):
    """Render the active radiance field from the scene's camera at the render resolution, with a depth pass"""

    bl_idname = "inr.render_nerf_view"
    bl_label = "Render View"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "render_nerf_view"

    filepath: StringProperty(
        name="Save As", subtype="FILE_PATH", options={"PATH_SUPPORTS_BLEND_RELATIVE", "SKIP_SAVE"},
        description="Also save the view as a PNG here (empty: only the Blender image)",
    )

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        active_field(context, "NERF", self.bl_label)
        scene = context.scene
        cam = scene.camera
        if cam is None:
            raise InputError("the scene has no active camera: set one (Ctrl+Numpad 0 on a camera)")
        check_perspective(cam)
        fx, fy, cx, cy, width, height = intrinsics(scene, cam)
        field, params, arrays = self.field_job(context, kind="NERF")
        if width * height > 16384 * 16384:
            raise InputError(f"{width}x{height} pixels is too large a view")
        self._size = (width, height)
        self._camera = cam.name
        params.update(width=width, height=height, intrinsics=[fx, fy, cx, cy], background=[float(c) for c in field.inr_field.background])
        arrays["c2w"] = camera_to_world(cam).astype(np.float32)
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        width, height = self._size
        rgb, depth = outcome.arrays.get("rgb"), outcome.arrays.get("depth")
        if rgb is None or depth is None or rgb.shape[:2] != (height, width) or depth.shape != (height, width):
            raise InputError(f"the backend sent a view of the wrong size (expected {width}x{height})")
        rgba = np.concatenate([np.clip(rgb, 0.0, 1.0), np.ones((height, width, 1), np.float32)], axis=-1)
        view = image_for(f"{field.name} view", width, height, False, "sRGB")
        set_pixels(view, rgba)
        d = np.asarray(depth, dtype=np.float32)[..., None]
        depth_image = image_for(f"{field.name} depth", width, height, True, "Non-Color")
        set_pixels(depth_image, np.concatenate([d, d, d, np.ones_like(d)], axis=-1))
        saved = ""
        if self.filepath:
            path = bpy.path.abspath(self.filepath)
            if not path.lower().endswith(".png"):
                path += ".png"
            try:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot save the view to {path}: {exc.strerror or exc}") from None
            save_png(rgba, path)
            saved = f", saved to {path}"
        for area in context.screen.areas if context.screen else []:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = view
                area.tag_redraw()
        seconds = float(outcome.params.get("seconds") or 0.0)
        self.report({"INFO"}, f"Rendered '{field.name}' from '{self._camera}' at {width}x{height} in {seconds:.1f} s into '{view.name}' and '{depth_image.name}'{saved}")
