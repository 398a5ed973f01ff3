"""A fitted displacement field's record (``inr_field.displacement``): the phases it was fitted with."""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty


class INR_PG_displacement(bpy.types.PropertyGroup):
    """Fit Displacement Field's phases, as fractions of the run (the base alone, then the detail alone, then both)."""

    phase_base: FloatProperty(
        name="Base Phase", min=0.0, max=1.0, subtype="FACTOR", description="The base trained alone before this fraction of the run"
    )
    phase_detail: FloatProperty(
        name="Detail Phase",
        min=0.0,
        max=1.0,
        subtype="FACTOR",
        description="The detail trained alone until this fraction of the run, then both",
    )
