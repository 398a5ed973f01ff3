"""Fit SDF: a neural signed distance field to the selected meshes or point clouds."""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from ..properties import SDF_METHODS
from .bridge import make_active, selected_geometry
from .client import JobOutcome
from .field import FitPlan, fitted_field, plan_fit, require_normals
from .job import FitJobOperator

# Presets, named by what they are for. A preset fills in every setting the caller does not set
# explicitly (bpy.ops.inr.fit_sdf(preset="SMOOTH", iterations=300) keeps the 300); CUSTOM uses
# the operator's own settings. Figures: bench/results/sdf_vs_poisson.md.
PRESETS: dict[str, dict[str, Any]] = {
    "FAST": {"method": "HASHGRID", "iterations": 500, "batch_size": 2048, "levels": 12, "log2_table_size": 18,
             "finest_resolution": 256, "convergence_tolerance": 0.005},
    "DETAILED": {"method": "HASHGRID", "iterations": 1500, "batch_size": 4096, "levels": 16, "log2_table_size": 19,
                 "finest_resolution": 512, "convergence_tolerance": 0.002},
    "SMOOTH": {"method": "IGR", "iterations": 1000, "batch_size": 2048, "width": 256, "depth": 4,
               "convergence_tolerance": 0.005},
    # Clémot & Digne 2023: a SIREN of 6 sine layers of 64 trained with the TV term, for Extract Skeleton;
    # it runs its fixed schedule (learning points, TV decay) to the end, so no early stop.
    "SKELETON": {"method": "NEURAL_SKELETON", "iterations": 1000, "batch_size": 5000, "width": 64, "depth": 5,
                 "convergence_tolerance": 0.0},
}
# What a method needs in place of the operator's defaults when they are not set explicitly, whatever the
# preset (the other presets are tuned for other networks): the neural skeleton is the SKELETON preset.
METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "NEURAL_SKELETON": {k: v for k, v in PRESETS["SKELETON"].items() if k != "method"},
}
PRESET_ITEMS = [
    ("FAST", "Fast", "Hash grid, 500 steps at most: seconds to a minute on a CPU; the default"),
    ("DETAILED", "Detailed", "Finer hash grid (16 levels up to 512, 2^19 entries), 1500 steps: fine detail, slower"),
    ("SMOOTH", "Smooth", "IGR 4x256, 1000 steps: a smooth, rounded surface (fine detail is lost)"),
    ("SKELETON", "Skeleton", "Neural skeleton (SIREN 6x64 with the TV term), 1000 steps: the field for Extract Skeleton; needs normals"),
    ("CUSTOM", "Custom", "Every setting as set below"),
]


