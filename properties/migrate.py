"""Open files written by version 0.1, whose fields kept every capability's state as flat, prefixed properties of
``inr_field`` (``skeleton_delta``): a ``load_post`` handler moves each stored value to its nested place
(``skeleton.delta``) and removes the old key. Enums were stored by their item's number; the items keep their order."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.app.handlers import persistent


def _group(prefix: str, group: str, names: str) -> dict[str, str]:
    return {f"{prefix}{name}": f"{group}.{name}" for name in names.split()}


# version 0.1 name -> path under inr_field
V0_1: dict[str, str] = {
    "skeleton_delta": "skeleton.delta",
    "skeleton_surface_samples": "skeleton.num_surface_samples",
    "skeleton_time_limit": "skeleton.time_limit",
    "skeleton_spheres": "skeleton.show_spheres",
    "has_skeleton": "skeleton.has_result",
    **_group("skeleton_", "skeleton", "vertices edges triangles candidates optimal cover_message uncovered seconds delta_used"),
    **_group("isopoints_", "isopoints", "count resample upsample"),
    "isopoints_radius": "isopoints.point_radius",
    "has_isopoints": "isopoints.has_result",
    **_group("isopoints_", "isopoints", "points discarded upsampled spacing_cv seconds radius_used"),
    **_group("transfer_", "transfer", "strength nu mode resolution"),
    "detail_source": "transfer.source",
    "detail_target": "transfer.target",
    "detail_strength": "transfer.strength_used",
    "detail_nu": "transfer.nu_used",
    "detail_mode": "transfer.mode_used",
    "range_mode": "ranges.mode",
    "raycast_method": "ranges.raycast.method",
    "has_raycast": "ranges.raycast.has_result",
    **_group("raycast_", "ranges.raycast", "hits rays"),
    "raycast_used": "ranges.raycast.method_used",
    "raycast_seconds": "ranges.raycast.seconds",
    "has_closest": "ranges.closest.has_result",
    **_group("closest_", "ranges.closest", "count min max seconds"),
    **_group("intersection_", "ranges.intersection", "verdict other boxes seconds"),
    **_group("", "displacement", "phase_base phase_detail"),
    **_group("", "shape_space", "shapes active_shape latent_size"),
    **_group("interpolate_", "shape_space.interpolate", "to count output resolution"),
    **_group("reconstruct_", "shape_space.reconstruct", "iterations resolution"),
    "completed_from": "shape_space.reconstruct.source_space",
    "completed_fit_error": "shape_space.reconstruct.fit_error",
    "nerf_model": "nerf.model",
    **_group(
        "", "nerf", "views_path num_views num_holdout image_width image_height psnr ssim train_psnr eval_history_json background density_threshold"
    ),
}


def _assign(owner: bpy.types.bpy_struct, name: str, value: Any) -> None:
    """Set ``owner.name`` from a stored ID-property ``value`` (an enum's number, a 0/1 boolean, an array, a group list)."""
    prop = owner.bl_rna.properties.get(name)
    if prop is None:  # not ours (any more): keep the raw value
        owner[name] = value
    elif prop.type == "COLLECTION":
        items = getattr(owner, name)
        for stored in value:
            item = items.add()
            for key in stored.keys():
                _assign(item, key, stored[key])
    elif prop.type == "ENUM" and isinstance(value, int):
        identifiers = [item.identifier for item in prop.enum_items if item.value == value]
        if identifiers:  # an unknown number keeps the default
            setattr(owner, name, identifiers[0])
    elif prop.type == "BOOLEAN" and not getattr(prop, "is_array", False):
        setattr(owner, name, bool(value))
    elif getattr(prop, "is_array", False):
        setattr(owner, name, tuple(value))
    else:
        setattr(owner, name, value)


def migrate_field(settings: bpy.types.PropertyGroup) -> int:
    """Move ``settings``' (an ``inr_field``) version 0.1 values to their nested places; return how many moved."""
    moved = 0
    for old in [key for key in settings.keys() if key in V0_1]:
        path, _, name = V0_1[old].rpartition(".")
        owner = settings
        for part in path.split("."):
            owner = getattr(owner, part)
        _assign(owner, name, settings[old])
        del settings[old]
        moved += 1
    return moved


def migrate_file() -> int:
    """Migrate every local object's field state in the open file; return how many values moved."""
    moved = 0
    for obj in bpy.data.objects:
        settings = getattr(obj, "inr_field", None)
        if obj.library is None and settings is not None:  # a linked object migrates when its own file is opened
            moved += migrate_field(settings)
    return moved


@persistent
def on_load_post(*_args) -> None:
    moved = migrate_file()
    if moved:
        print(f"Neural Fields: moved {moved} field settings of an older version to their new places")


def migrate_open_file() -> None:
    """A timer's one call after the add-on is enabled: the file open then (loaded before it) migrates too."""
    on_load_post()


handlers = ((bpy.app.handlers.load_post, on_load_post),)
