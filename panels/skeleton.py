"""Extract Skeleton (a sub-panel of Active Field, signed distance fields): its settings, stored on the field, its
button and the last result."""

from __future__ import annotations

import bpy

from .base import FieldSubPanel, active_field, operator_row, result_grid, settings_column


class VIEW3D_PT_inr_field_skeleton(FieldSubPanel, bpy.types.Panel):
    bl_label = "Skeleton"
    bl_idname = "VIEW3D_PT_inr_field_skeleton"
    bl_order = 4
    bl_options = {"DEFAULT_CLOSED"}
    kinds = ("SDF",)

    def draw_header(self, context: bpy.types.Context) -> None:
        self.layout.label(icon="OUTLINER_DATA_ARMATURE")

    def draw(self, context: bpy.types.Context) -> None:
        field = active_field(context).inr_field
        s = field.skeleton
        layout = self.layout
        settings_column(layout, s, (("delta", None), ("num_surface_samples", None), ("time_limit", None), ("show_spheres", None)))
        operator_row(layout, context, "inr.extract_skeleton", "OUTLINER_DATA_ARMATURE")
        if field.method != "NEURAL_SKELETON":
            layout.label(text="Fit with the Skeleton preset for a cleaner skeleton", icon="INFO")
        if not s.has_result:
            return
        result_grid(
            layout,
            [
                ("Points", f"{s.vertices} of {s.candidates}"),
                ("Edges", str(s.edges)),
                ("Triangles", str(s.triangles)),
                ("δ", f"{s.delta_used:g}"),
                ("Time", f"{s.seconds:.1f} s"),
            ],
        )
        if s.optimal:
            layout.label(text="Optimal cover", icon="CHECKMARK")
        else:
            layout.label(text=f"Cover: {s.cover_message}", icon="TIME")
        if s.uncovered:
            layout.label(text=f"{s.uncovered} surface samples left uncovered", icon="ERROR")
