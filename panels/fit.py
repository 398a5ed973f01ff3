"""The Fit panel: Fit SDF on the selected meshes and point clouds (the other fits are its sub-panels)."""

from __future__ import annotations

import bpy

from .base import FIT_PANEL, INRPanel, running


def fit_inputs(context: bpy.types.Context) -> list[bpy.types.Object]:
    """The selected objects a fit reads: meshes and point clouds."""
    return [o for o in context.selected_objects if o.type in {"MESH", "POINTCLOUD"}]


class VIEW3D_PT_inr_fit(INRPanel, bpy.types.Panel):
    bl_label = "Fit"
    bl_idname = FIT_PANEL
    bl_order = 1

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        usable = fit_inputs(context)
        layout.label(text=f"{len(usable)} mesh/point cloud selected" if usable else "Select meshes or point clouds", icon="RESTRICT_SELECT_OFF")
        col = layout.column()
        col.enabled = bool(usable) and not running(context)
        col.label(text="Fit SDF")
        row = col.row(align=True)
        for preset, text, icon in (("FAST", "Fast", "MOD_REMESH"), ("DETAILED", "Detailed", "MOD_MULTIRES"), ("SMOOTH", "Smooth", "MOD_SMOOTH")):
            row.operator("inr.fit_sdf", text=text, icon=icon).preset = preset
        row = col.row(align=True)
        row.operator("inr.fit_sdf", text="Skeleton", icon="OUTLINER_DATA_ARMATURE").preset = "SKELETON"
        row.operator("inr.fit_sdf", text="Custom…", icon="PREFERENCES").preset = "CUSTOM"
