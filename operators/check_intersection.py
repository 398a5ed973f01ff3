"""Check Intersection: whether the active field's surface meets another field's or a mesh's, certified by range
analysis (Sharp & Jacobson 2022) inside the active field's domain cube.

Select the other surface, then the field (active): a signed distance field (its checkpoint goes along) or a mesh
(its triangles in world space, modifiers applied). The verdict is 'disjoint' (certified: no box can hold both
surfaces), 'intersecting' (a witness point lies on both) or 'unknown' (neither at the deepest subdivision). It is
reported and stored on the field for the panel. The boxes range analysis could not rule out become a wireframe
object ``<field>_intersection`` (12 edges per box, in the field's frame: it takes the field's transform), and an
intersection's witness an Empty ``<field>_witness``. A disjoint pair leaves no boxes, so nothing is added. The
query follows the field objects' transforms: another field sits where its object puts it relative to the active
one (the map between the two objects' local frames, each object's cube [-1, 1]^3 being its field's domain), both
moved, turned or scaled, uniformly or not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import IntProperty

from ..inr_blender.wire.client import JobOutcome
from ..properties.defaults import enum_item
from .common.bridge import InputError, create_mesh_object, make_active, object_geometry
from .common.field import RangeQueryOperator, active_field, described, evaluations, field_frame, other_checkpoint

# A box's corners (bit i of the index picks the upper bound on axis i) and its 12 edges (corners differing in one bit).
_CORNERS = np.array([[(c >> axis) & 1 for axis in range(3)] for c in range(8)], dtype=bool)
_EDGES = np.array([(a, a | (1 << axis)) for a in range(8) for axis in range(3) if not a & (1 << axis)], dtype=np.int32)


def box_edges(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The corners (8K, 3) and edges (12K, 2) of K axis-aligned boxes."""
    corners = np.where(_CORNERS[None], upper[:, None, :], lower[:, None, :]).reshape(-1, 3)
    edges = (_EDGES[None] + 8 * np.arange(len(lower))[:, None, None]).reshape(-1, 2)
    return corners, edges


class INR_OT_check_intersection(RangeQueryOperator, bpy.types.Operator):
    """Certify whether the active field's surface meets the other selected field's or mesh's: disjoint, intersecting (with a witness) or unknown"""

    bl_idname = "inr.check_intersection"
    menu_entry = ("ranges", 3, "SELECT_INTERSECT")  # the Object menu: section, order, icon
    bl_label = "Check Intersection"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "check_intersection"
    uniform_scale = False  # boxes and witnesses need no distances: any scale of either field is fine

    max_depth: IntProperty(
        name="Max Depth",
        default=6,
        min=0,
        soft_max=9,
        description="Subdivisions of the field's domain cube at most (boxes of 1/2^depth of its side); deeper settles more 'unknown' cases",
    )

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field = active_field(context, operation=self.bl_label)
        others = [o for o in context.selected_objects if o != field]
        if len(others) != 1:
            what = "nothing else is selected" if not others else f"{len(others)} objects are selected besides it"
            raise InputError(f"{what}: select one signed distance field or mesh to check '{field.name}' against")
        other = others[0]
        if not (other.type == "MESH" or (other.inr_field.is_field and other.inr_field.kind == "SDF")):
            raise InputError(f"'{other.name}' is {described(other)}: check '{field.name}' against a signed distance field or a mesh")
        if other.type == "MESH":
            arrays, _ = object_geometry(context, [other])
            if "vertices" not in arrays:
                raise InputError(f"'{other.name}' has no faces: check against a mesh with faces")
            second_params, second = {}, {"vertices": arrays["vertices"], "faces": arrays["faces"]}
        else:
            second_params, second = other_checkpoint(context, other)
        field, params, arrays = self.query_job(context)
        if "vertices" in second:  # the mesh in the field's frame
            second["vertices"] = self.to_field(second["vertices"])
        else:  # the map from the other field's local frame to the active field's, through the world
            second_params["other_matrix"] = np.linalg.solve(self._frame, field_frame(other, uniform=False)[0]).tolist()
        params.update(second_params, max_depth=self.max_depth)
        arrays.update(second)
        self._other = other.name
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        a, result = outcome.arrays, outcome.params
        verdict = str(result.get("verdict"))
        if verdict not in ("disjoint", "intersecting", "unknown"):
            raise InputError(f"the backend sent an unknown verdict {verdict!r}")
        lower = np.asarray(a.get("lower", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
        upper = np.asarray(a.get("upper", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
        shown = ""
        if len(lower):
            corners, edges = box_edges(lower, upper)
            boxes = create_mesh_object(
                context, f"{field.name}_intersection", corners, np.zeros((0, 3), dtype=np.int32), edges=edges, matrix_world=field.matrix_world.copy()
            )  # boxes in the field's frame: they follow it
            boxes.display_type = "WIRE"
            created.append(boxes)
            shown = f"; {len(lower)} box{'es' if len(lower) != 1 else ''} in '{boxes.name}'"
            if result.get("witness") is not None:
                witness = bpy.data.objects.new(f"{field.name}_witness", None)
                witness.empty_display_type = "SPHERE"
                witness.empty_display_size = float(0.5 * (upper - lower).max() * self._frame_scale)
                witness.location = tuple(float(c) for c in self.from_field(np.asarray(result["witness"])[None])[0])
                (context.collection or context.scene.collection).objects.link(witness)
                created.append(witness)
                shown += f", witness '{witness.name}'"
            make_active(context, boxes)

        s = field.inr_field.ranges.intersection
        s.verdict = enum_item(verdict)
        s.other = self._other
        s.boxes = len(lower)
        s.seconds = float(result.get("seconds") or 0.0)
        at = ""
        if result.get("witness") is not None:
            at = " at (" + ", ".join(f"{c:.4g}" for c in self.from_field(np.asarray(result["witness"])[None])[0]) + ")"
        self.report(
            {"INFO"}, f"'{field.name}' and '{self._other}': {verdict}{at} (depth {result.get('depth', self.max_depth)}; {evaluations(result)}){shown}"
        )
