"""Ranges of input encodings: Fourier features, and the distance to the origin |x| (the hash grid: hashgrid.py)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..fields.encodings import PositionalEncoding
from .activations import activate_columns, cosine, sine
from .affine import AffineForm


def positional_encoding(enc: PositionalEncoding, x: AffineForm) -> AffineForm:
    """[x,] sin(2^k x), cos(2^k x): one exact linear map to the scaled inputs, then sine and cosine."""
    dim = x.size
    eye = torch.eye(dim, dtype=x.center.dtype, device=x.center.device)
    scaled = torch.kron(enc._bands.to(eye)[:, None], eye)  # (F * D, D), frequency-major as the module
    head = [eye] if enc.include_input else []
    start = dim if enc.include_input else 0
    count = scaled.shape[0]
    expanded = x.linear(torch.cat(head + [scaled, scaled]))
    return activate_columns(expanded, [(slice(start, start + count), sine()), (slice(start + count, start + 2 * count), cosine())])


def norm_interval(lower: Tensor, upper: Tensor, eps: float = 0.0) -> tuple[Tensor, Tensor]:
    """Exact bounds (B, 1) of sqrt(|x|^2 + eps) over boxes (B, D): nearest and farthest box points from the origin."""
    near = torch.maximum(torch.maximum(lower, -upper), torch.zeros_like(lower))
    far = torch.maximum(lower.abs(), upper.abs())
    lo = torch.sqrt(near.square().sum(dim=1, keepdim=True) + eps)
    hi = torch.sqrt(far.square().sum(dim=1, keepdim=True) + eps)
    return lo, hi


def norm(x: AffineForm, eps: float = 0.0) -> AffineForm:
    """sqrt(|x|^2 + eps) (B, 1) over the box of ``x``'s bounds.

    Interval mode: the exact interval. Affine modes: the tangent plane at the
    box's center plus a remainder in [0, r]. The function is convex, so it lies
    above its tangent everywhere; the remainder (function minus tangent) is
    convex too, so its maximum r over the box is at one of the box's corners.
    """
    lower, upper = x.bounds()
    image = norm_interval(lower, upper, eps)
    if x.ctx.mode == "interval":
        return AffineForm.from_interval(*image, x.ctx)
    mid = (lower + upper) * 0.5
    value = torch.sqrt(mid.square().sum(dim=1) + eps)  # (B,)
    grad = torch.where(value[:, None] > 0, mid / value.clamp_min(torch.finfo(value.dtype).tiny)[:, None], 0.0)
    choice = torch.tensor(list(itertools.product((False, True), repeat=x.size)), device=mid.device)  # (2^D, D)
    corners = torch.where(choice, upper[:, None, :], lower[:, None, :])  # (B, 2^D, D)
    tangent = value[:, None] + ((corners - mid[:, None, :]) * grad[:, None, :]).sum(dim=2)
    remainder = (torch.sqrt(corners.square().sum(dim=2) + eps) - tangent).amax(dim=1).clamp_min(0.0)  # (B,)
    beta = value + (grad * (x.center - mid)).sum(dim=1) + remainder * 0.5
    return x.approximate_map(grad[:, None, :], beta[:, None], remainder[:, None] * 0.5, image)
