"""Render View: the active radiance field seen from the scene's camera, into Blender images (colour and depth)."""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import StringProperty

from ..inr_blender.wire.client import JobOutcome
from .common.bridge import InputError
from .common.cameras import scene_view
from .common.field import FieldJobOperator, active_field
from .common.images import image_from, rgba, save_view, show_image


class INR_OT_render_nerf_view(FieldJobOperator, bpy.types.Operator):
    """Render the active radiance field from the scene's camera at the render resolution, with a depth pass"""

    bl_idname = "inr.render_nerf_view"
    menu_entry = ("nerf", 4, "RENDER_RESULT")  # the Object menu: section, order, icon
    bl_label = "Render View"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "render_nerf_view"

    filepath: StringProperty(
        name="Save As",
        subtype="FILE_PATH",
        options={"PATH_SUPPORTS_BLEND_RELATIVE", "SKIP_SAVE"},
        description="Also save the view as a PNG here (empty: only the Blender image)",
    )

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        active_field(context, "NERF", self.bl_label)
        cam, view, c2w = scene_view(context.scene, "radiance fields need", 16384)
        field, params, arrays = self.field_job(context, kind="NERF")
        self._size = (view["width"], view["height"])
        self._camera = cam.name
        params.update(view, background=[float(c) for c in field.inr_field.nerf.background])
        arrays["c2w"] = c2w
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        width, height = self._size
        rgb, depth = outcome.arrays.get("rgb"), outcome.arrays.get("depth")
        if rgb is None or depth is None or rgb.shape[:2] != (height, width) or depth.shape != (height, width):
            raise InputError(f"the backend sent a view of the wrong size (expected {width}x{height})")
        pixels = rgba(np.clip(rgb, 0.0, 1.0))
        view = image_from(f"{field.name} view", pixels, False, "sRGB")
        depth_image = image_from(f"{field.name} depth", rgba(depth), True, "Non-Color")
        saved = f", saved to {save_view(pixels, self.filepath)}" if self.filepath else ""
        show_image(context, view)
        seconds = float(outcome.params.get("seconds") or 0.0)
        self.report(
            {"INFO"},
            (
                f"Rendered '{field.name}' from '{self._camera}' at {width}x{height} in "
                f"{seconds:.1f} s into '{view.name}' and '{depth_image.name}'{saved}"
            ),
        )
