"""Guaranteed queries by range analysis (Sharp & Jacobson 2022) on a field (``inr_field.ranges``): the range mode they
share and, per query (Cast Rays from Camera, Closest Points, Check Intersection), its settings and last result."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

# The backend's modes (inr_blender/ranges/affine.py).
RANGE_MODES = [
    ("affine_all", "Affine (All Symbols)", "Affine arithmetic keeping every error symbol: the tightest bounds, the most memory (the default)"),
    ("affine_append", "Affine (Append)", "Affine arithmetic with a few new symbols per layer, the other errors folded into intervals"),
    ("affine_truncate", "Affine (Truncate)", "Affine arithmetic keeping only the largest symbols"),
    ("affine_fixed", "Affine (Fixed)", "Affine arithmetic with one symbol per input axis"),
    ("interval", "Interval", "Interval arithmetic: the cheapest and the loosest bounds"),
]
RAYCAST_METHODS = [
    ("RANGES", "Guaranteed", "Frustum casting with range analysis: the first hit of every ray, on any field (distance field or not)"),
    (
        "SPHERE_TRACING",
        "Sphere Tracing",
        "Steps of |f| / Lipschitz along each ray: fast, but sound on distance fields only (may step over thin parts)",
    ),
]
INTERSECTION_VERDICTS = [
    ("NONE", "Not Checked", "No intersection check yet"),
    ("DISJOINT", "Disjoint", "Range analysis certifies that the surfaces do not meet inside the region"),
    ("INTERSECTING", "Intersecting", "The surfaces meet: a witness point lies on both"),
    ("UNKNOWN", "Unknown", "Neither certified apart nor a witness found at the deepest level: the remaining boxes show where to look"),
]

SETTINGS = {
    "mode": EnumProperty(
        name="Range Mode",
        items=RANGE_MODES,
        default="affine_all",
        description="The range arithmetic the guaranteed queries bound the field with",
    ),
}
RAYCAST_SETTINGS = {
    "method": EnumProperty(
        name="Ray Casting", items=RAYCAST_METHODS, default="RANGES", description="How Cast Rays from Camera finds each ray's first hit"
    ),
}


class INR_PG_raycast(bpy.types.PropertyGroup):
    """Cast Rays from Camera: its method and what the last one found."""

    __annotations__ = {
        **RAYCAST_SETTINGS,
        "has_result": BoolProperty(name="Rays Cast", default=False),
        "hits": IntProperty(name="Hits", description="Rays of the last Cast Rays from Camera that hit the surface"),
        "rays": IntProperty(name="Rays", description="Rays of the last Cast Rays from Camera (its pixels)"),
        "method_used": StringProperty(name="Method Used", description="The method of the last Cast Rays from Camera"),
        "seconds": FloatProperty(name="Ray Casting Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE"),
    }


class INR_PG_closest(bpy.types.PropertyGroup):
    """Closest Points: what the last one found."""

    has_result: BoolProperty(name="Closest Points Found", default=False)
    count: IntProperty(name="Queries", description="Query points of the last Closest Points")
    min: FloatProperty(
        name="Nearest", precision=4, subtype="DISTANCE", unit="LENGTH", description="The smallest distance to the surface of the last Closest Points"
    )
    max: FloatProperty(
        name="Farthest", precision=4, subtype="DISTANCE", unit="LENGTH", description="The largest distance to the surface of the last Closest Points"
    )
    seconds: FloatProperty(name="Closest Points Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")


class INR_PG_intersection(bpy.types.PropertyGroup):
    """Check Intersection: what the last one found."""

    verdict: EnumProperty(name="Verdict", items=INTERSECTION_VERDICTS, default="NONE", description="What the last Check Intersection found")
    other: StringProperty(name="Checked Against", description="The field or mesh of the last Check Intersection")
    boxes: IntProperty(name="Boxes", description="Boxes the last Check Intersection could not rule out")
    seconds: FloatProperty(name="Intersection Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")


class INR_PG_ranges(bpy.types.PropertyGroup):
    __annotations__ = {
        **SETTINGS,
        "raycast": PointerProperty(type=INR_PG_raycast),
        "closest": PointerProperty(type=INR_PG_closest),
        "intersection": PointerProperty(type=INR_PG_intersection),
    }


classes = (INR_PG_raycast, INR_PG_closest, INR_PG_intersection, INR_PG_ranges)
