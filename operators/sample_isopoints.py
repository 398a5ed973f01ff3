"""Sample Iso-points: points on the zero level set of the active signed distance field.

The backend projects points onto the surface by Newton steps along the field's gradient, spreads
them evenly by tangential repulsion and can add more where the surface bends (edge-aware
upsampling), after Wang Yifan et al. 2021 (Iso-points). The points come back as a mesh of
vertices only, named ``<field>_isopoints``, with the point attributes ``normal`` (the field's unit
gradient) and ``residual`` (|f| at the point after projection). A geometry-nodes modifier (the
group "INR Iso-points") shows and renders them as points of a given radius; it keeps the mesh's
vertices too, so that selecting the iso-points and running Fit SDF reads them with their normals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy

from ..inr_blender.wire.client import JobOutcome
from ..properties.common import for_operator, setting_paths
from ..properties.isopoints import SETTINGS
from .common.bridge import InputError, create_mesh_object, geometry_node_group, make_active
from .common.field import FieldJobOperator

ISOPOINTS_GROUP = "INR Iso-points"
RADIUS_SOCKET = "Radius"  # the group's float input the modifier sets: the points' radius in the object's local units
NORMAL_ATTRIBUTE = "normal"  # what bridge.selected_geometry reads back as a point cloud's normals
RESIDUAL_ATTRIBUTE = "residual"
# The operator's settings and the field's (the panel's) that stand in when the caller does not set them.
FIELD_SETTINGS = setting_paths("isopoints", SETTINGS)
FALLBACK_RADIUS = 0.002  # of the field's half-size, when the spacing is unknown (a single point)


def _radius_input(group: bpy.types.NodeTree):
    for item in group.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name == RADIUS_SOCKET and item.socket_type == "NodeSocketFloat":
            return item
    return None


def isopoints_group() -> tuple[bpy.types.NodeTree, bool]:
    """The geometry-nodes group that turns a mesh's vertices into render points of radius "Radius".

    It joins the input mesh back in: its loose vertices neither show in Object Mode nor render,
    and they keep the evaluated object readable as a point cloud with normals (Fit SDF on it).
    Returns (group, created): an existing group of that name that still has its Radius input is reused.
    """

    def build(group: bpy.types.NodeTree, group_in: bpy.types.Node, group_out: bpy.types.Node) -> None:
        radius = _radius_input(group)
        radius.default_value, radius.min_value = 0.01, 0.0
        radius.description = "Radius of the points, in the object's local units"
        nodes, links = group.nodes, group.links
        to_points = nodes.new("GeometryNodeMeshToPoints")
        to_points.location = (-250, -100)
        to_points.mode = "VERTICES"
        join = nodes.new("GeometryNodeJoinGeometry")
        join.location = (0, 0)
        links.new(group_in.outputs["Geometry"], to_points.inputs["Mesh"])
        links.new(group_in.outputs[RADIUS_SOCKET], to_points.inputs["Radius"])
        links.new(to_points.outputs["Points"], join.inputs["Geometry"])
        links.new(group_in.outputs["Geometry"], join.inputs["Geometry"])
        links.new(join.outputs["Geometry"], group_out.inputs["Geometry"])

    return geometry_node_group(ISOPOINTS_GROUP, build, lambda group: _radius_input(group) is not None, (RADIUS_SOCKET,))


class INR_OT_sample_isopoints(FieldJobOperator, bpy.types.Operator):
    """Sample points on the surface of the active signed distance field (iso-points), with the field's normals"""

    bl_idname = "inr.sample_isopoints"
    menu_entry = ("sdf", 4, "OUTLINER_DATA_POINTCLOUD")  # the Object menu: section, order, icon
    bl_label = "Sample Iso-points"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "sample_isopoints"
    field_settings = FIELD_SETTINGS

    # When not set, each comes from the field's own settings (the Iso-points box of the panel).
    count: for_operator(SETTINGS["count"])
    resample: for_operator(SETTINGS["resample"])
    upsample: for_operator(SETTINGS["upsample"])
    point_radius: for_operator(SETTINGS["point_radius"])

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field, params, arrays = self.field_job(context, "SDF")
        params.update(space="local", count=self.count, resample=self.resample, upsample=self.upsample)
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        a, result = outcome.arrays, outcome.params
        points = a["points"]
        if not len(points):
            raise InputError(f"no iso-point of '{field.name}' converged to its surface")
        # local frame, placed by the field's matrix (a uniform scale and a translation, so the local normals hold)
        obj = create_mesh_object(
            context,
            f"{field.name}_isopoints",
            points,
            np.zeros((0, 3), dtype=np.int32),
            matrix_world=field.matrix_world.copy(),
            point_attributes={NORMAL_ATTRIBUTE: a["normals"], RESIDUAL_ATTRIBUTE: a["residual"]},
        )
        created.append(obj)
        scale = float(field.matrix_world.to_scale()[0]) or 1.0
        radius = self.point_radius  # world units
        if radius <= 0.0:
            radius = 0.5 * float(outcome.params.get("spacing_mean") or 0.0) * scale or FALLBACK_RADIUS * scale  # local spacing
        group, new_group = isopoints_group()
        if new_group:
            created.append(group)
        modifier = obj.modifiers.new("Iso-points", "NODES")
        modifier.node_group = group
        modifier[_radius_input(group).identifier] = radius / scale  # the modifier works in the object's local units
        make_active(context, obj)

        s = field.inr_field.isopoints
        s.has_result = True
        s.points = int(result.get("num_points", len(points)))
        s.discarded = int(result.get("num_discarded") or 0)
        s.upsampled = int(result.get("num_upsampled") or 0)
        s.spacing_cv = float(result.get("spacing_cv") or 0.0)
        s.seconds = float(result.get("seconds") or 0.0)
        s.radius_used = radius
        added = f", {s.upsampled} added by upsampling" if s.upsampled else ""
        self.report(
            {"INFO"},
            f"Sampled {s.points} iso-points on '{field.name}' ({s.discarded} discarded{added}); spacing CV {s.spacing_cv:.3f}; {s.seconds:.1f} s",
        )
