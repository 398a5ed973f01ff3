"""Reconstruct from Scan: complete a partial scan with the closest shape of a shape space (DeepSDF's shape completion,
Park 2019): a new code is fitted to the scan with the decoder fixed, and its surface extracted.

The active object is the shape space; the other selected object is the scan: a point cloud (a vertex-only mesh,
maybe with a ``normal`` point attribute, or a Point Cloud object) or a partial mesh (its vertices, with the mesh's
vertex normals). Its points, modifiers applied, go into the space's frame through the field object's transform (the
field object's local frame is the space's), so a scan is read where it sits relative to the field object.

The result is the mesh ``<scan>_completed`` with the field object's transform and, unless ``keep_field`` is off,
the completed shape as an ordinary signed distance field ``<scan>_completed_field`` (method Completed Shape) at the
same place: Extract Mesh, Sample Iso-points and the other field operators work on it. With ``free_space`` the scene
camera is the scanner: points on its rays in front of the scan points go along as known to be outside.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty

from ..inr_blender.wire.client import JobOutcome
from ..properties.common import for_operator, setting_paths
from ..properties.shape_space import RECONSTRUCT_SETTINGS
from .common.bridge import InputError, create_mesh_object, make_active, object_geometry
from .common.field import FieldJobOperator, checkpoints, new_checkpoint_path, new_field
from .common.shape_space import active_shape_space

SCAN_TYPES = {"MESH", "POINTCLOUD"}


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _point_count(context: bpy.types.Context, obj: bpy.types.Object) -> int:
    evaluated = obj.evaluated_get(context.evaluated_depsgraph_get())
    data = evaluated.data
    return len(data.points) if obj.type == "POINTCLOUD" else len(data.vertices)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray | None:
    """Area-weighted vertex normals of a triangle mesh, or None when a vertex is on no (non-degenerate) triangle."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    face_normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, f[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    if not (length > 1e-20).all():
        return None
    return normals / length


