"""Radiance fields (NeRF): the camera rig, training views and Fit NeRF (a sub-panel of Fit), and a radiance
field's views and renders (a sub-panel of Active Field)."""

from __future__ import annotations

import bpy

from ..operators.camera_rig import GEOMETRY_TYPES
from .base import FIT_PANEL, FieldSubPanel, INRPanel, active_field, enum_name, operator_row, running


def draw_nerf_summary(col: bpy.types.UILayout, s: bpy.types.PropertyGroup) -> None:
    """Active Field's lines for a radiance field."""
    n = s.nerf
    col.label(text=f"Radiance field · {enum_name(n, 'model')} · {s.iterations} steps on {s.device}")
    col.label(text=f"{n.num_views + n.num_holdout} views ({n.num_views} train, {n.num_holdout} held out) at {n.image_width}x{n.image_height}")
    if n.num_holdout:
        col.label(text=f"Held-out PSNR {n.psnr:.2f} dB · SSIM {n.ssim:.3f}")
    else:
        col.label(text="No held-out views: PSNR on training views only", icon="INFO")
    col.label(text=f"Train PSNR {n.train_psnr:.2f} dB · {s.train_seconds:.1f} s")


class VIEW3D_PT_inr_fit_nerf(INRPanel, bpy.types.Panel):
    bl_label = "Radiance Field"
    bl_idname = "VIEW3D_PT_inr_fit_nerf"
    bl_order = 2
    bl_parent_id = FIT_PANEL
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        rigs = [c for c in context.scene.collection.children_recursive if c.get("inr_rig")]
        rendered = [r for r in rigs if r.get("inr_views")]
        col = layout.column()
        col.enabled = not running(context)
        row = col.row()
        row.enabled = any(o.type in GEOMETRY_TYPES for o in context.selected_objects)
        row.operator("inr.create_camera_rig", icon="OUTLINER_OB_CAMERA")
        if rigs:
            cameras = sum(1 for r in rigs for o in r.objects if o.type == "CAMERA")
            state = "views rendered" if rendered else "no views yet"
            text = f"'{rigs[0].name}': {cameras} cameras, {state}" if len(rigs) == 1 else f"{len(rigs)} rigs, {cameras} cameras"
            col.label(text=text, icon="OUTLINER_COLLECTION")
        row = col.row()
        row.enabled = bool(rigs)
        row.operator("inr.render_training_views", icon="RENDER_STILL")
        col.label(text="Fit NeRF")
        row = col.row(align=True)
        row.enabled = bool(rendered)
        for model, text, icon in (("FAST", "Fast", "LIGHTPROBE_SPHERE"), ("CLASSIC", "Classic", "LIGHTPROBE_VOLUME")):
            op = row.operator("inr.fit_nerf", text=text, icon=icon)
            op.source, op.model = "RIG", model
        col.operator("inr.fit_nerf", text="From File…", icon="FILEBROWSER").source = "FILE"


class VIEW3D_PT_inr_field_nerf(FieldSubPanel, bpy.types.Panel):
    """A radiance field's views, background and Render View from the scene camera."""

    bl_label = "Views"
    bl_idname = "VIEW3D_PT_inr_field_nerf"
    bl_order = 2
    kinds = ("NERF",)

    def draw(self, context: bpy.types.Context) -> None:
        n = active_field(context).inr_field.nerf
        layout = self.layout
        layout.prop(n, "views_path", text="Views")
        layout.prop(n, "background")
        operator_row(layout, context, "inr.render_nerf_view", "RENDER_RESULT", context.scene.camera is not None)
