"""What operators on fields share: naming and storing a new field's checkpoint and training record,
planning a fit and making its field object, finding an existing field (the active one, or the one
fitted to a mesh), naming its checkpoint, finding it again after a job."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field as dataclass_field
from typing import Any

import numpy as np

import bpy

from ...inr_blender.wire.client import Checkpoint, CheckpointTransport, JobOutcome
from ...preferences import backend_config, user_dir
from ...properties import ranges
from ...properties.common import for_operator
from .bridge import InputError, create_field_object
from .job import JobOperator

MAX_HISTORY = 200  # loss samples kept on a field (the curve in the panel)
KIND_NAMES = {"SDF": "a signed distance field", "NERF": "a radiance field", "SHAPE_SPACE": "a shape space"}


def checkpoints(context: bpy.types.Context) -> CheckpointTransport:
    """How checkpoints cross to the configured worker: as paths (local) or as bytes (remote)."""
    return backend_config(context).checkpoints


def new_checkpoint_path(name: str) -> tuple[str, str]:
    """(path for the backend, path to store): next to the .blend when saved, else in the user folder."""
    filename = f"{bpy.path.clean_name(name)}_{uuid.uuid4().hex[:8]}.pt"
    if bpy.data.filepath:
        stem = os.path.splitext(os.path.basename(bpy.data.filepath))[0]
        stored = f"//{stem}_fields/{filename}"
        return bpy.path.abspath(stored), stored
    path = os.path.join(user_dir("fields"), filename)
    return path, path


def new_field(
    context: bpy.types.Context,
    name: str,
    outcome: JobOutcome,
    stored_path: str,
    sources: list[str],
    params: dict[str, Any],
    created: list,
) -> bpy.types.Object:
    """The field object a fit creates (appended to ``created``), with what every fit stores on it:
    the checkpoint (written here when a remote worker sent its bytes back), sources, settings,
    loss history, steps, time, device and stop reason."""
    result = outcome.params
    checkpoints(context).store(outcome, bpy.path.abspath(stored_path))  # what a remote worker sent back
    field = create_field_object(context, name, result["center"], result["scale"])
    created.append(field)
    settings = field.inr_field
    settings.is_field = True
    settings.checkpoint = stored_path
    settings.stop_reason = str(result.get("stop_reason") or "")
    settings.sources = ", ".join(sources)
    settings.sources_json = json.dumps(sources)
    chosen = {k: v for k, v in params.items() if k != "checkpoint_path"}
    settings.settings_json = json.dumps({**(result.get("device_settings") or {}), **chosen})  # + the worker's for its device
    history = result.get("loss_history") or []
    stride = max(1, int(np.ceil(len(history) / MAX_HISTORY)))
    for step, loss in history[::stride]:
        item = settings.loss_history.add()
        item.step, item.loss = int(step), float(loss)
    final = result.get("final_loss")
    settings.final_loss = float(final if final is not None else (history[-1][1] if history else 0.0))
    settings.iterations = int(result.get("iterations_run") or 0)
    settings.train_seconds = float(result.get("seconds") or 0.0)
    settings.device = str(result.get("device") or "")
    return field


@dataclass
class FitPlan:
    """A fit to run: its job params and arrays, and what the field object it makes will hold."""

    field_name: str
    stored_path: str  # the checkpoint as the field stores it (maybe //relative)
    sources: list[str]
    method: str  # the field's method (an INR_PG_field.method item)
    preset: str
    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = dataclass_field(default_factory=dict)

    @property
    def path(self) -> str:
        """The absolute path the local worker writes the checkpoint to."""
        return bpy.path.abspath(self.stored_path)


def plan_fit(
    context: bpy.types.Context,
    arrays: dict[str, np.ndarray],
    sources: list[str],
    suffix: str,
    method: str,
    preset: str,
    params: dict[str, Any],
) -> FitPlan:
    """A fit of ``arrays`` (the geometry of ``sources``) by the ``fit_sdf`` job with ``params``: the new field
    is named ``<first source>_<suffix>``; a remote worker sends the checkpoint back instead of writing it."""
    name = f"{sources[0]}_{suffix}"
    path, stored = new_checkpoint_path(name)
    params = dict(params, **checkpoints(context).output(path))
    return FitPlan(name, stored, list(sources), method, preset, params, arrays)


def fitted_field(context: bpy.types.Context, plan: FitPlan, outcome: JobOutcome, created: list) -> bpy.types.Object:
    """The signed distance field object a finished fit of ``plan`` makes (appended to ``created``)."""
    result = outcome.params
    field = new_field(context, plan.field_name, outcome, plan.stored_path, plan.sources, plan.params, created)
    settings = field.inr_field
    settings.kind = "SDF"
    settings.method = plan.method
    settings.preset = plan.preset
    settings.num_points = int(result.get("num_points") or 0)
    settings.has_normals = bool(result.get("has_normals"))
    return field


def require_normals(arrays: dict[str, np.ndarray], method_name: str, alternative: str) -> None:
    """Refuse a point cloud without normals for a method that needs them (``alternative``: what to do instead)."""
    if "points" in arrays and "normals" not in arrays:
        raise InputError(f"{method_name} needs oriented normals and the selected point cloud has none: {alternative}")


def field_fitted_to(obj: bpy.types.Object, accept: Callable[[bpy.types.Object], bool] = lambda field: True) -> bpy.types.Object | None:
    """A signed distance field fitted to ``obj`` alone (its recorded sources are exactly ``obj``) whose checkpoint
    is on disk and that ``accept`` takes; the last such by name (a later fit of the same object: ``.001``, ...)."""
    found = []
    for candidate in bpy.data.objects:
        s = candidate.inr_field
        if not (s.is_field and s.kind == "SDF" and s.checkpoint and accept(candidate)):
            continue
        try:
            sources = json.loads(s.sources_json or "[]")
        except ValueError:
            continue
        if sources == [obj.name] and os.path.isfile(bpy.path.abspath(s.checkpoint)):
            found.append(candidate)
    return max(found, key=lambda f: f.name) if found else None


def defaults_from(op: bpy.types.Operator, settings: bpy.types.PropertyGroup, names: dict[str, str]) -> None:
    """Give each of ``op``'s properties in ``names`` (operator property -> setting's dotted path, ``"skeleton.delta"``)
    that the caller did not set the value stored in ``settings`` (the panel's), so the dialog and redo panel show, and
    keep, what runs."""
    for name, setting in names.items():
        if not op.properties.is_property_set(name):
            setattr(op, name, settings.path_resolve(setting))


def described(obj: bpy.types.Object) -> str:
    """'a field', 'an empty', 'a camera', ...: what ``obj`` is, for a refusal."""
    if obj.inr_field.is_field:
        return "a radiance field" if obj.inr_field.kind == "NERF" else "a field"
    kind = obj.type.lower().replace("_", " ")
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def active_field(context: bpy.types.Context, kind: str = "", operation: str = "") -> bpy.types.Object:
    """The active object if it is a fitted field (of ``kind``, when given), else :class:`InputError`."""
    obj = context.active_object
    if obj is None or not obj.inr_field.is_field:
        raise InputError("the active object is not a neural field: fit one with Fit SDF or Fit NeRF, or click a field")
    if kind and obj.inr_field.kind != kind:
        raise InputError(f"'{obj.name}' is {KIND_NAMES.get(obj.inr_field.kind, obj.inr_field.kind)}: {operation or 'this'} needs {KIND_NAMES[kind]}")
    return obj


def field_checkpoint(context: bpy.types.Context, field: bpy.types.Object) -> Checkpoint:
    """The field's weights as a job takes them (a path, or the bytes for a remote worker); InputError when missing."""
    path = bpy.path.abspath(field.inr_field.checkpoint)
    if not field.inr_field.checkpoint or not os.path.isfile(path):
        raise InputError(f"checkpoint of '{field.name}' not found: {path or '(none)'}")
    return checkpoints(context).read(path)


def checkpoint_of(context: bpy.types.Context, field: bpy.types.Object, name: str = "checkpoint") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Job params/arrays that name the field's weights: the param ``<name>_path``, or the array ``name``."""
    return field_checkpoint(context, field).job_input(name)


class FieldJobOperator(JobOperator):
    """A job on the active field (no retraining): remembers the field across the job.

    ``field_settings`` maps operator properties (SKIP_SAVE) to the field's own settings (the panel's),
    which stand in for those the caller does not set; the dialog and redo panel show them.
    """

    field_settings: dict[str, str] = {}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        names = self.field_settings or [p.identifier for p in self.properties.bl_rna.properties if p.identifier != "rna_type"]
        for name in names:
            layout.prop(self, name)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def field_job(
        self,
        context: bpy.types.Context,
        kind: str = "",
        field: bpy.types.Object | None = None,
    ) -> tuple[bpy.types.Object, dict[str, Any], dict[str, np.ndarray]]:
        """The active field (of ``kind``, when given), or ``field``, and the params/arrays that name its checkpoint."""
        field = field or active_field(context, kind, self.bl_label)
        self._field_name = field.name
        defaults_from(self, field.inr_field, self.field_settings)
        params, arrays = checkpoint_of(context, field)
        return field, params, arrays

    def the_field(self) -> bpy.types.Object:
        """The field again once the result is in (it may have been deleted meanwhile)."""
        field = bpy.data.objects.get(self._field_name)
        if field is None:
            raise InputError(f"the field '{self._field_name}' was deleted while the job ran")
        return field


def other_checkpoint(context: bpy.types.Context, field: bpy.types.Object) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """:func:`checkpoint_of` for a job's second field: ``other_checkpoint_path``, or the array ``other_checkpoint``."""
    return checkpoint_of(context, field, "other_checkpoint")


class RangeQueryOperator(FieldJobOperator):
    """A guaranteed query on a field by range analysis (Sharp & Jacobson 2022), in the field's local frame: queries
    go in through the field object's transform and results come out through it, so a query follows the field
    object when it is moved, turned or scaled (uniformly; non-uniformly too where ``uniform_scale`` is False). A
    radiance field is queried at its density threshold. The range mode comes from the field's settings (the panel's)
    when the caller does not set it."""

    field_settings = {"range_mode": "ranges.mode"}
    uniform_scale = True  # refuse a field scaled differently along its axes (queries that measure distances)

    range_mode: for_operator(ranges.SETTINGS["mode"])

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        for prop in self.properties.bl_rna.properties:
            if prop.identifier != "rna_type":
                layout.prop(self, prop.identifier)

    def query_job(
        self, context: bpy.types.Context, field: bpy.types.Object | None = None
    ) -> tuple[bpy.types.Object, dict[str, Any], dict[str, np.ndarray]]:
        """:meth:`field_job` plus what every range query sends: world space, the range mode, a radiance field's threshold."""
        field, params, arrays = self.field_job(context, field=field)
        if field.inr_field.kind == "SHAPE_SPACE":  # many shapes, no one surface to bound
            raise InputError(
                f"'{field.name}' is a shape space: {self.bl_label} needs one field (extract a shape, or complete a scan with Reconstruct from Scan)"
            )
        params.update(range_mode=self.range_mode, space="local")
        if field.inr_field.kind == "NERF":
            params["threshold"] = float(field.inr_field.nerf.density_threshold)
        self._frame, self._frame_scale = field_frame(field, self.uniform_scale)
        return field, params, arrays

    def to_field(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) in the field's local frame."""
        m = self._frame
        return (np.asarray(points, dtype=np.float64) - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T

    def from_field(self, points: np.ndarray) -> np.ndarray:
        """Local points (N, 3) of the field in world space."""
        m = self._frame
        return np.asarray(points, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


def field_frame(field: bpy.types.Object, uniform: bool = True) -> tuple[np.ndarray, float]:
    """The field object's local-to-world matrix (4x4) and its scale (the mean over its axes), or InputError for a
    flattened one or, with ``uniform``, a non-uniform scale (distances and range boxes need the same scale on every axis)."""
    m = np.array(field.matrix_world, dtype=np.float64)
    norms = np.linalg.norm(m[:3, :3], axis=0)
    if not uniform:
        if not (norms > 1e-12).all() or abs(np.linalg.det(m[:3, :3])) <= 1e-9 * norms.prod():
            raise InputError(f"'{field.name}' is flattened (scale {', '.join(f'{n:.4g}' for n in norms)}): give it a nonzero scale on every axis")
        return m, float(norms.mean())
    if not (norms > 1e-12).all() or np.ptp(norms) > 1e-4 * norms.max():
        raise InputError(
            f"'{field.name}' is scaled differently along its axes ({', '.join(f'{n:.4g}' for n in norms)}): "
            "range queries need a uniform scale (apply the scale to a mesh, not to the field)"
        )
    return m, float(norms.mean())


def evaluations(result: dict[str, Any]) -> str:
    """ "B box and P point evaluations in S s": what a range query's report says it cost."""
    return (
        f"{int(result.get('box_evaluations') or 0):,} box and {int(result.get('point_evaluations') or 0):,} point evaluations "
        f"in {float(result.get('seconds') or 0.0):.2f} s"
    )
