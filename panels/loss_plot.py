"""A small picture of a field's loss curve for the sidebar (log scale, drawn into a preview icon)."""

from __future__ import annotations

import numpy as np

import bpy
import bpy.utils.previews

SIZE = (160, 64)
_BACKGROUND = (0.16, 0.16, 0.16, 1.0)
_LINE = (0.95, 0.55, 0.2, 1.0)
_previews = None


def rasterize(losses: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """RGBA float pixels (rows bottom-up, as Blender stores them) of log10(loss) over the steps."""
    w, h = size
    pixels = np.empty((h, w, 4), dtype=np.float32)
    pixels[:] = _BACKGROUND
    values = np.log10(np.maximum(np.asarray(losses, dtype=np.float64), 1e-12))
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


def loss_icon(obj: bpy.types.Object) -> int:
    """The preview icon of ``obj``'s loss history (redrawn only when the history changes)."""
    global _previews
    if _previews is None:
        _previews = bpy.utils.previews.new()
    history = obj.inr_field.loss_history
    losses = np.array([h.loss for h in history], dtype=np.float64)
    key = f"{obj.name_full}:{len(losses)}:{losses[-1] if len(losses) else 0.0:.9g}"
    preview = _previews.get(key)
    if preview is None:
        preview = _previews.new(key)
        preview.image_size = SIZE
        preview.image_pixels_float = rasterize(losses).ravel()
    return preview.icon_id


def release() -> None:
    """Free the preview icons (on unregister)."""
    global _previews
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
