"""Blender images from the backend's pixel arrays (top row first): create or reuse, fill, save as PNG, show."""

from __future__ import annotations

import os

import numpy as np

import bpy

from .bridge import InputError


def image_for(name: str, width: int, height: int, float_buffer: bool, colorspace: str) -> bpy.types.Image:
    """The image ``name`` at ``width`` x ``height`` (created, or reused and resized)."""
    image = bpy.data.images.get(name)
    if image is not None and (image.source != "GENERATED" or bool(image.is_float) != float_buffer):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=float_buffer)
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    image.colorspace_settings.name = colorspace
    return image


def set_pixels(image: bpy.types.Image, rgba_top_first: np.ndarray) -> None:
    """Write (H, W, 4) pixels given top row first (Blender's rows run bottom to top)."""
    image.pixels.foreach_set(np.ascontiguousarray(rgba_top_first[::-1], dtype=np.float32).ravel())
    image.update()


def rgba(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 4) opaque pixels from (H, W, 3) colours, or from (H, W) values repeated in R, G and B."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    return np.concatenate([rgb, np.ones(rgb.shape[:2] + (1,), np.float32)], axis=-1)


def image_from(name: str, pixels: np.ndarray, float_buffer: bool, colorspace: str) -> bpy.types.Image:
    """The image ``name`` (see :func:`image_for`) holding ``pixels`` (H, W, 4, top row first)."""
    height, width = pixels.shape[:2]
    image = image_for(name, width, height, float_buffer, colorspace)
    set_pixels(image, pixels)
    return image


def save_png(rgba_top_first: np.ndarray, path: str) -> None:
    """Write (H, W, 4) sRGB pixels to a PNG through a temporary image (the view image stays generated)."""
    height, width = rgba_top_first.shape[:2]
    image = bpy.data.images.new("INR save", width, height, alpha=True)
    try:
        set_pixels(image, rgba_top_first)
        image.filepath_raw = path
        image.file_format = "PNG"
        try:
            image.save()
        except RuntimeError as exc:
            raise InputError(f"cannot save the view to {path}: {str(exc).strip().splitlines()[-1]}") from None
    finally:
        bpy.data.images.remove(image)


def save_view(rgba_top_first: np.ndarray, filepath: str) -> str:
    """Save the view as a PNG at ``filepath`` (maybe //relative; ``.png`` added when missing, folders made); the path."""
    path = bpy.path.abspath(filepath)
    if not path.lower().endswith(".png"):
        path += ".png"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot save the view to {path}: {exc.strerror or exc}") from None
    save_png(rgba_top_first, path)
    return path


def show_image(context: bpy.types.Context, image: bpy.types.Image) -> None:
    """Show ``image`` in every Image Editor of the screen (none headless)."""
    for area in context.screen.areas if context.screen else []:
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = image
            area.tag_redraw()