class INR_OT_reconstruct_shape(FieldJobOperator, bpy.types.Operator):
    """Complete the selected scan (points or a partial mesh) with the closest shape of the active shape space"""

    bl_idname = "inr.reconstruct_shape"
    menu_entry = ("shape_space", 2, "MOD_SHRINKWRAP")  # the Object menu: section, order, icon
    bl_label = "Reconstruct from Scan"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "reconstruct_shape"
    # the field's settings (the panel's) stand in for those the caller does not set
    field_settings = setting_paths("shape_space.reconstruct", RECONSTRUCT_SETTINGS)

    iterations: for_operator(RECONSTRUCT_SETTINGS["iterations"])
    resolution: for_operator(RECONSTRUCT_SETTINGS["resolution"])
    learning_rate: FloatProperty(name="Learning Rate", default=5e-3, min=1e-6, precision=4, description="Learning rate of the code")
    prior: FloatProperty(name="Code Prior", default=1e-4, min=0.0, precision=6, description="Weight of the code's zero-mean Gaussian prior")
    surface_offset: FloatProperty(
        name="Surface Offset",
        default=0.025,
        min=0.0,
        soft_max=0.1,
        precision=3,
        description="With normals, samples at this distance on both sides of each point, in the space's normalised units",
    )
    use_normals: BoolProperty(
        name="Use Normals", default=True, description="Send the scan's normals when it has them (a normal attribute, or a mesh's faces)"
    )
    keep_field: BoolProperty(name="Keep as Field", default=True, description="Also add the completed shape as a signed distance field object")
    free_space: BoolProperty(
        name="Free Space from Camera",
        default=False,
        description="The scene camera saw the scan: points on its rays in front of the scan are known to be outside the shape",
    )
    free_samples: IntProperty(
        name="Free Points per Ray", default=2, min=1, soft_max=16, description="Free-space points drawn on each scan point's ray"
    )
    seed: IntProperty(name="Seed", default=0, min=0)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        for name in (
            "iterations",
            "resolution",
            "learning_rate",
            "prior",
            "surface_offset",
            "use_normals",
            "keep_field",
            "free_space",
            "free_samples",
            "seed",
        ):
            layout.prop(self, name)

    def _scan(self, context: bpy.types.Context, field: bpy.types.Object) -> bpy.types.Object:
        others = [o for o in context.selected_objects if o != field]
        if not others:
            raise InputError(f"no scan: select the scan (points or a partial mesh) too, with '{field.name}' active")
        if len(others) > 1:
            raise InputError(f"{len(others)} objects selected besides '{field.name}': select one scan (points or a partial mesh)")
        scan = others[0]
        if scan.type not in SCAN_TYPES or scan.inr_field.is_field:
            what = "a field" if scan.inr_field.is_field else _a(scan.type.lower().replace("_", " "))
            raise InputError(
                f"the scan '{scan.name}' is {what}: {self.bl_label} needs points (a vertex-only mesh or a point cloud) or a partial mesh"
            )
        if _point_count(context, scan) == 0:
            raise InputError(f"the scan '{scan.name}' has no points: nothing to reconstruct from")
        return scan

    def _free_points(self, context: bpy.types.Context, points: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Points (local frame) on the rays from the scene camera to the scan points, between the camera (or the
        field's domain, whichever is nearer the scan) and twice the surface offset short of each point."""
        camera = context.scene.camera
        if camera is None:
            raise InputError("Free Space from Camera needs a scene camera: the one that saw the scan")
        local = (points - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T
        eye = (np.array(camera.matrix_world.translation, dtype=np.float64) - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T
        ray = local - eye
        length = np.linalg.norm(ray, axis=1)
        if not (length > 0).all():
            raise InputError(f"the camera '{camera.name}' sits on a scan point")
        start = np.maximum(0.0, 1.0 - 2.0 / length)  # from at most 2 units (the domain's width) in front of the point
        end = 1.0 - 2.0 * self.surface_offset / length
        t = np.random.default_rng(self.seed).uniform(size=(len(local), self.free_samples))
        t = start[:, None] + t * np.clip(end - start, 0.0, None)[:, None]
        return (eye + t[:, :, None] * ray[:, None, :]).reshape(-1, 3).astype(np.float32)

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field = active_shape_space(context, self.bl_label)
        scan = self._scan(context, field)
        field, params, arrays = self.field_job(context, field=field)
        geometry, _names = object_geometry(context, [scan])
        if "points" in geometry:
            points, normals = geometry["points"], geometry.get("normals")
        else:  # a partial mesh: its vertices, with its vertex normals
            points = geometry["vertices"]
            normals = vertex_normals(points, geometry["faces"])
        m = np.array(field.matrix_world, dtype=np.float64)
        linear = m[:3, :3]
        if abs(np.linalg.det(linear)) < 1e-12:
            raise InputError(f"'{field.name}' has a zero scale: its frame cannot take the scan")
        arrays["points"] = ((np.asarray(points, dtype=np.float64) - m[:3, 3]) @ np.linalg.inv(linear).T).astype(np.float32)
        if normals is not None and self.use_normals:
            local = np.asarray(normals, dtype=np.float64) @ linear  # the inverse-transpose of world -> local
            arrays["normals"] = (local / np.maximum(np.linalg.norm(local, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        if self.free_space:
            arrays["free_points"] = self._free_points(context, np.asarray(points, dtype=np.float64), m)
        params.update(
            iterations=self.iterations,
            resolution=self.resolution,
            learning_rate=self.learning_rate,
            prior=self.prior,
            surface_offset=self.surface_offset,
            seed=self.seed,
        )
        self._scan_name, self._has_normals, self._num_points, self._written = scan.name, "normals" in arrays, len(points), []
        self._stored_path = ""
        self._params = {k: v for k, v in params.items() if k != "checkpoint_path"}
        if self.keep_field:  # a remote worker sends the completed shape's weights back instead of writing them
            path, self._stored_path = new_checkpoint_path(f"{scan.name}_completed")
            params.update(checkpoints(context).output(path, "output_checkpoint_path"))
            self._written.append(path)
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        a, result = outcome.arrays, outcome.params
        if not len(a.get("faces", ())):
            raise InputError(
                f"the completed shape has no surface at resolution {self.resolution}: the code fitted to '{self._scan_name}' decodes to nothing"
            )
        frame = field.matrix_world.copy()
        mesh = create_mesh_object(context, f"{self._scan_name}_completed", a["vertices"], a["faces"], a.get("normals"), frame)
        created.append(mesh)
        kept = ""
        if self._stored_path and result.get("checkpoint_path"):
            completed = new_field(context, f"{self._scan_name}_completed_field", outcome, self._stored_path, [self._scan_name], self._params, created)
            completed.matrix_world = frame
            s = completed.inr_field
            s.kind, s.method = "SDF", "LATENT_SHAPE"
            s.shape_space.reconstruct.source_space = field.name
            s.shape_space.reconstruct.fit_error = float(result.get("fit_error") or 0.0)
            s.num_points, s.has_normals = self._num_points, self._has_normals
            self._written = []  # the field keeps its checkpoint
            kept = f"; kept as the field '{completed.name}'"
        make_active(context, mesh)
        normals = "with normals" if self._has_normals else "without normals"
        self.report(
            {"INFO"},
            f"Completed '{self._scan_name}' ({normals}) from '{field.name}': fit error {float(result.get('fit_error') or 0.0):.4g}, "
            f"'{mesh.name}' with {len(a['vertices'])} vertices{kept}",
        )
