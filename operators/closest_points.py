"""Closest Points: for each query vertex, the closest point of the active field's surface, by branch and bound
over boxes with range analysis (Sharp & Jacobson 2022): certified on any field the range rules cover, distance
field or not (a radiance field: its density surface at the field's threshold).

Which vertices are the queries:
- in Object Mode, the field is active and one mesh is selected besides it: all of that mesh's vertices;
- in Edit Mode (the mesh being edited is active), the field is selected too: the mesh's selected vertices.
The mesh's own vertices count (modifiers not applied), in world space. The result is a mesh ``<field>_closest``
in world space: the closest points, then the queries, an edge joining each query to its closest point, and
the point attribute ``distance`` (world units, on both ends of each edge).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import FloatProperty

from ..inr_blender.wire.client import JobOutcome
from .common.bridge import InputError, create_mesh_object, make_active, mesh_vertices
from .common.field import RangeQueryOperator, active_field, described, evaluations

DISTANCE_ATTRIBUTE = "distance"


class INR_OT_closest_points(RangeQueryOperator, bpy.types.Operator):
    """Find the closest point of the field's surface to each query vertex (the other selected mesh's; in Edit Mode its selected vertices)"""

    bl_idname = "inr.closest_points"
    menu_entry = ("ranges", 2, "SNAP_NORMAL")  # the Object menu: section, order, icon
    bl_label = "Closest Points"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "closest_points"

    tolerance: FloatProperty(
        name="Tolerance",
        default=0.0,
        min=0.0,
        soft_max=0.1,
        precision=5,
        subtype="DISTANCE",
        unit="LENGTH",
        description="Size of the smallest boxes searched, in world units; 0: a thousandth of the field's half-size",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode in {"OBJECT", "EDIT_MESH"}

    def _queries(self, context: bpy.types.Context) -> tuple[bpy.types.Object, bpy.types.Object, np.ndarray]:
        """(field, query mesh, world-space query points) by the rule in the module's docstring."""
        if context.mode == "EDIT_MESH":
            mesh = context.edit_object
            fields = [o for o in context.selected_objects if o.inr_field.is_field]
            if len(fields) != 1:
                raise InputError(f"in Edit Mode, select one field besides '{mesh.name}' (Ctrl+click it in the Outliner); {len(fields)} selected")
            return fields[0], mesh, mesh_vertices(mesh, selected_only=True)
        field = active_field(context, operation=self.bl_label)
        others = [o for o in context.selected_objects if o != field]
        if not others:
            raise InputError(f"no query mesh: select a mesh whose vertices are the queries, with '{field.name}' active")
        if len(others) > 1:
            raise InputError(f"{len(others)} objects selected besides '{field.name}': select one mesh whose vertices are the queries")
        if others[0].type != "MESH" or others[0].inr_field.is_field:
            raise InputError(f"'{others[0].name}' is {described(others[0])}: {self.bl_label} needs a mesh whose vertices are the queries")
        return field, others[0], mesh_vertices(others[0])

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field, mesh, points = self._queries(context)
        field, params, arrays = self.query_job(context, field)
        if self.tolerance > 0:
            params["tolerance"] = self.tolerance / self._frame_scale
        self._points, self._mesh = points, mesh.name
        arrays["points"] = self.to_field(points)
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        a, n = outcome.arrays, len(self._points)
        if any(a.get(k) is None or len(a[k]) != n for k in ("closest", "distance", "lower", "upper")):
            raise InputError(f"the backend sent closest points for the wrong number of queries (expected {n})")
        distance = (a["distance"] * self._frame_scale).astype(np.float32)  # world units
        closest = self.from_field(a["closest"])
        edges = np.stack([np.arange(n), n + np.arange(n)], axis=1)
        obj = create_mesh_object(
            context,
            f"{field.name}_closest",
            np.concatenate([closest, self._points]),
            np.zeros((0, 3), dtype=np.int32),
            edges=edges,
            point_attributes={DISTANCE_ATTRIBUTE: np.concatenate([distance, distance])},
        )
        created.append(obj)
        if context.mode == "OBJECT":
            make_active(context, obj)

        s = field.inr_field.ranges.closest
        s.has_result = True
        s.count = n
        s.min, s.max = float(distance.min()), float(distance.max())
        s.seconds = float(outcome.params.get("seconds") or 0.0)
        gap = float((a["upper"] - a["lower"]).max()) * self._frame_scale
        self.report(
            {"INFO"},
            f"Closest points of {n} vertices of '{self._mesh}' on '{field.name}': distance {s.min:.4g} to {s.max:.4g} "
            f"(certified within {gap:.2g}); {evaluations(outcome.params)}; into '{obj.name}'",
        )
