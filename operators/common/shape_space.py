"""What the shape-space operators share: finding the active space, checking a shape index, and the world
transform of a shape (or of an in-between of two) that follows the field object when it is moved."""

from __future__ import annotations

import bpy
from mathutils import Matrix

from .bridge import InputError


def active_shape_space(context: bpy.types.Context, operation: str) -> bpy.types.Object:
    """The active object if it is a shape space, else :class:`InputError`."""
    obj = context.active_object
    if obj is None or not obj.inr_field.is_field or obj.inr_field.kind != "SHAPE_SPACE":
        what = "nothing is active" if obj is None else f"the active object '{obj.name}' is not a shape space"
        raise InputError(f"{operation} needs a shape space and {what}: fit one with Fit Shape Space (two or more meshes), or click one")
    if not len(obj.inr_field.shape_space.shapes):
        raise InputError(f"the shape space '{obj.name}' records no shapes: fit it again with Fit Shape Space")
    return obj


def checked_shape(field: bpy.types.Object, index: int) -> int:
    """``index`` if the space has that shape, else :class:`InputError` (the backend's wording)."""
    count = len(field.inr_field.shape_space.shapes)
    if not 0 <= index < count:
        raise InputError(f"shape {index} is out of range: the space '{field.name}' has {count} shapes (0 to {count - 1})")
    return index


def normalised_frame(center, scale: float) -> Matrix:
    """The matrix that takes a normalised frame (``local = (world - center) / scale``) to world space."""
    return Matrix.Translation(tuple(float(c) for c in center)) @ Matrix.Scale(float(scale), 4)


def shape_frame(field: bpy.types.Object, center, scale: float) -> Matrix:
    """World matrix of a normalised frame at ``center``/``scale`` as fitted, following the field object where it is
    now: the space's frame is its first shape's, which the field object showed when it was made."""
    first = field.inr_field.shape_space.shapes[0]
    moved = field.matrix_world @ normalised_frame(first.center, first.scale).inverted()
    return moved @ normalised_frame(center, scale)


def shape_matrix(field: bpy.types.Object, index: int) -> Matrix:
    """World matrix of the shape ``index``'s normalised frame (where its decoded mesh goes)."""
    shape = field.inr_field.shape_space.shapes[index]
    return shape_frame(field, shape.center, shape.scale)


def shape_of_object(field: bpy.types.Object, obj: bpy.types.Object) -> int | None:
    """The index of the shape fitted to ``obj`` in the space, or None."""
    for shape in field.inr_field.shape_space.shapes:
        if shape.source == obj or (shape.source is None and shape.name == obj.name):
            return shape.index
    return None
