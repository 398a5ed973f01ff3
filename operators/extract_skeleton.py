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
from bpy.props import BoolProperty, FloatProperty, IntProperty

from ..inr_blender.fileio import loose_edges
from ..inr_blender.wire.client import JobOutcome
from .common.bridge import InputError, create_mesh_object, geometry_node_group, make_active
from .common.field import FieldJobOperator

SPHERES_GROUP = "INR Medial Spheres"
SKELETON_RADIUS = "radius"  # the point attribute of a skeleton mesh that holds each medial sphere's radius
# The operator's settings and the field's (the panel's) that stand in when the caller does not set them.
FIELD_SETTINGS = {
    "delta": "skeleton_delta",
    "num_surface_samples": "skeleton_surface_samples",
    "time_limit": "skeleton_time_limit",
    "show_spheres": "skeleton_spheres",
}


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
    bl_label = "Extract Skeleton"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "extract_skeleton"
    field_settings = FIELD_SETTINGS

    # When not set, each comes from the field's own settings (the Skeleton box of the panel).
    delta: FloatProperty(
        name="δ", default=0.02, min=1e-4, soft_max=0.2, precision=3, options={"SKIP_SAVE"},
        description="Coverage tolerance, as a fraction of the shape's size (its longest half-extent): larger gives fewer medial spheres, a coarser skeleton",
    )
    num_surface_samples: IntProperty(
        name="Surface Samples", default=2000, min=16, soft_max=20000, options={"SKIP_SAVE"},
        description="Points spread on the field's surface that the medial spheres must cover",
    )
    time_limit: FloatProperty(
        name="MILP Time Limit", default=60.0, min=0.1, soft_max=600.0, subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE", options={"SKIP_SAVE"},
        description="Most time for the set-cover solver; past it the best cover found is used (not proven optimal)",
    )
    show_spheres: BoolProperty(
        name="Medial Spheres", default=True, options={"SKIP_SAVE"},
        description="Also add an object that shows each skeletal point's medial sphere (geometry nodes on the skeleton's points)",
    )

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
            context, f"{field.name}_skeleton", vertices, triangles, matrix_world=field.matrix_world.copy(),
            edges=loose_edges(a["edges"], triangles), point_attributes={SKELETON_RADIUS: a["radius"]},
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

        s = field.inr_field
        s.has_skeleton = True
        s.skeleton_vertices = int(result.get("num_vertices", len(vertices)))
        s.skeleton_edges = int(result.get("num_edges", len(a["edges"])))
        s.skeleton_triangles = int(result.get("num_triangles", len(triangles)))
        s.skeleton_candidates = int(result.get("num_candidates") or 0)
        s.skeleton_optimal = bool(result.get("optimal"))
        s.skeleton_cover_message = str(result.get("cover_message") or "")
        s.skeleton_uncovered = int(result.get("uncovered") or 0)
        s.skeleton_seconds = float(result.get("seconds") or 0.0)
        s.skeleton_delta_used = float(self.delta)
        cover = "optimal cover" if s.skeleton_optimal else f"cover not proven optimal: {s.skeleton_cover_message}"
        self.report(
            {"INFO"},
            f"Extracted a skeleton of {s.skeleton_vertices} points, {s.skeleton_edges} edges, {s.skeleton_triangles} triangles "
            f"from {s.skeleton_candidates} candidates at δ {self.delta:g} ({cover}) in {s.skeleton_seconds:.1f} s",
        )
