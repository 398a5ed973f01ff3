"""Ranges of the multiresolution hash-grid encoding (inr_blender.fields.hashgrid).

Per level the encoding is piecewise trilinear in x: trilinear inside each grid
cell, continuous across cells.

- Bounds: a multilinear function takes its extremes over a box at the box's
  corners, so over the part of a box inside one cell the extremes lie at points
  whose coordinates are the box's bounds or grid planes, and over the whole box
  on the product of those coordinates. Where the box spans at most
  VERTEX_SPAN grid vertices on every axis, the bounds are the min and max of the
  interpolated features there (exact up to rounding). Elsewhere they are the
  min and max of the level's whole table, which bound any convex combination of
  its rows (trilinear weights are non-negative and sum to 1).
- Affine modes, where the box lies inside one cell of a level and inside the
  cube (where the module's clamp is inactive): the features are exactly a
  multilinear polynomial in the box's local coordinates e in [-1, 1]^3. Its
  constant and linear coefficients (read off the values at the box's 8 corners)
  give the affine part; the absolute values of its cross terms (e_x e_y, ...,
  e_x e_y e_z) bound the rest. Other levels are plain intervals.

Cells and vertex rows follow HashGridEncoding.forward's own arithmetic (clamp to
the cube, scale, floor, dense index or spatial hash), which is monotone in x.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..fields.hashgrid import HashGridEncoding
from .affine import AffineForm

# A box that spans more grid vertices than this on some axis of a level is bounded by that level's
# whole table (per feature) instead of by interpolated values (cost per box and level: S^3 rows).
VERTEX_SPAN = 4


def hashgrid_form(enc: HashGridEncoding, x: AffineForm) -> AffineForm:
    """The encoding's features (B, levels * features) over the box of ``x``'s bounds (see the module docstring)."""
    lower, upper = x.bounds()
    values, too_wide, one_cell = _interpolated(enc, lower, upper)
    lo, hi = _bounds(enc, values, too_wide)
    if x.ctx.mode == "interval":
        return AffineForm.from_interval(lo, hi, x.ctx)
    # Multilinear coefficients from the box's corner values: per axis, mean and half-difference.
    corners = values[:, :, [0, -1]][:, :, :, [0, -1]][:, :, :, :, [0, -1]]  # (B, L, z, y, x, F), 2 each
    h = torch.tensor([[0.5, 0.5], [-0.5, 0.5]], dtype=values.dtype, device=values.device)
    coef = torch.einsum("az,by,cx,nlzyxf->nlabcf", h, h, h, corners)  # index 1 = the linear factor on that axis
    constant = coef[:, :, 0, 0, 0]  # (B, L, F)
    slopes = torch.stack([coef[:, :, 0, 0, 1], coef[:, :, 0, 1, 0], coef[:, :, 1, 0, 0]], dim=-1)  # per e_x, e_y, e_z
    cross = coef[:, :, 0, 1, 1].abs() + coef[:, :, 1, 0, 1].abs() + coef[:, :, 1, 1, 0].abs() + coef[:, :, 1, 1, 1].abs()
    half = ((upper - lower) * 0.5).clamp_min(torch.finfo(lower.dtype).tiny)  # (B, 3): e = (x - mid) / half
    weight = slopes / half[:, None, None, :]  # (B, L, F, 3), per unit of x
    beta = constant + (weight * (x.center - (lower + upper) * 0.5)[:, None, None, :]).sum(dim=-1)
    inside = ((lower >= -1.0) & (upper <= 1.0)).all(dim=1)[:, None]
    affine = (one_cell & inside)[:, :, None]  # (B, L, 1)
    beta = torch.where(affine, beta, _unflat(lo + hi, enc) * 0.5)
    delta = torch.where(affine, cross, _unflat(hi - lo, enc) * 0.5)
    weight = torch.where(affine[..., None], weight, 0.0)
    return x.approximate_map(weight.flatten(1, 2), beta.flatten(1), delta.flatten(1), (lo, hi))


def _unflat(t: Tensor, enc: HashGridEncoding) -> Tensor:
    return t.unflatten(1, (enc.levels, enc.features_per_level))


def _interpolated(enc: HashGridEncoding, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Features at the candidate points (B, L, S, S, S, F) (axes z, y, x; the first and last candidate on
    each axis are the box's bounds), which levels the box spans too widely (B, L), and which levels it
    lies in one cell of (B, L)."""
    res = enc._resolution  # (L,)
    span = VERTEX_SPAN
    pos_lo, pos_hi = enc.positions(lower), enc.positions(upper)  # (B, L, 3), in cell units
    first = torch.minimum(pos_lo.floor().long(), (res - 1)[None, :, None])
    last = torch.minimum(pos_hi.floor().long(), (res - 1)[None, :, None]) + 1  # last vertex on each axis
    vertex = first[..., None] + torch.arange(span, device=lower.device)  # (B, L, 3, S): consecutive grid vertices
    # Candidate coordinates per axis: the box's lower bound, the grid planes inside the box, its upper bound.
    points = torch.minimum(torch.maximum(vertex.to(lower.dtype), pos_lo[..., None]), pos_hi[..., None])
    hat = (1.0 - (points[..., :, None] - vertex[..., None, :].to(lower.dtype)).abs()).clamp_min(0.0)  # (B, L, 3, S, S)
    inside = torch.minimum(vertex, res[None, :, None, None])  # vertices past the grid get zero weight
    rows = enc.table[enc.rows(inside)].unflatten(2, (span, span, span))  # (B, L, z, y, x, F)
    values = torch.einsum("blkz,blzyxf->blkyxf", hat[:, :, 2], rows)
    values = torch.einsum("blky,bljyxf->bljkxf", hat[:, :, 1], values)
    values = torch.einsum("blkx,blijxf->blijkf", hat[:, :, 0], values)
    vertices = last - first + 1
    return values, (vertices > span).any(dim=2), (vertices == 2).all(dim=2)


def _bounds(enc: HashGridEncoding, values: Tensor, too_wide: Tensor) -> tuple[Tensor, Tensor]:
    flat = values.flatten(2, 4)  # (B, L, S^3, F)
    lo, hi = flat.amin(dim=2), flat.amax(dim=2)
    level_lo, level_hi = _level_extremes(enc)
    lo = torch.where(too_wide[:, :, None], level_lo, lo)
    hi = torch.where(too_wide[:, :, None], level_hi, hi)
    return lo.flatten(1), hi.flatten(1)


def _level_extremes(enc: HashGridEncoding) -> tuple[Tensor, Tensor]:
    """Per-level min and max of the table (L, F), level l owning rows offset[l] .. offset[l + 1]."""
    starts = enc._offset.tolist()
    parts = [enc.table[start:end] for start, end in zip(starts, starts[1:] + [enc.table.shape[0]])]
    return torch.stack([p.amin(dim=0) for p in parts]), torch.stack([p.amax(dim=0) for p in parts])
