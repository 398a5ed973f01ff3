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
from bpy.props import EnumProperty, FloatProperty, IntProperty

from .client import JobOutcome
from .field import FitPlan, fitted_field, require_normals
from .fit_sdf import SdfFitOperator, SdfFitSettings

# Presets fill in what the caller does not set, as Fit SDF's do. The operator's own defaults are the
# backend's (networks of 3 x 128, 2000 steps of 4096 points: the published 3 x 256, halved for the CPU).
# Both keep the base at 3 x 128 (ω 15): the backend stores that network pre-fitted to a sphere, where a
# base of another size is pre-fitted on demand first (600 steps of 8192 points: minutes on a CPU).
PRESETS: dict[str, dict[str, Any]] = {
    "FAST": {"iterations": 1000, "batch_size": 2048, "base_width": 128, "detail_width": 64},
    "DETAILED": {"iterations": 2000, "batch_size": 4096, "base_width": 128, "detail_width": 128},
}
PRESET_ITEMS = [
    ("FAST", "Fast", "Base of 3 x 128, detail of 3 x 64, 1000 steps of 2048 points; the default"),
    ("DETAILED", "Detailed", "Base and detail of 3 x 128, 2000 steps of 4096 points: finer detail, slower"),
    ("CUSTOM", "Custom", "Every setting as set below"),
]
INIT_ITEMS = [
    ("SPHERE", "Sphere", "Start the base from a sphere's distance field (pre-fitted on demand), as published"),
    ("RANDOM", "Random", "Start the base from SIREN's random initialisation"),
]
DISPLACEMENT = ("IDF", "IDF_TRANSFER")  # the field methods with a base (Extract Mesh's part BASE)


def is_base_only(field: bpy.types.Object) -> bool:
    """A displacement field fitted with its base alone (phases at 1): a smooth target, with no detail to give."""
    return field.inr_field.method == "IDF" and field.inr_field.displacement.phase_base >= 1.0


def displacement_field(context: bpy.types.Context, plan: FitPlan, outcome: JobOutcome, created: list) -> bpy.types.Object:
    """The field object a finished displacement fit of ``plan`` makes, with its phases recorded."""
    field = fitted_field(context, plan, outcome, created)
    field.inr_field.displacement.phase_base = float(plan.params["phase_base"])
    field.inr_field.displacement.phase_detail = float(plan.params["phase_detail"])
    return field


