"""A radiance field's record (kind NERF, ``inr_field.nerf``): its model, views and quality, and the settings its
renders and extractions use."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, StringProperty

from ..inr_blender.settings import nerf
from .defaults import enum_item, method_item

NERF_MODELS = [method_item(m) for m in nerf.BUILTIN.values()]  # the backend's radiance models


class INR_PG_nerf(bpy.types.PropertyGroup):
    model: EnumProperty(name="Model", items=NERF_MODELS, default=enum_item(nerf.DEFAULT_MODEL))
    views_path: StringProperty(
        name="Views",
        subtype="FILE_PATH",
        options={"PATH_SUPPORTS_BLEND_RELATIVE"},
        description="The transforms.json (or its folder) the field was fitted to",
    )
    num_views: IntProperty(name="Training Views", description="Views the field was trained on (held-out views aside)")
    num_holdout: IntProperty(name="Held-out Views", description="Views kept out of training to measure PSNR and SSIM")
    image_width: IntProperty(name="Image Width", subtype="PIXEL")
    image_height: IntProperty(name="Image Height", subtype="PIXEL")
    psnr: FloatProperty(name="PSNR", description="Mean PSNR (dB) on the held-out views", precision=2)
    ssim: FloatProperty(name="SSIM", description="Mean SSIM on the held-out views (1 is perfect)", precision=4)
    train_psnr: FloatProperty(name="Train PSNR", description="Mean PSNR (dB) on the training views", precision=2)
    eval_history_json: StringProperty(name="PSNR History", description="Held-out PSNR during training: [[step, seconds, psnr], ...] as JSON")
    background: FloatVectorProperty(
        name="Background",
        subtype="COLOR",
        size=3,
        min=0.0,
        max=1.0,
        default=(1.0, 1.0, 1.0),
        description="The colour behind transparent pixels, in training and in renders",
    )
    density_threshold: FloatProperty(
        name="Density Threshold", default=25.0, min=1e-3, description="Density of the surface Extract Mesh uses (the fit suggests one)"
    )
