"""Elementwise nonlinearities on affine forms: one generic linearisation rule, and the facts each function needs.

For a function phi on the range [l, u] of a quantity with center c, pick a
slope alpha, then bound g(x) = phi(x) - alpha (x - c) exactly over [l, u]: its
extremes lie at the endpoints or where g' = 0, i.e. where phi'(x) = alpha (and
at kinks). With beta the midpoint and delta the half-width of g's range,
phi(x) lies in alpha (x - c) + beta +- delta for every x in [l, u]. The bound
is sound for any alpha; the slope only decides how tight it is. Interval mode
uses alpha = 0, which gives the exact image of [l, u].

Slopes: the secant (phi(u) - phi(l)) / (u - l), which is the Chebyshev (minimax)
slope for the convex or concave pieces (ReLU, softplus, ELU); the same secant
for tanh, sigmoid, sine and cosine. A zero-width range takes phi' at its center.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .affine import AffineForm

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class Activation:
    """A scalar nonlinearity as the linearisation sees it.

    ``slope(l, u)`` gives alpha; ``critical(alpha, l, u)`` lists the points where
    phi'(x) = alpha or phi has a kink (they may lie outside [l, u]: they are
    clipped; ``l`` and ``u`` are passed for periodic functions, whose
    critical points repeat). ``undershoot``: the module's own function may lie
    up to this much below ``fn`` (torch's softplus switches to x above its
    threshold, a small downward jump).
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor, Tensor], Tensor]
    critical: Callable[[Tensor, Tensor, Tensor], Sequence[Tensor]]
    undershoot: float = 0.0


def linearize(act: Activation, center: Tensor, lower: Tensor, upper: Tensor, interval: bool) -> tuple[Tensor, Tensor, Tensor]:
    """alpha, beta, delta such that act(x) lies in alpha (x - center) + beta +- delta for every x in [lower, upper]."""
    alpha = torch.zeros_like(center) if interval else act.slope(lower, upper)
    points = [lower, upper] + [torch.minimum(torch.maximum(p, lower), upper) for p in act.critical(alpha, lower, upper)]
    values = torch.stack([act.fn(x) - alpha * (x - center) for x in points])
    lo, hi = values.amin(dim=0) - act.undershoot, values.amax(dim=0)
    return alpha, (lo + hi) * 0.5, (hi - lo) * 0.5


def activate(form: AffineForm, act: Activation) -> AffineForm:
    """act applied to every quantity of ``form``."""
    return activate_columns(form, [(slice(None), act)])


def activate_columns(form: AffineForm, parts: Sequence[tuple[slice, Activation]]) -> AffineForm:
    """Each activation applied to its columns; columns in no part pass through unchanged.

    With the context's ``intersect`` option the exact image of each quantity's
    bounds is computed too (the interval rule), and the result keeps it.
    """
    alpha = torch.ones_like(form.center)
    beta = form.center.clone()
    delta = torch.zeros_like(form.center)
    lower, upper = form.bounds()
    image = (lower.clone(), upper.clone()) if form.known is not None else None
    interval = form.ctx.mode == "interval"
    for columns, act in parts:
        c, l, u = form.center[:, columns], lower[:, columns], upper[:, columns]
        alpha[:, columns], beta[:, columns], delta[:, columns] = linearize(act, c, l, u, interval)
        if image is not None:
            _, mid, half = linearize(act, c, l, u, True)
            image[0][:, columns], image[1][:, columns] = mid - half, mid + half
    return form.approximate(alpha, beta, delta, image)


def secant(
    fn: Callable[[Tensor], Tensor], derivative: Callable[[Tensor], Tensor], lower: Tensor, upper: Tensor, smallest: float, largest: float
) -> Tensor:
    """(fn(u) - fn(l)) / (u - l), phi' at the center where u == l, clamped to phi's slope range (float safety)."""
    width = upper - lower
    positive = width > 0
    slope = (fn(upper) - fn(lower)) / torch.where(positive, width, torch.ones_like(width))
    slope = torch.where(positive, slope, derivative((lower + upper) * 0.5))
    return slope.clamp(smallest, largest)


