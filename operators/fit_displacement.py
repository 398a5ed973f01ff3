"""Fit Displacement Field: an implicit displacement field (Wang Yifan et al. 2022) to the selected meshes or point clouds.

The field is a smooth SIREN base (ω 15) plus a high-frequency SIREN detail (ω 60) that moves
the base's surface along its normals, within a shell of width ν and by at most the largest
offset. It trains in three phases, as fractions of the run: the base alone, then the detail
alone, then both at a lower rate. The result is a field object like Fit SDF's (kind SDF, method
IDF): Extract Mesh extracts its detailed surface or its base (``part``), and Transfer Detail
moves its detail onto another shape. It needs normals: a mesh has them, a point cloud needs a
``normal`` attribute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy

from ..inr_blender.wire.client import JobOutcome
from .common.displacement import DisplacementSettings, displacement_field
from .common.field import FitPlan, require_normals
from .common.sdf_settings import SdfFitOperator


class INR_OT_fit_displacement(DisplacementSettings, SdfFitOperator, bpy.types.Operator):
    """Fit an implicit displacement field (a smooth base plus detail along its normals) to the selected meshes or point clouds"""

    bl_idname = "inr.fit_displacement"
    menu_entry = ("displacement", 1, "MOD_DISPLACE")  # the Object menu: section, order, icon
    bl_label = "Fit Displacement Field"
    bl_options = {"UNDO"}  # no redo panel: redoing would retrain
    field_suffix = "IDF"

    def draw(self, context: bpy.types.Context) -> None:
        self.draw_displacement(self.layout)
        self.layout.prop(self, "preview_every")

    def field_method(self, values: dict[str, Any]) -> str:
        return "IDF"

    def check_input(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        require_normals(arrays, "A displacement field", "give the points normals (Sample Iso-points makes a cloud with normals), or fit a mesh")

    def make_field(self, context: bpy.types.Context, plan: FitPlan, outcome: JobOutcome, created: list) -> bpy.types.Object:
        return displacement_field(context, plan, outcome, created)