class SdfFitSettings:
    """The settings every signed distance fit has (operator properties of a mixin), and the job params they make.

    A preset (``presets[self.preset]``) fills in every setting the caller does not set explicitly.
    Subclasses name their own settings (``own_settings``) and turn them into params (``method_params``).
    """

    presets: dict[str, dict[str, Any]] = {}
    own_settings: tuple[str, ...] = ()

    iterations: IntProperty(name="Iterations", default=2000, min=1, soft_max=100000, description="The most steps to train")
    convergence_tolerance: FloatProperty(
        name="Stop Below", default=0.005, min=0.0, max=1.0, precision=4,
        description="Stop once the mean loss of 100 steps improves by less than this fraction twice in a row (0: never)",
    )
    max_seconds: FloatProperty(name="Time Limit", default=0.0, min=0.0, subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE", description="Stop after this long (0: no limit)")
    batch_size: IntProperty(name="Batch Size", default=4096, min=64, soft_max=65536, description="Surface points per step")
    learning_rate: FloatProperty(name="Learning Rate", default=0.0, min=0.0, precision=5, description="0 uses the method's default")
    num_samples: IntProperty(name="Surface Samples", default=100000, min=100, soft_max=1000000, description="Points sampled on meshes")
    seed: IntProperty(name="Seed", default=0, min=0)

    # Iso-points (Wang Yifan 2021), for every method: points projected onto the current surface during
    # training (first after the warm-up, then refreshed), added to the surface samples, and weighing the input
    use_isopoints: BoolProperty(
        name="Iso-points", default=False,
        description="Also train on points of the current surface (with normals of planes fitted to their neighbours), and weigh each input point by how well it agrees with that surface",
    )
    isopoints: IntProperty(name="Iso-points", default=2000, min=1, soft_max=100000, description="Points projected onto the field's surface")
    isopoints_warmup: IntProperty(name="Warm-up", default=300, min=0, soft_max=10000, description="Steps before the first iso-points are extracted")
    isopoints_refresh: IntProperty(name="Refresh Every", default=1000, min=1, soft_max=10000, description="Steps between two extractions of the iso-points")
    w_iso: FloatProperty(name="Iso-point Weight", default=1.0, min=0.0, description="Weight of the surface value term at the iso-points, relative to an input point's")
    w_iso_normal: FloatProperty(name="Iso-point Normal Weight", default=1.0, min=0.0, description="Weight of the normal term at the iso-points (normals of planes fitted to 8 neighbouring iso-points), relative to an input point's")

    _isopoint_props = ("isopoints", "isopoints_warmup", "isopoints_refresh", "w_iso", "w_iso_normal")
    _run_props = ("iterations", "batch_size", "num_samples", "seed", "convergence_tolerance", "max_seconds")

    def settings(self) -> dict[str, Any]:
        """The settings to use: the operator's, with the preset's in place of those not set explicitly."""
        names = {*self._run_props, "learning_rate", "use_isopoints", *self._isopoint_props, *self.own_settings}
        return self.fill_unset({name: getattr(self, name) for name in names}, self.presets.get(self.preset, {}))

    def method_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """The job params of the method's own settings (``method`` among them)."""
        raise NotImplementedError

    def job_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """The ``fit_sdf`` job's params for the settings ``values`` (the checkpoint's path aside)."""
        params = {key: values[key] for key in self._run_props}
        if values["learning_rate"] > 0:  # 0: the method's default
            params["learning_rate"] = values["learning_rate"]
        params.update(self.method_params(values))
        if values["use_isopoints"]:  # only then: the backend's default is off
            params.update({name: values[name] for name in self._isopoint_props})
        return params

    def draw_isopoints(self, layout: bpy.types.UILayout) -> None:
        box = layout.box()  # every method can train on iso-points
        box.prop(self, "use_isopoints")
        if self.use_isopoints:
            box.prop(self, "isopoints", text="Count")
            for name in self._isopoint_props[1:]:
                box.prop(self, name)


class SdfFitOperator(SdfFitSettings, FitJobOperator):
    """A fit of a new signed distance field to the selected meshes and point clouds: the field object
    ``<first source>_<field_suffix>`` with its checkpoint and training record."""

    job_name = "fit_sdf"
    field_suffix = "SDF"

    def field_method(self, values: dict[str, Any]) -> str:
        """The new field's method (an ``INR_PG_field.method`` item)."""
        raise NotImplementedError

    def check_input(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        """Refuse input the method cannot fit (raise :class:`InputError`); anything goes by default."""

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays, names = selected_geometry(context)
        values = self.settings()
        self.check_input(arrays, values)
        self._plan: FitPlan = plan_fit(context, arrays, names, self.field_suffix, self.field_method(values), self.preset, self.job_params(values))
        return self._plan.params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.make_field(context, self._plan, outcome, created)
        make_active(context, field)
        s = field.inr_field
        refreshes = outcome.params.get("isopoint_refreshes")
        iso = f"; iso-points extracted {refreshes} times" if refreshes is not None and "isopoints" in self._plan.params else ""
        self.report({"INFO"}, f"Fitted {field.name}: loss {s.final_loss:.4g} on {s.device}; {s.stop_reason}{iso}")

    def make_field(self, context: bpy.types.Context, plan: FitPlan, outcome: JobOutcome, created: list) -> bpy.types.Object:
        """The new field object (appended to ``created``)."""
        return fitted_field(context, plan, outcome, created)


class INR_OT_fit_sdf(SdfFitOperator, bpy.types.Operator):
    """Fit a neural signed distance field to the selected meshes or point clouds"""

    bl_idname = "inr.fit_sdf"
    bl_label = "Fit SDF"
    bl_options = {"UNDO"}  # no redo panel: redoing would retrain
    presets = PRESETS

    preset: EnumProperty(name="Preset", items=PRESET_ITEMS, default="FAST", description="Settings by purpose; explicit settings override it")
    method: EnumProperty(name="Method", items=SDF_METHODS, default="IGR")
    # 4x256 by default: on a CPU it runs 7x faster per step than IGR's published 8x512 and measured
    # a lower Chamfer distance at equal short budgets (bench/fit_cost.py). 0 = the published size.
    width: IntProperty(name="Width", default=256, min=0, max=2048, description="Hidden units per layer; 0 uses the method's published size (IGR 512, SIREN 256)")
    depth: IntProperty(name="Depth", default=4, min=0, max=16, description="Hidden layers; 0 uses the method's published size (IGR 8, SIREN 3)")
    # IGR (Gropp 2020)
    beta: FloatProperty(name="Softplus β", default=100.0, min=1.0)
    lambda_eikonal: FloatProperty(name="Eikonal λ", default=0.1, min=0.0)
    tau_normals: FloatProperty(name="Normals τ", default=1.0, min=0.0)
    knn_sigma: IntProperty(name="σ Neighbour", default=50, min=1, max=200, description="σ of near-surface samples: distance to this neighbour")
    # SIREN (Sitzmann 2020)
    omega0: FloatProperty(name="ω0", default=30.0, min=0.1)
    w_sdf: FloatProperty(name="Surface Weight", default=3e3, min=0.0)
    w_normal: FloatProperty(name="Normal Weight", default=1e2, min=0.0)
    w_eikonal: FloatProperty(name="Eikonal Weight", default=5e1, min=0.0)
    w_offsurface: FloatProperty(name="Off-surface Weight", default=1e2, min=0.0)
    alpha: FloatProperty(name="Off-surface α", default=100.0, min=0.0)
    # Hash grid (Müller 2022); its MLP is 2 layers of 64 and Width/Depth do not apply
    levels: IntProperty(name="Levels", default=12, min=1, max=32, description="Grid levels (published 16)")
    log2_table_size: IntProperty(name="Table Size (log2)", default=18, min=8, max=24, description="Entries per level: 2^n (published 19)")
    finest_resolution: IntProperty(name="Finest Resolution", default=256, min=16, max=8192, description="Grid of the finest level (published 2048)")
    w_far: FloatProperty(name="Far Weight", default=1.0, min=0.0, description="Pull the field to the estimated signed distance far from the points (needs normals)")
    w_sign: FloatProperty(name="Sign Weight", default=100.0, min=0.0, description="Penalise the wrong sign just off the surface, from the points' normals")
    # Neural skeleton (Clémot & Digne 2023); its other weights are the published ones
    w_tv: FloatProperty(
        name="TV Weight", default=20.0, min=0.0, soft_max=200.0,
        description="Total variation of the gradient norm: pushes its minima onto the medial axis, where Extract Skeleton finds them (published 20)",
    )
    # its other weights (sent without the ns_ prefix, which keeps them apart from SIREN's of the same names)
    ns_w_surface: FloatProperty(name="Surface Weight", default=1e4, min=0.0, description="Squared field value on the points (published 100 x 100)")
    ns_w_normal: FloatProperty(name="Normal Weight", default=1e2, min=0.0, description="1 - cos between the gradient and the normals (published 100)")
    ns_w_eikonal: FloatProperty(name="Eikonal Weight", default=2e2, min=0.0, description="(1 - |grad u|)^2 at uniform points (published 200)")
    ns_w_hint: FloatProperty(name="Learning-Point Weight", default=1e3, min=0.0, description="Squared error to the known distance at the learning points (published 100 x 10)")
    ns_w_hint_normal: FloatProperty(name="Learning-Point Direction Weight", default=1e2, min=0.0, description="1 - cos to the direction away from the nearest point (published 100)")
    ns_num_hints: IntProperty(name="Learning Points", default=1000, min=0, soft_max=100000, description="Uniform points of known signed distance, used for the first 40% of the run")

    _method_props = {
        "IGR": ("beta", "lambda_eikonal", "tau_normals", "knn_sigma"),
        "SIREN": ("omega0", "w_sdf", "w_normal", "w_eikonal", "w_offsurface", "alpha"),
        "HASHGRID": ("levels", "log2_table_size", "finest_resolution", "lambda_eikonal", "tau_normals", "knn_sigma", "w_far", "w_sign"),
        "NEURAL_SKELETON": ("w_tv", "ns_w_surface", "ns_w_normal", "ns_w_eikonal", "ns_w_hint", "ns_w_hint_normal", "ns_num_hints"),
    }

    _common_props = ("method", "iterations", "convergence_tolerance", "max_seconds", "batch_size", "learning_rate", "width", "depth")
    own_settings = ("method", "width", "depth", *{n for props in _method_props.values() for n in props})

    def settings(self) -> dict[str, Any]:
        """The settings to use: the operator's, with the preset's, then the method's, in place of those not set explicitly."""
        values = super().settings()
        return self.fill_unset(values, METHOD_SETTINGS.get(values["method"], {}))

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "preset")
        values = self.settings()
        if self.preset != "CUSTOM":  # what the preset will run; switch to Custom to edit
            method = values["method"]
            box = self.draw_preset(layout, [n for n in self._common_props + self._method_props[method] if n in PRESETS[self.preset]], values)
            if method == "NEURAL_SKELETON":
                box.prop(self, "w_tv")
        else:
            for name in self._common_props + ("num_samples", "seed"):
                layout.prop(self, name)
            box = layout.box()
            box.label(text=f"{self.method} settings")
            for name in self._method_props[self.method]:
                box.prop(self, name)
            unset = [n for n in METHOD_SETTINGS.get(self.method, {}) if not self.properties.is_property_set(n)]
            if unset:  # what runs in place of the operator's defaults shown above
                names = ", ".join(f"{self.properties.bl_rna.properties[n].name} {values[n]}" for n in unset)
                box.label(text=f"Unless changed: {names}", icon="INFO")
        self.draw_isopoints(layout)

    def field_method(self, values: dict[str, Any]) -> str:
        return values["method"]

    def check_input(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        if values["method"] in ("SIREN", "NEURAL_SKELETON"):
            require_normals(arrays, "SIREN" if values["method"] == "SIREN" else "The neural skeleton", "use IGR, or give the points normals")

    def method_params(self, values: dict[str, Any]) -> dict[str, Any]:
        method = values["method"]
        params: dict[str, Any] = {"method": method.lower()}
        if method != "HASHGRID":  # the hash grid keeps its small MLP
            params.update({k: values[k] for k in ("width", "depth") if values[k] > 0})  # 0: the method's default
        params.update({name.removeprefix("ns_"): values[name] for name in self._method_props[method]})
        return params
