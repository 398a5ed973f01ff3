"""Sample Iso-points on a field (``inr_field.isopoints``): its settings (the panel's, and the operator's when it does
not set them) and what the last one found."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty

from ..inr_blender.settings import isopoints
from .defaults import find_param, prop_from_param

SETTINGS = {
    "count": prop_from_param(
        find_param(isopoints.PARAMS, "count"),
        name="Points",
        max=2_000_000_000,
        soft_max=200000,
        description="Points to project onto the field's zero level set (those that do not converge are dropped)",
    ),
    "resample": prop_from_param(
        find_param(isopoints.PARAMS, "resample"), description="Spread the points evenly over the surface (tangential repulsion)"
    ),
    "upsample": prop_from_param(
        find_param(isopoints.PARAMS, "upsample"),
        soft_max=200000,
        description="Points to add by edge-aware upsampling, where the surface bends most (0: none)",
    ),
    "point_radius": FloatProperty(
        name="Point Radius",
        default=0.0,
        min=0.0,
        soft_max=0.1,
        precision=4,
        subtype="DISTANCE",
        unit="LENGTH",
        description="Radius the points are shown and rendered with, in world units; 0: half the median spacing between neighbouring points",
    ),
}


class INR_PG_isopoints(bpy.types.PropertyGroup):
    __annotations__ = {
        **SETTINGS,
        "has_result": BoolProperty(name="Iso-points Sampled", default=False),
        "points": IntProperty(name="Iso-points", description="Points on the surface, upsampled ones included"),
        "discarded": IntProperty(name="Discarded", description="Points that did not converge to the surface and were dropped"),
        "upsampled": IntProperty(name="Upsampled", description="Points added by edge-aware upsampling"),
        "spacing_cv": FloatProperty(
            name="Spacing CV", precision=3, description="Coefficient of variation of the nearest-neighbour spacing (0: perfectly even)"
        ),
        "seconds": FloatProperty(name="Iso-points Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE"),
        "radius_used": FloatProperty(
            name="Radius Used",
            precision=4,
            subtype="DISTANCE",
            unit="LENGTH",
            description="The display radius of the last iso-points, in world units",
        ),
    }
