"""Extract Mesh: marching cubes on the active field, imported as a mesh object."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty

from ..preferences import backend_config
from .bridge import InputError, create_mesh_object, make_active
from .client import JobOutcome
from .job import JobOperator


def active_field(context: bpy.types.Context) -> bpy.types.Object:
    """The active object if it is a fitted field, else :class:`InputError`."""
    obj = context.active_object
    if obj is None or not obj.inr_field.is_field:
        raise InputError("the active object is not a neural field: fit one with Fit SDF, or click a field")
    return obj


def checkpoint_of(context: bpy.types.Context, field: bpy.types.Object) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Job params/arrays that name the field's weights: a path, or the bytes for a remote worker."""
    path = bpy.path.abspath(field.inr_field.checkpoint)
    if not field.inr_field.checkpoint or not os.path.isfile(path):
        raise InputError(f"checkpoint of '{field.name}' not found: {path or '(none)'}")
    if backend_config(context).mode == "REMOTE":
        return {}, {"checkpoint": np.fromfile(path, dtype=np.uint8)}
    return {"checkpoint_path": path}, {}


class INR_OT_extract_mesh(JobOperator, bpy.types.Operator):
    """Extract the zero level set of the active field as a mesh (marching cubes)"""

    bl_idname = "inr.extract_mesh"
    bl_label = "Extract Mesh"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "extract_mesh"

    resolution: IntProperty(name="Resolution", default=128, min=8, max=8192, soft_max=1024, description="Grid cells along each axis of the field's domain")
    method: EnumProperty(
        name="Method",
        items=[
            ("SPARSE", "Sparse", "Evaluate a coarse grid and refine only the blocks the surface can pass through"),
            ("DENSE", "Dense", "Evaluate every grid point (the reference; slow at high resolution)"),
        ],
        default="SPARSE",
    )
    level: FloatProperty(name="Iso-level", default=0.0, soft_min=-0.1, soft_max=0.1, precision=4, description="Level set to extract, in the field's local units")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field = active_field(context)
        self._field_name = field.name
        params, arrays = checkpoint_of(context, field)
        params.update(resolution=self.resolution, level=self.level, space="local", method=self.method.lower())
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = bpy.data.objects.get(self._field_name)
        if field is None:
            raise InputError(f"the field '{self._field_name}' was deleted while its mesh was extracted")
        a = outcome.arrays
        obj = create_mesh_object(context, f"{field.name}_mesh", a["vertices"], a["faces"], a.get("normals"), field.matrix_world.copy())
        created.append(obj)
        make_active(context, obj)
        evaluations = outcome.params.get("evaluations", 0)
        self.report({"INFO"}, f"Extracted {len(a['vertices'])} vertices, {len(a['faces'])} triangles at resolution {self.resolution} ({evaluations:,} field evaluations)")
