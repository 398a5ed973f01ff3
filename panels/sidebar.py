"""The sidebar tab "INR" in the 3D viewport: job progress, fitting, the active field, backend."""

from __future__ import annotations

import os

import bpy

from ..operators.camera_rig import GEOMETRY_TYPES
from .loss_plot import loss_icon


class _INRPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "INR"


class VIEW3D_PT_inr_job(_INRPanel, bpy.types.Panel):
    bl_label = "Job"
    bl_idname = "VIEW3D_PT_inr_job"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.window_manager.inr_job.running

    def draw(self, context: bpy.types.Context) -> None:
        job = context.window_manager.inr_job
        layout = self.layout
        text = f"{job.name}: {job.step}/{job.total}"
        layout.progress(factor=job.progress, type="BAR", text=text)
        if job.has_loss:
            layout.label(text=f"Loss {job.loss:.5g}")
        if job.has_psnr:
            layout.label(text=f"PSNR {job.psnr:.2f} dB")
        if job.message:
            layout.label(text=job.message)
        layout.operator("inr.cancel_job", icon="CANCEL")


class VIEW3D_PT_inr_fit(_INRPanel, bpy.types.Panel):
    bl_label = "Fit"
    bl_idname = "VIEW3D_PT_inr_fit"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        usable = [o for o in context.selected_objects if o.type in {"MESH", "POINTCLOUD"}]
        layout.label(text=f"{len(usable)} mesh/point cloud selected" if usable else "Select meshes or point clouds", icon="RESTRICT_SELECT_OFF")
        col = layout.column()
        col.enabled = bool(usable) and not context.window_manager.inr_job.running
        col.label(text="Fit SDF")
        row = col.row(align=True)
        for preset, text, icon in (("FAST", "Fast", "MOD_REMESH"), ("DETAILED", "Detailed", "MOD_MULTIRES"), ("SMOOTH", "Smooth", "MOD_SMOOTH")):
            row.operator("inr.fit_sdf", text=text, icon=icon).preset = preset
        row = col.row(align=True)
        row.operator("inr.fit_sdf", text="Skeleton", icon="OUTLINER_DATA_ARMATURE").preset = "SKELETON"
        row.operator("inr.fit_sdf", text="Custom…", icon="PREFERENCES").preset = "CUSTOM"
        _draw_displacement(layout, context, bool(usable))
        _draw_shape_space_fit(layout, context)
        _draw_radiance_field(layout, context)


def _draw_displacement(layout: bpy.types.UILayout, context: bpy.types.Context, usable: bool) -> None:
    """The Fit panel's displacement section: Fit Displacement Field, and the Transfer Detail box (its settings on the target)."""
    running = context.window_manager.inr_job.running
    layout.separator()
    col = layout.column()
    col.enabled = not running
    col.label(text="Displacement Field")
    row = col.row(align=True)
    row.enabled = usable
    for preset, text, icon in (("FAST", "Fast", "MOD_DISPLACE"), ("DETAILED", "Detailed", "MOD_MULTIRES"), ("CUSTOM", "Custom…", "PREFERENCES")):
        row.operator("inr.fit_displacement", text=text, icon=icon).preset = preset
    target = context.active_object
    if target is None:
        col.label(text="Transfer Detail: select the detail source, then the target (active)", icon="INFO")
        return
    box = _operator_box(  # its settings live on the target
        col, context, target, "Transfer Detail", "MOD_DATA_TRANSFER",
        (("transfer_strength", None), ("transfer_nu", "ν (0: Source's)"), ("transfer_mode", None), ("transfer_resolution", None)),
        "inr.transfer_detail",
    )
    others = [o for o in context.selected_objects if o != target]
    if len(others) == 1:
        box.label(text=f"Detail of '{others[0].name}' onto '{target.name}'", icon="FORWARD")
    else:
        box.label(text="Select the detail source, then the target (active)", icon="INFO")


