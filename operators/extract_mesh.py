"""Extract Mesh: marching cubes on the active field, imported as a mesh object.

On a signed distance field it extracts the level set ``level``; on a radiance field, the
density's iso-surface at ``threshold``, with per-vertex colours in a colour attribute ("Col")
and a material that shows them. On a displacement field (Fit Displacement Field, Transfer
Detail) ``part`` picks the detailed surface (``<field>_mesh``) or the smooth base (``<field>_base``). On a
shape space (Fit Shape Space) ``shape`` picks the shape to decode (by default the one selected in the panel's list):
``<field>_<shape>_mesh``, placed where that shape is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from ..inr_blender.wire.client import JobOutcome
from ..properties.defaults import backend_name
from .common.bridge import InputError, create_mesh_object, make_active
from .common.displacement import DISPLACEMENT
from .common.field import FieldJobOperator
from .common.shape_space import checked_shape, shape_matrix

COLOR_ATTRIBUTE = "Col"


def add_vertex_colors(obj: bpy.types.Object, colors: np.ndarray) -> bpy.types.Material:
    """Per-vertex sRGB colours (V, 3) in a byte colour attribute, and a material whose Base Color reads it."""
    mesh = obj.data
    attr = mesh.color_attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT")
    rgba = np.ones((len(colors), 4), dtype=np.float32)
    rgba[:, :3] = np.clip(colors, 0.0, 1.0)
    attr.data.foreach_set("color_srgb", rgba.ravel())
    mesh.color_attributes.active_color = attr
    mesh.color_attributes.render_color_index = mesh.color_attributes.active_color_index
    material = bpy.data.materials.new(obj.name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    source = nodes.new("ShaderNodeVertexColor")
    source.layer_name = COLOR_ATTRIBUTE
    source.location = (bsdf.location.x - 300, bsdf.location.y)
    links.new(source.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 1.0
    mesh.materials.append(material)
    return material


class INR_OT_extract_mesh(FieldJobOperator, bpy.types.Operator):
    """Extract the zero level set of the active field as a mesh (marching cubes)"""

    bl_idname = "inr.extract_mesh"
    menu_entry = ("sdf", 2, "MESH_DATA")  # the Object menu: section, order, icon
    bl_label = "Extract Mesh"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "extract_mesh"

    resolution: IntProperty(
        name="Resolution", default=128, min=8, max=8192, soft_max=1024, description="Grid points along each axis of the field's domain"
    )
    method: EnumProperty(
        name="Method",
        items=[
            ("SPARSE", "Sparse", "Evaluate a coarse grid and refine only the blocks the surface can pass through"),
            ("DENSE", "Dense", "Evaluate every grid point (the reference; slow at high resolution)"),
            (
                "GUARANTEED",
                "Guaranteed",
                (
                    "Cull only the blocks that range analysis certifies hold no surface: keeps thin "
                    "parts of any field, distance field or not (slower per block)"
                ),
            ),
        ],
        default="SPARSE",
    )
    level: FloatProperty(
        name="Iso-level", default=0.0, soft_min=-0.1, soft_max=0.1, precision=4, description="Level set to extract, in the field's local units"
    )
    threshold: FloatProperty(
        name="Density Threshold",
        default=25.0,
        min=1e-3,
        soft_max=500.0,
        options={"SKIP_SAVE"},
        description="Radiance fields: the density of the surface; when not set, the field's own (Fit NeRF suggests one)",
    )
    part: EnumProperty(
        name="Part",
        items=[
            ("DETAILED", "Detailed", "The field's surface, with its detail"),
            ("BASE", "Base", "The smooth base of a displacement field (of a transferred one: the target's base), as <field>_base"),
        ],
        default="DETAILED",
        options={"SKIP_SAVE"},
        description="Displacement fields: the detailed surface or the smooth base",
    )
    shape: IntProperty(
        name="Shape",
        default=-1,
        min=-1,
        options={"SKIP_SAVE"},
        description="Shape spaces: the index of the shape to decode (-1: the one selected in the panel's list)",
    )

    keep_debris: BoolProperty(
        name="Keep Debris",
        default=False,  # the job's (jobs/extract.py); tests/blender/test_blender_defaults.py compares them
        description="Keep the surface's parts that lie away from the fitted points (floating blobs, specks); by default they are dropped",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "resolution")
        layout.prop(self, "method")
        obj = context.active_object
        nerf = obj is not None and obj.inr_field.is_field and obj.inr_field.kind == "NERF"
        layout.prop(self, "threshold" if nerf else "level")
        if not nerf:
            layout.prop(self, "keep_debris")
        if obj is not None and not nerf and obj.inr_field.method in DISPLACEMENT:
            layout.prop(self, "part", expand=True)
        if obj is not None and obj.inr_field.kind == "SHAPE_SPACE":
            layout.prop(self, "shape")

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field, params, arrays = self.field_job(context)
        params.update(resolution=self.resolution, space="local", method=backend_name(self.method), part=backend_name(self.part))
        params["keep_debris"] = self.keep_debris
        self._nerf = field.inr_field.kind == "NERF"
        self._shape = -1
        if field.inr_field.kind == "SHAPE_SPACE":  # decode one shape of the space, in its own place
            self._shape = checked_shape(field, self.shape if self.shape >= 0 else field.inr_field.shape_space.active_shape)
            params["shape"] = self._shape
        if self.part == "BASE" and (self._nerf or field.inr_field.method not in DISPLACEMENT):
            raise InputError(f"only a displacement field has a base to extract: '{field.name}' is not one (fit it with Fit Displacement Field)")
        if self._nerf:
            if not self.properties.is_property_set("threshold"):
                self.threshold = field.inr_field.nerf.density_threshold  # shown in, and kept by, the redo panel
            params["threshold"] = self.threshold
        else:
            params["level"] = self.level
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        a = outcome.arrays
        suffix = "base" if self.part == "BASE" else "mesh"
        name, frame = f"{field.name}_{suffix}", field.matrix_world.copy()
        if self._shape >= 0:
            if self._shape >= len(field.inr_field.shape_space.shapes):
                raise InputError(f"the shape space '{field.name}' changed while the job ran")
            name, frame = f"{field.name}_{field.inr_field.shape_space.shapes[self._shape].name}_{suffix}", shape_matrix(field, self._shape)
        obj = create_mesh_object(context, name, a["vertices"], a["faces"], a.get("normals"), frame)
        created.append(obj)
        colors = a.get("colors")
        if colors is not None and len(colors) == len(a["vertices"]) and len(colors):
            add_vertex_colors(obj, colors)
        make_active(context, obj)
        evaluations = outcome.params.get("evaluations", 0)
        at = f"density {self.threshold:g}, " if self._nerf else ""
        at += "the base, " if self.part == "BASE" else ""
        boxes = outcome.params.get("box_evaluations", 0)
        counts = f"{evaluations:,} field evaluations" + (f", {boxes:,} certified blocks" if boxes else "")
        debris = outcome.params.get("debris_removed", 0)
        counts += f"; {debris} stray part{'s' if debris != 1 else ''} dropped" if debris else ""
        self.report({"INFO"}, f"Extracted {len(a['vertices'])} vertices, {len(a['faces'])} triangles at {at}resolution {self.resolution} ({counts})")
