"""Extract Mesh: marching cubes on the active field, imported as a mesh object."""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty

from .bridge import create_mesh_object, make_active
from .client import JobOutcome
from .field import FieldJobOperator


class INR_OT_extract_mesh(FieldJobOperator, bpy.types.Operator):
    """Extract the zero level set of the active field as a mesh (marching cubes)"""

    bl_idname = "inr.extract_mesh"
    bl_label = "Extract Mesh"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "extract_mesh"

    resolution: IntProperty(name="Resolution", default=128, min=8, max=8192, soft_max=1024, description="Grid points along each axis of the field's domain")
    method: EnumProperty(
        name="Method",
        items=[
            ("SPARSE", "Sparse", "Evaluate a coarse grid and refine only the blocks the surface can pass through"),
            ("DENSE", "Dense", "Evaluate every grid point (the reference; slow at high resolution)"),
        ],
        default="SPARSE",
    )
    level: FloatProperty(name="Iso-level", default=0.0, soft_min=-0.1, soft_max=0.1, precision=4, description="Level set to extract, in the field's local units")

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        _field, params, arrays = self.field_job(context)
        params.update(resolution=self.resolution, level=self.level, space="local", method=self.method.lower())
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        a = outcome.arrays
        obj = create_mesh_object(context, f"{field.name}_mesh", a["vertices"], a["faces"], a.get("normals"), field.matrix_world.copy())
        created.append(obj)
        make_active(context, obj)
        evaluations = outcome.params.get("evaluations", 0)
        self.report({"INFO"}, f"Extracted {len(a['vertices'])} vertices, {len(a['faces'])} triangles at resolution {self.resolution} ({evaluations:,} field evaluations)")
