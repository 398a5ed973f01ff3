"""PropertyGroups: a field object's state (a core plus one group per capability), the running job, the backend
status; and the migration of older files' field state."""

from __future__ import annotations

import bpy
from bpy.props import PointerProperty

from . import displacement, field, isopoints, migrate, nerf, ranges, session as session, shape_space, skeleton, transfer
from .field import DISPLACEMENT_METHODS, FIELD_KINDS, FIELD_METHODS, LATENT_SHAPE_METHODS, SDF_METHODS, SHAPE_SPACE_METHODS, INR_PG_field
from .nerf import NERF_MODELS
from .ranges import INTERSECTION_VERDICTS, RANGE_MODES, RAYCAST_METHODS
from .session import INR_PG_backend, INR_PG_job, INR_PG_psnr_sample
from .shape_space import INTERPOLATE_OUTPUTS
from .transfer import TRANSFER_MODES

__all__ = [
    "DISPLACEMENT_METHODS",
    "FIELD_KINDS",
    "FIELD_METHODS",
    "INTERPOLATE_OUTPUTS",
    "INTERSECTION_VERDICTS",
    "LATENT_SHAPE_METHODS",
    "NERF_MODELS",
    "RANGE_MODES",
    "RAYCAST_METHODS",
    "SDF_METHODS",
    "SHAPE_SPACE_METHODS",
    "TRANSFER_MODES",
]

# nested groups before the groups that point to them
classes = (
    skeleton.INR_PG_skeleton,
    isopoints.INR_PG_isopoints,
    transfer.INR_PG_transfer,
    displacement.INR_PG_displacement,
    *ranges.classes,
    *shape_space.classes,
    nerf.INR_PG_nerf,
    field.INR_PG_loss_sample,
    INR_PG_field,
    INR_PG_psnr_sample,
    INR_PG_job,
    INR_PG_backend,
)

_POINTERS = (
    (bpy.types.Object, "inr_field", INR_PG_field),
    (bpy.types.WindowManager, "inr_job", INR_PG_job),
    (bpy.types.WindowManager, "inr_backend", INR_PG_backend),
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    for owner, attr, group in _POINTERS:
        setattr(owner, attr, PointerProperty(type=group))
    for handler_list, handler in migrate.handlers:
        if handler not in handler_list:
            handler_list.append(handler)
    if not bpy.app.background:
        # bpy.data is out of reach in register(): a timer migrates the file already open. Headless, a script enables
        # add-ons before it opens files (load_post migrates them), and a registered timer keeps the bpy module (4.5)
        # from exiting: its sound device's close thread is never joined.
        bpy.app.timers.register(migrate.migrate_open_file, first_interval=0.0)


def unregister() -> None:
    if bpy.app.timers.is_registered(migrate.migrate_open_file):
        bpy.app.timers.unregister(migrate.migrate_open_file)
    for handler_list, handler in migrate.handlers:
        if handler in handler_list:
            handler_list.remove(handler)
    for owner, attr, _group in reversed(_POINTERS):
        delattr(owner, attr)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
