"""Fit NeRF: a radiance field to posed images, from the scene's camera rig or from a transforms.json on disk.

A local worker reads the transforms.json itself (``transforms_path``). A remote worker cannot
read this machine's files, so Blender reads them and sends arrays instead: ``images`` (uint8
N, H, W, 4, top row first), ``c2w`` (N, 4, 4) and ``intrinsics`` (N, 4: fx, fy, cx, cy in
pixels) and the scene box ``aabb``. The file is parsed by the backend's torch-free
``inr_blender.render.transforms``, so both sides accept and refuse the same files.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

import bpy
from bpy.props import EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, StringProperty

from ..inr_blender.context import JobError
from ..inr_blender.render import transforms
from ..inr_blender.settings import nerf
from ..inr_blender.settings.preview import preview_size
from ..inr_blender.wire.client import JobOutcome
from ..properties import NERF_MODELS
from ..properties.defaults import backend_name, enum_item, find_param, prop_from_param
from .common.bridge import InputError, make_active
from .common.cameras import camera_to_world, check_perspective, intrinsics
from .common.field import checkpoints, new_checkpoint_path, new_field
from .common.job import FitJobOperator, preview_property
from .common.preview import preview_name
from .common.rig import TRANSFORMS, find_rig

SOURCES = [
    ("RIG", "Camera Rig", "The views Render Training Views made of the scene's camera rig"),
    ("FILE", "File", "A transforms.json on disk (NeRF-synthetic, instant-ngp or nerfstudio), or the folder holding one"),
]


def find_transforms(path: str) -> str:
    """The transforms file at ``path`` (blend-relative allowed) or in the folder ``path``."""
    try:
        return transforms.find_transforms(bpy.path.abspath(path or ""))
    except JobError as exc:
        raise InputError(str(exc)) from None


def read_image_rgba(path: str) -> np.ndarray:
    """An image file as uint8 (H, W, 4), top row first, through Blender's image loader (no colour conversion)."""
    try:
        image = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as exc:
        raise InputError(f"cannot read image {path}: {str(exc).strip().splitlines()[-1]}") from None
    try:
        image.colorspace_settings.is_data = True  # the stored values, as the backend's reader sees them
        width, height = image.size
        if width == 0 or height == 0:
            raise InputError(f"cannot read image {path}")
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    pixels = pixels.reshape(height, width, 4)[::-1]  # Blender's rows run bottom to top
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)


def read_views(path: str) -> tuple[dict[str, np.ndarray], list[list[float]]]:
    """Arrays ``images``, ``c2w`` and ``intrinsics`` of a transforms.json (parsed by the backend's own
    torch-free parser, so both sides accept and refuse the same files), and its scene box ``aabb``."""
    try:
        scene = transforms.read_transforms(bpy.path.abspath(path or ""))
        images, intrinsics = [], []
        for frame in scene.frames:
            image = read_image_rgba(frame.image_path)
            h, w = image.shape[:2]
            if images and images[0].shape != image.shape:
                raise InputError(
                    f"images of different sizes: {os.path.basename(frame.image_path)} is {w}x{h}, "
                    f"the first is {images[0].shape[1]}x{images[0].shape[0]}"
                )
            intrinsics.append(transforms.frame_intrinsics(frame.camera, w, h, frame.where))
            images.append(image)
    except JobError as exc:
        raise InputError(str(exc)) from None
    arrays = {
        "images": np.stack(images),
        "c2w": np.stack([frame.c2w for frame in scene.frames]).astype(np.float32),
        "intrinsics": np.asarray(intrinsics, dtype=np.float32),
    }
    return arrays, scene.aabb.tolist()


def preview_camera(scene: bpy.types.Scene) -> dict[str, np.ndarray]:
    """The scene camera as the live preview's view (the arrays ``preview_c2w`` and ``preview_intrinsics``: fx, fy,
    cx, cy, width, height, shrunk to the preview's size); none when the scene has no perspective camera (the
    backend then previews its first held-out view)."""
    cam = scene.camera
    try:
        if cam is None:
            return {}
        check_perspective(cam)
        fx, fy, cx, cy, width, height = intrinsics(scene, cam)
    except InputError:
        return {}
    w, h, factor = preview_size(width, height)
    k = np.array([fx * factor, fy * factor, cx * factor, cy * factor, w, h], dtype=np.float32)
    return {"preview_c2w": camera_to_world(cam).astype(np.float32), "preview_intrinsics": k}


