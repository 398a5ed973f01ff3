"""Camera rigs (Create Camera Rig's collections of cameras) as the NeRF operators find them.

A rig is a collection of cameras marked with custom properties: ``inr_rig`` (True), ``inr_aabb``
(the selection's padded world box: x0, y0, z0, x1, y1, z1), ``inr_center`` and ``inr_radius``;
Render Training Views adds ``inr_views`` (its folder, which holds :data:`TRANSFORMS`).
"""

from __future__ import annotations

import bpy

from .bridge import InputError

TRANSFORMS = "transforms.json"  # the views' cameras, in a rig's views folder (the NeRF-synthetic format)


def is_rig(collection: bpy.types.Collection) -> bool:
    return bool(collection.get("inr_rig"))


def scene_rigs(scene: bpy.types.Scene) -> list[bpy.types.Collection]:
    """Every rig collection in the scene, by name."""
    return sorted((c for c in scene.collection.children_recursive if is_rig(c)), key=lambda c: c.name)


def rig_cameras(rig: bpy.types.Collection) -> list[bpy.types.Object]:
    """The rig's cameras, by name (the order of the views)."""
    return sorted((o for o in rig.objects if o.type == "CAMERA"), key=lambda o: o.name)


def find_rig(context: bpy.types.Context) -> bpy.types.Collection:
    """The rig of the active (or a selected) camera, else the scene's only rig, else :class:`InputError`."""
    rigs = scene_rigs(context.scene)
    candidates = [context.active_object] + list(context.selected_objects)
    for obj in candidates:
        if obj is not None and obj.type == "CAMERA":
            for rig in rigs:
                if obj.name in rig.objects:
                    return rig
    if not rigs:
        raise InputError("there is no camera rig in the scene: select objects and run Create Camera Rig")
    if len(rigs) > 1:
        raise InputError(f"{len(rigs)} camera rigs are in the scene: select a camera of the one to use")
    return rigs[0]


def rig_aabb(rig: bpy.types.Collection) -> list[list[float]] | None:
    box = rig.get("inr_aabb")
    if box is None or len(box) != 6:
        return None
    box = [float(v) for v in box]
    return [box[:3], box[3:]]
