"""Transfer Detail (``inr_field.transfer``): its settings, kept on the target (a mesh, point cloud or field; the
operator's when it does not set them), and, on a transferred field (method IDF_TRANSFER), what made it."""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from ..inr_blender.settings import transfer
from .defaults import find_param, prop_from_param

TRANSFER_MODES = [
    ("PROJECTED", "Projected", "Read the detail at the closest point of the source's base, so it lands on the target's surface"),
    ("ALIGNED", "Aligned", "Read the detail at the same local coordinates (the shapes must overlap in their fields' frames)"),
]

SETTINGS = {
    "strength": prop_from_param(
        find_param(transfer.PARAMS, "strength"),
        soft_min=0.0,
        soft_max=2.0,
        description="Scale of the transferred detail: 0 gives the target's base, 1 the source's detail as it is",
    ),
    "nu": prop_from_param(
        find_param(transfer.PARAMS, "nu"),
        soft_max=0.2,
        precision=3,
        description="Width of the band around the base where the detail acts, in the field's local units (0: the source's)",
    ),
    "mode": prop_from_param(find_param(transfer.PARAMS, "mode"), items=TRANSFER_MODES, description="Where the detail is read on the source"),
    "resolution": IntProperty(
        name="Resolution", default=128, min=8, max=8192, soft_max=1024, description="Extraction grid of the transferred surface"
    ),
}


class INR_PG_transfer(bpy.types.PropertyGroup):
    __annotations__ = {
        **SETTINGS,
        "source": StringProperty(name="Detail From", description="The displacement field whose detail was transferred"),
        "target": StringProperty(name="Base From", description="The field whose base received the detail"),
        "strength_used": FloatProperty(name="Strength Used"),
        "nu_used": FloatProperty(name="ν Used", precision=3),
        "mode_used": StringProperty(name="Mode Used"),
    }
