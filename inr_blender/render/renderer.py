"""One renderer for both radiance fields: rays in the field's local cube -> samples -> field -> compositing.

Rays are given in the field's local frame ([-1, 1]^3, unit directions); the
sampler depends on the field: the fast field marches through its occupancy
grid (:func:`.samplers.march`), classic NeRF samples 64 stratified points for
its coarse network and 128 more from their weights for the fine one
(:func:`.samplers.sample_pdf`), as published.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..fields.nerf import ClassicNeRF, FastNeRF
from ..types import Colours, Directions, Intrinsics, Matrix4, Points
from .cameras import image_rays, ray_box
from .samplers import deltas_of, march, sample_pdf, stratified
from .volume import composite, transmittance

TERMINATION = 1e-4  # Instant-NGP stops a ray once its transmittance is below this


@dataclass
class RenderSettings:
    """How rays are sampled: ``step`` (fast field, local units) or ``coarse`` + ``fine`` samples (classic NeRF)."""

    kind: str = "fast"
    step: float = 2.0 * 3**0.5 / 512
    coarse: int = 64
    fine: int = 128
    prune: bool = False  # fast field, training: drop samples behind opaque matter before the gradient pass


def _evaluate(field: nn.Module, points: torch.Tensor, directions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Field values at the masked samples, scattered back into (R, K) and (R, K, 3) arrays (zero elsewhere)."""
    rows, cols = torch.nonzero(mask, as_tuple=True)
    sigma = points.new_zeros(mask.shape)
    rgb = points.new_zeros(*mask.shape, 3)
    if len(rows):
        s, c = field(points[rows, cols], directions[rows])
        sigma = sigma.index_put((rows, cols), s)
        rgb = rgb.index_put((rows, cols), c)
    return sigma, rgb


def render_fast(
    field: FastNeRF,
    origins: Points,
    directions: Directions,
    background: Colours,
    step: float,
    perturb: bool,
    prune: bool = False,
) -> dict[str, torch.Tensor]:
    """March through the occupancy grid; with ``prune``, samples behind opaque matter (T < 1e-4) are dropped
    after a density-only pass without gradients, so the gradient pass only pays for visible samples."""
    near, far = ray_box(origins, directions, -torch.ones(3, device=origins.device), torch.ones(3, device=origins.device))
    t, mask, deltas, kept = march(origins, directions, near, far, step, field.occupancy, perturb)
    points = origins[:, None, :] + directions[:, None, :] * t[..., None]
    if prune and mask.any():
        with torch.no_grad():
            rows, cols = torch.nonzero(mask, as_tuple=True)
            sigma = t.new_zeros(mask.shape).index_put((rows, cols), field.density(points[rows, cols]))
            visible = transmittance(sigma * deltas) > TERMINATION
        mask = mask & visible
        deltas = deltas * mask
    sigma, rgb = _evaluate(field, points, directions, mask)
    out = composite(sigma, rgb, deltas, t, background)
    out["samples"] = mask.sum() if prune else torch.tensor(kept)  # without pruning, no further transfer
    return out


@torch.no_grad()
def render_fast_inference(
    field: FastNeRF,
    origins: Points,
    directions: Directions,
    background: Colours,
    step: float,
    segment: int = 32,
) -> dict[str, torch.Tensor]:
    """The fast field's marching without gradients, ``segment`` steps at a time, each ray stopping once
    its transmittance falls below 1e-4 (Instant-NGP's early termination): samples behind opaque
    matter are never evaluated. Same quadrature as :func:`render_fast` (without jitter)."""
    r = len(origins)
    near, far = ray_box(origins, directions, -torch.ones(3, device=origins.device), torch.ones(3, device=origins.device))
    remaining = torch.ones(r, device=origins.device)  # transmittance so far
    colour = torch.zeros(r, 3, device=origins.device)
    depth = torch.zeros(r, device=origins.device)
    t_next = near + 0.5 * step
    alive = torch.nonzero(far > near).squeeze(-1)
    offsets = torch.arange(segment, device=origins.device) * step
    samples = 0
    while len(alive):
        t = t_next[alive, None] + offsets  # (A, S)
        points = origins[alive, None, :] + directions[alive, None, :] * t[..., None]
        mask = (t < far[alive, None]) & field.occupancy.occupied(points)
        sigma, rgb = _evaluate(field, points, directions[alive], mask)
        samples += int(mask.sum())
        thickness = sigma * step
        weights = remaining[alive, None] * transmittance(thickness) * (1.0 - torch.exp(-thickness))
        colour[alive] += (weights[..., None] * rgb).sum(dim=1)
        depth[alive] += (weights * t).sum(dim=1)
        remaining[alive] *= torch.exp(-thickness.sum(dim=1))
        t_next[alive] += segment * step
        alive = alive[(remaining[alive] > TERMINATION) & (t_next[alive] < far[alive])]
    acc = 1.0 - remaining
    return {"rgb": colour + remaining[:, None] * background, "acc": acc, "depth": depth, "samples": torch.tensor(samples)}


