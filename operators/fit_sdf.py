"""Fit SDF: a neural signed distance field to the selected meshes or point clouds."""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from ..preferences import backend_config
from ..properties import SDF_METHODS
from .bridge import InputError, make_active, selected_geometry
from .client import JobOutcome
from .field import new_checkpoint_path, new_field
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


class INR_OT_fit_sdf(FitJobOperator, bpy.types.Operator):
    """Fit a neural signed distance field to the selected meshes or point clouds"""

    bl_idname = "inr.fit_sdf"
    bl_label = "Fit SDF"
    bl_options = {"UNDO"}  # no redo panel: redoing would retrain
    job_name = "fit_sdf"

    preset: EnumProperty(name="Preset", items=PRESET_ITEMS, default="FAST", description="Settings by purpose; explicit settings override it")
    method: EnumProperty(name="Method", items=SDF_METHODS, default="IGR")
    iterations: IntProperty(name="Iterations", default=2000, min=1, soft_max=100000, description="The most steps to train")
    convergence_tolerance: FloatProperty(
        name="Stop Below", default=0.005, min=0.0, max=1.0, precision=4,
        description="Stop once the mean loss of 100 steps improves by less than this fraction twice in a row (0: never)",
    )
    max_seconds: FloatProperty(name="Time Limit", default=0.0, min=0.0, subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE", description="Stop after this long (0: no limit)")
    batch_size: IntProperty(name="Batch Size", default=4096, min=64, soft_max=65536, description="Surface points per step")
    learning_rate: FloatProperty(name="Learning Rate", default=0.0, min=0.0, precision=5, description="0 uses the method's default")
    # 4x256 by default: on a CPU it runs 7x faster per step than IGR's published 8x512 and measured
    # a lower Chamfer distance at equal short budgets (bench/fit_cost.py). 0 = the published size.
    width: IntProperty(name="Width", default=256, min=0, max=2048, description="Hidden units per layer; 0 uses the method's published size (IGR 512, SIREN 256)")
    depth: IntProperty(name="Depth", default=4, min=0, max=16, description="Hidden layers; 0 uses the method's published size (IGR 8, SIREN 3)")
    num_samples: IntProperty(name="Surface Samples", default=100000, min=100, soft_max=1000000, description="Points sampled on meshes")
    seed: IntProperty(name="Seed", default=0, min=0)
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

    # Iso-points (Wang Yifan 2021), for every method: points projected onto the current surface during
    # training (first after the warm-up, then refreshed), pulled to their distance to the input and to its normals
    use_isopoints: BoolProperty(
        name="Iso-points", default=False,
        description="Also train on points of the current surface: their value to their distance from the input points, their gradient to its normals",
    )
    isopoints: IntProperty(name="Iso-points", default=2000, min=1, soft_max=100000, description="Points projected onto the field's surface")
    isopoints_warmup: IntProperty(name="Warm-up", default=300, min=0, soft_max=10000, description="Steps before the first iso-points are extracted")
    isopoints_refresh: IntProperty(name="Refresh Every", default=1000, min=1, soft_max=10000, description="Steps between two extractions of the iso-points")
    w_iso: FloatProperty(name="Iso-point Weight", default=1.0, min=0.0, description="Weight of |f(q) - d(q)| at the iso-points q, d the signed distance to the input points")
    w_iso_normal: FloatProperty(name="Iso-point Normal Weight", default=0.1, min=0.0, description="Weight of 1 - cos between the gradient at the iso-points and the nearest input normal")

    _isopoint_props = ("isopoints", "isopoints_warmup", "isopoints_refresh", "w_iso", "w_iso_normal")

    _method_props = {
        "IGR": ("beta", "lambda_eikonal", "tau_normals", "knn_sigma"),
        "SIREN": ("omega0", "w_sdf", "w_normal", "w_eikonal", "w_offsurface", "alpha"),
        "HASHGRID": ("levels", "log2_table_size", "finest_resolution", "lambda_eikonal", "tau_normals", "knn_sigma", "w_far", "w_sign"),
        "NEURAL_SKELETON": ("w_tv", "ns_w_surface", "ns_w_normal", "ns_w_eikonal", "ns_w_hint", "ns_w_hint_normal", "ns_num_hints"),
    }

    _common_props = ("method", "iterations", "convergence_tolerance", "max_seconds", "batch_size", "learning_rate", "width", "depth")

    def settings(self) -> dict[str, Any]:
        """The settings to use: the operator's, with the preset's in place of those not set explicitly."""
        names = set(self._common_props) | {n for props in self._method_props.values() for n in props} | {"num_samples", "seed", "use_isopoints"}
        names |= set(self._isopoint_props)
        values = {name: getattr(self, name) for name in names}
        for name, value in PRESETS.get(self.preset, {}).items():
            if not self.properties.is_property_set(name):
                values[name] = value
        for name, value in METHOD_SETTINGS.get(values["method"], {}).items():
            if not self.properties.is_property_set(name):
                values[name] = value
        return values

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "preset")
        values = self.settings()
        if self.preset != "CUSTOM":  # what the preset will run; switch to Custom to edit
            box = layout.box()
            method = values["method"]
            shown = [n for n in self._common_props + self._method_props[method] if n in PRESETS[self.preset]]
            for name in shown:
                box.label(text=f"{self.properties.bl_rna.properties[name].name}: {values[name]}")
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
        box = layout.box()  # every method can train on iso-points
        box.prop(self, "use_isopoints")
        if self.use_isopoints:
            box.prop(self, "isopoints", text="Count")
            for name in self._isopoint_props[1:]:
                box.prop(self, name)

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays, names = selected_geometry(context)
        values = self.settings()
        method = values["method"]
        if method in ("SIREN", "NEURAL_SKELETON") and "points" in arrays and "normals" not in arrays:
            name = "SIREN" if method == "SIREN" else "The neural skeleton"
            raise InputError(f"{name} needs oriented normals and the selected point cloud has none: use IGR, or give the points normals")
        self._sources = names
        self._field_name = f"{names[0]}_SDF"
        path, self._stored_path = new_checkpoint_path(self._field_name)
        params = {key: values[key] for key in ("iterations", "batch_size", "num_samples", "seed", "convergence_tolerance", "max_seconds")}
        params.update(method=method.lower(), checkpoint_path=path)
        optional = {"learning_rate": values["learning_rate"]}
        if method != "HASHGRID":  # the hash grid keeps its small MLP
            optional.update(width=values["width"], depth=values["depth"])
        params.update({k: v for k, v in optional.items() if v > 0})  # 0: the method's default
        params.update({name.removeprefix("ns_"): values[name] for name in self._method_props[method]})
        if values["use_isopoints"]:  # only then: the backend's default is off
            params.update({name: values[name] for name in self._isopoint_props})
        self._params = params
        self._method = method
        if backend_config(context).mode == "REMOTE":
            params["return_checkpoint"] = True
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        result = outcome.params
        field = new_field(context, self._field_name, outcome, self._stored_path, self._sources, self._params, created)
        settings = field.inr_field
        settings.kind = "SDF"
        settings.method = self._method
        settings.preset = self.preset
        settings.num_points = int(result.get("num_points") or 0)
        settings.has_normals = bool(result.get("has_normals"))
        make_active(context, field)
        refreshes = result.get("isopoint_refreshes")
        iso = f"; iso-points extracted {refreshes} times" if refreshes is not None and "isopoints" in self._params else ""
        self.report({"INFO"}, f"Fitted {self._field_name}: loss {settings.final_loss:.4g} on {settings.device}; {settings.stop_reason}{iso}")
