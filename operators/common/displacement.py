"""The settings of a displacement fit (Wang Yifan et al. 2022), with their defaults and presets from the backend's
(``inr_blender/settings/``): Fit Displacement Field's, and Transfer Detail's for the fields it fits first; and the
field object such a fit makes."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import EnumProperty

from ...inr_blender.settings import presets, sdf
from ...inr_blender.wire.client import JobOutcome
from ...properties.defaults import CUSTOM, backend_name, enum_item, find_param, preset_items, preset_values, prop_from_param
from .field import FitPlan, fitted_field
from .sdf_settings import SdfFitSettings

# Presets fill in what the caller does not set, as Fit SDF's do (the backend's table; the method is the operator's).
PRESETS = preset_values(presets.DISPLACEMENT, drop=("method",))
PRESET_ITEMS, DEFAULT_PRESET = preset_items(presets.DISPLACEMENT), enum_item(presets.DISPLACEMENT_DEFAULT)
INIT_ITEMS = [
    ("SPHERE", "Sphere", "Start the base from a sphere's distance field (pre-fitted on demand), as published"),
    ("RANDOM", "Random", "Start the base from SIREN's random initialisation"),
]
DISPLACEMENT = ("IDF", "IDF_TRANSFER")  # the field methods with a base (Extract Mesh's part BASE)


def idf_param(setting: str, **overrides: Any):
    """The operator property of the displacement method's ``setting``, from the backend's declaration."""
    return prop_from_param(find_param(sdf.IDF.params, setting), **overrides)


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
        "base_width",
        "base_depth",
        "base_omega",
        "detail_width",
        "detail_depth",
        "detail_omega",
        "nu",
        "max_offset",
        "phase_base",
        "phase_detail",
        "joint_lr_factor",
        "init",
        "w_sdf",
        "w_normal",
        "w_eikonal",
        "w_offsurface",
        "alpha",
    )
    _groups = (
        ("Base", ("base_width", "base_depth", "base_omega")),
        ("Detail", ("detail_width", "detail_depth", "detail_omega", "nu", "max_offset")),
        ("Phases", ("phase_base", "phase_detail", "joint_lr_factor", "init")),
        ("Weights", ("w_sdf", "w_normal", "w_eikonal", "w_offsurface", "alpha")),
    )

    preset: EnumProperty(
        name="Preset",
        items=PRESET_ITEMS,
        default=DEFAULT_PRESET,
        description="Settings by purpose; explicit settings override it",
    )
    # the phases are fractions of the run: an early stop would cut them short, so none by default
    convergence_tolerance: idf_param(
        "convergence_tolerance",
        precision=4,
        description=(
            "Stop once the mean loss of 100 steps improves by less than this fraction twice in a row (0: never; it would cut the phases short)"
        ),
    )
    base_width: idf_param(
        "base_width",
        min=4,
        max=2048,
        description=(
            "Hidden units per layer of the smooth base (published 256; 3 x 128 at ω 15 starts at once, other sizes are pre-fitted to a sphere first)"
        ),
    )
    base_depth: idf_param("base_depth", max=16)
    base_omega: idf_param("base_omega", min=0.1, description="Frequency of the base's sines: low for a smooth base (published 15)")
    detail_width: idf_param("detail_width", min=4, max=2048)
    detail_depth: idf_param("detail_depth", max=16)
    detail_omega: idf_param("detail_omega", min=0.1, description="Frequency of the detail's sines: high for fine detail (published 60)")
    nu: idf_param("nu", min=1e-4, soft_max=0.2, precision=3)
    max_offset: idf_param("max_offset", name="Largest Offset", min=1e-4, soft_max=0.2, precision=3)
    phase_base: idf_param(
        "phase_base",
        name="Base Alone Until",
        subtype="FACTOR",
        description="Fraction of the run in which the base trains alone (1 with the next at 1: a smooth base, no detail)",
    )
    phase_detail: idf_param(
        "phase_detail",
        name="Detail Alone Until",
        subtype="FACTOR",
        description="Fraction of the run until which the detail trains alone; both train after it",
    )
    joint_lr_factor: idf_param("joint_lr_factor", name="Joint Rate Factor", max=1.0)
    init: idf_param("init", name="Start", items=INIT_ITEMS, description="Where the base starts")
    w_sdf: idf_param("w_sdf")
    w_normal: idf_param("w_normal")
    w_eikonal: idf_param("w_eikonal")
    w_offsurface: idf_param("w_offsurface")
    alpha: idf_param("alpha", min=0.0)

    def method_params(self, values: dict[str, Any]) -> dict[str, Any]:
        params = {name: values[name] for name in self.own_settings}
        params.update(method=sdf.IDF.name, init=backend_name(values["init"]))
        return params

    def base_only_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """The job params of a base-only fit (a smooth target for Transfer Detail): both phases at 1."""
        return dict(self.job_params(values), phase_base=1.0, phase_detail=1.0)

    def draw_displacement(self, layout: bpy.types.UILayout) -> None:
        """The preset, and what it runs (or, for Custom, every setting), and the iso-points."""
        layout.use_property_split = True
        layout.prop(self, "preset")
        if self.preset != CUSTOM:  # what the preset will run; switch to Custom to edit
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
