"""Volume rendering with NeRF's quadrature, on padded per-ray samples.

Samples are (R, K) arrays per ray (unused slots have zero density). With
delta_i the length of sample i's segment, alpha_i = 1 - exp(-sigma_i delta_i),
T_i = exp(-sum_{j<i} sigma_j delta_j), weight_i = T_i alpha_i; colour =
sum weight_i c_i + (1 - sum weight_i) * background (Mildenhall et al. 2020,
eq. 3, with the background as Instant-NGP and NeRF's white-background option).
"""

from __future__ import annotations

import torch


def transmittance(thickness: torch.Tensor) -> torch.Tensor:
    """exp(-sum_{j<i} thickness_j) along the last axis (T_0 = 1).

    An exclusive cumulative sum, not the inclusive one minus the sample's own term: with NeRF's last
    segment of 1e10 that subtraction loses everything before it in float32 and lets the weights sum to 2.
    """
    before = torch.cumsum(thickness[..., :-1], dim=-1)
    return torch.exp(-torch.cat([torch.zeros_like(thickness[..., :1]), before], dim=-1))


def composite(sigma: torch.Tensor, rgb: torch.Tensor, deltas: torch.Tensor, t: torch.Tensor, background: torch.Tensor) -> dict[str, torch.Tensor]:
    """Render (R, K) samples: returns rgb (R, 3), opacity ``acc`` (R,), expected distance ``depth`` (R,), ``weights`` (R, K)."""
    thickness = sigma * deltas
    alpha = 1.0 - torch.exp(-thickness)
    weights = alpha * transmittance(thickness)
    acc = weights.sum(dim=-1)
    colour = (weights[..., None] * rgb).sum(dim=-2) + (1.0 - acc)[..., None] * background
    depth = (weights * t).sum(dim=-1)
    return {"rgb": colour, "acc": acc, "depth": depth, "weights": weights}