def _draw_shape_space_fit(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Fit panel's shape-space section: Fit Shape Space on two or more selected meshes."""
    meshes = [o for o in context.selected_objects if o.type == "MESH"]
    layout.separator()
    col = layout.column()
    col.enabled = not context.window_manager.inr_job.running
    col.label(text="Shape Space")
    row = col.row(align=True)
    row.enabled = len(meshes) >= 2
    for preset, text, icon in (("FAST", "Fast", "MOD_INSTANCE"), ("PUBLISHED", "Published", "MOD_MULTIRES"), ("CUSTOM", "Custom…", "PREFERENCES")):
        row.operator("inr.fit_shape_space", text=text, icon=icon).preset = preset
    if len(meshes) < 2:
        col.label(text="Select two or more meshes, one per shape", icon="INFO")


def _draw_radiance_field(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Fit panel's NeRF section: rig, training views, fit."""
    running = context.window_manager.inr_job.running
    rigs = [c for c in context.scene.collection.children_recursive if c.get("inr_rig")]
    rendered = [r for r in rigs if r.get("inr_views")]
    layout.separator()
    col = layout.column()
    col.enabled = not running
    col.label(text="Radiance Field")
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


def _loss_curve_text(settings) -> str:
    history = settings.loss_history
    if not len(history):
        return ""
    losses = [h.loss for h in history]
    return f"Loss {losses[0]:.3g} → {losses[-1]:.3g} (min {min(losses):.3g})"


class VIEW3D_PT_inr_field(_INRPanel, bpy.types.Panel):
    bl_label = "Active Field"
    bl_idname = "VIEW3D_PT_inr_field"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        obj = context.active_object
        if obj is None or not obj.inr_field.is_field:
            layout.label(text="No field active: fit one, or click a field", icon="INFO")
            return
        s = obj.inr_field
        layout.label(text=obj.name, icon="EMPTY_DATA")
        if s.kind == "NERF":
            _draw_radiance_field_object(layout, context, obj)
            return
        if s.kind == "SHAPE_SPACE":
            _draw_shape_space(layout, context, obj)
            return
        col = layout.column(align=True)
        preset = f" ({s.preset.lower()})" if s.preset and s.preset != "CUSTOM" else ""
        method = s.bl_rna.properties["method"].enum_items[s.method].name
        if s.method == "IDF_TRANSFER":  # made by Transfer Detail, not trained
            col.label(text=f"{s.kind} · {method}")
            col.label(text=f"Detail of '{s.detail_source}' on the base of '{s.detail_target}'")
            col.label(text=f"Strength {s.detail_strength:g} · ν {s.detail_nu:g} · {s.detail_mode.lower()}")
            layout.prop(s, "checkpoint", text="")
        elif s.method == "LATENT_SHAPE":  # made by Reconstruct from Scan: a code fitted to a scan
            col.label(text=f"{s.kind} · {method} · {s.iterations} steps on {s.device}")
            col.label(text=f"A code of '{s.completed_from}' fitted to {s.num_points} points{' with normals' if s.has_normals else ''} of {s.sources}")
            col.label(text=f"Fit error {s.completed_fit_error:.4g} · {s.train_seconds:.1f} s")
            _draw_training(col, layout, obj)
        else:
            col.label(text=f"{s.kind} · {method}{preset} · {s.iterations} steps on {s.device}")
            col.label(text=f"{s.num_points} points{' with normals' if s.has_normals else ''} from {s.sources}")
            col.label(text=f"Final loss {s.final_loss:.5g} · {s.train_seconds:.1f} s")
            _draw_training(col, layout, obj)
        col = layout.column()
        col.enabled = not context.window_manager.inr_job.running
        if s.method in ("IDF", "IDF_TRANSFER"):
            _draw_displacement_field(col, obj)
        else:
            col.operator("inr.extract_mesh", icon="MESH_DATA")
        if s.method != "IDF_TRANSFER":  # fitted to nothing: nothing to measure it against
            col.operator("inr.evaluate_field", icon="DRIVER_DISTANCE")
        if s.has_metrics:
            box = layout.box()
            box.label(text=f"Against {s.sources} (grid {s.metrics_resolution})")
            grid = box.grid_flow(columns=2, align=True)
            for label, value in (("Chamfer-L1", f"{s.chamfer_l1:.5f}"), ("Normals", f"{s.normal_consistency:.4f}"), ("F-score 1%", f"{s.fscore:.4f}"), ("Hausdorff", f"{s.hausdorff:.4f}")):
                grid.label(text=label)
                grid.label(text=value)
        _draw_skeleton(layout, context, obj)
        _draw_isopoints(layout, context, obj)
        _draw_range_queries(layout, context, obj)


class INR_UL_shapes(bpy.types.UIList):
    """A shape space's training shapes: index, object and reconstruction error (world units)."""

    bl_idname = "INR_UL_shapes"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0) -> None:
        row = layout.row(align=True)
        if item.source is None:  # the object was deleted or renamed: the shape stays in the space
            row.label(text=f"{item.index}  {item.name}", icon="ERROR")
        else:
            row.label(text=f"{item.index}  {item.name}", icon="MESH_DATA")
        sub = row.row()
        sub.alignment = "RIGHT"
        sub.label(text=f"{item.error:.4g}" if item.has_error else "–")


def _draw_shape_space(layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """A shape space: its training, its shapes (with their errors), Extract Mesh of the selected shape,
    Reconstruct from Scan and Interpolate Shapes (their settings stored on the space)."""
    s = obj.inr_field
    running = context.window_manager.inr_job.running
    col = layout.column(align=True)
    method = s.bl_rna.properties["method"].enum_items[s.method].name
    preset = f" ({s.preset.lower()})" if s.preset and s.preset != "CUSTOM" else ""
    col.label(text=f"Shape space · {method}{preset} · {len(s.shapes)} shapes, codes of {s.latent_size}")
    col.label(text=f"{s.iterations} steps on {s.device} · final loss {s.final_loss:.5g} · {s.train_seconds:.1f} s")
    _draw_training(col, layout, obj)
    row = layout.row()
    row.label(text="Shapes")
    sub = row.row()
    sub.alignment = "RIGHT"
    sub.label(text="Chamfer-L1")
    layout.template_list("INR_UL_shapes", "", s, "shapes", s, "active_shape", rows=min(max(len(s.shapes), 3), 8))
    shape = s.shapes[s.active_shape] if 0 <= s.active_shape < len(s.shapes) else None
    row = layout.row()
    row.enabled = shape is not None and not running
    row.operator("inr.extract_mesh", text=f"Extract '{shape.name}'" if shape else "Extract Mesh", icon="MESH_DATA")

    box = layout.box()
    box.label(text="Interpolate Shapes", icon="IPO_EASE_IN_OUT")
    sub = box.column(align=True)
    sub.use_property_split = True
    sub.label(text=f"From '{shape.name}' (the selected shape)" if shape else "Select the first shape in the list")
    for name in ("interpolate_to", "interpolate_count", "interpolate_output", "interpolate_resolution"):
        sub.prop(s, name)
    other = s.shapes[s.interpolate_to] if s.interpolate_to < len(s.shapes) else None
    row = box.row()
    row.enabled = not running and shape is not None and other is not None and other != shape
    op = row.operator("inr.interpolate_shapes", text=f"To '{other.name}'" if other else "Interpolate Shapes", icon="IPO_EASE_IN_OUT")
    op.a, op.b = s.active_shape, s.interpolate_to
    if other is None or other == shape:
        box.label(text=f"'To' must be another shape (0 to {len(s.shapes) - 1})", icon="INFO")

    box = layout.box()
    box.label(text="Reconstruct from Scan", icon="MOD_SHRINKWRAP")
    sub = box.column(align=True)
    sub.use_property_split = True
    sub.prop(s, "reconstruct_iterations")
    sub.prop(s, "reconstruct_resolution")
    scans = [o for o in context.selected_objects if o != obj and o.type in {"MESH", "POINTCLOUD"}]
    row = box.row()
    row.enabled = not running and len(scans) == 1
    row.operator("inr.reconstruct_shape", icon="MOD_SHRINKWRAP")
    if len(scans) == 1:
        box.label(text=f"Complete '{scans[0].name}'", icon="FORWARD")
    else:
        box.label(text="Select the scan (points or a partial mesh) too", icon="INFO")


def _draw_displacement_field(col: bpy.types.UILayout, obj: bpy.types.Object) -> None:
    """A displacement field's phases (of a fitted one) and its two extractions: the detailed surface and the base."""
    s = obj.inr_field
    if s.method == "IDF":
        if s.phase_base >= 1.0:
            col.label(text="Base only: a smooth target for Transfer Detail", icon="INFO")
        else:
            col.label(text=f"Phases: base to {s.phase_base:.0%}, detail to {s.phase_detail:.0%}, then both")
    row = col.row(align=True)
    row.operator("inr.extract_mesh", text="Extract Detailed", icon="MESH_DATA").part = "DETAILED"
    row.operator("inr.extract_mesh", text="Extract Base", icon="MOD_SMOOTH").part = "BASE"


def _operator_box(
    layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object, title: str, icon: str,
    settings: tuple[tuple[str, str | None], ...], operator: str,
) -> bpy.types.UILayout:
    """A box with a field operator's settings (stored on the field; (name, label or None)) and its button."""
    s = obj.inr_field
    box = layout.box()
    box.label(text=title, icon=icon)
    col = box.column(align=True)
    col.use_property_split = True
    for name, text in settings:
        col.prop(s, name, **({"text": text} if text else {}))
    row = box.row()
    row.enabled = not context.window_manager.inr_job.running
    row.operator(operator, icon=icon)
    return box


def _draw_skeleton(layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """The Skeleton box: Extract Skeleton's settings (stored on the field), its button, the last result."""
    s = obj.inr_field
    box = _operator_box(
        layout, context, obj, "Skeleton", "OUTLINER_DATA_ARMATURE",
        (("skeleton_delta", None), ("skeleton_surface_samples", None), ("skeleton_time_limit", None), ("skeleton_spheres", None)),
        "inr.extract_skeleton",
    )
    if s.method != "NEURAL_SKELETON":
        box.label(text="Fit with the Skeleton preset for a cleaner skeleton", icon="INFO")
    if s.has_skeleton:
        grid = box.grid_flow(columns=2, align=True)
        for label, value in (
            ("Points", f"{s.skeleton_vertices} of {s.skeleton_candidates}"), ("Edges", str(s.skeleton_edges)),
            ("Triangles", str(s.skeleton_triangles)), ("δ", f"{s.skeleton_delta_used:g}"), ("Time", f"{s.skeleton_seconds:.1f} s"),
        ):
            grid.label(text=label)
            grid.label(text=value)
        if s.skeleton_optimal:
            box.label(text="Optimal cover", icon="CHECKMARK")
        else:
            box.label(text=f"Cover: {s.skeleton_cover_message}", icon="TIME")
        if s.skeleton_uncovered:
            box.label(text=f"{s.skeleton_uncovered} surface samples left uncovered", icon="ERROR")


def _draw_isopoints(layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """The Iso-points box (signed distance fields): Sample Iso-points' settings (stored on the field), its button, the last result."""
    s = obj.inr_field
    box = _operator_box(
        layout, context, obj, "Iso-points", "OUTLINER_DATA_POINTCLOUD",
        (("isopoints_count", None), ("isopoints_resample", None), ("isopoints_upsample", None), ("isopoints_radius", "Radius (0: Auto)")),
        "inr.sample_isopoints",
    )
    if s.has_isopoints:
        grid = box.grid_flow(columns=2, align=True)
        for label, value in (
            ("Points", str(s.isopoints_points)), ("Discarded", str(s.isopoints_discarded)), ("Upsampled", str(s.isopoints_upsampled)),
            ("Spacing CV", f"{s.isopoints_spacing_cv:.3f}"), ("Radius", f"{s.isopoints_radius_used:.4g}"), ("Time", f"{s.isopoints_seconds:.1f} s"),
        ):
            grid.label(text=label)
            grid.label(text=value)


def _draw_training(col: bpy.types.UILayout, layout: bpy.types.UILayout, obj: bpy.types.Object) -> None:
    """Time, stop reason and loss curve: what every fitted field shows."""
    s = obj.inr_field
    if s.stop_reason:
        col.label(text=s.stop_reason[:1].upper() + s.stop_reason[1:], icon="CHECKMARK" if s.stop_reason.startswith("converged") else "TIME")
    curve = _loss_curve_text(s)
    if curve:
        col.label(text=curve)
        layout.template_icon(icon_value=loss_icon(obj), scale=4.0)
    layout.prop(s, "checkpoint", text="")
    if not os.path.isfile(bpy.path.abspath(s.checkpoint)):
        layout.label(text="Checkpoint file is missing", icon="ERROR")


def _draw_radiance_field_object(layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object) -> None:
    s = obj.inr_field
    col = layout.column(align=True)
    model = "Fast" if s.nerf_model == "FAST" else "Classic"
    col.label(text=f"Radiance field · {model} · {s.iterations} steps on {s.device}")
    col.label(text=f"{s.num_views + s.num_holdout} views ({s.num_views} train, {s.num_holdout} held out) at {s.image_width}x{s.image_height}")
    if s.num_holdout:
        col.label(text=f"Held-out PSNR {s.psnr:.2f} dB · SSIM {s.ssim:.3f}")
    else:
        col.label(text="No held-out views: PSNR on training views only", icon="INFO")
    col.label(text=f"Train PSNR {s.train_psnr:.2f} dB · {s.train_seconds:.1f} s")
    _draw_training(col, layout, obj)
    layout.prop(s, "views_path", text="Views")
    layout.prop(s, "background")
    col = layout.column()
    col.enabled = not context.window_manager.inr_job.running
    row = col.row()
    row.enabled = context.scene.camera is not None
    row.operator("inr.render_nerf_view", icon="RENDER_RESULT")
    col.operator("inr.extract_mesh", icon="MESH_DATA")
    _draw_range_queries(layout, context, obj)


def _draw_range_queries(layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """The Guaranteed Queries box: range analysis's settings (stored on the field), the three queries, the last results."""
    s = obj.inr_field
    box = layout.box()
    box.label(text="Guaranteed Queries", icon="CON_SAMEVOL")
    if s.method in ("IDF", "IDF_TRANSFER"):
        box.label(text="Displacement fields have no range rules", icon="INFO")
        return
    col = box.column(align=True)
    col.use_property_split = True
    col.prop(s, "range_mode")
    col.prop(s, "raycast_method")
    col = box.column(align=True)
    col.enabled = not context.window_manager.inr_job.running
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
        box.label(text="Closest Points, Check Intersection: select the other object too", icon="INFO")
    rows = []
    if s.has_raycast:
        rows.append(("Rays", f"{s.raycast_hits} of {s.raycast_rays} hit · {s.raycast_used} · {s.raycast_seconds:.2f} s"))
    if s.has_closest:
        rows.append(("Closest", f"{s.closest_count} points · {s.closest_min:.4g} to {s.closest_max:.4g} · {s.closest_seconds:.2f} s"))
    if s.intersection_verdict != "NONE":
        verdict = s.bl_rna.properties["intersection_verdict"].enum_items[s.intersection_verdict].name
        rows.append(("Intersection", f"{verdict} with '{s.intersection_other}' · {s.intersection_boxes} boxes · {s.intersection_seconds:.2f} s"))
    if rows:
        grid = box.grid_flow(columns=2, align=True)
        for label, value in rows:
            grid.label(text=label)
            grid.label(text=value)


class VIEW3D_PT_inr_backend(_INRPanel, bpy.types.Panel):
    bl_label = "Backend"
    bl_idname = "VIEW3D_PT_inr_backend"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        state = context.window_manager.inr_backend
        layout = self.layout
        layout.label(text=state.status or "Not checked yet", icon="CHECKMARK" if state.ready else "INFO")
        layout.operator("inr.check_backend", icon="FILE_REFRESH")
