"""The Active Field panel: what the field is and how it was trained, its checkpoint and Extract Mesh; each
capability (evaluation, skeleton, iso-points, queries, shapes, ...) is a sub-panel that shows for the fields it
works on."""

from __future__ import annotations

import os

import bpy

from .base import FIELD_PANEL, FieldSubPanel, INRPanel, active_field, enum_name, operator_row, result_grid
from .displacement import draw_transferred_summary
from .loss_plot import loss_icon
from .nerf import draw_nerf_summary
from .shape_space import draw_completed_summary, draw_shape_space_summary


def _loss_curve_text(settings: bpy.types.PropertyGroup) -> str:
    history = settings.loss_history
    if not len(history):
        return ""
    losses = [h.loss for h in history]
    return f"Loss {losses[0]:.3g} → {losses[-1]:.3g} (min {min(losses):.3g})"


def draw_training(col: bpy.types.UILayout, layout: bpy.types.UILayout, obj: bpy.types.Object) -> None:
    """Stop reason and loss curve: what every fitted field shows."""
    s = obj.inr_field
    if s.stop_reason:
        col.label(text=s.stop_reason[:1].upper() + s.stop_reason[1:], icon="CHECKMARK" if s.stop_reason.startswith("converged") else "TIME")
    curve = _loss_curve_text(s)
    if curve:
        col.label(text=curve)
        layout.template_icon(icon_value=loss_icon(obj), scale=4.0)


def _draw_sdf_summary(col: bpy.types.UILayout, s: bpy.types.PropertyGroup) -> None:
    preset = f" ({s.preset.lower()})" if s.preset and s.preset != "CUSTOM" else ""
    col.label(text=f"{s.kind} · {enum_name(s, 'method')}{preset} · {s.iterations} steps on {s.device}")
    col.label(text=f"{s.num_points} points{' with normals' if s.has_normals else ''} from {s.sources}")
    col.label(text=f"Final loss {s.final_loss:.5g} · {s.train_seconds:.1f} s")


class VIEW3D_PT_inr_field(INRPanel, bpy.types.Panel):
    bl_label = "Active Field"
    bl_idname = FIELD_PANEL
    bl_order = 2

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        obj = active_field(context)
        if obj is None:
            layout.label(text="No field active: fit one, or click a field", icon="INFO")
            return
        s = obj.inr_field
        layout.label(text=obj.name, icon="EMPTY_DATA")
        col = layout.column(align=True)
        if s.kind == "NERF":
            draw_nerf_summary(col, s)
        elif s.kind == "SHAPE_SPACE":
            draw_shape_space_summary(col, s)
        elif s.method == "IDF_TRANSFER":  # made by Transfer Detail, not trained
            draw_transferred_summary(col, s)
        elif s.method == "LATENT_SHAPE":  # made by Reconstruct from Scan: a code fitted to a scan
            draw_completed_summary(col, s)
        else:
            _draw_sdf_summary(col, s)
        if s.method != "IDF_TRANSFER":
            draw_training(col, layout, obj)
        layout.prop(s, "checkpoint", text="")
        if not os.path.isfile(bpy.path.abspath(s.checkpoint)):
            layout.label(text="Checkpoint file is missing", icon="ERROR")
        if s.kind == "NERF" or (s.kind == "SDF" and s.method not in ("IDF", "IDF_TRANSFER")):
            operator_row(layout, context, "inr.extract_mesh", "MESH_DATA")  # shapes and displacement: their sub-panels


class VIEW3D_PT_inr_field_evaluation(FieldSubPanel, bpy.types.Panel):
    """Evaluate Field: the field's surface against the objects it was fitted to."""

    bl_label = "Evaluation"
    bl_idname = "VIEW3D_PT_inr_field_evaluation"
    bl_order = 3
    bl_options = {"DEFAULT_CLOSED"}
    kinds = ("SDF",)
    exclude_methods = ("IDF_TRANSFER",)  # fitted to nothing: nothing to measure it against

    def draw(self, context: bpy.types.Context) -> None:
        s = active_field(context).inr_field
        layout = self.layout
        operator_row(layout, context, "inr.evaluate_field", "DRIVER_DISTANCE")
        if s.has_metrics:
            layout.label(text=f"Against {s.sources} (grid {s.metrics_resolution})")
            result_grid(
                layout,
                [
                    ("Chamfer-L1", f"{s.chamfer_l1:.5f}"),
                    ("Normals", f"{s.normal_consistency:.4f}"),
                    ("F-score 1%", f"{s.fscore:.4f}"),
                    ("Hausdorff", f"{s.hausdorff:.4f}"),
                ],
            )
