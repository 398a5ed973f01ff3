"""Create Camera Rig: cameras on a sphere, hemisphere or ring around the selection, all looking at its centre.

A rig is a collection of cameras marked with custom properties:
``inr_rig`` (True), ``inr_aabb`` (the selection's padded world box: x0, y0, z0, x1, y1, z1),
``inr_center`` and ``inr_radius``; Render Training Views adds ``inr_views`` (its folder).
"""

from __future__ import annotations

import math

import numpy as np

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty
from mathutils import Vector

from .common.bridge import InputError, _check_finite, _matrix, _to_world

RIG_COLLECTION = "INR Camera Rig"
AUTO_RESOLUTION = 200  # pixels along each side when no resolution is set (NeRF-synthetic's 800 / 4)
SHAPES = [
    ("SPHERE", "Sphere", "Cameras all around, evenly spread (a Fibonacci sphere)"),
    ("HEMISPHERE", "Hemisphere", "Cameras above the centre only (the upper half of a Fibonacci sphere)"),
    ("RING", "Ring", "Cameras on a horizontal circle, at the centre's height or at an elevation angle"),
]
GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT", "POINTCLOUD", "VOLUME", "CURVES", "GREASEPENCIL", "GPENCIL"}


# -- the selection's box ---------------------------------------------------------------------
def selection_box(context: bpy.types.Context) -> tuple[np.ndarray, np.ndarray]:
    """World-space (min, max) of the selected objects' evaluated geometry (cameras and lights aside)."""
    objects = [o for o in context.selected_objects if o.type in GEOMETRY_TYPES]
    if not objects:
        others = [o for o in context.selected_objects]
        if others:
            raise InputError(f"'{others[0].name}' is a {others[0].type.lower()}: select the objects the cameras should look at")
        raise InputError("nothing selected: select the objects the cameras should look at")
    depsgraph = context.evaluated_depsgraph_get()
    points = []
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        mat = _matrix(obj.matrix_world)
        if obj.type == "MESH":
            mesh = evaluated.to_mesh()
            try:
                co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
                mesh.vertices.foreach_get("co", co)
            finally:
                evaluated.to_mesh_clear()
            co = co.reshape(-1, 3)
        else:
            co = np.array([tuple(c) for c in evaluated.bound_box], dtype=np.float64).reshape(-1, 3)
        if len(co) == 0:
            continue
        _check_finite(obj, co)
        points.append(_to_world(co, mat))
    if not points:
        raise InputError("the selected objects are empty: there is nothing for the cameras to look at")
    points = np.concatenate(points)
    if not np.isfinite(points).all():
        raise InputError("the selection has a transform that makes its coordinates NaN or infinite")
    return points.min(axis=0), points.max(axis=0)


def padded_box(lo: np.ndarray, hi: np.ndarray, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """The box grown on every side by ``padding`` times its largest side (so flat selections get depth)."""
    size = float((hi - lo).max())
    if size <= 0:
        raise InputError("the selection is a single point: there is nothing for the cameras to frame")
    margin = padding * size
    return lo - margin, hi + margin


# -- placing cameras -------------------------------------------------------------------------
def rig_directions(shape: str, count: int, elevation: float = 0.0) -> np.ndarray:
    """Unit vectors from the centre to each camera (count, 3)."""
    i = np.arange(count, dtype=np.float64) + 0.5
    golden = math.pi * (3.0 - math.sqrt(5.0))
    if shape == "RING":
        phi = 2.0 * math.pi * (i - 0.5) / count
        z = np.full(count, math.sin(elevation))
        r = np.full(count, math.cos(elevation))
    else:
        z = 1.0 - 2.0 * i / count if shape == "SPHERE" else 1.0 - i / count
        r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
        phi = golden * (i - 0.5)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)


def auto_radius(bound_radius: float, tan_half_fov: float, fill: float) -> float:
    """Distance at which a sphere of ``bound_radius`` spans ``fill`` of the narrower field of view."""
    tan_sphere = fill * tan_half_fov  # the sphere's apparent half-size, as a tangent
    return bound_radius * math.sqrt(1.0 + 1.0 / (tan_sphere * tan_sphere))


