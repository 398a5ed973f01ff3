"""Shape spaces (DeepSDF auto-decoders): Fit Shape Space (a sub-panel of Fit), and a space's shapes, Interpolate
Shapes and Reconstruct from Scan (sub-panels of Active Field; their settings stored on the space)."""

from __future__ import annotations

import bpy

from .base import FIT_PANEL, FieldSubPanel, INRPanel, active_field, enum_name, operator_row, running, settings_column


def draw_shape_space_summary(col: bpy.types.UILayout, s: bpy.types.PropertyGroup) -> None:
    """Active Field's lines for a shape space."""
    preset = f" ({s.preset.lower()})" if s.preset and s.preset != "CUSTOM" else ""
    col.label(text=f"Shape space · {enum_name(s, 'method')}{preset} · {len(s.shape_space.shapes)} shapes, codes of {s.shape_space.latent_size}")
    col.label(text=f"{s.iterations} steps on {s.device} · final loss {s.final_loss:.5g} · {s.train_seconds:.1f} s")


def draw_completed_summary(col: bpy.types.UILayout, s: bpy.types.PropertyGroup) -> None:
    """Active Field's lines for a completed shape (method LATENT_SHAPE, made by Reconstruct from Scan)."""
    r = s.shape_space.reconstruct
    col.label(text=f"{s.kind} · {enum_name(s, 'method')} · {s.iterations} steps on {s.device}")
    col.label(text=f"A code of '{r.source_space}' fitted to {s.num_points} points{' with normals' if s.has_normals else ''} of {s.sources}")
    col.label(text=f"Fit error {r.fit_error:.4g} · {s.train_seconds:.1f} s")


def selected_shape(space: bpy.types.PropertyGroup) -> bpy.types.PropertyGroup | None:
    """The shape selected in the list (``space``: a field's ``shape_space``), or None for a stale index."""
    return space.shapes[space.active_shape] if 0 <= space.active_shape < len(space.shapes) else None


class INR_UL_shapes(bpy.types.UIList):
    """A shape space's training shapes: index, object and reconstruction error (world units)."""

    bl_idname = "INR_UL_shapes"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0) -> None:
        row = layout.row(align=True)
        # a shape whose object was deleted or renamed stays in the space
        row.label(text=f"{item.index}  {item.name}", icon="ERROR" if item.source is None else "MESH_DATA")
        sub = row.row()
        sub.alignment = "RIGHT"
        sub.label(text=f"{item.error:.4g}" if item.has_error else "–")


class VIEW3D_PT_inr_fit_shape_space(INRPanel, bpy.types.Panel):
    bl_label = "Shape Space"
    bl_idname = "VIEW3D_PT_inr_fit_shape_space"
    bl_order = 1
    bl_parent_id = FIT_PANEL
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        meshes = [o for o in context.selected_objects if o.type == "MESH"]
        layout = self.layout
        row = layout.row(align=True)
        row.enabled = len(meshes) >= 2 and not running(context)
        for preset, text, icon in (
            ("FAST", "Fast", "MOD_INSTANCE"),
            ("PUBLISHED", "Published", "MOD_MULTIRES"),
            ("CUSTOM", "Custom…", "PREFERENCES"),
        ):
            row.operator("inr.fit_shape_space", text=text, icon=icon).preset = preset
        if len(meshes) < 2:
            layout.label(text="Select two or more meshes, one per shape", icon="INFO")


class _ShapeSpacePanel(FieldSubPanel):
    kinds = ("SHAPE_SPACE",)


class VIEW3D_PT_inr_field_shapes(_ShapeSpacePanel, bpy.types.Panel):
    """The space's shapes (with their errors) and Extract Mesh of the selected one."""

    bl_label = "Shapes"
    bl_idname = "VIEW3D_PT_inr_field_shapes"
    bl_order = 1

    def draw(self, context: bpy.types.Context) -> None:
        space = active_field(context).inr_field.shape_space
        layout = self.layout
        row = layout.row()
        row.label(text="Shapes")
        sub = row.row()
        sub.alignment = "RIGHT"
        sub.label(text="Chamfer-L1")
        layout.template_list("INR_UL_shapes", "", space, "shapes", space, "active_shape", rows=min(max(len(space.shapes), 3), 8))
        shape = selected_shape(space)
        operator_row(layout, context, "inr.extract_mesh", "MESH_DATA", shape is not None, text=f"Extract '{shape.name}'" if shape else "Extract Mesh")


class VIEW3D_PT_inr_field_interpolate(_ShapeSpacePanel, bpy.types.Panel):
    """Interpolate Shapes from the selected shape to another."""

    bl_label = "Interpolate Shapes"
    bl_idname = "VIEW3D_PT_inr_field_interpolate"
    bl_order = 7
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        space = active_field(context).inr_field.shape_space
        layout = self.layout
        shape = selected_shape(space)
        layout.label(text=f"From '{shape.name}' (the selected shape)" if shape else "Select the first shape in the list")
        settings_column(layout, space.interpolate, (("to", None), ("count", None), ("output", None), ("resolution", None)))
        to = space.interpolate.to
        other = space.shapes[to] if to < len(space.shapes) else None
        usable = shape is not None and other is not None and other != shape
        op = operator_row(
            layout, context, "inr.interpolate_shapes", "IPO_EASE_IN_OUT", usable, text=f"To '{other.name}'" if other else "Interpolate Shapes"
        )
        op.a, op.b = space.active_shape, to
        if other is None or other == shape:
            layout.label(text=f"'To' must be another shape (0 to {len(space.shapes) - 1})", icon="INFO")


class VIEW3D_PT_inr_field_reconstruct(_ShapeSpacePanel, bpy.types.Panel):
    """Reconstruct from Scan: complete the selected scan with the space's closest shape."""

    bl_label = "Reconstruct from Scan"
    bl_idname = "VIEW3D_PT_inr_field_reconstruct"
    bl_order = 8
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        obj = active_field(context)
        layout = self.layout
        settings_column(layout, obj.inr_field.shape_space.reconstruct, (("iterations", None), ("resolution", None)))
        scans = [o for o in context.selected_objects if o != obj and o.type in {"MESH", "POINTCLOUD"}]
        operator_row(layout, context, "inr.reconstruct_shape", "MOD_SHRINKWRAP", len(scans) == 1)
        if len(scans) == 1:
            layout.label(text=f"Complete '{scans[0].name}'", icon="FORWARD")
        else:
            layout.label(text="Select the scan (points or a partial mesh) too", icon="INFO")
