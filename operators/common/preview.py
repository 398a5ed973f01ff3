"""A fit's live preview in the scene: the object "<field> preview" (a signed distance field's coarse surface, placed
where the field will be) or the image "<field> preview" (a radiance field's view from the scene camera), made or
updated on each preview the job sends and removed when the job ends, whatever the outcome.

Previews are looked up by name each time, never held: an undo while the job runs may remove them. The object is
marked ``inr_preview`` and cannot be selected; it exists only while its job runs, so no undo step keeps it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from mathutils import Matrix, Vector

from .bridge import create_mesh_object

SUFFIX = " preview"
MARK = "inr_preview"  # the custom property that marks a preview object or image
HISTORY = 200  # PSNR samples kept while a radiance field trains (the panel's curve)


def preview_name(field_name: str) -> str:
    """The preview object's (or image's) name for the field ``field_name``."""
    return field_name + SUFFIX


def show(context: bpy.types.Context, name: str, event: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Make or update the preview ``name`` from a checked preview event (``kind``, ``info``) and its arrays."""
    if event["kind"] == "mesh":
        _show_mesh(context, name, event["info"], arrays)
    elif event["kind"] == "image":
        _show_image(context, name, arrays["rgb"])


def _show_mesh(context: bpy.types.Context, name: str, info: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    obj = bpy.data.objects.get(name)
    if obj is None or not obj.get(MARK):
        obj = create_mesh_object(context, name, arrays["vertices"], arrays["faces"])
        obj[MARK] = True
        obj.hide_select = True
        obj.display_type = "SOLID"
        obj.show_wire = True
    else:
        old = obj.data
        fresh = create_mesh_object(context, name, arrays["vertices"], arrays["faces"])  # its mesh, then the object goes
        obj.data, mesh = fresh.data, fresh.data
        bpy.data.objects.remove(fresh, do_unlink=True)
        mesh.name = name
        if old.users == 0:
            bpy.data.meshes.remove(old)
    # where the field object will be (bridge.create_field_object: at the centre, scaled), in world space at once
    obj.matrix_world = Matrix.LocRotScale(Vector(info["center"]), None, Vector((info["scale"],) * 3))
    obj["inr_preview_step"] = int(info["step"])


def _show_image(context: bpy.types.Context, name: str, rgb: np.ndarray) -> None:
    height, width = rgb.shape[:2]
    image = bpy.data.images.get(name)
    if image is None or not image.get(MARK) or tuple(image.size) != (width, height):
        if image is not None and image.get(MARK):
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, width, height, alpha=False)
        image[MARK] = True
    pixels = np.ones((height, width, 4), dtype=np.float32)
    pixels[..., :3] = rgb[::-1].astype(np.float32) / 255.0  # Blender's rows run bottom to top
    image.pixels.foreach_set(pixels.ravel())
    image.update()
    context.window_manager.inr_job.preview_image = name


def record_psnr(context: bpy.types.Context, step: int, psnr: float) -> None:
    """Add a training PSNR to the running job's curve (kept to :data:`HISTORY` samples by thinning)."""
    history = context.window_manager.inr_job.psnr_history
    if len(history) and history[-1].step >= step:
        return
    if len(history) >= HISTORY:
        for k in range(len(history) - 1, 0, -2):  # every other sample goes: the curve keeps its whole span
            history.remove(k)
    item = history.add()
    item.step, item.value = step, psnr


def remove(name: str) -> None:
    """Remove the preview object and image ``name`` (their job ended)."""
    obj = bpy.data.objects.get(name)
    if obj is not None and obj.get(MARK):
        mesh = obj.data
        bpy.data.objects.remove(obj, do_unlink=True)
        if mesh is not None and mesh.users == 0:
            bpy.data.meshes.remove(mesh)
    image = bpy.data.images.get(name)
    if image is not None and image.get(MARK):
        bpy.data.images.remove(image)
    state = bpy.context.window_manager.inr_job
    if state.preview_image == name:
        state.preview_image = ""
