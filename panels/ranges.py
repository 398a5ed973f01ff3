"""Guaranteed Queries (a sub-panel of Active Field, signed distance and radiance fields): range analysis's settings,
stored on the field, the three queries and their last results."""

from __future__ import annotations

import bpy

from .base import FieldSubPanel, active_field, enum_name, result_grid, running, settings_column


class VIEW3D_PT_inr_field_ranges(FieldSubPanel, bpy.types.Panel):
    bl_label = "Guaranteed Queries"
    bl_idname = "VIEW3D_PT_inr_field_ranges"
    bl_order = 6
    bl_options = {"DEFAULT_CLOSED"}
    kinds = ("SDF", "NERF")

    def draw_header(self, context: bpy.types.Context) -> None:
        self.layout.label(icon="CON_SAMEVOL")

    def draw(self, context: bpy.types.Context) -> None:
        obj = active_field(context)
        s = obj.inr_field
        layout = self.layout
        if s.kind == "SDF" and s.method in ("IDF", "IDF_TRANSFER"):
            layout.label(text="Displacement fields have no range rules", icon="INFO")
            return
        r = s.ranges
        settings_column(layout, r, (("mode", None),))
        settings_column(layout, r.raycast, (("method", None),))
        col = layout.column(align=True)
        col.enabled = not running(context)
        others = [o for o in context.selected_objects if o != obj]
        for operator, icon, usable in (
            ("inr.raycast_view", "VIEW_CAMERA", context.scene.camera is not None),
            ("inr.closest_points", "SNAP_NORMAL", len(others) == 1 and others[0].type == "MESH"),
            ("inr.check_intersection", "SELECT_INTERSECT", len(others) == 1),
        ):
            row = col.row()
            row.enabled = usable
            row.operator(operator, icon=icon)
        if not others:
            layout.label(text="Closest Points, Check Intersection: select the other object too", icon="INFO")
        rows = []
        if r.raycast.has_result:
            ray = r.raycast
            rows.append(("Rays", f"{ray.hits} of {ray.rays} hit · {ray.method_used} · {ray.seconds:.2f} s"))
        if r.closest.has_result:
            c = r.closest
            rows.append(("Closest", f"{c.count} points · {c.min:.4g} to {c.max:.4g} · {c.seconds:.2f} s"))
        if r.intersection.verdict != "NONE":
            i = r.intersection
            rows.append(("Intersection", f"{enum_name(i, 'verdict')} with '{i.other}' · {i.boxes} boxes · {i.seconds:.2f} s"))
        result_grid(layout, rows)
