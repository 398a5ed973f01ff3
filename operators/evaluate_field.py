"""Evaluate Field: the active field's surface against the objects it was fitted to (fixed metrics protocol)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

import bpy
from bpy.props import IntProperty

from ..inr_blender.wire.client import JobOutcome
from .common.bridge import InputError, mesh_arrays
from .common.field import FieldJobOperator


def source_meshes(context: bpy.types.Context, field: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """World-space triangles of every surface the field was fitted to, merged into one mesh."""
    names = json.loads(field.inr_field.sources_json or "[]")
    if not names:
        raise InputError(f"'{field.name}' does not record which objects it was fitted to")
    depsgraph = context.evaluated_depsgraph_get()
    verts, faces, offset = [], [], 0
    for name in names:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise InputError(f"'{name}', which '{field.name}' was fitted to, is no longer in the file")
        if obj.type != "MESH":
            raise InputError(f"'{name}' is a {obj.type.lower()}: metrics compare surfaces")
        v, f = mesh_arrays(obj, depsgraph)
        if len(f) == 0:
            raise InputError(f"'{name}' is a point cloud: metrics compare surfaces, so evaluate against a mesh")
        verts.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(verts), np.concatenate(faces)


class INR_OT_evaluate_field(FieldJobOperator, bpy.types.Operator):
    """Measure the active field's surface against the objects it was fitted to (Chamfer, normals, F-score, Hausdorff)"""

    bl_idname = "inr.evaluate_field"
    menu_entry = ("sdf", 5, "DRIVER_DISTANCE")  # the Object menu: section, order, icon
    bl_label = "Evaluate Field"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "evaluate_field"

    resolution: IntProperty(name="Resolution", default=128, min=16, max=8192, soft_max=1024, description="Extraction grid the surface is measured at")
    num_samples: IntProperty(name="Samples", default=100000, min=1000, soft_max=1000000, description="Points sampled on each surface")

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field, params, arrays = self.field_job(context, kind="SDF")
        vertices, faces = source_meshes(context, field)
        params.update(resolution=self.resolution, num_samples=self.num_samples)
        arrays.update(vertices=vertices, faces=faces)
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        m, s = outcome.params, field.inr_field
        s.has_metrics = True
        s.chamfer_l1 = m["chamfer_l1_normalized"]
        s.normal_consistency = m["normal_consistency"]
        s.fscore = m["fscore"]
        s.hausdorff = m["hausdorff"]
        s.metrics_resolution = self.resolution
        self.report(
            {"INFO"},
            (
                f"{field.name}: Chamfer-L1 {s.chamfer_l1:.5f}, normal consistency "
                f"{s.normal_consistency:.4f}, F-score {s.fscore:.4f}, Hausdorff {s.hausdorff:.4f}"
            ),
        )