class INR_OT_create_camera_rig(bpy.types.Operator):
    """Place cameras on a sphere, hemisphere or ring around the selected objects, all looking at their centre"""

    bl_idname = "inr.create_camera_rig"
    menu_entry = ("nerf", 1, "OUTLINER_OB_CAMERA")  # the Object menu: section, order, icon
    bl_label = "Create Camera Rig"
    bl_options = {"REGISTER", "UNDO"}

    shape: EnumProperty(name="Shape", items=SHAPES, default="HEMISPHERE")
    count: IntProperty(name="Cameras", default=24, min=1, soft_max=200, max=2000, description="How many cameras")
    radius: FloatProperty(
        name="Radius",
        default=0.0,
        min=0.0,
        subtype="DISTANCE",
        unit="LENGTH",
        description="Distance from the centre to each camera; 0 sets it so the selection fills the view (see Fill)",
    )
    fill: FloatProperty(
        name="Fill",
        default=0.8,
        min=0.05,
        max=1.0,
        subtype="FACTOR",
        description="With an automatic radius: the part of the view the selection's bounding sphere spans",
    )
    lens: FloatProperty(
        name="Focal Length",
        default=50.0,
        min=1.0,
        soft_max=500.0,
        subtype="DISTANCE_CAMERA",
        unit="CAMERA",
        description="Focal length of every camera (mm, on a 36 mm sensor)",
    )
    resolution_x: IntProperty(
        name="Width", default=0, min=0, max=16384, subtype="PIXEL", description="Render width in pixels; 0: 200 (or from the height, square)"
    )
    resolution_y: IntProperty(
        name="Height", default=0, min=0, max=16384, subtype="PIXEL", description="Render height in pixels; 0: 200 (or from the width, square)"
    )
    elevation: FloatProperty(
        name="Elevation",
        default=0.0,
        min=-math.pi / 2 + 1e-3,
        max=math.pi / 2 - 1e-3,
        subtype="ANGLE",
        description="Ring only: the cameras' angle above the centre",
    )
    padding: FloatProperty(
        name="Box Padding",
        default=0.05,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
        description="The scene box (inr_aabb) is the selection's box grown by this fraction of its largest side on every side",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        for name in ("shape", "count", "radius", "fill", "lens", "resolution_x", "resolution_y"):
            layout.prop(self, name)
        if self.shape == "RING":
            layout.prop(self, "elevation")
        layout.prop(self, "padding")

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            lo, hi = selection_box(context)
            box_lo, box_hi = padded_box(lo, hi, self.padding)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        center = 0.5 * (lo + hi)
        bound_radius = max(0.5 * float(np.linalg.norm(hi - lo)), 1e-6)
        width = self.resolution_x or self.resolution_y or AUTO_RESOLUTION
        height = self.resolution_y or self.resolution_x or AUTO_RESOLUTION
        render = context.scene.render
        aspect = render.pixel_aspect_y / render.pixel_aspect_x
        # Blender's automatic sensor fit: the 36 mm sensor spans the wider side
        sensor = 36.0
        wide = max(width, aspect * height)
        tan_x = 0.5 * sensor / self.lens * width / wide
        tan_y = 0.5 * sensor / self.lens * aspect * height / wide
        radius = self.radius or auto_radius(bound_radius, min(tan_x, tan_y), self.fill)

        rig = bpy.data.collections.new(RIG_COLLECTION)
        context.scene.collection.children.link(rig)
        directions = rig_directions(self.shape, self.count, self.elevation)
        for k, direction in enumerate(directions):
            data = bpy.data.cameras.new(f"{rig.name} {k:03d}")
            data.lens = self.lens
            data.sensor_width = sensor
            data.sensor_fit = "AUTO"
            data.clip_start = max(1e-3, min(0.1, 0.5 * (radius - bound_radius)))
            data.clip_end = max(100.0, 10.0 * (radius + bound_radius))
            cam = bpy.data.objects.new(data.name, data)
            cam.location = Vector(center + radius * direction)
            cam.rotation_euler = (-Vector(direction)).to_track_quat("-Z", "Y").to_euler()
            rig.objects.link(cam)
        rig["inr_rig"] = True
        rig["inr_aabb"] = [float(v) for v in (*box_lo, *box_hi)]
        rig["inr_center"] = [float(v) for v in center]
        rig["inr_radius"] = float(radius)
        rig["inr_shape"] = self.shape
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        if context.scene.camera is None:
            context.scene.camera = rig.objects[0]
        self.report({"INFO"}, f"{rig.name}: {self.count} cameras on a {self.shape.lower()} of radius {radius:.3g} at {width}x{height}")
        return {"FINISHED"}
