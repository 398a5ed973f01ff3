"""Completing a scan with a shape space: a new latent code optimised with the decoder frozen (Park 2019).

Observations, in the space's local frame: the scan's points (value 0); where normals are given, the points moved
by +-``surface_offset`` along them (value +-offset, as the published reconstruction samples depth points on both
sides of the surface); and ``free_points`` known to lie outside (one-sided: only a negative value is penalised).
The loss is the training loss on those samples (clamped L1, or cross-entropy for occupancy) plus ``prior`` times
the code's mean square. Published settings: 800 iterations at a learning rate of 5e-3, divided by 10 halfway,
prior 1e-4, a code started from N(0, 0.01^2), 8000 samples per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..context import JobContext, JobError
from ..fields.deepsdf import LatentShape, ShapeSpace
from ..geometry.validation import check_points
from .loop import train


class _Code(nn.Module):
    """The one trainable thing: the code (the decoder stays frozen and in eval mode)."""

    def __init__(self, size: int, std: float, generator: torch.Generator) -> None:
        super().__init__()
        self.code = nn.Parameter(torch.randn(size, generator=generator) * std)


def observations(
    points: np.ndarray, normals: np.ndarray | None, free_points: np.ndarray | None, offset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample points (M, 3), their target values (M,) and whether each is one-sided (free space) (M,)."""
    points = check_points(points, "scan points")
    xs, values = [points], [np.zeros(len(points))]
    if normals is not None:
        n = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
        if len(n) != len(points):
            raise JobError(f"{len(n)} normals for {len(points)} scan points")
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        xs += [points + offset * n, points - offset * n]
        values += [np.full(len(points), offset), np.full(len(points), -offset)]
    one_sided = [np.zeros(sum(len(v) for v in values), dtype=bool)]
    if free_points is not None and len(free_points):
        free = check_points(free_points, "free-space points")
        xs.append(free)
        values.append(np.zeros(len(free)))
        one_sided.append(np.ones(len(free), dtype=bool))
    return np.concatenate(xs), np.concatenate(values), np.concatenate(one_sided)


def complete_shape(
    space: ShapeSpace, points: np.ndarray, normals: np.ndarray | None, free_points: np.ndarray | None, p: dict[str, Any], ctx: JobContext
) -> tuple[LatentShape, dict[str, Any]]:
    """The completed shape (a field with the optimised code) and a record: loss history, fit error.

    ``p``: the settings of :data:`inr_blender.settings.completion.SPEC`, resolved (this does not check them again).
    """
    device = space.codes.weight.device
    x_np, value_np, one_sided_np = observations(points, normals, free_points, float(p["surface_offset"]))
    x = torch.as_tensor(x_np, dtype=torch.float32, device=device)
    value = torch.as_tensor(value_np, dtype=torch.float32, device=device)
    one_sided = torch.as_tensor(one_sided_np, device=device)
    decoder = space.decoder.eval()
    for param in decoder.parameters():
        param.requires_grad_(False)
    generator = torch.Generator().manual_seed(int(p["seed"]))
    holder = _Code(space.codes.embedding_dim, float(p["code_std"]), generator).to(device)
    iterations, batch, clamp = int(p["iterations"]), int(p["samples_per_step"]), float(p["clamp"])

    def step_loss(i: int) -> torch.Tensor:
        idx = torch.randint(len(x), (batch,), generator=generator).to(device) if len(x) > batch else slice(None)
        xs, s, free = x[idx], value[idx], one_sided[idx]
        out = decoder(torch.cat([holder.code.expand(len(xs), -1), xs], dim=-1))
        if decoder.output == "sdf":
            per = (out.clamp(-clamp, clamp) - s.clamp(-clamp, clamp)).abs()
            per = torch.where(free, torch.relu(-out), per)
        else:  # logits: inside where s < 0, outside at free points; surface points sit at 0.5
            target = torch.where(s < 0, 1.0, torch.where(s > 0, 0.0, 0.5))
            per = F.binary_cross_entropy_with_logits(out, torch.where(free, 0.0, target), reduction="none")
        return per.mean() + float(p["prior"]) * holder.code.pow(2).mean()

    run = train(
        holder,
        step_loss,
        iterations,
        float(p["learning_rate"]),
        ctx,
        lr_decay_interval=max(1, iterations // 2),
        lr_decay_factor=0.1,
        message="completing the scan",
    )
    shape = LatentShape(decoder, holder.code.detach()).eval()
    with torch.no_grad():
        scan = torch.as_tensor(check_points(points, "scan points"), dtype=torch.float32, device=device)
        fit_error = float(torch.cat([shape(scan[i : i + 65536]) for i in range(0, len(scan), 65536)]).abs().mean())
    return shape, {"losses": run.losses, "stop_reason": run.stop_reason, "fit_error": fit_error}
