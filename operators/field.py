"""What operators on an existing field share: finding it, naming its checkpoint, finding it again."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import bpy

from ..preferences import backend_config
from .bridge import InputError
from .job import JobOperator


def active_field(context: bpy.types.Context) -> bpy.types.Object:
    """The active object if it is a fitted field, else :class:`InputError`."""
    obj = context.active_object
    if obj is None or not obj.inr_field.is_field:
        raise InputError("the active object is not a neural field: fit one with Fit SDF, or click a field")
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
    """A job on the active field (no retraining): remembers the field across the job."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def field_job(self, context: bpy.types.Context) -> tuple[bpy.types.Object, dict[str, Any], dict[str, np.ndarray]]:
        """The active field and the params/arrays that name its checkpoint."""
        field = active_field(context)
        self._field_name = field.name
        params, arrays = checkpoint_of(context, field)
        return field, params, arrays

    def the_field(self) -> bpy.types.Object:
        """The field again once the result is in (it may have been deleted meanwhile)."""
        field = bpy.data.objects.get(self._field_name)
        if field is None:
            raise InputError(f"the field '{self._field_name}' was deleted while the job ran")
        return field
