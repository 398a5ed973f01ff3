"""The window manager's state: the job in flight and the backend's status."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, FloatProperty, IntProperty, StringProperty


class INR_PG_psnr_sample(bpy.types.PropertyGroup):
    step: IntProperty()
    value: FloatProperty()


class INR_PG_job(bpy.types.PropertyGroup):
    """The job in flight (``WindowManager.inr_job``), drawn by the panel and status bar."""

    running: BoolProperty(default=False)
    name: StringProperty()
    progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    step: IntProperty()
    total: IntProperty()
    loss: FloatProperty()
    has_loss: BoolProperty()
    psnr: FloatProperty()
    has_psnr: BoolProperty()
    message: StringProperty()
    cancel_requested: BoolProperty(default=False)
    # a fit's live preview (operators/common/preview.py): its image's name, and a radiance field's training PSNR
    preview_image: StringProperty()
    psnr_history: CollectionProperty(type=INR_PG_psnr_sample)


class INR_PG_backend(bpy.types.PropertyGroup):
    """What the last backend check found (``WindowManager.inr_backend``)."""

    ready: BoolProperty(default=False)
    status: StringProperty()
    torch_version: StringProperty()
    device: StringProperty()
    setup_running: BoolProperty(default=False)
    setup_progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    setup_message: StringProperty()
    setup_cancel: BoolProperty(default=False)