class DisplacementSettings(SdfFitSettings):
    """The settings of a displacement fit (a mixin of operator properties): Fit Displacement Field's,
    and Transfer Detail's for the fields it fits first."""

    presets = PRESETS
    own_settings = (
        "base_width", "base_depth", "base_omega", "detail_width", "detail_depth", "detail_omega", "nu", "max_offset",
        "phase_base", "phase_detail", "joint_lr_factor", "init", "w_sdf", "w_normal", "w_eikonal", "w_offsurface", "alpha",
    )
    _groups = (
        ("Base", ("base_width", "base_depth", "base_omega")),
        ("Detail", ("detail_width", "detail_depth", "detail_omega", "nu", "max_offset")),
        ("Phases", ("phase_base", "phase_detail", "joint_lr_factor", "init")),
        ("Weights", ("w_sdf", "w_normal", "w_eikonal", "w_offsurface", "alpha")),
    )

    preset: EnumProperty(name="Preset", items=PRESET_ITEMS, default="FAST", description="Settings by purpose; explicit settings override it")
    # the phases are fractions of the run: an early stop would cut them short, so none by default
    convergence_tolerance: FloatProperty(
        name="Stop Below", default=0.0, min=0.0, max=1.0, precision=4,
        description="Stop once the mean loss of 100 steps improves by less than this fraction twice in a row (0: never; it would cut the phases short)",
    )
    base_width: IntProperty(
        name="Base Width", default=128, min=4, max=2048,
        description="Hidden units per layer of the smooth base (published 256; 3 x 128 at ω 15 starts at once, other sizes are pre-fitted to a sphere first)",
    )
    base_depth: IntProperty(name="Base Depth", default=3, min=1, max=16, description="Hidden layers of the smooth base (published 3)")
    base_omega: FloatProperty(name="Base ω", default=15.0, min=0.1, description="Frequency of the base's sines: low for a smooth base (published 15)")
    detail_width: IntProperty(name="Detail Width", default=128, min=4, max=2048, description="Hidden units per layer of the detail (published 256)")
    detail_depth: IntProperty(name="Detail Depth", default=3, min=1, max=16, description="Hidden layers of the detail (published 3)")
    detail_omega: FloatProperty(name="Detail ω", default=60.0, min=0.1, description="Frequency of the detail's sines: high for fine detail (published 60)")
    nu: FloatProperty(
        name="ν", default=0.05, min=1e-4, soft_max=0.2, precision=3,
        description="Width of the shell around the base where the detail acts, in the field's local units (published 0.05)",
    )
    max_offset: FloatProperty(
        name="Largest Offset", default=0.05, min=1e-4, soft_max=0.2, precision=3,
        description="The most the detail moves the surface along the base's normal, in the field's local units (published 0.05)",
    )
    phase_base: FloatProperty(
        name="Base Alone Until", default=0.2, min=0.0, max=1.0, subtype="FACTOR",
        description="Fraction of the run in which the base trains alone (1 with the next at 1: a smooth base, no detail)",
    )
    phase_detail: FloatProperty(
        name="Detail Alone Until", default=0.5, min=0.0, max=1.0, subtype="FACTOR",
        description="Fraction of the run until which the detail trains alone; both train after it",
    )
    joint_lr_factor: FloatProperty(name="Joint Rate Factor", default=0.1, min=0.0, max=1.0, description="Learning rate of the last phase (both networks), as a fraction of the rate")
    init: EnumProperty(name="Start", items=INIT_ITEMS, default="SPHERE", description="Where the base starts")
    w_sdf: FloatProperty(name="Surface Weight", default=200.0, min=0.0, description="Field value on the points (published 200)")
    w_normal: FloatProperty(name="Normal Weight", default=40.0, min=0.0, description="1 - cos between the gradient and the normals (published 40)")
    w_eikonal: FloatProperty(name="Eikonal Weight", default=5.0, min=0.0, description="(1 - |grad|) everywhere (published 5)")
    w_offsurface: FloatProperty(name="Off-surface Weight", default=50.0, min=0.0, description="exp(-α|f|) off the surface (published 50)")
    alpha: FloatProperty(name="Off-surface α", default=100.0, min=0.0, description="Fall-off of the off-surface term (published 100)")

    def method_params(self, values: dict[str, Any]) -> dict[str, Any]:
        params = {name: values[name] for name in self.own_settings}
        params.update(method="idf", init=values["init"].lower())
        return params

    def base_only_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """The job params of a base-only fit (a smooth target for Transfer Detail): both phases at 1."""
        return dict(self.job_params(values), phase_base=1.0, phase_detail=1.0)

    def draw_displacement(self, layout: bpy.types.UILayout) -> None:
        """The preset, and what it runs (or, for Custom, every setting), and the iso-points."""
        layout.use_property_split = True
        layout.prop(self, "preset")
        if self.preset != "CUSTOM":  # what the preset will run; switch to Custom to edit
            self.draw_preset(layout, PRESETS[self.preset], self.settings())
        else:
            for name in ("iterations", "batch_size", "learning_rate", "convergence_tolerance", "max_seconds", "num_samples", "seed"):
                layout.prop(self, name)
            for title, names in self._groups:
                box = layout.box()
                box.label(text=title)
                for name in names:
                    box.prop(self, name)
        self.draw_isopoints(layout)


class INR_OT_fit_displacement(DisplacementSettings, SdfFitOperator, bpy.types.Operator):
    """Fit an implicit displacement field (a smooth base plus detail along its normals) to the selected meshes or point clouds"""

    bl_idname = "inr.fit_displacement"
    bl_label = "Fit Displacement Field"
    bl_options = {"UNDO"}  # no redo panel: redoing would retrain
    field_suffix = "IDF"

    def draw(self, context: bpy.types.Context) -> None:
        self.draw_displacement(self.layout)

    def field_method(self, values: dict[str, Any]) -> str:
        return "IDF"

    def check_input(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        require_normals(arrays, "A displacement field", "give the points normals (Sample Iso-points makes a cloud with normals), or fit a mesh")

    def make_field(self, context: bpy.types.Context, plan: FitPlan, outcome: JobOutcome, created: list) -> bpy.types.Object:
        return displacement_field(context, plan, outcome, created)
