"""Shape spaces (DeepSDF auto-decoders, Park 2019; occupancy networks, Mescheder 2019) on a field
(``inr_field.shape_space``): the training shapes, the panel's selection, Interpolate Shapes' and Reconstruct from
Scan's settings (the operators' when they do not set them) and, on a completed shape, where it came from."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, PointerProperty, StringProperty

from ..inr_blender.settings import completion
from .defaults import find_param, prop_from_param

INTERPOLATE_OUTPUTS = [
    ("AUTO", "Auto", "Shape keys when every in-between's vertices follow the first mesh's without folding, else a sequence"),
    ("ROW", "Row", "One mesh per in-between shape, in a row along +X"),
    ("SHAPE_KEYS", "Shape Keys", "One mesh with a shape key per in-between shape, animated over the frames"),
    ("SEQUENCE", "Sequence", "One mesh per in-between shape, each visible on its own frames"),
]

INTERPOLATE_SETTINGS = {
    "count": IntProperty(name="Shapes", default=5, min=2, soft_max=64, description="Shapes from the first to the last, both included"),
    "output": EnumProperty(name="Output", items=INTERPOLATE_OUTPUTS, default="AUTO", description="What Interpolate Shapes makes"),
    "resolution": IntProperty(name="Resolution", default=96, min=8, max=1024, description="Extraction grid of each in-between shape"),
}
RECONSTRUCT_SETTINGS = {
    "iterations": prop_from_param(find_param(completion.PARAMS, "iterations"), soft_max=10000, description="Steps that fit a code to the scan"),
    "resolution": IntProperty(name="Resolution", default=128, min=8, max=1024, description="Extraction grid of the completed shape"),
}


class INR_PG_shape(bpy.types.PropertyGroup):
    """One training shape of a shape space (``shape_space.shapes``); ``name`` is its object's name."""

    source: PointerProperty(name="Object", type=bpy.types.Object, description="The object the shape was fitted to")
    index: IntProperty(name="Index", description="The shape's code in the space")
    center: FloatVectorProperty(name="Center", size=3, subtype="XYZ", description="Where the shape's normalised frame sits in world space")
    scale: FloatProperty(name="Scale", default=1.0, description="World units per unit of the shape's normalised frame")
    error: FloatProperty(name="Error", precision=5, description="Chamfer-L1 of the decoded shape against its mesh, in world units")
    has_error: BoolProperty(name="Measured", default=False)


class INR_PG_interpolate(bpy.types.PropertyGroup):
    """Interpolate Shapes' settings: from the selected shape (``active_shape``) to ``to``."""

    __annotations__ = {
        "to": IntProperty(name="To", default=1, min=0, description="The shape Interpolate Shapes ends at (its index in the list)"),
        **INTERPOLATE_SETTINGS,
    }


class INR_PG_reconstruct(bpy.types.PropertyGroup):
    """Reconstruct from Scan's settings (on a space) and, on the completed shape's field (method LATENT_SHAPE), its record."""

    __annotations__ = {
        **RECONSTRUCT_SETTINGS,
        "source_space": StringProperty(name="From Space", description="The shape space whose code was fitted to the scan"),
        "fit_error": FloatProperty(name="Fit Error", precision=5, description="Mean |f| at the scan's points, in the space's local units"),
    }


class INR_PG_shape_space(bpy.types.PropertyGroup):
    shapes: CollectionProperty(type=INR_PG_shape)
    active_shape: IntProperty(name="Shape", min=0, description="The shape Extract Mesh decodes, and the first of Interpolate Shapes")
    latent_size: IntProperty(name="Latent Size", description="Length of each shape's code")
    interpolate: PointerProperty(type=INR_PG_interpolate)
    reconstruct: PointerProperty(type=INR_PG_reconstruct)


classes = (INR_PG_shape, INR_PG_interpolate, INR_PG_reconstruct, INR_PG_shape_space)
