"""Certified ranges of a field over axis-aligned boxes (or any affine image of boxes, as an affine form), and the sign
classification built on them."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..context import JobError
from .affine import AffineForm, RangeContext
from .rules import output_range

POSITIVE, UNKNOWN, NEGATIVE = 1, 0, -1


def field_range(field: nn.Module, lower: Tensor, upper: Tensor, mode: str = "affine_fixed", **mode_options: Any) -> tuple[Tensor, Tensor]:
    """Certified (lo, hi), each (B,), of ``field``'s scalar value over the boxes ``lower``..``upper`` (B, D).

    Every value the field takes in box b lies in [lo[b], hi[b]]. For a NeRF the
    value is its density; for a DensitySurface, threshold - density. ``mode`` is
    one of :data:`~inr_blender.ranges.affine.MODES`. ``mode_options``:
    ``truncate`` (symbols kept by affine_truncate, default 8), ``append`` (new
    symbols per layer in affine_append, default 4), ``intersect`` (also carry
    interval bounds and intersect: never wider than interval mode, default
    False). Float rounding is not tracked step by step; every bound is widened
    by a few ulps instead (affine.ROUNDING_ULPS). The arithmetic runs in the
    field's dtype on the field's device (boxes are rounded outwards when
    converted); results come back on the boxes' device. Memory is B x symbols x
    width per layer: 3 symbols (affine_fixed), ``truncate``, 3 + ``append`` per
    layer, or 3 + every neuron so far (affine_all); chunk B to fit.
    """
    try:
        ctx = RangeContext(mode, **mode_options)
    except (TypeError, ValueError) as exc:
        raise JobError(f"bad range analysis options: {exc}") from None
    lo_box, hi_box = _checked_boxes(lower, upper)
    dtype, device = _field_dtype(field, lo_box)
    lo_box, hi_box = _round_outwards(lo_box, hi_box, dtype)
    form = AffineForm.from_box(lo_box.to(device), hi_box.to(device), ctx)
    return _output_bounds(field, form, lower.device)


def form_range(field: nn.Module, form: AffineForm) -> tuple[Tensor, Tensor]:
    """Certified (lo, hi), each (B,), of ``field``'s scalar value over the points of ``form`` (B, D), any affine image
    of boxes: e.g. the parallelepipeds ``AffineForm.from_box(lower, upper, RangeContext(mode)).linear(M, t)`` (exact
    in the affine modes; in interval mode the form is their bounding boxes, still sound).

    As :func:`field_range`, with the mode and options of the form's context. The form moves to the field's dtype
    and device soundly: what the conversion rounds goes into its interval error, rounded up. Results come back on
    the form's device.
    """
    dtype, device = _field_dtype(field, form.center)
    return _output_bounds(field, _converted(form, dtype, device), form.center.device)


def _field_dtype(field: nn.Module, like: Tensor) -> tuple[torch.dtype, torch.device]:
    """The dtype and device the field computes in (those of ``like`` for a field without parameters)."""
    param = next(field.parameters(), None)
    return (param.dtype, param.device) if param is not None else (like.dtype, like.device)


def _output_bounds(field: nn.Module, form: AffineForm, device: torch.device) -> tuple[Tensor, Tensor]:
    """The field's certified output range over ``form`` (already in the field's dtype and device), on ``device``."""
    with torch.no_grad():
        lo, hi = output_range(field, form)
    unknown = torch.isnan(lo) | torch.isnan(hi)  # never certify from a NaN: widen it to everything
    lo = torch.where(unknown, -torch.inf, lo)
    hi = torch.where(unknown, torch.inf, hi)
    return lo.to(device), hi.to(device)


def _converted(form: AffineForm, dtype: torch.dtype, device: torch.device) -> AffineForm:
    """``form`` in ``dtype`` on ``device``, enclosing the original: the rounding of its center and coefficients is
    added to its interval error, and the error and ``known`` bounds are rounded outwards."""
    if form.center.dtype == dtype:
        known = None if form.known is None else (form.known[0].to(device), form.known[1].to(device))
        return AffineForm(form.center.to(device), form.coeffs.to(device), form.ids.to(device), form.err.to(device), form.ctx, known)
    center, coeffs = form.center.to(dtype), form.coeffs.to(dtype)
    rounding = (form.center - center.to(form.center.dtype)).abs() + (form.coeffs - coeffs.to(form.coeffs.dtype)).abs().sum(dim=1)
    wide = form.err + rounding
    err = wide.to(dtype)
    err = torch.where(err.to(wide.dtype) < wide, torch.nextafter(err, torch.full_like(err, torch.inf)), err)
    known = None
    if form.known is not None:
        known = _round_outwards(form.known[0], form.known[1], dtype)
        known = (known[0].to(device), known[1].to(device))
    return AffineForm(center.to(device), coeffs.to(device), form.ids.to(device), err.to(device), form.ctx, known)


def classify(field: nn.Module, lower: Tensor, upper: Tensor, level: float = 0.0, mode: str = "affine_fixed", **mode_options: Any) -> Tensor:
    """Per box (B,) int8: +1 where the field is certified > ``level``, -1 where certified < ``level``, 0 unknown."""
    lo, hi = field_range(field, lower, upper, mode, **mode_options)
    out = torch.full(lo.shape, UNKNOWN, dtype=torch.int8, device=lo.device)
    out[lo > level] = POSITIVE
    out[hi < level] = NEGATIVE
    return out


def _checked_boxes(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Refuse boxes that are not (B, D) floating, finite, with lower < upper on every axis."""
    if not (isinstance(lower, Tensor) and isinstance(upper, Tensor)):
        raise JobError("box corners must be torch tensors")
    if lower.ndim != 2 or lower.shape != upper.shape or lower.shape[1] < 1:
        raise JobError(f"boxes need lower and upper corners of the same shape (B, D), got {tuple(lower.shape)} and {tuple(upper.shape)}")
    if not (lower.is_floating_point() and upper.is_floating_point()):
        raise JobError("box corners must be floating point")
    if not (torch.isfinite(lower).all() and torch.isfinite(upper).all()):
        raise JobError("box corners contain NaN or Inf")
    inverted = (lower > upper).any(dim=1)
    if inverted.any():
        b = int(inverted.nonzero()[0, 0])
        raise JobError(f"box {b} is inverted (lower > upper on some axis): {lower[b].tolist()} .. {upper[b].tolist()}")
    flat = (lower == upper).any(dim=1)
    if flat.any():
        b = int(flat.nonzero()[0, 0])
        raise JobError(
            f"box {b} has zero size on some axis ({lower[b].tolist()} .. {upper[b].tolist()}); "
            "range analysis needs lower < upper on every axis (evaluate the field for points)"
        )
    return lower, upper


def _round_outwards(lower: Tensor, upper: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The corners in ``dtype``, moved one ulp outwards where the conversion moved them inwards."""
    lo, hi = lower.to(dtype), upper.to(dtype)
    if lower.dtype == dtype:
        return lo, hi
    lo = torch.where(lo.to(lower.dtype) > lower, torch.nextafter(lo, torch.full_like(lo, -torch.inf)), lo)
    hi = torch.where(hi.to(upper.dtype) < upper, torch.nextafter(hi, torch.full_like(hi, torch.inf)), hi)
    return lo, hi