def _periodic(roots: Sequence[Tensor], lower: Tensor, upper: Tensor) -> list[Tensor]:
    """For each family r + 2 pi k, its first point >= lower and last point <= upper.

    g = phi - alpha x takes the values g(r) - 2 pi k alpha along a family, monotone
    in k, so the family's extremes on [l, u] are its first and last members there.
    """
    points = []
    for r in roots:
        points.append(r + TWO_PI * torch.ceil((lower - r) / TWO_PI))
        points.append(r + TWO_PI * torch.floor((upper - r) / TWO_PI))
    return points


def relu() -> Activation:
    def slope(lower, upper):
        return secant(torch.relu, lambda x: (x > 0).to(x.dtype), lower, upper, 0.0, 1.0)

    return Activation("relu", torch.relu, slope, lambda alpha, lower, upper: [torch.zeros_like(alpha)])


def softplus(beta: float = 1.0, threshold: float = 20.0) -> Activation:
    """log(1 + exp(beta x)) / beta, phi' = sigmoid(beta x). torch's module returns x where beta x > threshold,
    up to log(1 + exp(-threshold)) / beta below the smooth function (2e-11 at its defaults with IGR's beta 100)."""

    def fn(x):  # the smooth function, without overflow
        return torch.relu(x) + torch.log1p(torch.exp(-beta * x.abs())) / beta

    def slope(lower, upper):
        return secant(fn, lambda x: torch.sigmoid(beta * x), lower, upper, 0.0, 1.0)

    return Activation("softplus", fn, slope, lambda alpha, lower, upper: [torch.logit(alpha) / beta], math.log1p(math.exp(-threshold)) / beta)


def tanh() -> Activation:
    def slope(lower, upper):
        return secant(torch.tanh, lambda x: 1.0 - torch.tanh(x) ** 2, lower, upper, 0.0, 1.0)

    def critical(alpha, lower, upper):  # 1 - tanh(x)^2 = alpha
        x = torch.atanh(torch.sqrt(1.0 - alpha))
        return [x, -x]

    return Activation("tanh", torch.tanh, slope, critical)


def sigmoid() -> Activation:
    def slope(lower, upper):
        return secant(torch.sigmoid, lambda x: torch.sigmoid(x) * (1.0 - torch.sigmoid(x)), lower, upper, 0.0, 0.25)

    def critical(alpha, lower, upper):  # s (1 - s) = alpha
        root = torch.sqrt(1.0 - 4.0 * alpha)
        return [torch.logit((1.0 - root) * 0.5), torch.logit((1.0 + root) * 0.5)]

    return Activation("sigmoid", torch.sigmoid, slope, critical)


def elu(scale: float = 1.0) -> Activation:
    """torch's ELU: x above 0, scale (e^x - 1) below; phi' = 1 above 0, scale e^x below, a kink at 0."""

    def fn(x):
        return F.elu(x, scale)

    def slope(lower, upper):
        return secant(fn, lambda x: torch.where(x > 0, 1.0, scale * torch.exp(x)), lower, upper, min(0.0, scale), max(1.0, scale))

    def critical(alpha, lower, upper):
        zero = torch.zeros_like(alpha)
        if scale == 0.0:
            return [zero]
        ratio = alpha / scale  # scale e^x = alpha, on the negative side only
        x = torch.where(ratio > 0, torch.log(ratio.clamp_min(torch.finfo(ratio.dtype).tiny)), -math.inf)
        return [zero, x.clamp_max(0.0)]

    return Activation("elu", fn, slope, critical)


def sine() -> Activation:
    def slope(lower, upper):  # the secant: cos(m) sin(h) / h, with no cancellation
        half = (upper - lower) * 0.5
        return (torch.cos((lower + upper) * 0.5) * torch.sinc(half / math.pi)).clamp(-1.0, 1.0)

    def critical(alpha, lower, upper):  # cos x = alpha
        root = torch.acos(alpha)
        return _periodic([root, -root], lower, upper)

    return Activation("sin", torch.sin, slope, critical)


def cosine() -> Activation:
    def slope(lower, upper):
        half = (upper - lower) * 0.5
        return (-torch.sin((lower + upper) * 0.5) * torch.sinc(half / math.pi)).clamp(-1.0, 1.0)

    def critical(alpha, lower, upper):  # -sin x = alpha
        root = torch.asin(alpha)
        return _periodic([-root, math.pi + root], lower, upper)

    return Activation("cos", torch.cos, slope, critical)
