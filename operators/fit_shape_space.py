"""Fit Shape Space: one network for a collection of shapes, a latent code per shape (DeepSDF auto-decoder, Park 2019;
occupancy networks, Mescheder 2019, as a variant).

Every selected mesh (two or more) is a training shape. Each crosses the seam in world space, modifiers applied and
triangulated; the backend normalises it into the unit sphere (``local = (world - center_k) / scale_k``) and gives
each shape its code. The result is a field object ``<first shape>_ShapeSpace`` (kind SHAPE_SPACE): an Empty placed at
the first shape's center and scale, so its cube shows where a shape lives, holding one entry per shape (its object,
code index, center, scale and reconstruction error). The first shape is the active object when it is selected,
then the others by name.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import bpy
from bpy.props import EnumProperty, IntProperty

from ..inr_blender.settings import presets, shape_space
from ..inr_blender.wire.client import JobOutcome
from ..properties import SHAPE_SPACE_METHODS
from ..properties.defaults import CUSTOM, backend_name, enum_item, find_param, preset_items, preset_values, prop_from_param
from .common.bridge import InputError, make_active, mesh_arrays
from .common.field import FitPlan, new_field, plan_fit
from .common.job import FitJobOperator

FIELD_SUFFIX = "ShapeSpace"
# Presets fill in every setting the caller does not set explicitly (as Fit SDF's do; the backend's table); CUSTOM
# uses the operator's.
PRESETS = preset_values(presets.SHAPE_SPACE)
PRESET_ITEMS, DEFAULT_PRESET = preset_items(presets.SHAPE_SPACE), enum_item(presets.SHAPE_SPACE_DEFAULT)
_NETWORK = ("method", "latent_size", "width", "depth", "dropout", "weight_norm")
_TRAINING = (
    "iterations",
    "max_seconds",
    "shapes_per_step",
    "samples_per_shape",
    "num_samples",
    "lr_decoder",
    "lr_codes",
    "clamp",
    "prior",
    "seed",
    "error_resolution",
)


def _prop(setting: str, **overrides: Any) -> Any:
    """The property of the shape-space setting ``setting``: the default preset's value, else the backend's default;
    its description ends with the published value (the backend's default)."""
    param = find_param(shape_space.PARAMS, setting)
    if "description" in overrides and isinstance(param.default, (int, float)) and not isinstance(param.default, bool) and param.default:
        overrides["description"] += f" (published {param.default})"
    return prop_from_param(param, presets.SHAPE_SPACE[presets.SHAPE_SPACE_DEFAULT], **overrides)


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


# -- the fit ------------------------------------------------------------------------------------------------
class INR_OT_fit_shape_space(FitJobOperator, bpy.types.Operator):
    """Fit one network to the selected meshes (two or more), a latent code per shape (DeepSDF)"""

    bl_idname = "inr.fit_shape_space"
    menu_entry = ("shape_space", 1, "MOD_INSTANCE")  # the Object menu: section, order, icon
    bl_label = "Fit Shape Space"
    bl_options = {"UNDO"}  # no redo panel: redoing would retrain
    dialog_width = 340

    preset: EnumProperty(
        name="Preset",
        items=PRESET_ITEMS,
        default=DEFAULT_PRESET,
        description="Settings by purpose; explicit settings override it",
    )
    method: EnumProperty(name="Method", items=SHAPE_SPACE_METHODS, default="DEEPSDF", description="What the decoder predicts")
    latent_size: _prop("latent_size", name="Latent Size", max=4096, description="Length of each shape's code")
    width: _prop("width", min=4, max=4096, description="Hidden units per layer of the decoder, more than the latent size + 3")
    depth: _prop("depth", min=2, max=16, description="Hidden layers of the decoder")
    dropout: _prop("dropout", max=0.9, description="Dropout after each hidden layer while training")
    weight_norm: _prop("weight_norm", name="Weight Norm", description="Weight normalisation on the decoder's layers")
    iterations: _prop("iterations", soft_max=100000, description="Training steps")
    max_seconds: _prop(
        "max_seconds", name="Time Limit", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE", description="Stop after this long (0: no limit)"
    )
    shapes_per_step: _prop("shapes_per_step", soft_max=256, description="Shapes in each step's batch")
    samples_per_shape: _prop("samples_per_shape", min=16, soft_max=65536, description="Points of each shape in each step")
    num_samples: _prop(
        "num_samples",
        name="Prepared Samples",
        min=100,
        soft_max=1000000,
        description="Training points per shape, near its surface and in its domain",
    )
    lr_decoder: _prop("lr_decoder", precision=5, description="Learning rate of the decoder")
    lr_codes: _prop("lr_codes", precision=5, description="Learning rate of the codes")
    clamp: _prop("clamp", min=1e-4, max=1.0, precision=3, description="Distances are clamped to this, in normalised units")
    prior: _prop("prior", name="Code Prior", precision=6, description="Weight of the codes' zero-mean Gaussian prior")
    seed: _prop("seed")
    error_resolution: IntProperty(
        name="Error Resolution",
        default=64,
        min=0,
        max=512,
        description="Extraction grid at which each decoded shape is measured against its mesh (0: do not measure)",
    )

    def settings(self) -> dict[str, Any]:
        """The settings to use: the operator's, with the preset's in place of those not set explicitly."""
        return self.fill_unset({name: getattr(self, name) for name in _NETWORK + _TRAINING}, PRESETS.get(self.preset, {}))

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "preset")
        layout.prop(self, "method")
        if self.preset != CUSTOM:  # what the preset will run; switch to Custom to edit
            self.draw_preset(layout, PRESETS[self.preset], self.settings())
            layout.prop(self, "error_resolution")
            return
        for title, names in (("Network", _NETWORK[1:]), ("Training", _TRAINING)):
            box = layout.box()
            box.label(text=title)
            for name in names:
                box.prop(self, name)

    def _shapes(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        """The selected meshes, the active one first, then by name; or :class:`InputError`."""
        objects = list(context.selected_objects)
        if not objects:
            raise InputError("nothing selected: select two or more mesh objects, one per shape")
        for obj in sorted(objects, key=lambda o: o.name):
            if obj.type != "MESH":
                what = "a field" if obj.inr_field.is_field else _a(obj.type.lower().replace("_", " "))
                raise InputError(f"'{obj.name}' is {what}: {self.bl_label} needs mesh objects, one per shape")
        if len(objects) < 2:
            raise InputError(f"{self.bl_label} needs two or more meshes, one per shape: only '{objects[0].name}' is selected")
        active = context.active_object
        first = [active] if active in objects else []
        return first + sorted((o for o in objects if o not in first), key=lambda o: o.name)

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        objects = self._shapes(context)
        depsgraph = context.evaluated_depsgraph_get()
        vertices, faces = [], []
        for obj in objects:
            v, f = mesh_arrays(obj, depsgraph)
            if not len(v):
                raise InputError(f"'{obj.name}' is an empty mesh: every shape needs a surface")
            if not len(f):
                raise InputError(f"'{obj.name}' has no faces: every shape needs a surface (a closed mesh)")
            if not np.isfinite(v).all():
                raise InputError(f"'{obj.name}' has NaN or infinite coordinates")
            vertices.append(v)
            faces.append(f)
        arrays = {
            "vertices": np.concatenate(vertices).astype(np.float32),
            "faces": np.concatenate(faces).astype(np.int32),  # indices local to each shape
            "vertex_counts": np.array([len(v) for v in vertices], dtype=np.int64),
            "face_counts": np.array([len(f) for f in faces], dtype=np.int64),
        }
        values = self.settings()
        names = [o.name for o in objects]
        params = {k: v for k, v in values.items() if k != "method"}
        params.update(method=backend_name(values["method"]), names=names)
        self._kept = False
        self._plan: FitPlan = plan_fit(context, arrays, names, FIELD_SUFFIX, values["method"], self.preset, params)
        return self._plan.params, arrays

    job_name = "fit_shape_space"

    def discard(self) -> None:
        """A failure after the fit wrote its checkpoint (the result did not fit the scene): remove the file."""
        plan = getattr(self, "_plan", None)
        if plan is not None and not getattr(self, "_kept", False):
            try:
                os.remove(bpy.path.abspath(plan.stored_path))
            except OSError:
                pass

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        plan, result = self._plan, outcome.params
        names = list(result.get("names") or plan.sources)
        centers, scales = result.get("centers") or [], result.get("scales") or []
        errors = result.get("errors") or []
        if len(centers) != len(names) or len(scales) != len(names) or (errors and len(errors) != len(names)):
            raise InputError(f"the backend sent {len(centers)} centers, {len(scales)} scales and {len(errors)} errors for {len(names)} shapes")
        field = new_field(context, plan.field_name, outcome, plan.stored_path, plan.sources, plan.params, created)
        s = field.inr_field
        s.kind, s.method, s.preset = "SHAPE_SPACE", plan.method, plan.preset
        s.shape_space.latent_size = int(result.get("latent_size") or plan.params["latent_size"])
        for k, name in enumerate(names):
            shape = s.shape_space.shapes.add()
            shape.name, shape.index = name, k
            shape.source = bpy.data.objects.get(name)
            shape.center, shape.scale = tuple(float(c) for c in centers[k]), float(scales[k])
            if errors:
                shape.error, shape.has_error = float(errors[k]), True
        s.shape_space.active_shape, s.shape_space.interpolate.to = 0, 1
        self._kept = True
        make_active(context, field)
        worst = f"; worst error {max(errors):.4g} ('{names[int(np.argmax(errors))]}')" if errors else ""
        self.report({"INFO"}, f"Fitted {field.name}: {len(names)} shapes, loss {s.final_loss:.4g} on {s.device}; {s.stop_reason}{worst}")
