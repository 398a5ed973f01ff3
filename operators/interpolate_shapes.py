"""Interpolate Shapes: the shapes between two shapes of the active shape space, decoded from the codes on the line
between theirs (DeepSDF, Park 2019).

The two shapes are ``a`` and ``b`` (their indices in the space); when neither is set, the two selected objects
that are shapes of the space, else the space's first two. ``count`` shapes run from a to b, both included. Each
in-between sits in world space at the lerp of a's and b's centers and scales (the backend sends them), through the
field object's transform, so the results follow the field object when it is moved.

``output`` says what comes into the scene:
- SHAPE_KEYS: one mesh, the first shape's, with a shape key per in-between shape (the first mesh's vertices moved
  onto each in-between surface), animated over the frames: ``frames_per_shape`` frames from one to the next,
  from ``frame_start``; its place and size are animated from a's to b's too;
- SEQUENCE: one mesh per in-between shape, each visible (in the viewport and in renders) on its own frames only;
- ROW: one mesh per in-between shape, in a row along +X 1.2 widths apart, from 1.2 widths to the right of the
  two shapes (their height, depth and size are still the lerp of the two shapes');
- AUTO (the default): shape keys when the backend finds them faithful (every key close to its surface, no fold),
  else a sequence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import bpy
from bpy.props import IntProperty
from mathutils import Matrix

from ..inr_blender.wire.client import JobOutcome
from ..properties.common import for_operator, setting_paths
from ..properties.shape_space import INTERPOLATE_SETTINGS
from .common.bridge import InputError, create_mesh_object
from .common.field import FieldJobOperator
from .common.shape_space import active_shape_space, checked_shape, shape_frame, shape_of_object

SHIFT = 1.2  # a row's shapes sit this many widths apart along +X


def _fcurves(idblock: bpy.types.ID) -> list:
    """The F-curves of ``idblock``'s action (the slot it uses, on Blender 4.4 and newer)."""
    anim = idblock.animation_data
    if anim is None or anim.action is None:
        return []
    try:
        from bpy_extras import anim_utils

        channelbag = anim_utils.action_get_channelbag_for_slot(anim.action, anim.action_slot)
        if channelbag is not None:
            return list(channelbag.fcurves)
    except (ImportError, AttributeError):  # Blender 4.2, 4.3: one slot-less action
        pass
    return list(anim.action.fcurves)


def _set_interpolation(idblock: bpy.types.ID, interpolation: str) -> None:
    for fcurve in _fcurves(idblock):
        for point in fcurve.keyframe_points:
            point.interpolation = interpolation