class INR_OT_fit_nerf(FitJobOperator, bpy.types.Operator):
    """Fit a radiance field (NeRF) to the rendered views of the camera rig, or to a transforms.json on disk"""

    bl_idname = "inr.fit_nerf"
    menu_entry = ("nerf", 3, "LIGHTPROBE_SPHERE")  # the Object menu: section, order, icon
    bl_label = "Fit NeRF"
    bl_options = {"UNDO"}  # no redo panel: redoing would retrain
    job_name = "fit_nerf"

    source: EnumProperty(name="Views", items=SOURCES, default="RIG")
    transforms_path: StringProperty(
        name="Transforms",
        subtype="FILE_PATH",
        options={"PATH_SUPPORTS_BLEND_RELATIVE"},
        description="transforms.json, or the folder that holds it (with Views: File)",
    )
    model: EnumProperty(name="Model", items=NERF_MODELS, default=enum_item(nerf.DEFAULT_MODEL))
    iterations: IntProperty(name="Iterations", default=0, min=0, soft_max=200000, description="The most steps to train; 0 uses the model's default")
    max_seconds: FloatProperty(
        name="Time Limit", default=0.0, min=0.0, subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE", description="Stop after this long (0: no limit)"
    )
    learning_rate: FloatProperty(name="Learning Rate", default=0.0, min=0.0, precision=5, description="0 uses the model's default")
    downscale: IntProperty(name="Downscale", default=1, min=1, max=32, description="Train on the images shrunk by this factor")
    holdout_every: IntProperty(
        name="Hold Out Every",
        default=8,
        min=0,
        soft_max=100,
        description="Keep every n-th view out of training to measure PSNR and SSIM (0: train on all)",
    )
    background: FloatVectorProperty(
        name="Background", subtype="COLOR", size=3, min=0.0, max=1.0, default=(1.0, 1.0, 1.0), description="The colour behind transparent pixels"
    )
    random_background: prop_from_param(find_param(nerf.COMMON, "random_background"))
    seed: IntProperty(name="Seed", default=0, min=0)
    preview_every: preview_property()
    # the models' own settings; 0 keeps the model's default (inr_blender/fitting/nerf.py)
    width: IntProperty(name="Width", default=0, min=0, max=1024, description="Hidden units per layer (0: Fast 64, Classic 256)")
    depth: IntProperty(name="Depth", default=0, min=0, max=16, description="Hidden layers of the classic MLP (0: 8)")
    batch_rays: IntProperty(name="Rays per Step", default=0, min=0, soft_max=65536, description="Classic: rays per step (0: 1024)")
    coarse_samples: IntProperty(name="Coarse Samples", default=0, min=0, max=1024, description="Classic: stratified samples per ray (0: 64)")
    fine_samples: IntProperty(name="Fine Samples", default=0, min=0, max=1024, description="Classic: importance samples per ray (0: 128)")
    levels: IntProperty(name="Levels", default=0, min=0, max=32, description="Fast: hash-grid levels (0: 16)")
    log2_table_size: IntProperty(name="Table Size (log2)", default=0, min=0, max=26, description="Fast: entries per level, 2^n (0: 19)")
    finest_resolution: IntProperty(
        name="Finest Resolution", default=0, min=0, max=16384, description="Fast: grid of the finest level (0: 1024 on a CPU, 2048 on CUDA)"
    )
    samples_per_step: IntProperty(
        name="Samples per Step",
        default=0,
        min=0,
        soft_max=1 << 20,
        description="Fast: samples along all rays of a step; the rays adapt to keep it (0: 65536 on a CPU, 262144 on CUDA)",
    )
    march_steps: IntProperty(
        name="March Steps", default=0, min=0, max=8192, description="Fast: marching steps across the cube's diagonal (0: 512 on a CPU, 1024 on CUDA)"
    )

    _model_props = {
        "FAST": ("width", "levels", "log2_table_size", "finest_resolution", "samples_per_step", "march_steps"),
        "CLASSIC": ("width", "depth", "batch_rays", "coarse_samples", "fine_samples"),
    }

    dialog_width = 360

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "source")
        if self.source == "FILE":
            layout.prop(self, "transforms_path")
        for name in (
            "model",
            "iterations",
            "max_seconds",
            "learning_rate",
            "downscale",
            "holdout_every",
            "background",
            "random_background",
            "seed",
            "preview_every",
        ):
            layout.prop(self, name)
        box = layout.box()
        box.label(text=f"{nerf.BUILTIN[backend_name(self.model)].label} model (0: its default)")
        for name in self._model_props[self.model]:
            box.prop(self, name)

    def _views(self, context: bpy.types.Context) -> tuple[str, str, str]:
        """(transforms.json path, the path to store on the field, the field's name)."""
        if self.source == "RIG":
            rig = find_rig(context)
            stored = rig.get("inr_views") or ""
            folder = bpy.path.abspath(stored) if stored else ""
            if not folder or not os.path.isfile(os.path.join(folder, TRANSFORMS)):
                raise InputError(f"the rig '{rig.name}' has no rendered views: render the training views first")
            return os.path.join(folder, TRANSFORMS), stored, f"{rig.name}_NeRF"
        path = find_transforms(self.transforms_path)
        folder = os.path.basename(os.path.dirname(os.path.abspath(path))) or "Views"
        return path, self.transforms_path, f"{folder}_NeRF"

    def prepare(self, context: bpy.types.Context) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        path, self._views_stored, self._field_name = self._views(context)
        checkpoint, self._stored_path = new_checkpoint_path(self._field_name)
        params: dict[str, Any] = {
            "model": backend_name(self.model),
            "preset": backend_name(self.model),  # the worker fills in the model's settings for its device
            "background": [float(c) for c in self.background],
            "random_background": self.random_background,
            "downscale": self.downscale,
            "holdout_every": self.holdout_every,
            "seed": self.seed,
        }
        optional = {"iterations": self.iterations, "max_seconds": self.max_seconds, "learning_rate": self.learning_rate}
        optional.update({name: getattr(self, name) for name in self._model_props[self.model]})
        params.update({k: v for k, v in optional.items() if v > 0})  # 0: the model's default / no limit
        self._params = dict(params)
        arrays: dict[str, np.ndarray] = {}
        transport = checkpoints(context)
        if transport.remote:  # the worker cannot read this machine's files: the views go as arrays
            arrays, params["aabb"] = read_views(path)
        else:
            params["transforms_path"] = path
        params["preview_every"] = self.preview_seconds()
        if params["preview_every"] > 0:
            arrays.update(preview_camera(context.scene))
        self._preview_name = preview_name(self._field_name)
        params.update(transport.output(checkpoint))
        self._sources = [self._views_stored]
        return params, arrays

    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        result = outcome.params
        field = new_field(context, self._field_name, outcome, self._stored_path, self._sources, self._params, created)
        field.inr_field.kind = "NERF"
        s = field.inr_field.nerf
        s.model = enum_item(str(result.get("model") or self.model))
        s.views_path = self._views_stored
        s.num_views = int(result.get("num_views") or 0)
        s.num_holdout = int(result.get("num_holdout") or 0)
        s.image_width, s.image_height = int(result.get("width") or 0), int(result.get("height") or 0)
        s.psnr = float(result.get("psnr") or 0.0)
        s.ssim = float(result.get("ssim") or 0.0)
        s.train_psnr = float(result.get("train_psnr") or 0.0)
        s.eval_history_json = json.dumps(result.get("eval_history") or [])
        s.background = self.background
        if result.get("density_threshold") is not None:
            s.density_threshold = float(result["density_threshold"])
        make_active(context, field)
        quality = f"held-out PSNR {s.psnr:.2f} dB, SSIM {s.ssim:.3f}" if s.num_holdout else f"train PSNR {s.train_psnr:.2f} dB"
        self.report({"INFO"}, f"Fitted {field.name}: {quality} on {field.inr_field.device}; {field.inr_field.stop_reason}")
