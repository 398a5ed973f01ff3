"""Sample Iso-points (a sub-panel of Active Field, signed distance fields): its settings, stored on the field, its
button and the last result."""

from __future__ import annotations

import bpy

from .base import FieldSubPanel, active_field, operator_row, result_grid, settings_column


class VIEW3D_PT_inr_field_isopoints(FieldSubPanel, bpy.types.Panel):
    bl_label = "Iso-points"
    bl_idname = "VIEW3D_PT_inr_field_isopoints"
    bl_order = 5
    bl_options = {"DEFAULT_CLOSED"}
    kinds = ("SDF",)

    def draw_header(self, context: bpy.types.Context) -> None:
        self.layout.label(icon="OUTLINER_DATA_POINTCLOUD")

    def draw(self, context: bpy.types.Context) -> None:
        s = active_field(context).inr_field.isopoints
        layout = self.layout
        settings_column(layout, s, (("count", None), ("resample", None), ("upsample", None), ("point_radius", "Radius (0: Auto)")))
        operator_row(layout, context, "inr.sample_isopoints", "OUTLINER_DATA_POINTCLOUD")
        if s.has_result:
            result_grid(
                layout,
                [
                    ("Points", str(s.points)),
                    ("Discarded", str(s.discarded)),
                    ("Upsampled", str(s.upsampled)),
                    ("Spacing CV", f"{s.spacing_cv:.3f}"),
                    ("Radius", f"{s.radius_used:.4g}"),
                    ("Time", f"{s.seconds:.1f} s"),
                ],
            )
