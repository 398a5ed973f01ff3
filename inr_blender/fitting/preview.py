"""Live previews of a fit: when to make one, and the previews themselves (a coarse surface, a small view).

The fits call :meth:`PreviewClock.tick` once a step; it makes a preview when ``preview_every`` seconds have passed
since the last one ended and the context wants previews (:attr:`.JobContext.wants_preview`), and spaces them
further apart when one takes more than :func:`~..settings.preview.max_share` of the time between two. A preview is
made under ``no_grad`` in eval mode and leaves the field in train mode, as the loop expects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..context import JobContext, JobError
from ..settings import preview as settings

Preview = tuple[str, dict[str, Any], dict[str, Any]]  # kind, arrays, info
PreviewCamera = tuple[np.ndarray, np.ndarray, int, int]  # c2w (4, 4, world), intrinsics (fx, fy, cx, cy), width, height


class PreviewClock:
    """Decides when a fit makes a preview; counts what they cost (``count``, ``seconds``)."""

    def __init__(self, every: float, ctx: JobContext, share: float | None = None) -> None:
        self.every, self.ctx = float(every), ctx
        self.share = settings.max_share() if share is None else share
        self.active = self.every > 0 and ctx.wants_preview
        self.next_at = time.monotonic() + self.every
        self.count, self.seconds = 0, 0.0

    def tick(self, step: int, total: int, make: Callable[[], Preview | None]) -> None:
        """At step ``step`` of ``total``: hand ``make()``'s preview to the context when one is due (None: nothing
        to show yet, e.g. a field with no surface)."""
        if not self.active:
            return
        started = time.monotonic()
        if started < self.next_at:
            return
        made = make()
        cost = time.monotonic() - started
        self.seconds += cost
        if made is not None:
            kind, arrays, info = made
            self.count += 1
            self.ctx.preview(kind, arrays, {**info, "step": int(step), "total": int(total), "seconds": round(cost, 4)})
        self.next_at = time.monotonic() + max(self.every, cost * (1.0 - self.share) / self.share)


def surface_preview(field: nn.Module, device: torch.device, ctx: JobContext, center: np.ndarray, scale: float) -> Preview | None:
    """The zero level set of ``field`` at the preview resolution, in the local frame, wound outward (the marcher's
    winding, toward larger values); None while the field has no surface in its domain."""
    # here, not at the top: geometry.sparse_extraction imports ranges, whose rules import fitting (this package)
    from ..geometry.sparse_extraction import extract_mesh_sparse

    try:
        verts, faces, _, _ = extract_mesh_sparse(field, settings.MESH_RESOLUTION, device, ctx.quiet(), gradient_normals=False)
    except JobError:  # no surface yet (or none left): nothing to show
        return None
    finally:
        field.train()
    info = {"space": "local", "center": [float(c) for c in center], "scale": float(scale)}
    return "mesh", {"vertices": verts.astype(np.float32), "faces": faces.astype(np.int32)}, info


def image_preview(render: Callable[[], torch.Tensor], field: nn.Module, info: dict[str, Any]) -> Preview:
    """A view ``render()`` makes (an (H, W, 3) tensor in [0, 1]) as a uint8 image, rendered in eval mode without
    gradients."""
    field.eval()
    try:
        with torch.no_grad():
            rgb = render()
    finally:
        field.train()
    pixels = (rgb.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
    return "image", {"rgb": pixels}, info


def preview_camera(arrays: dict[str, np.ndarray]) -> PreviewCamera | None:
    """The camera a radiance fit's preview is rendered from, when the job was sent one: ``preview_c2w`` (4, 4, world)
    and ``preview_intrinsics`` (fx, fy, cx, cy, width, height); JobError when they are malformed."""
    if "preview_c2w" not in arrays and "preview_intrinsics" not in arrays:
        return None
    c2w = np.asarray(arrays.get("preview_c2w", np.zeros(0)), dtype=np.float64)
    k = np.asarray(arrays.get("preview_intrinsics", np.zeros(0)), dtype=np.float64).reshape(-1)
    if c2w.shape != (4, 4) or k.shape != (6,) or not (np.isfinite(c2w).all() and np.isfinite(k).all()):
        raise JobError("the preview camera needs preview_c2w (4x4) and preview_intrinsics (fx, fy, cx, cy, width, height), all finite")
    width, height = int(k[4]), int(k[5])
    if not (1 <= width <= settings.MAX_SIDE and 1 <= height <= settings.MAX_SIDE and k[4] == width and k[5] == height):
        raise JobError(f"the preview camera's size must be whole pixels from 1 to {settings.MAX_SIDE}, got {k[4]:g}x{k[5]:g}")
    if not (k[0] > 0 and k[1] > 0):
        raise JobError("the preview camera's focal lengths must be positive")
    return c2w, k[:4].astype(np.float32), width, height
