"""Displacement fields (Wang Yifan 2022): Fit Displacement Field and Transfer Detail (a sub-panel of Fit; Transfer
Detail's settings live on the target), and a displacement field's phases and two extractions (of Active Field)."""

from __future__ import annotations

import bpy

from .base import FIT_PANEL, FieldSubPanel, INRPanel, active_field, enum_name, operator_row, running, settings_column
from .fit import fit_inputs


def draw_transferred_summary(col: bpy.types.UILayout, s: bpy.types.PropertyGroup) -> None:
    """Active Field's lines for a field made by Transfer Detail (method IDF_TRANSFER)."""
    t = s.transfer
    col.label(text=f"{s.kind} · {enum_name(s, 'method')}")
    col.label(text=f"Detail of '{t.source}' on the base of '{t.target}'")
    col.label(text=f"Strength {t.strength_used:g} · ν {t.nu_used:g} · {t.mode_used.lower()}")


class VIEW3D_PT_inr_fit_displacement(INRPanel, bpy.types.Panel):
    bl_label = "Displacement Field"
    bl_idname = "VIEW3D_PT_inr_fit_displacement"
    bl_order = 0
    bl_parent_id = FIT_PANEL
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        col = layout.column()
        col.enabled = not running(context)
        row = col.row(align=True)
        row.enabled = bool(fit_inputs(context))
        for preset, text, icon in (("FAST", "Fast", "MOD_DISPLACE"), ("DETAILED", "Detailed", "MOD_MULTIRES"), ("CUSTOM", "Custom…", "PREFERENCES")):
            row.operator("inr.fit_displacement", text=text, icon=icon).preset = preset
        target = context.active_object
        box = layout.box()
        box.label(text="Transfer Detail", icon="MOD_DATA_TRANSFER")
        if target is None:
            box.label(text="Select the detail source, then the target (active)", icon="INFO")
            return
        settings_column(box, target.inr_field.transfer, (("strength", None), ("nu", "ν (0: Source's)"), ("mode", None), ("resolution", None)))
        operator_row(box, context, "inr.transfer_detail", "MOD_DATA_TRANSFER")
        others = [o for o in context.selected_objects if o != target]
        if len(others) == 1:
            box.label(text=f"Detail of '{others[0].name}' onto '{target.name}'", icon="FORWARD")
        else:
            box.label(text="Select the detail source, then the target (active)", icon="INFO")


class VIEW3D_PT_inr_field_displacement(FieldSubPanel, bpy.types.Panel):
    """A displacement field's phases (of a fitted one) and its two extractions: the detailed surface and the base."""

    bl_label = "Displacement"
    bl_idname = "VIEW3D_PT_inr_field_displacement"
    bl_order = 0
    kinds = ("SDF",)
    methods = ("IDF", "IDF_TRANSFER")

    def draw(self, context: bpy.types.Context) -> None:
        s = active_field(context).inr_field
        layout = self.layout
        if s.method == "IDF":
            d = s.displacement
            if d.phase_base >= 1.0:
                layout.label(text="Base only: a smooth target for Transfer Detail", icon="INFO")
            else:
                layout.label(text=f"Phases: base to {d.phase_base:.0%}, detail to {d.phase_detail:.0%}, then both")
        row = layout.row(align=True)
        row.enabled = not running(context)
        row.operator("inr.extract_mesh", text="Extract Detailed", icon="MESH_DATA").part = "DETAILED"
        row.operator("inr.extract_mesh", text="Extract Base", icon="MOD_SMOOTH").part = "BASE"
