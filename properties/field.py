"""A field object's state (``Object.inr_field``): the core every field has (kind, method, checkpoint, sources,
training record, metrics) and one nested group per capability (``inr_field.skeleton.delta``, ...)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from ..inr_blender.settings import sdf
from .defaults import method_item
from .displacement import INR_PG_displacement
from .isopoints import INR_PG_isopoints
from .nerf import INR_PG_nerf
from .ranges import INR_PG_ranges
from .shape_space import INR_PG_shape_space
from .skeleton import INR_PG_skeleton
from .transfer import INR_PG_transfer

# Fit SDF's methods and Fit Displacement Field's (implicit displacement fields, Wang Yifan 2022): the backend's
# declarations (inr_blender/settings/sdf.py). Transfer Detail makes IDF_TRANSFER fields.
SDF_METHODS = [method_item(m) for m in sdf.BUILTIN.values() if m.name != "idf"]
DISPLACEMENT_METHODS = [
    method_item(sdf.IDF),
    ("IDF_TRANSFER", "Transferred Detail", "The detail of one displacement field on the base of another field (Transfer Detail)"),
]
# Shape spaces (DeepSDF auto-decoders, Park 2019; occupancy networks, Mescheder 2019): what Fit Shape Space
# makes, and the completed shape Reconstruct from Scan keeps as an ordinary field.
SHAPE_SPACE_METHODS = [
    ("DEEPSDF", "DeepSDF", "Auto-decoder of signed distances (Park 2019): one latent code per shape, one decoder for all"),
    ("OCCUPANCY", "Occupancy", "Auto-decoder of inside/outside probabilities (occupancy networks, Mescheder 2019)"),
]
LATENT_SHAPE_METHODS = [
    ("LATENT_SHAPE", "Completed Shape", "A shape decoded from a shape space's code (Reconstruct from Scan)"),
]
FIELD_METHODS = SDF_METHODS + DISPLACEMENT_METHODS + SHAPE_SPACE_METHODS + LATENT_SHAPE_METHODS
FIELD_KINDS = [
    ("SDF", "Signed Distance", "A signed distance field"),
    ("NERF", "Radiance Field", "A radiance field (NeRF): density and colour, fitted to posed images"),
    ("SHAPE_SPACE", "Shape Space", "A space of shapes (DeepSDF auto-decoder): one latent code per training shape"),
]


class INR_PG_loss_sample(bpy.types.PropertyGroup):
    step: IntProperty(name="Step")
    loss: FloatProperty(name="Loss")


class INR_PG_field(bpy.types.PropertyGroup):
    """Stored on the Empty that stands for a fitted field (``Object.inr_field``); Transfer Detail's settings also on
    a plain mesh or point cloud (its target)."""

    is_field: BoolProperty(name="Is Field", default=False)
    kind: EnumProperty(name="Kind", items=FIELD_KINDS, default="SDF")
    method: EnumProperty(name="Method", items=FIELD_METHODS, default="IGR")
    checkpoint: StringProperty(
        name="Checkpoint",
        subtype="FILE_PATH",
        options={"PATH_SUPPORTS_BLEND_RELATIVE"},
        description="The field's weights; relative to the .blend once saved",
    )
    sources: StringProperty(name="Fitted To", description="The objects the field was fitted to")
    sources_json: StringProperty(name="Fitted To (JSON)", description="The names of the objects the field was fitted to, as a JSON list")
    settings_json: StringProperty(name="Training Settings", description="Every training parameter, as JSON")
    # the training record
    loss_history: CollectionProperty(type=INR_PG_loss_sample)
    final_loss: FloatProperty(name="Final Loss")
    iterations: IntProperty(name="Iterations")
    num_points: IntProperty(name="Points")
    has_normals: BoolProperty(name="Normals")
    train_seconds: FloatProperty(name="Training Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    device: StringProperty(name="Device")
    preset: StringProperty(name="Preset", description="The Fit SDF preset it was trained with")
    stop_reason: StringProperty(name="Stopped", description="Why training stopped: converged, time limit or iteration limit")
    # quality against the objects it was fitted to (Evaluate Field)
    has_metrics: BoolProperty(name="Evaluated", default=False)
    chamfer_l1: FloatProperty(
        name="Chamfer-L1", description="Mean of the two directed mean distances, as a fraction of the input's bounding-sphere radius", precision=5
    )
    normal_consistency: FloatProperty(
        name="Normal Consistency", description="Mean |cos| between nearest-neighbour normals (1 is perfect)", precision=4
    )
    fscore: FloatProperty(name="F-score", description="F-score at 1% of the bounding-sphere radius (1 is perfect)", precision=4)
    hausdorff: FloatProperty(name="Hausdorff", description="Two-sided Hausdorff distance, as a fraction of the bounding-sphere radius", precision=4)
    metrics_resolution: IntProperty(name="Evaluated At", description="Extraction resolution the metrics were measured at")
    # each capability's settings and last results
    skeleton: PointerProperty(type=INR_PG_skeleton)
    isopoints: PointerProperty(type=INR_PG_isopoints)
    transfer: PointerProperty(type=INR_PG_transfer)
    displacement: PointerProperty(type=INR_PG_displacement)
    ranges: PointerProperty(type=INR_PG_ranges)
    shape_space: PointerProperty(type=INR_PG_shape_space)
    nerf: PointerProperty(type=INR_PG_nerf)
