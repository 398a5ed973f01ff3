"""SDF fitting losses: IGR (Gropp et al. 2020) and SIREN (Sitzmann et al. 2020)."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..fields.grad import finite_difference_gradient, value_and_gradient

SurfaceWeights = tuple[torch.Tensor, torch.Tensor]
"""Per surface point: the weight of its value term and of its normal term (iso-points, fitting/isopoint_term.py)."""


def _unpack(weights: SurfaceWeights | None, surface: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if weights is None:
        one = torch.ones(len(surface), device=surface.device)
        return one, one
    return weights


def igr_loss(
    field: nn.Module,
    surface: torch.Tensor,
    normals: torch.Tensor | None,
    off_surface: torch.Tensor,
    tau_normals: float = 1.0,
    lambda_eikonal: float = 0.1,
    fd_step: float = 0.0,
    off_sign: torch.Tensor | None = None,
    w_sign: float = 0.0,
    weights: SurfaceWeights | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """mean|f(surface)| + tau * mean||grad f - n|| + lambda * mean(||grad f|| - 1)^2 over ``off_surface``.

    The normal term is dropped when ``normals`` is None. ``fd_step`` > 0 takes
    the gradients by central differences of that step instead of autograd.
    ``off_sign`` (one per off-surface point: +1 outside, -1 inside, 0 unknown)
    adds ``w_sign`` * mean relu(-sign * f) over the points of known sign, on the
    values the eikonal term already computed. ``weights`` weigh each surface
    point's value and normal terms (see SurfaceWeights).
    """
    x = torch.cat([surface, off_surface])
    f, g = finite_difference_gradient(field, x, fd_step) if fd_step > 0 else value_and_gradient(field, x, create_graph=True)
    m = len(surface)
    w_value, w_normal = _unpack(weights, surface)
    parts = {
        "surface": (w_value * f[:m].abs()).mean(),
        "eikonal": lambda_eikonal * (g[m:].norm(dim=-1) - 1.0).square().mean(),
    }
    if normals is not None and tau_normals > 0:
        parts["normals"] = tau_normals * (w_normal * (g[:m] - normals).norm(dim=-1)).mean()
    if off_sign is not None and w_sign > 0:  # the mean over the points of known sign (0 elsewhere), without a sync
        known = (off_sign != 0).sum().clamp_min(1)
        parts["sign"] = w_sign * torch.relu(-off_sign * f[m:]).sum() / known
    return sum(parts.values()), parts


def siren_loss(
    field: nn.Module,
    surface: torch.Tensor,
    normals: torch.Tensor,
    off_surface: torch.Tensor,
    w_sdf: float = 3e3,
    w_normal: float = 1e2,
    w_eikonal: float = 5e1,
    w_offsurface: float = 1e2,
    alpha: float = 100.0,
    weights: SurfaceWeights | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SIREN's SDF loss: |f| and (1 - cos) to the normals on the surface, exp(-alpha|f|) off it,
    and |‖grad f‖ - 1| everywhere.

    Every term is averaged over the whole batch (surface and off-surface points
    together, zero where a term does not apply), as in the published code, so
    the weights keep their published balance. ``weights``: see SurfaceWeights.
    """
    x = torch.cat([surface, off_surface])
    f, g = value_and_gradient(field, x, create_graph=True)
    m, total = len(surface), len(x)
    w_value, w_cos = _unpack(weights, surface)
    parts = {
        "sdf": w_sdf * (w_value * f[:m].abs()).sum() / total,
        "normal": w_normal * (w_cos * (1.0 - F.cosine_similarity(g[:m], normals, dim=-1))).sum() / total,
        "offsurface": w_offsurface * torch.exp(-alpha * f[m:].abs()).sum() / total,
        "eikonal": w_eikonal * (g.norm(dim=-1) - 1.0).abs().mean(),
    }
    return sum(parts.values()), parts


def gradient_norm_tv(field: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """u(x), |grad u| and |grad |grad u|| at ``x``, all differentiable in the parameters.

    The last is computed as a Hessian-vector product, grad |grad u| = H grad u / |grad u|
    (H is symmetric), so one more backward pass gives it.
    """
    x = x.detach().requires_grad_(True)
    u = field(x)
    (g,) = torch.autograd.grad(u, x, torch.ones_like(u), create_graph=True)
    norm = g.norm(dim=-1)
    (hg,) = torch.autograd.grad(g, x, g / norm.clamp_min(1e-8)[:, None], create_graph=True)
    return u, norm, hg.norm(dim=-1)


def skeleton_loss(
    field: nn.Module,
    surface: torch.Tensor,
    normals: torch.Tensor,
    uniform: torch.Tensor,
    hints: torch.Tensor | None,
    hint_distance: torch.Tensor | None,
    hint_direction: torch.Tensor | None,
    weights: dict[str, float],
    w_tv: float,
    surface_weights: SurfaceWeights | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The neural-skeleton loss (Clémot & Digne 2023).

    - surface: ``w_surface`` * mean u^2 + ``w_normal`` * mean(1 - cos(grad u, n)) on the surface points;
    - eikonal: ``w_eikonal`` * mean (1 - |grad u|)^2 at the uniform points;
    - learning points (when ``hints`` is given): ``w_hint`` * mean (u - d)^2 + ``w_hint_normal`` *
      mean(1 - cos(grad u, direction)) at points of known signed distance d;
    - total variation: ``w_tv`` * mean |grad |grad u|| at the uniform points.

    ``surface_weights``: see SurfaceWeights.
    """
    u_s, g_s = value_and_gradient(field, surface, create_graph=True)
    w_value, w_cos = _unpack(surface_weights, surface)
    parts = {
        "surface": weights["w_surface"] * (w_value * u_s.square()).mean(),
        "normal": weights["w_normal"] * (w_cos * (1.0 - F.cosine_similarity(g_s, normals, dim=-1))).mean(),
    }
    if w_tv > 0:
        _, norm, tv = gradient_norm_tv(field, uniform)
        parts["tv"] = w_tv * tv.mean()
    else:
        _, g_u = value_and_gradient(field, uniform, create_graph=True)
        norm = g_u.norm(dim=-1)
    parts["eikonal"] = weights["w_eikonal"] * (1.0 - norm).square().mean()
    if hints is not None:
        assert hint_distance is not None and hint_direction is not None  # given with the hints
        u_h, g_h = value_and_gradient(field, hints, create_graph=True)
        parts["hint"] = weights["w_hint"] * (u_h - hint_distance).square().mean()
        parts["hint_normal"] = weights["w_hint_normal"] * (1.0 - F.cosine_similarity(g_h, hint_direction, dim=-1)).mean()
    return cast(torch.Tensor, sum(parts.values())), parts  # parts is never empty: the sum is no int 0
