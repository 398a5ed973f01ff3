"""Object > Neural Fields menu: every operator sits here, which is how F3 finds it; and Closest Points in mesh Edit
Mode's Vertex menu, where its queries are the selected vertices."""

from __future__ import annotations

import bpy


class VIEW3D_MT_inr(bpy.types.Menu):
    bl_label = "Neural Fields"
    bl_idname = "VIEW3D_MT_inr"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.operator_context = "INVOKE_DEFAULT"
        layout.operator("inr.fit_sdf", icon="MOD_REMESH")
        layout.operator("inr.extract_mesh", icon="MESH_DATA")
        layout.operator("inr.extract_skeleton", icon="OUTLINER_DATA_ARMATURE")
        layout.operator("inr.sample_isopoints", icon="OUTLINER_DATA_POINTCLOUD")
        layout.operator("inr.evaluate_field", icon="DRIVER_DISTANCE")
        layout.separator()
        layout.operator("inr.raycast_view", icon="VIEW_CAMERA")
        layout.operator("inr.closest_points", icon="SNAP_NORMAL")
        layout.operator("inr.check_intersection", icon="SELECT_INTERSECT")
        layout.separator()
        layout.operator("inr.fit_displacement", icon="MOD_DISPLACE")
        layout.operator("inr.transfer_detail", icon="MOD_DATA_TRANSFER")
        layout.separator()
        layout.operator("inr.fit_shape_space", icon="MOD_INSTANCE")
        layout.operator("inr.reconstruct_shape", icon="MOD_SHRINKWRAP")
        layout.operator("inr.interpolate_shapes", icon="IPO_EASE_IN_OUT")
        layout.separator()
        layout.operator("inr.create_camera_rig", icon="OUTLINER_OB_CAMERA")
        layout.operator("inr.render_training_views", icon="RENDER_STILL")
        layout.operator("inr.fit_nerf", icon="LIGHTPROBE_SPHERE")
        layout.operator("inr.render_nerf_view", icon="RENDER_RESULT")
        layout.separator()
        layout.operator("inr.cancel_job", icon="CANCEL")
        layout.operator("inr.check_backend", icon="FILE_REFRESH")


def draw_object_menu(self, context: bpy.types.Context) -> None:
    self.layout.separator()
    self.layout.menu(VIEW3D_MT_inr.bl_idname)


def draw_edit_mesh_menu(self, context: bpy.types.Context) -> None:
    """Mesh Edit Mode's Vertex menu: Closest Points from the selected vertices (the field selected too)."""
    self.layout.separator()
    self.layout.operator("inr.closest_points", icon="SNAP_NORMAL")
