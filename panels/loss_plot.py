"""Small pictures for the sidebar, drawn into preview icons: a field's loss curve (log scale), a running fit's PSNR
curve and its live preview image."""

from __future__ import annotations

import numpy as np

import bpy
import bpy.utils.previews

SIZE = (160, 64)
_BACKGROUND = (0.16, 0.16, 0.16, 1.0)
_LINE = (0.95, 0.55, 0.2, 1.0)
_previews = None
_stamps: dict[str, str] = {}  # what each live icon shows now


def rasterize(losses: np.ndarray, size: tuple[int, int] = SIZE, log: bool = True) -> np.ndarray:
    """RGBA float pixels (rows bottom-up, as Blender stores them) of log10(loss) (or the values, without ``log``)
    over the steps."""
    w, h = size
    pixels = np.empty((h, w, 4), dtype=np.float32)
    pixels[:] = _BACKGROUND
    values = np.asarray(losses, dtype=np.float64)
    values = np.log10(np.maximum(values, 1e-12)) if log else values
    if len(values) == 0:
        return pixels
    columns = np.interp(np.linspace(0, len(values) - 1, w), np.arange(len(values)), values)
    lo, hi = columns.min(), columns.max()
    rows = np.round((columns - lo) / (hi - lo) * (h - 3)).astype(int) + 1 if hi > lo else np.full(w, h // 2)
    previous = rows[0]
    for x, y in enumerate(rows):  # a connected polyline: fill between consecutive rows
        a, b = sorted((previous, y))
        pixels[a : b + 1, x] = _LINE
        previous = y
    return pixels


def _icon(key: str, size: tuple[int, int], pixels) -> int:
    """The preview icon ``key`` (``pixels()`` draws it the first time: RGBA floats, rows bottom-up)."""
    global _previews
    if _previews is None:
        _previews = bpy.utils.previews.new()
    preview = _previews.get(key)
    if preview is None:
        preview = _previews.new(key)
        preview.image_size = size
        preview.image_pixels_float = np.asarray(pixels(), dtype=np.float32).ravel()
    return preview.icon_id


def loss_icon(obj: bpy.types.Object) -> int:
    """The preview icon of ``obj``'s loss history (redrawn only when the history changes)."""
    losses = np.array([h.loss for h in obj.inr_field.loss_history], dtype=np.float64)
    key = f"{obj.name_full}:{len(losses)}:{losses[-1] if len(losses) else 0.0:.9g}"
    return _icon(key, SIZE, lambda: rasterize(losses))


def _live_icon(key: str, size: tuple[int, int], stamp: str, pixels) -> int:
    """The preview icon ``key`` redrawn in place (``pixels()``) whenever ``stamp`` changes: one icon per live picture."""
    icon = _icon(key, size, pixels)
    assert _previews is not None  # made by _icon
    preview = _previews[key]
    if _stamps.get(key) != stamp:
        if tuple(preview.image_size) != tuple(size):
            preview.image_size = size
        preview.image_pixels_float = np.asarray(pixels(), dtype=np.float32).ravel()
        _stamps[key] = stamp
    return icon


def psnr_icon(job: bpy.types.PropertyGroup) -> int:
    """The preview icon of the running job's PSNR curve (``WindowManager.inr_job.psnr_history``)."""
    values = np.array([h.value for h in job.psnr_history], dtype=np.float64)
    stamp = f"{len(values)}:{job.psnr_history[-1].step if len(values) else 0}"
    return _live_icon("live:psnr", SIZE, stamp, lambda: rasterize(values, log=False))


def image_icon(image: bpy.types.Image) -> int:
    """The preview icon of ``image`` (a live preview, updated in place)."""
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return _live_icon("live:image", (width, height), f"{width}x{height}:{float(pixels.sum()):.9g}", lambda: pixels)


def release() -> None:
    """Free the preview icons (on unregister)."""
    global _previews
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
    _stamps.clear()
