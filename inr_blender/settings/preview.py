"""Live previews while fitting: how often, how large, and how much of the time they may take.

A fit with ``preview_every`` > 0 hands the job's context a preview every that many seconds: a signed distance
field's coarse surface (sparse marching cubes at :data:`MESH_RESOLUTION`, no gradient normals), a radiance field's
view at :data:`IMAGE_SIDE` pixels on its long side. Previews are spaced further apart when one takes longer than
:data:`MAX_SHARE` of the time between two, so they never cost a fit more than that share.
"""

from __future__ import annotations

import os

from .spec import Param

PREVIEW_EVERY = Param(
    "preview_every",
    0.0,
    "Seconds between two previews while fitting (a coarse surface, or a small view); written beside the output by the command line (0: off)",
    minimum=0.0,
    maximum=3600.0,
    label="Preview Every",
)
UI_EVERY = 2.0  # the Blender operators' default in the UI (headless, and the command line, keep the Param's 0)
MESH_RESOLUTION = 64  # grid points per axis of a signed distance field's preview surface
IMAGE_SIDE = 128  # pixels on the long side of a radiance field's preview view
MAX_SIDE = 512  # the most pixels on a side a preview camera may ask for
MAX_SHARE = 0.05  # the most of a fit's time previews may take (INR_PREVIEW_SHARE overrides it, for tests)


def preview_size(width: int, height: int, side: int = IMAGE_SIDE) -> tuple[int, int, float]:
    """A view of ``width`` x ``height`` shrunk to ``side`` pixels on its long side (never enlarged): (w, h, factor)."""
    factor = min(1.0, side / max(width, height))
    return max(1, round(width * factor)), max(1, round(height * factor)), factor


def max_share() -> float:
    """The most of a fit's time previews may take: :data:`MAX_SHARE`, or the environment's INR_PREVIEW_SHARE (in
    (0, 1]; tests let previews come often from a real worker with it)."""
    try:
        share = float(os.environ.get("INR_PREVIEW_SHARE", MAX_SHARE))
    except ValueError:
        return MAX_SHARE
    return share if 0.0 < share <= 1.0 else MAX_SHARE
