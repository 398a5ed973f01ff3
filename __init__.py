"""Neural Fields: fit neural implicit fields to a Blender scene and bring their products back.

register()/unregister() only: classes, properties, menus and handlers.
"""

from __future__ import annotations

import atexit

import bpy

from . import operators, panels, preferences, properties
from .inr_blender.wire import client
from .operators.common import checkpoints, job
from .panels import draw_object_menu, loss_plot
from .panels.menu import draw_edit_mesh_menu

_classes = (preferences.INR_AddonPreferences,) + operators.classes + panels.classes


def _release() -> None:
    """Stop jobs, the worker and our handlers (a bpy-module process that keeps a handler hangs at exit)."""
    job.cancel_running_jobs()
    client.shutdown_backend()
    loss_plot.release()
    for handler_list, handler in checkpoints.handlers:
        if handler in handler_list:
            handler_list.remove(handler)


def register() -> None:
    properties.register()
    for cls in _classes:
        bpy.utils.register_class(cls)
    bpy.types.VIEW3D_MT_object.append(draw_object_menu)
    bpy.types.VIEW3D_MT_edit_mesh_vertices.append(draw_edit_mesh_menu)
    for handler_list, handler in checkpoints.handlers:
        if handler not in handler_list:
            handler_list.append(handler)
    atexit.register(_release)


def unregister() -> None:
    atexit.unregister(_release)
    _release()
    bpy.types.VIEW3D_MT_edit_mesh_vertices.remove(draw_edit_mesh_menu)
    bpy.types.VIEW3D_MT_object.remove(draw_object_menu)
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
    properties.unregister()
