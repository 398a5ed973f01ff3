"""Fit SDF: a neural signed distance field to the selected meshes or point clouds."""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import EnumProperty, IntProperty

from ..inr_blender.settings import presets, sdf
from ..properties import SDF_METHODS
from ..properties.defaults import CUSTOM, backend_name, enum_item, find_param, preset_items, preset_values, prop_from_param
from .common.field import require_normals
from .common.sdf_settings import SdfFitOperator

# Presets, named by what they are for (the backend's table, inr_blender/settings/presets.py). A preset fills in every
# setting the caller does not set explicitly (bpy.ops.inr.fit_sdf(preset="SMOOTH", iterations=300) keeps the 300);
# CUSTOM uses the operator's own settings.
PRESETS = preset_values(presets.SDF, enums=("method",))
PRESET_ITEMS, DEFAULT_PRESET = preset_items(presets.SDF), enum_item(presets.SDF_DEFAULT)
# What a method needs in place of the operator's defaults when they are not set explicitly, whatever the
# preset (the other presets are tuned for other networks): the neural skeleton is the SKELETON preset.
METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "NEURAL_SKELETON": {k: v for k, v in PRESETS["SKELETON"].items() if k != "method"},
}


def _method_param(method: str, name: str, **overrides: Any):
    """The operator property of built-in ``method``'s setting ``name``, from the backend's declaration."""
    return prop_from_param(find_param(sdf.BUILTIN[method].params, name), **overrides)


class INR_OT_fit_sdf(SdfFitOperator, bpy.types.Operator):
    """Fit a neural signed distance field to the selected meshes or point clouds"""

    bl_idname = "inr.fit_sdf"
    menu_entry = ("sdf", 1, "MOD_REMESH")  # the Object menu: section, order, icon
    bl_label = "Fit SDF"
    bl_options = {"UNDO"}  # no redo panel: redoing would retrain
    presets = PRESETS

    preset: EnumProperty(
        name="Preset",
        items=PRESET_ITEMS,
        default=DEFAULT_PRESET,
        description="Settings by purpose; explicit settings override it",
    )
    method: EnumProperty(name="Method", items=SDF_METHODS, default="IGR")
    # 4x256 by default: on a CPU it runs 7x faster per step than IGR's published 8x512 and measured
    # a lower Chamfer distance at equal short budgets (bench/fit_cost.py). 0 = the published size.
    width: IntProperty(
        name="Width", default=256, min=0, max=2048, description="Hidden units per layer; 0 uses the method's published size (IGR 512, SIREN 256)"
    )
    depth: IntProperty(name="Depth", default=4, min=0, max=16, description="Hidden layers; 0 uses the method's published size (IGR 8, SIREN 3)")
    # IGR (Gropp 2020)
    beta: _method_param("igr", "beta", min=1.0)
    lambda_eikonal: _method_param("igr", "lambda_eikonal")
    tau_normals: _method_param("igr", "tau_normals")
    knn_sigma: _method_param("igr", "knn_sigma", max=200)
    # SIREN (Sitzmann 2020)
    omega0: _method_param("siren", "omega0", min=0.1)
    w_sdf: _method_param("siren", "w_sdf")
    w_normal: _method_param("siren", "w_normal")
    w_eikonal: _method_param("siren", "w_eikonal")
    w_offsurface: _method_param("siren", "w_offsurface")
    alpha: _method_param("siren", "alpha", min=0.0)
    # Hash grid (Müller 2022); its MLP is 2 layers of 64 and Width/Depth do not apply
    levels: _method_param("hashgrid", "levels")
    log2_table_size: _method_param("hashgrid", "log2_table_size", min=8, max=24)
    finest_resolution: _method_param("hashgrid", "finest_resolution", min=16, max=8192)
    w_far: _method_param("hashgrid", "w_far")
    w_sign: _method_param("hashgrid", "w_sign")
    # Neural skeleton (Clémot & Digne 2023); its other weights are the published ones
    w_tv: _method_param(
        "neural_skeleton",
        "w_tv",
        soft_max=200.0,
        description="Total variation of the gradient norm: pushes its minima onto the medial axis, where Extract Skeleton finds them (published 20)",
    )
    # its other weights (sent without the ns_ prefix, which keeps them apart from SIREN's of the same names)
    ns_w_surface: _method_param("neural_skeleton", "w_surface")
    ns_w_normal: _method_param("neural_skeleton", "w_normal")
    ns_w_eikonal: _method_param("neural_skeleton", "w_eikonal")
    ns_w_hint: _method_param("neural_skeleton", "w_hint")
    ns_w_hint_normal: _method_param("neural_skeleton", "w_hint_normal")
    ns_num_hints: _method_param("neural_skeleton", "num_hints", soft_max=100000)

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
        if self.preset != CUSTOM:  # what the preset will run; switch to Custom to edit
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
        layout.prop(self, "preview_every")

    def job_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """The job's params, leaving to the worker what the preset takes for its device (larger batches and tables on
        CUDA: ``presets.ON_DEVICE``) where the caller did not set it and the preset's method runs."""
        params = super().job_params(values)
        if self.preset == CUSTOM or values["method"] != PRESETS[self.preset]["method"]:
            return params
        name = backend_name(self.preset)
        left = [k for k in presets.device_settings(presets.SDF, name) if k in params and not self.properties.is_property_set(k)]
        if left:
            params = {k: v for k, v in params.items() if k not in left} | {"preset": name}
        return params

    def field_method(self, values: dict[str, Any]) -> str:
        return values["method"]

    def check_input(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        if values["method"] in ("SIREN", "NEURAL_SKELETON"):
            require_normals(arrays, "SIREN" if values["method"] == "SIREN" else "The neural skeleton", "use IGR, or give the points normals")

    def method_params(self, values: dict[str, Any]) -> dict[str, Any]:
        method = values["method"]
        params: dict[str, Any] = {"method": backend_name(method)}
        if method != "HASHGRID":  # the hash grid keeps its small MLP
            params.update({k: values[k] for k in ("width", "depth") if values[k] > 0})  # 0: the method's default
        params.update({name.removeprefix("ns_"): values[name] for name in self._method_props[method]})
        return params