def _split(arrays: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The in-between meshes: (vertices, faces) each, faces local to each mesh."""
    vc, fc = np.asarray(arrays["vertex_counts"], dtype=np.int64), np.asarray(arrays["face_counts"], dtype=np.int64)
    if vc.sum() != len(arrays["vertices"]) or fc.sum() != len(arrays["faces"]) or len(vc) != len(fc):
        raise InputError("the backend sent in-between meshes whose counts do not add up")
    vs, fs = np.split(arrays["vertices"], np.cumsum(vc)[:-1]), np.split(arrays["faces"], np.cumsum(fc)[:-1])
    return list(zip(vs, fs))


class INR_OT_interpolate_shapes(FieldJobOperator, bpy.types.Operator):
    """Make the shapes between two shapes of the active shape space (a row, a sequence over frames, or one mesh with shape keys)"""

    bl_idname = "inr.interpolate_shapes"
    menu_entry = ("shape_space", 3, "IPO_EASE_IN_OUT")  # the Object menu: section, order, icon
    bl_label = "Interpolate Shapes"
    bl_options = {"REGISTER", "UNDO"}
    job_name = "interpolate_shapes"
    # the field's settings (the panel's) stand in for those the caller does not set
    field_settings = setting_paths("shape_space.interpolate", INTERPOLATE_SETTINGS)

    a: IntProperty(
        name="From",
        default=-1,
        min=-1,
        options={"SKIP_SAVE"},
        description="Index of the first shape in the space (-1: the selected shapes', else the first)",
    )
    b: IntProperty(
        name="To",
        default=-1,
        min=-1,
        options={"SKIP_SAVE"},
        description="Index of the last shape in the space (-1: the selected shapes', else the second)",
    )
    count: for_operator(INTERPOLATE_SETTINGS["count"])
    output: for_operator(INTERPOLATE_SETTINGS["output"])
    resolution: for_operator(INTERPOLATE_SETTINGS["resolution"])
    frame_start: IntProperty(
        name="Start Frame", default=1, options={"SKIP_SAVE"}, description="Frame of the first shape (when not set: the scene's start)"
    )
    frames_per_shape: IntProperty(name="Frames per Shape", default=10, min=1, soft_max=250, description="Frames from one shape to the next")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        for name in ("a", "b", "count", "output", "resolution", "frame_start", "frames_per_shape"):
            layout.prop(self, name)

    def _pair(self, context: bpy.types.Context, field: bpy.types.Object) -> tuple[int, int]:
        a, b = self.a, self.b
        if a < 0 and b < 0:  # the two selected objects that are shapes of the space
            picked = sorted({shape_of_object(field, o) for o in context.selected_objects if o != field} - {None})
            if len(picked) == 2:
                a, b = picked
        if a < 0:
            a = 0 if b != 0 else 1
        if b < 0:
            b = 0 if a != 0 else 1
        checked_shape(field, a)
        checked_shape(field, b)
        if a == b:
            raise InputError(f"both ends are shape {a} ('{field.inr_field.shape_space.shapes[a].name}'): pick two different shapes")
        return a, b

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        field = active_shape_space(context, self.bl_label)
        a, b = self._pair(context, field)
        field, params, arrays = self.field_job(context, field=field)
        if not self.properties.is_property_set("frame_start"):
            self.frame_start = context.scene.frame_start
        params.update(a=a, b=b, count=self.count, resolution=self.resolution, correspond=self.output in ("AUTO", "SHAPE_KEYS"))
        self._a, self._b = a, b
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        field = self.the_field()
        shapes = field.inr_field.shape_space.shapes
        if max(self._a, self._b) >= len(shapes):
            raise InputError(f"the shape space '{field.name}' changed while the job ran")
        arrays, result = outcome.arrays, outcome.params
        meshes = _split(arrays)
        count = len(meshes)
        centers, scales = result.get("centers") or [], result.get("scales") or []
        if len(centers) != count or len(scales) != count:
            raise InputError(f"the backend sent {len(centers)} centers and {len(scales)} scales for {count} shapes")
        frames = [shape_frame(field, centers[i], scales[i]) for i in range(count)]
        t = np.asarray(arrays.get("t", np.linspace(0.0, 1.0, count)), dtype=np.float64)
        name = f"{shapes[self._a].name}_to_{shapes[self._b].name}"
        keys_ok = bool(result.get("shape_keys_ok")) and "key_vertices" in arrays
        output = self.output
        why = ""
        if output == "AUTO":
            output = "SHAPE_KEYS" if keys_ok else "SEQUENCE"
            if not keys_ok and "key_error" in arrays:
                why = f" (shape keys would be off their surfaces by up to {float(np.max(arrays['key_error'])):.3g}, or fold)"
        if output == "SHAPE_KEYS":
            if "key_vertices" not in arrays:
                raise InputError("the backend sent no corresponding vertices for shape keys: use the Sequence or Row output")
            if not len(meshes[0][1]):
                raise InputError(f"the first shape has no surface at resolution {self.resolution}: no mesh to put shape keys on")
            objects = [self._shape_keys(context, name, meshes[0], arrays["key_vertices"], t, frames, created)]
        else:
            objects = []
            for i, (vertices, faces) in enumerate(meshes):
                obj = create_mesh_object(context, f"{name}_{i}", vertices, faces, None, frames[i])
                created.append(obj)
                objects.append(obj)
            if output == "ROW":
                self._row(objects, meshes, frames)
            else:
                self._sequence(context, objects)
        for other in context.selected_objects:
            other.select_set(False)
        for obj in objects:
            obj.select_set(True)
        context.view_layer.objects.active = objects[0]
        empty = sum(1 for _v, f in meshes if not len(f))
        holes = f"; {empty} of them had no surface at resolution {self.resolution}" if empty else ""
        last = self.frame_start + (count - 1) * self.frames_per_shape
        made = {
            "SHAPE_KEYS": f"'{objects[0].name}' with {count - 1} shape keys over frames {self.frame_start}-{last}",
            "SEQUENCE": f"a sequence of {count} meshes over frames {self.frame_start}-{last}{why}",
            "ROW": f"a row of {count} meshes along +X",
        }[output]
        self.report(
            {"INFO" if not empty else "WARNING"},
            f"Interpolated '{shapes[self._a].name}' to '{shapes[self._b].name}' in {count} shapes: {made}{holes}",
        )

    # -- the three outputs ------------------------------------------------------------------------------
    def _frame(self, i: int) -> int:
        return self.frame_start + i * self.frames_per_shape

    def _shape_keys(
        self,
        context: bpy.types.Context,
        name: str,
        first: tuple[np.ndarray, np.ndarray],
        key_vertices: np.ndarray,
        t: np.ndarray,
        frames: list[Matrix],
        created: list,
    ) -> bpy.types.Object:
        """One mesh (the first shape's) with a shape key per in-between, each at full strength on its own frame."""
        vertices, faces = first
        count = len(frames)
        key_vertices = np.asarray(key_vertices, dtype=np.float32)
        if key_vertices.shape != (count, len(vertices), 3):
            raise InputError(f"the backend sent corresponding vertices of shape {key_vertices.shape} for {count} meshes of {len(vertices)} vertices")
        obj = create_mesh_object(context, name, vertices, faces, None, frames[0])
        created.append(obj)
        if len(obj.data.vertices) != len(vertices):
            raise InputError(f"the first shape's mesh lost vertices on import ({len(vertices)} -> {len(obj.data.vertices)}): use the Sequence output")
        obj.shape_key_add(name="Basis", from_mix=False)
        keys = []
        for i in range(1, count):
            key = obj.shape_key_add(name=f"t {t[i]:.3g}", from_mix=False)
            key.data.foreach_set("co", key_vertices[i].ravel())
            keys.append(key)
        for i, key in enumerate(keys, start=1):  # a hat over the frames: 0 at the neighbours' frames, 1 at its own
            for j, value in ((i - 1, 0.0), (i, 1.0), (i + 1, 0.0)):
                if j < count:
                    key.value = value
                    key.keyframe_insert("value", frame=self._frame(j))
            key.value = 0.0
        _set_interpolation(obj.data.shape_keys, "LINEAR")
        moving = any(not np.allclose(np.array(f), np.array(frames[0]), atol=1e-7) for f in frames[1:])
        if moving:  # from a's place and size to b's
            for i, frame in enumerate(frames):
                obj.matrix_world = frame
                obj.keyframe_insert("location", frame=self._frame(i))
                obj.keyframe_insert("scale", frame=self._frame(i))
            _set_interpolation(obj, "LINEAR")
            obj.matrix_world = frames[0]
        return obj

    def _sequence(self, context: bpy.types.Context, objects: list[bpy.types.Object]) -> None:
        """Each object visible, in the viewport and in renders, from its frame to the next one's (the last: onwards)."""
        count, now = len(objects), context.scene.frame_current
        for i, obj in enumerate(objects):
            keys = [(self._frame(i), False)]
            if i > 0:
                keys.insert(0, (self._frame(0), True))
            if i < count - 1:
                keys.append((self._frame(i + 1), True))
            for frame, hidden in keys:
                for prop in ("hide_viewport", "hide_render"):
                    setattr(obj, prop, hidden)
                    obj.keyframe_insert(prop, frame=frame)
            _set_interpolation(obj, "CONSTANT")
            hidden_now = [h for f, h in keys if f <= now]
            hidden_now = hidden_now[-1] if hidden_now else keys[0][1]
            obj.hide_viewport = obj.hide_render = hidden_now

    @staticmethod
    def _row(objects: list[bpy.types.Object], meshes: list[tuple[np.ndarray, np.ndarray]], frames: list[Matrix]) -> None:
        """Along +X, SHIFT widths apart, from SHIFT widths to the right of where the two shapes are."""
        width = 0.0
        for (vertices, _faces), frame in zip(meshes, frames):
            if len(vertices):
                m = np.array(frame)
                x = vertices @ m[0, :3] + m[0, 3]
                width = max(width, float(np.ptp(x)))
        if width <= 0:
            width = 2.0 * max(float(f.to_scale()[0]) for f in frames)
        start = max(frames[0].translation.x, frames[-1].translation.x) + SHIFT * width
        for i, (obj, frame) in enumerate(zip(objects, frames)):
            placed = frame.copy()
            translation = placed.translation  # a copy: set it back
            translation.x = start + i * SHIFT * width
            placed.translation = translation
            obj.matrix_world = placed