def render_classic(
    field: ClassicNeRF,
    origins: Points,
    directions: Directions,
    background: Colours,
    coarse: int,
    fine: int,
    perturb: bool,
) -> dict[str, torch.Tensor]:
    """Hierarchical sampling between the ray's entry and exit of the cube; returns the fine render plus ``rgb_coarse``."""
    near, far = ray_box(origins, directions, -torch.ones(3, device=origins.device), torch.ones(3, device=origins.device))
    hit = (far > near)[:, None]
    far = torch.maximum(far, near + 1e-3)
    t = stratified(near, far, coarse, perturb)

    def run(network: nn.Module, t: torch.Tensor) -> dict[str, torch.Tensor]:
        points = origins[:, None, :] + directions[:, None, :] * t[..., None]
        sigma, rgb = network(points.reshape(-1, 3), directions[:, None, :].expand_as(points).reshape(-1, 3))
        sigma = sigma.reshape(t.shape) * hit  # rays that miss the cube see only the background
        return composite(sigma, rgb.reshape(*t.shape, 3), deltas_of(t), t, background)

    coarse_out = run(field.coarse, t)
    mids = 0.5 * (t[:, 1:] + t[:, :-1])
    extra = sample_pdf(mids, coarse_out["weights"][:, 1:-1].detach(), fine, perturb).detach()
    t_fine, _ = torch.sort(torch.cat([t, extra], dim=-1), dim=-1)
    out = run(field.fine, t_fine)
    out["rgb_coarse"] = coarse_out["rgb"]
    out["samples"] = torch.tensor(t.numel() + t_fine.numel())
    return out


def render_rays(
    field: nn.Module,
    settings: RenderSettings,
    origins: Points,
    directions: Directions,
    background: Colours,
    perturb: bool = False,
) -> dict[str, torch.Tensor]:
    """Render local-frame rays (N origins, N unit directions; ``background`` (3,) or one per ray (N, 3)) with the sampler of
    ``settings.kind`` (early ray termination when not training): rgb (N, 3), acc (N,), depth (N,), samples."""
    if settings.kind == "classic":
        assert isinstance(field, ClassicNeRF), f"classic rendering needs a ClassicNeRF, got {type(field).__name__}"
        return render_classic(field, origins, directions, background, settings.coarse, settings.fine, perturb)
    assert isinstance(field, FastNeRF), f"fast rendering needs a FastNeRF, got {type(field).__name__}"
    if not perturb and not torch.is_grad_enabled():
        return render_fast_inference(field, origins, directions, background, settings.step)
    return render_fast(field, origins, directions, background, settings.step, perturb, settings.prune)


@torch.no_grad()
def render_image(
    field: nn.Module,
    settings: RenderSettings,
    c2w: Matrix4,
    intrinsics: Intrinsics,
    width: int,
    height: int,
    background: Colours,
    chunk: int = 8192,
    progress=None,
) -> dict[str, torch.Tensor]:
    """Render a whole image from a local-frame camera: rgb (H, W, 3), alpha (H, W) and z-depth (H, W, local units; 0 where empty)."""
    origins, directions, z_scale = image_rays(c2w, intrinsics, width, height)
    rgb, acc, depth = [], [], []
    for start in range(0, len(origins), chunk):
        part = slice(start, start + chunk)
        out = render_rays(field, settings, origins[part], directions[part], background)
        rgb.append(out["rgb"])
        acc.append(out["acc"])
        depth.append(out["depth"] * z_scale[part])
        if progress is not None:
            progress(min(start + chunk, len(origins)), len(origins))
    acc_all = torch.cat(acc)
    z = torch.cat(depth) / acc_all.clamp_min(1e-6)
    z = torch.where(acc_all > 0.01, z, torch.zeros_like(z))
    return {
        "rgb": torch.cat(rgb).reshape(height, width, 3).clamp(0.0, 1.0),
        "alpha": acc_all.reshape(height, width).clamp(0.0, 1.0),
        "depth": z.reshape(height, width),
    }
