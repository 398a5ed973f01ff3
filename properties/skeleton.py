"""Extract Skeleton on a field (``inr_field.skeleton``): its settings (the panel's, and the operator's when it does
not set them) and what the last one found."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from ..inr_blender.settings import skeleton
from .defaults import find_param, prop_from_param

SETTINGS = {
    "delta": prop_from_param(
        find_param(skeleton.PARAMS, "delta"),
        name="δ",
        min=1e-4,
        soft_max=0.2,
        precision=3,
        description="Coverage tolerance, as a fraction of the shape's longest half-extent: larger gives fewer medial spheres, a coarser skeleton",
    ),
    "num_surface_samples": prop_from_param(
        find_param(skeleton.PARAMS, "num_surface_samples"),
        min=16,
        soft_max=20000,
        description="Points spread on the field's surface that the medial spheres must cover",
    ),
    "time_limit": prop_from_param(
        find_param(skeleton.PARAMS, "time_limit"),
        name="MILP Time Limit",
        min=0.1,
        soft_max=600.0,
        subtype="TIME_ABSOLUTE",
        unit="TIME_ABSOLUTE",
        description="Most time for the set-cover solver; past it the best cover found is used (not proven optimal)",
    ),
    "show_spheres": BoolProperty(
        name="Medial Spheres",
        default=True,
        description="Also add an object that shows each skeletal point's medial sphere (geometry nodes on the skeleton's points)",
    ),
}


class INR_PG_skeleton(bpy.types.PropertyGroup):
    __annotations__ = {
        **SETTINGS,
        "has_result": BoolProperty(name="Skeleton Extracted", default=False),
        "vertices": IntProperty(name="Skeletal Points"),
        "edges": IntProperty(name="Skeleton Edges", description="Every edge of the complex, triangles' sides included"),
        "triangles": IntProperty(name="Skeleton Triangles"),
        "candidates": IntProperty(name="Candidates", description="Skeletal points traced from the surface, before the cover selected some"),
        "optimal": BoolProperty(name="Optimal Cover", description="The set cover was solved to optimality (within the relative gap)"),
        "cover_message": StringProperty(name="Cover", description="What the set-cover solver reported"),
        "uncovered": IntProperty(name="Uncovered Samples", description="Surface samples no candidate covers (left out of the cover)"),
        "seconds": FloatProperty(name="Skeleton Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE"),
        "delta_used": FloatProperty(name="δ Used", precision=3, description="The δ of the last skeleton"),
    }
