"""Affine forms batched over boxes: x = center + sum_i coeffs_i * eps_i + [-err, err], eps_i in [-1, 1].

Affine arithmetic after Comba & Stolfi 1993, in the variants that Sharp &
Jacobson 2022 ("Spelunking the Deep") compare:

- ``interval``: no symbols; every width lives in the interval error ``err``;
- ``affine_fixed``: one symbol per input axis; new approximation errors go into ``err``;
- ``affine_truncate``: one new symbol per neuron and nonlinearity, then only the
  ``truncate`` symbols of largest total magnitude are kept, the rest folded into ``err``;
- ``affine_append``: new symbols for the ``append`` largest new errors of each
  nonlinearity, the other new errors into ``err``;
- ``affine_all``: one new symbol per neuron and nonlinearity, none ever dropped
  (the tightest and the most memory: B x symbols x neurons).

Option ``intersect`` (affine modes): also carry plain interval bounds (``known``)
through every layer, and use the intersection of both enclosures, both to
linearise the nonlinearities and as the result (the reduced product of the
two arithmetics). The result is never wider than interval arithmetic's; the
published modes leave it off. Affine arithmetic alone can be wider than
intervals on large boxes, where its linearisation errors outweigh the
correlations it keeps.

A form holds B boxes at once: ``center`` (B, n), ``coeffs`` (B, V, n), ``err``
(B, n) and ``ids`` (B, V), the identity of each symbol. Ids let forms that
share symbols (a skip connection concatenates the input with a later layer)
be combined exactly, even after truncation kept different symbols in
different boxes. An id is unique within a box; -1 marks a row that is all zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

MODES = ("interval", "affine_fixed", "affine_truncate", "affine_append", "affine_all")
ROUNDING_ULPS = 16  # outward margin of every bound, in units of the dtype's epsilon (see AffineForm.bounds)


@dataclass
class RangeContext:
    """The mode of one evaluation, its options, and the counter that names new symbols."""

    mode: str = "affine_fixed"
    truncate: int = 8  # symbols kept by affine_truncate (the paper's experiments use 8)
    append: int = 4  # new symbols per nonlinearity in affine_append (the paper's experiments use 4)
    intersect: bool = False  # also carry interval bounds and intersect (affine modes)
    next_symbol: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown range mode {self.mode!r}; known: {', '.join(MODES)}")
        if int(self.truncate) < 1 or int(self.append) < 1:
            raise ValueError(f"truncate and append must be at least 1, got {self.truncate} and {self.append}")

    def new_symbols(self, count: int, batch: int, device: torch.device) -> Tensor:
        """Ids (batch, count) for ``count`` fresh symbols (the same ids in every box)."""
        ids = torch.arange(self.next_symbol, self.next_symbol + count, device=device)
        self.next_symbol += count
        return ids.expand(batch, count)


@dataclass
class AffineForm:
    """n affine quantities over each of B boxes (see the module docstring)."""

    center: Tensor  # (B, n)
    coeffs: Tensor  # (B, V, n)
    ids: Tensor  # (B, V) int64
    err: Tensor  # (B, n), >= 0
    ctx: RangeContext
    known: tuple[Tensor, Tensor] | None = None  # interval bounds (B, n) carried alongside, with ``intersect``

    @classmethod
    def from_box(cls, lower: Tensor, upper: Tensor, ctx: RangeContext) -> AffineForm:
        """The coordinates of axis-aligned boxes (B, D): one symbol per axis, or all width as error (interval mode)."""
        center, half = (lower + upper) * 0.5, (upper - lower) * 0.5
        batch, dim = center.shape
        if ctx.mode == "interval":
            return cls.from_interval(lower, upper, ctx)
        ids = ctx.new_symbols(dim, batch, center.device)
        known = (lower, upper) if ctx.intersect else None
        return cls(center, torch.diag_embed(half), ids, torch.zeros_like(center), ctx, known)

    @classmethod
    def from_interval(cls, lo: Tensor, hi: Tensor, ctx: RangeContext) -> AffineForm:
        """Intervals [lo, hi] (B, n) with no symbols: uncorrelated with everything else."""
        batch, n = lo.shape
        empty = lo.new_zeros(batch, 0, n)
        ids = torch.zeros(batch, 0, dtype=torch.long, device=lo.device)
        known = (lo, hi) if ctx.intersect and ctx.mode != "interval" else None
        return cls((lo + hi) * 0.5, empty, ids, (hi - lo) * 0.5, ctx, known)

    @property
    def size(self) -> int:
        """n, the number of quantities per box."""
        return self.center.shape[1]

    def radius(self) -> Tensor:
        """Half-width (B, n) of the range: sum |coeffs| + err."""
        return self.coeffs.abs().sum(dim=1) + self.err

    def bounds(self) -> tuple[Tensor, Tensor]:
        """Certified (lower, upper) (B, n), widened by ROUNDING_ULPS ulps of |center| + radius.

        Float rounding is not tracked operation by operation; this margin covers
        it in practice (the largest error measured was under one ulp, in interval
        arithmetic on a 512 x 8 IGR whose bounds reach 1e7).
        """
        r = self.radius()
        r = r + ROUNDING_ULPS * torch.finfo(r.dtype).eps * (self.center.abs() + r)
        lo, hi = self.center - r, self.center + r
        if self.known is None:
            return lo, hi
        return torch.maximum(lo, self.known[0]), torch.minimum(hi, self.known[1])

    def _with(self, center: Tensor, coeffs: Tensor, ids: Tensor, err: Tensor, known: tuple[Tensor, Tensor] | None) -> AffineForm:
        return AffineForm(center, coeffs, ids, err, self.ctx, known)

    def linear(self, weight: Tensor, bias: Tensor | None = None) -> AffineForm:
        """x W^T + b: exact on the symbols; the interval error maps through |W|."""
        center = self.center @ weight.T
        if bias is not None:
            center = center + bias
        known = None
        if self.known is not None:  # interval arithmetic on the known bounds
            lo, hi = self.bounds()
            mid = ((lo + hi) * 0.5) @ weight.T + (0.0 if bias is None else bias)
            half = ((hi - lo) * 0.5) @ weight.abs().T
            known = (mid - half, mid + half)
        return self._with(center, self.coeffs @ weight.T, self.ids, self.err @ weight.abs().T, known)

    def scale(self, factor: float) -> AffineForm:
        """factor * x."""
        known = None
        if self.known is not None:
            lo, hi = self.known[0] * factor, self.known[1] * factor
            known = (lo, hi) if factor >= 0 else (hi, lo)
        return self._with(self.center * factor, self.coeffs * factor, self.ids, self.err * abs(factor), known)

    def select(self, columns: Sequence[int] | slice) -> AffineForm:
        """The quantities ``columns`` (symbols are kept, some rows may become zero)."""
        known = None if self.known is None else (self.known[0][:, columns], self.known[1][:, columns])
        return self._with(self.center[:, columns], self.coeffs[:, :, columns], self.ids, self.err[:, columns], known)

    def approximate(self, alpha: Tensor, beta: Tensor, delta: Tensor, image: tuple[Tensor, Tensor] | None = None) -> AffineForm:
        """Elementwise: replace each quantity x by alpha (x - center) + beta +- delta (all (B, n)).

        The linearisation is taken about the current center, so the new center is
        beta. ``delta`` becomes new symbols or interval error, as the mode says.
        ``image``: interval bounds of the result, kept with ``intersect``.
        """
        return self._finish(beta, self.coeffs * alpha[:, None, :], self.err * alpha.abs(), delta, image)

    def approximate_map(self, weight: Tensor, beta: Tensor, delta: Tensor, image: tuple[Tensor, Tensor] | None = None) -> AffineForm:
        """m new quantities beta + weight (x - center) +- delta, with a linear map per box: weight (B, m, n)."""
        coeffs = torch.einsum("bvn,bmn->bvm", self.coeffs, weight)
        err = torch.einsum("bn,bmn->bm", self.err, weight.abs())
        return self._finish(beta, coeffs, err, delta, image)

    def _finish(self, center: Tensor, coeffs: Tensor, err: Tensor, delta: Tensor, image: tuple[Tensor, Tensor] | None) -> AffineForm:
        """Account for the new approximation errors ``delta`` (B, n) as the mode says."""
        known = image if self.known is not None else None
        mode = self.ctx.mode
        if mode in ("interval", "affine_fixed"):
            return self._with(center, coeffs, self.ids, err + delta, known)
        if mode == "affine_append":
            return self._with(center, *self._append_largest(coeffs, err, delta), known)
        limit = math.inf if mode == "affine_all" else int(self.ctx.truncate)
        return self._with(center, *self._append_all(coeffs, err, delta, limit), known)

    def _append_largest(self, coeffs: Tensor, err: Tensor, delta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """New symbols for the ``append`` largest deltas of each box; the other deltas go into err."""
        batch, n = delta.shape
        count = min(int(self.ctx.append), n)
        values, index = delta.topk(count, dim=1)
        rows = delta.new_zeros(batch, count, n).scatter_(2, index[:, :, None], values[:, :, None])
        ids = torch.cat([self.ids, self.ctx.new_symbols(count, batch, delta.device)], dim=1)
        return torch.cat([coeffs, rows], dim=1), ids, err + delta.scatter(1, index, 0.0)

    def _append_all(self, coeffs: Tensor, err: Tensor, delta: Tensor, limit: float) -> tuple[Tensor, Tensor, Tensor]:
        """One new symbol per quantity; then keep the ``limit`` largest symbols per box, the rest into err."""
        batch, symbols, n = coeffs.shape
        new_ids = self.ctx.new_symbols(n, batch, delta.device)
        if symbols + n <= limit:
            return torch.cat([coeffs, torch.diag_embed(delta)], dim=1), torch.cat([self.ids, new_ids], dim=1), err
        # Pick among old rows and the new diagonal rows without building the (B, n, n) diagonal.
        keep = int(limit)
        magnitude = torch.cat([coeffs.abs().sum(dim=2), delta], dim=1)  # (B, V + n)
        chosen = magnitude.topk(keep, dim=1).indices  # (B, keep)
        is_old = chosen < symbols
        new_col = (chosen - symbols).clamp_min(0)
        new_val = torch.where(is_old, 0.0, delta.gather(1, new_col))
        rows = delta.new_zeros(batch, keep, n).scatter_(2, new_col[:, :, None], new_val[:, :, None])
        if symbols:
            old_row = chosen.clamp_max(symbols - 1)[:, :, None].expand(batch, keep, n)
            rows = rows + coeffs.gather(1, old_row) * is_old[:, :, None]
        kept = torch.zeros_like(magnitude, dtype=torch.bool).scatter_(1, chosen, True)
        dropped = (coeffs.abs() * ~kept[:, :symbols, None]).sum(dim=1) + delta * ~kept[:, symbols:]
        ids = torch.cat([self.ids, new_ids], dim=1).gather(1, chosen)
        return rows, ids, err + dropped


def concat(forms: Sequence[AffineForm]) -> AffineForm:
    """Concatenate the quantities of forms over the same boxes, merging the symbols they share."""
    out = forms[0]
    for form in forms[1:]:
        out = _concat_pair(out, form)
    return out


def _concat_pair(a: AffineForm, b: AffineForm) -> AffineForm:
    batch = a.center.shape[0]
    match = (b.ids[:, :, None] == a.ids[:, None, :]) & (b.ids[:, :, None] >= 0)  # (B, Vb, Va)
    shared = torch.einsum("bjv,bjn->bvn", match.to(b.coeffs.dtype), b.coeffs)  # b's coefficients on a's symbols
    found = match.any(dim=2)  # (B, Vb)
    needed = ~found.all(dim=0)  # b's symbols that some box does not share with a
    rest = b.coeffs[:, needed] * ~found[:, needed, None]
    rest_ids = torch.where(found[:, needed], -1, b.ids[:, needed])
    top = torch.cat([a.coeffs, shared], dim=2)
    bottom = torch.cat([rest.new_zeros(batch, rest.shape[1], a.size), rest], dim=2)
    known = None
    if a.known is not None or b.known is not None:
        (a_lo, a_hi), (b_lo, b_hi) = a.bounds(), b.bounds()
        known = (torch.cat([a_lo, b_lo], dim=1), torch.cat([a_hi, b_hi], dim=1))
    return AffineForm(
        torch.cat([a.center, b.center], dim=1),
        torch.cat([top, bottom], dim=1),
        torch.cat([a.ids, rest_ids], dim=1),
        torch.cat([a.err, b.err], dim=1),
        a.ctx,
        known,
    )
