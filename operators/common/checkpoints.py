"""Keep field checkpoints beside the .blend: on save, move them to ``//<blend>_fields/``.

A field fitted in an unsaved file writes its checkpoint to the user folder. When
the file is saved, the checkpoint is copied next to the .blend and the field's
path becomes relative (``//...``), so the folder can be moved or shared.
"""

from __future__ import annotations

import os
import shutil

import bpy
from bpy.app.handlers import persistent

from ...inr_blender.outputs import atomic_write


def relocate_checkpoints(blend_path: str) -> int:
    """Copy every field checkpoint that is not beside ``blend_path`` there; return how many moved."""
    if not blend_path:
        return 0
    blend_dir = os.path.dirname(os.path.abspath(blend_path))
    folder = os.path.splitext(os.path.basename(blend_path))[0] + "_fields"
    moved = 0
    for obj in bpy.data.objects:
        settings = getattr(obj, "inr_field", None)
        if settings is None or not settings.is_field or not settings.checkpoint:
            continue
        current = os.path.abspath(bpy.path.abspath(settings.checkpoint))
        target = os.path.join(blend_dir, folder, os.path.basename(current))
        if os.path.normcase(current) != os.path.normcase(target):
            if not os.path.isfile(current):
                continue  # a missing checkpoint stays named as it was; Extract reports it
            with open(current, "rb") as src, atomic_write(target) as dst:  # never a half-copied checkpoint
                shutil.copyfileobj(src, dst)
            shutil.copystat(current, target)
            moved += 1
        settings.checkpoint = "//" + os.path.relpath(target, blend_dir).replace(os.sep, "/")
    return moved


@persistent
def on_save_pre(filepath: str = "", *_args) -> None:
    relocate_checkpoints(filepath if isinstance(filepath, str) and filepath else bpy.data.filepath)


handlers = ((bpy.app.handlers.save_pre, on_save_pre),)
