"""The settings every signed distance fit has (Fit SDF's, Fit Displacement Field's, Transfer Detail's for the
fields it fits first), with their defaults from the backend's (``inr_blender/settings/sdf.py``), and the base of
the operators that fit a new signed distance field to the selected meshes and point clouds."""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty

from ...inr_blender.settings import sdf
from ...inr_blender.settings.spec import params
from ...inr_blender.wire.client import JobOutcome
from ...properties.defaults import find_param, prop_from_param
from .bridge import create_mesh_object, make_active, selected_geometry
from .field import FitPlan, checkpoints, fitted_field, plan_fit
from .job import FitJobOperator, JobSpec, preview_property
from .preview import preview_name

# The run settings' defaults are those of the operators' default method (IGR) and every method's common ones.
_RUN = params(sdf.COMMON, sdf.IGR.params)


def run_param(name: str):
    """The backend's declaration of the run setting ``name`` (iterations, batch_size, seed, ...)."""
    return find_param(_RUN, name)


class SdfFitSettings:
    """The settings every signed distance fit has (operator properties of a mixin), and the job params they make.

    A preset (``presets[self.preset]``) fills in every setting the caller does not set explicitly.
    Subclasses name their own settings (``own_settings``) and turn them into params (``method_params``).
    """

    presets: dict[str, dict[str, Any]] = {}
    own_settings: tuple[str, ...] = ()

    iterations: prop_from_param(run_param("iterations"), soft_max=100000)
    convergence_tolerance: prop_from_param(run_param("convergence_tolerance"), precision=4)
    max_seconds: prop_from_param(run_param("max_seconds"), subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    batch_size: prop_from_param(run_param("batch_size"), min=64, soft_max=65536)
    learning_rate: FloatProperty(name="Learning Rate", default=0.0, min=0.0, precision=5, description="0 uses the method's default")
    num_samples: prop_from_param(run_param("num_samples"), min=100, soft_max=1000000)
    seed: prop_from_param(run_param("seed"))

    # Iso-points (Wang Yifan 2021), for every method: points projected onto the current surface during
    # training (first after the warm-up, then refreshed), added to the surface samples, and weighing the input
    use_isopoints: BoolProperty(
        name="Iso-points",
        default=False,
        description=(
            "Also train on points of the current surface (with normals of planes fitted to their "
            "neighbours), and weigh each input point by how well it agrees with that surface"
        ),
    )
    # the backend's isopoints=0 means off; here Use Iso-points turns them on, with this many
    isopoints: IntProperty(name="Iso-points", default=2000, min=1, soft_max=100000, description="Points projected onto the field's surface")
    isopoints_warmup: prop_from_param(run_param("isopoints_warmup"), soft_max=10000)
    isopoints_refresh: prop_from_param(run_param("isopoints_refresh"), soft_max=10000)
    w_iso: prop_from_param(run_param("w_iso"))
    w_iso_normal: prop_from_param(run_param("w_iso_normal"))

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
    ``<first source>_<field_suffix>`` with its checkpoint and training record.

    With live previews on (Preview Every > 0: the UI's default) the scene shows the field's coarse surface while it
    trains, and the fit ends by extracting its surface (Extract Mesh's defaults) as ``<field>_mesh``, which replaces
    the preview.
    """

    job_name = "fit_sdf"
    field_suffix = "SDF"
    preview_every: preview_property()

    def field_method(self, values: dict[str, Any]) -> str:
        """The new field's method (an ``INR_PG_field.method`` item)."""
        raise NotImplementedError

    def check_input(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        """Refuse input the method cannot fit (raise :class:`InputError`); anything goes by default."""

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays, names = selected_geometry(context)
        values = self.settings()
        self.check_input(arrays, values)
        params = dict(self.job_params(values), preview_every=self.preview_seconds())
        self._plan: FitPlan = plan_fit(context, arrays, names, self.field_suffix, self.field_method(values), self.preset, params)
        self._preview_name = preview_name(self._plan.field_name)
        self._fit: JobOutcome | None = None
        self._stages = 2 if params["preview_every"] > 0 else 1
        self._stage_label = "fitting"
        return self._plan.params, arrays

    def next_job(self, context: bpy.types.Context, outcome: JobOutcome) -> JobSpec | None:
        """With previews on, the fitted field's surface follows (it replaces the preview)."""
        if self._stages == 1 or self._fit is not None:
            return None
        self._fit, self._stage_label = outcome, "extracting the surface"
        given, arrays = checkpoints(context).result(outcome, self._plan.path).job_input()
        return "extract_mesh", dict(given, space="local"), arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        surface = outcome if self._fit is not None else None
        outcome = self._fit or outcome
        field = self.make_field(context, self._plan, outcome, created)
        if surface is not None:
            context.view_layer.update()  # the new field's matrix_world
            a = surface.arrays
            created.append(create_mesh_object(context, f"{field.name}_mesh", a["vertices"], a["faces"], a.get("normals"), field.matrix_world.copy()))
        make_active(context, field)
        s = field.inr_field
        refreshes = outcome.params.get("isopoint_refreshes")
        iso = f"; iso-points extracted {refreshes} times" if refreshes is not None and "isopoints" in self._plan.params else ""
        self.report({"INFO"}, f"Fitted {field.name}: loss {s.final_loss:.4g} on {s.device}; {s.stop_reason}{iso}")

    def make_field(self, context: bpy.types.Context, plan: FitPlan, outcome: JobOutcome, created: list) -> bpy.types.Object:
        """The new field object (appended to ``created``)."""
        return fitted_field(context, plan, outcome, created)
