"""Cast Rays from Camera: the first hits of the scene camera's rays on the active field, as Blender images.

Guaranteed (the default) is frustum casting with range analysis (Sharp & Jacobson 2022): every ray's first
hit on the field's zero level inside its domain cube, however thin or steep the surface, on any field the
range rules cover (a radiance field: its density surface at the field's threshold). Sphere Tracing steps by
|f| / Lipschitz: the fast baseline, sound on distance fields only. Three images come back, named after the
field: ``<field> shaded`` (a headlight shading, white where the ray misses), ``<field> depth`` (float,
Non-Color: the distance along the ray in world units; 0 where the ray misses, as Render View's depth) and
``<field> normal`` (Non-Color: the world-space unit normal n as 0.5 * n + 0.5; 0 where the ray misses).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import FloatProperty, StringProperty

from ..inr_blender.wire.client import JobOutcome
from ..properties.common import for_operator
from ..properties.defaults import backend_name
from ..properties.ranges import RAYCAST_METHODS, RAYCAST_SETTINGS
from .common.bridge import InputError
from .common.cameras import scene_view
from .common.field import RangeQueryOperator, active_field, evaluations
from .common.images import image_from, rgba, save_view, show_image

MAX_SIDE = 8192  # the raycast_view job's largest view: 8192 x 8192 pixels


class INR_OT_raycast_view(RangeQueryOperator, bpy.types.Operator):
    """Cast the scene camera's rays at the active field (guaranteed first hits by range analysis): shaded, depth and normal images"""

    bl_idname = "inr.raycast_view"
    menu_entry = ("ranges", 1, "VIEW_CAMERA")  # the Object menu: section, order, icon
    bl_label = "Cast Rays from Camera"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "raycast_view"
    field_settings = {"range_mode": "ranges.mode", "method": "ranges.raycast.method"}

    method: for_operator(RAYCAST_SETTINGS["method"], name="Method")
    tolerance: FloatProperty(
        name="Tolerance",
        default=1e-3,
        min=1e-7,
        soft_max=0.05,
        precision=5,
        description="Guaranteed: length of the last ray segments searched, as a fraction of the field's half-size (bisection then refines the hit)",
    )
    lipschitz: FloatProperty(
        name="Lipschitz Bound",
        default=1.0,
        min=1e-6,
        soft_max=100.0,
        description="Sphere Tracing: the bound on the field's gradient norm (1 for a distance field); larger steps shorter",
    )
    filepath: StringProperty(
        name="Save As",
        subtype="FILE_PATH",
        options={"PATH_SUPPORTS_BLEND_RELATIVE", "SKIP_SAVE"},
        description="Also save the shaded image as a PNG here (empty: only the Blender images)",
    )

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        active_field(context, operation=self.bl_label)
        cam, view, c2w = scene_view(context.scene, "ray casting needs", MAX_SIDE)
        field, params, arrays = self.query_job(context)
        self._size = (view["width"], view["height"])
        self._camera = cam.name
        params.update(view, method=backend_name(self.method), tolerance=self.tolerance, lipschitz=self.lipschitz)
        local = np.array(c2w, dtype=np.float64)  # the camera in the field's frame, its axes back to unit length
        local[:3, :3] = np.linalg.inv(self._frame[:3, :3]) @ local[:3, :3] * self._frame_scale
        local[:3, 3] = self.to_field(local[None, :3, 3])[0]
        arrays["c2w"] = local
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        width, height = self._size
        a, result = outcome.arrays, outcome.params
        shapes = {"shaded": (height, width, 3), "depth": (height, width), "normal": (height, width, 3), "hit": (height, width)}
        if any(key not in a or a[key].shape != shape for key, shape in shapes.items()):
            raise InputError(f"the backend sent a view of the wrong size (expected {width}x{height})")
        hit = a["hit"].astype(bool)
        depth = np.where(hit, a["depth"] * self._frame_scale, 0.0)  # world units; misses 0 (as Render View's depth)
        rotation = self._frame[:3, :3] / self._frame_scale  # local normals to world
        normal = np.where(hit[..., None], 0.5 * (a["normal"] @ rotation.T) + 0.5, 0.0)
        shaded = rgba(np.clip(a["shaded"], 0.0, 1.0))
        images = [
            image_from(f"{field.name} shaded", shaded, False, "sRGB"),
            image_from(f"{field.name} depth", rgba(depth), True, "Non-Color"),
            image_from(f"{field.name} normal", rgba(normal), True, "Non-Color"),
        ]
        saved = f", saved to {save_view(shaded, self.filepath)}" if self.filepath else ""
        show_image(context, images[0])

        s = field.inr_field.ranges.raycast
        s.has_result = True
        s.hits = int(result.get("hits", hit.sum()))
        s.rays = width * height
        s.method_used = {key: name for key, name, _ in RAYCAST_METHODS}[self.method]
        s.seconds = float(result.get("seconds") or 0.0)
        names = ", ".join(f"'{image.name}'" for image in images)
        self.report(
            {"INFO"},
            f"Cast {width}x{height} rays from '{self._camera}' at '{field.name}' ({s.method_used}): {s.hits} hits; "
            f"{evaluations(result)}; into {names}{saved}",
        )
