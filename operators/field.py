"""What operators on fields share: naming and storing a new field's checkpoint and training record,
finding an existing field, naming its checkpoint, finding it again after a job."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import numpy as np

import bpy

from ..preferences import backend_config, user_dir
from .bridge import InputError, create_field_object
from .client import JobOutcome
from .job import JobOperator

MAX_HISTORY = 200  # loss samples kept on a field (the curve in the panel)
KIND_NAMES = {"SDF": "a signed distance field", "NERF": "a radiance field"}


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
    context: bpy.types.Context, name: str, outcome: JobOutcome, stored_path: str, sources: list[str],
    params: dict[str, Any], created: list,
) -> bpy.types.Object:
    """The field object a fit creates (appended to ``created``), with what every fit stores on it:
    the checkpoint (written here when a remote worker sent its bytes back), sources, settings,
    loss history, steps, time, device and stop reason."""
    result = outcome.params
    if "checkpoint" in outcome.arrays:  # a remote worker sends the weights back
        path = bpy.path.abspath(stored_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        outcome.arrays["checkpoint"].tofile(path)
    field = create_field_object(context, name, result["center"], result["scale"])
    created.append(field)
    settings = field.inr_field
    settings.is_field = True
    settings.checkpoint = stored_path
    settings.stop_reason = str(result.get("stop_reason") or "")
    settings.sources = ", ".join(sources)
    settings.sources_json = json.dumps(sources)
    settings.settings_json = json.dumps({k: v for k, v in params.items() if k != "checkpoint_path"})
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


def active_field(context: bpy.types.Context, kind: str = "", operation: str = "") -> bpy.types.Object:
    """The active object if it is a fitted field (of ``kind``, when given), else :class:`InputError`."""
    obj = context.active_object
    if obj is None or not obj.inr_field.is_field:
        raise InputError("the active object is not a neural field: fit one with Fit SDF or Fit NeRF, or click a field")
    if kind and obj.inr_field.kind != kind:
        raise InputError(f"'{obj.name}' is {KIND_NAMES.get(obj.inr_field.kind, obj.inr_field.kind)}: {operation or 'this'} needs {KIND_NAMES[kind]}")
    return obj


def checkpoint_of(context: bpy.types.Context, field: bpy.types.Object) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Job params/arrays that name the field's weights: a path, or the bytes for a remote worker."""
    path = bpy.path.abspath(field.inr_field.checkpoint)
    if not field.inr_field.checkpoint or not os.path.isfile(path):
        raise InputError(f"checkpoint of '{field.name}' not found: {path or '(none)'}")
    if backend_config(context).mode == "REMOTE":
        return {}, {"checkpoint": np.fromfile(path, dtype=np.uint8)}
    return {"checkpoint_path": path}, {}


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

    def field_job(self, context: bpy.types.Context, kind: str = "") -> tuple[bpy.types.Object, dict[str, Any], dict[str, np.ndarray]]:
        """The active field (of ``kind``, when given) and the params/arrays that name its checkpoint."""
        field = active_field(context, kind, self.bl_label)
        self._field_name = field.name
        for name, setting in self.field_settings.items():
            if not self.properties.is_property_set(name):
                setattr(self, name, getattr(field.inr_field, setting))  # shown in, and kept by, the redo panel
        params, arrays = checkpoint_of(context, field)
        return field, params, arrays

    def the_field(self) -> bpy.types.Object:
        """The field again once the result is in (it may have been deleted meanwhile)."""
        field = bpy.data.objects.get(self._field_name)
        if field is None:
            raise InputError(f"the field '{self._field_name}' was deleted while the job ran")
        return field
