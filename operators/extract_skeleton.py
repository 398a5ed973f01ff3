"""Extract Skeleton: the skeletal complex (medial axis) of the active signed distance field.

The backend traces skeletal points inward from the field's surface, keeps the fewest that cover
it (Coverage Axis) and connects them (a regular triangulation), after Clémot & Digne 2023; a
field fitted with the Neural Skeleton method gives the cleanest skeleton. The result comes back
as a mesh object (points, loose edges, triangles, and each point's medial-sphere radius in the
point attribute ``radius``) and, optionally, a second object that shows the medial spheres with
geometry nodes (instances of one sphere, scaled by ``radius``), so that editing the skeleton's
points or radii moves the spheres too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy

from ..inr_blender.fileio import loose_edges
from ..inr_blender.wire.client import JobOutcome
from ..properties.common import for_operator, setting_paths
from ..properties.skeleton import SETTINGS
from .common.bridge import InputError, create_mesh_object, geometry_node_group, make_active
from .common.field import FieldJobOperator

SPHERES_GROUP = "INR Medial Spheres"
SKELETON_RADIUS = "radius"  # the point attribute of a skeleton mesh that holds each medial sphere's radius
# The operator's settings and the field's (the panel's) that stand in when the caller does not set them.
FIELD_SETTINGS = setting_paths("skeleton", SETTINGS)


def medial_spheres_group() -> tuple[bpy.types.NodeTree, bool]:
    """The geometry-nodes group that puts a unit UV sphere, scaled by ``radius``, on every point.

    Returns (group, created): an existing group of that name is reused (with any edits the user made).
    """

    def build(group: bpy.types.NodeTree, group_in: bpy.types.Node, group_out: bpy.types.Node) -> None:
        nodes, links = group.nodes, group.links
        sphere = nodes.new("GeometryNodeMeshUVSphere")
        sphere.location = (-600, -150)
        sphere.inputs["Segments"].default_value = 16
        sphere.inputs["Rings"].default_value = 8
        sphere.inputs["Radius"].default_value = 1.0
        smooth = nodes.new("GeometryNodeSetShadeSmooth")
        smooth.location = (-400, -150)
        radius = nodes.new("GeometryNodeInputNamedAttribute")
        radius.location = (-400, -350)
        radius.data_type = "FLOAT"
        radius.inputs["Name"].default_value = SKELETON_RADIUS
        instance = nodes.new("GeometryNodeInstanceOnPoints")
        instance.location = (-150, 0)
        links.new(group_in.outputs[0], instance.inputs["Points"])
        links.new(sphere.outputs["Mesh"], smooth.inputs["Geometry"])
        links.new(smooth.outputs["Geometry"], instance.inputs["Instance"])
        links.new(radius.outputs["Attribute"], instance.inputs["Scale"])
        links.new(instance.outputs["Instances"], group_out.inputs[0])

    return geometry_node_group(SPHERES_GROUP, build)


class INR_OT_extract_skeleton(FieldJobOperator, bpy.types.Operator):
    """Extract the skeleton (medial axis) of the active signed distance field: points with medial-sphere radii, edges and triangles"""

    bl_idname = "inr.extract_skeleton"
    menu_entry = ("sdf", 3, "OUTLINER_DATA_ARMATURE")  # the Object menu: section, order, icon
    bl_label = "Extract Skeleton"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "extract_skeleton"
    field_settings = FIELD_SETTINGS

    # When not set, each comes from the field's own settings (the Skeleton box of the panel).
    delta: for_operator(SETTINGS["delta"])
    num_surface_samples: for_operator(SETTINGS["num_surface_samples"])
    time_limit: for_operator(SETTINGS["time_limit"])
    show_spheres: for_operator(SETTINGS["show_spheres"])

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field, params, arrays = self.field_job(context, "SDF")
        params.update(space="local", delta=self.delta, num_surface_samples=self.num_surface_samples, time_limit=self.time_limit)
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        a, result = outcome.arrays, outcome.params
        vertices, triangles = a["vertices"], a["triangles"]
        if not len(vertices):
            raise InputError(f"the skeleton of '{field.name}' came back without points")
        # local frame: the field's matrix places the points and scales the radii with them, as Extract Mesh
        skeleton = create_mesh_object(
            context,
            f"{field.name}_skeleton",
            vertices,
            triangles,
            matrix_world=field.matrix_world.copy(),
            edges=loose_edges(a["edges"], triangles),
            point_attributes={SKELETON_RADIUS: a["radius"]},
        )
        created.append(skeleton)
        if self.show_spheres:
            group, new_group = medial_spheres_group()
            if new_group:
                created.append(group)
            spheres = bpy.data.objects.new(f"{field.name}_medial_spheres", skeleton.data)  # the same points and radii
            created.append(spheres)
            modifier = spheres.modifiers.new("Medial Spheres", "NODES")
            modifier.node_group = group
            spheres.parent = skeleton  # identity parent inverse: it sits exactly on the skeleton, and follows it
            spheres.matrix_world = skeleton.matrix_world.copy()
            (context.collection or context.scene.collection).objects.link(spheres)
        make_active(context, skeleton)

        s = field.inr_field.skeleton
        s.has_result = True
        s.vertices = int(result.get("num_vertices", len(vertices)))
        s.edges = int(result.get("num_edges", len(a["edges"])))
        s.triangles = int(result.get("num_triangles", len(triangles)))
        s.candidates = int(result.get("num_candidates") or 0)
        s.optimal = bool(result.get("optimal"))
        s.cover_message = str(result.get("cover_message") or "")
        s.uncovered = int(result.get("uncovered") or 0)
        s.seconds = float(result.get("seconds") or 0.0)
        s.delta_used = float(self.delta)
        cover = "optimal cover" if s.optimal else f"cover not proven optimal: {s.cover_message}"
        self.report(
            {"INFO"},
            f"Extracted a skeleton of {s.vertices} points, {s.edges} edges, {s.triangles} triangles "
            f"from {s.candidates} candidates at δ {self.delta:g} ({cover}) in {s.seconds:.1f} s",
        )
