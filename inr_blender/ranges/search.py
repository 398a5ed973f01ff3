"""Shared helpers of the range queries (ray casting, closest points, intersection): chunked range and point evaluations.

Each helper takes the job's context: a chunk is a few milliseconds of work, and a cancel (or the client's leaving)
is checked before every one, so that even a search with an absurdly small tolerance stops within a second.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..context import JobContext
from .evaluate import field_range

RANGE_CHUNK = 4096  # boxes per range evaluation on the CPU (affine_all holds B x symbols x width per layer)
MAX_RANGE_CHUNK = 1 << 18  # on an accelerator: as many as a quarter of its free memory holds, at most this
RANGE_TEMPORARIES = 8  # live (B, symbols, width) tensors of a layer's rule, an upper estimate
POINT_CHUNK = 65536  # points per field evaluation
MIN_EXTENT = 1e-6  # boxes are padded to at least this size per axis: range analysis refuses flat boxes


def range_chunk(field: nn.Module, mode: str, device: torch.device, truncate: int = 8, append: int = 4, **_: Any) -> int:
    """Boxes per range evaluation of ``field`` in ``mode`` on ``device``: :data:`RANGE_CHUNK` on the CPU; on an
    accelerator, where one launch per layer and chunk is the cost, as many boxes as a quarter of its free memory
    holds (B x symbols x the widest layer, a few times over), between RANGE_CHUNK and :data:`MAX_RANGE_CHUNK`."""
    from ..device import device_free_memory_bytes

    free = device_free_memory_bytes(device) if device.type != "cpu" else None
    if not free:
        return RANGE_CHUNK
    linear = [m for m in field.modules() if isinstance(m, nn.Linear)]
    widest = max([m.out_features for m in linear] + [m.in_features for m in linear] + [64])
    layers = max(1, len(linear))
    symbols = {"interval": 1, "affine_fixed": 3, "affine_truncate": 3 + truncate, "affine_append": 3 + append * layers}.get(
        mode, 3 + sum(m.out_features for m in linear)
    )
    per_box = RANGE_TEMPORARIES * symbols * widest * 4
    chunk = min(MAX_RANGE_CHUNK, max(RANGE_CHUNK, free // 4 // per_box))
    return 1 << (int(chunk).bit_length() - 1)  # a power of two


def _check(ctx: JobContext | None) -> None:
    if ctx is not None:
        ctx.check_cancel()


def box_ranges(
    field: nn.Module, lower: Tensor, upper: Tensor, mode: str, chunk: int | None = None, ctx: JobContext | None = None, **opts: Any
) -> tuple[Tensor, Tensor]:
    """Certified (lo, hi), each (B,), of ``field`` over boxes (B, 3), in chunks (None: :func:`range_chunk`); flat
    boxes are padded outwards (sound)."""
    if chunk is None:
        param = next(field.parameters(), None)
        chunk = range_chunk(field, mode, param.device if param is not None else lower.device, **opts)
    pad = (MIN_EXTENT - (upper - lower)).clamp_min(0.0) / 2
    lower, upper = lower - pad, upper + pad
    lo = torch.empty(len(lower), dtype=lower.dtype, device=lower.device)
    hi = torch.empty_like(lo)
    for start in range(0, len(lower), chunk):
        _check(ctx)
        lo[start : start + chunk], hi[start : start + chunk] = field_range(
            field, lower[start : start + chunk], upper[start : start + chunk], mode, **opts
        )
    return lo, hi


def unknown_boxes(field: nn.Module, lower: Tensor, upper: Tensor, mode: str, level: float = 0.0, ctx: JobContext | None = None) -> Tensor:
    """(B,) bool: the boxes where range analysis cannot certify the field above or below ``level``."""
    if not len(lower):
        return torch.zeros(0, dtype=torch.bool, device=lower.device)
    lo, hi = box_ranges(field, lower, upper, mode, ctx=ctx)
    return (lo <= level) & (hi >= level)


def field_values(field: nn.Module, points: Tensor, chunk: int = POINT_CHUNK, ctx: JobContext | None = None) -> Tensor:
    """Field values (P,) at ``points`` (P, 3), under no_grad, in chunks, in the points' dtype."""
    out = torch.empty(len(points), dtype=points.dtype, device=points.device)
    param = next(field.parameters(), None)
    dtype, device = (param.dtype, param.device) if param is not None else (points.dtype, points.device)
    with torch.no_grad():
        for start in range(0, len(points), chunk):
            _check(ctx)
            out[start : start + chunk] = field(points[start : start + chunk].to(device, dtype)).reshape(-1).to(points.device, points.dtype)
    return out


def field_gradients(field: nn.Module, points: Tensor, chunk: int = 16384, ctx: JobContext | None = None) -> Tensor:
    """Autograd gradients (P, 3) of ``field`` at ``points``."""
    out = torch.zeros_like(points)
    param = next(field.parameters(), None)
    device = param.device if param is not None else points.device
    for start in range(0, len(points), chunk):
        _check(ctx)
        x = points[start : start + chunk].detach().to(device).clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(field(x).sum(), x)
        out[start : start + chunk] = grad.detach().to(points.device, points.dtype)
    return out
