"""The one training loop every fitting method shares."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..context import JobContext, JobError


def train(
    field: nn.Module,
    step_loss: Callable[[int], torch.Tensor],
    iterations: int,
    learning_rate: float,
    ctx: JobContext,
    lr_decay_interval: int = 0,
    lr_decay_factor: float = 1.0,
    grad_clip: float = 0.0,
    message: str = "fitting",
    adam_eps: float = 1e-8,
) -> list[float]:
    """Optimise ``field`` with Adam for ``iterations`` steps; return the loss of every step.

    ``step_loss(i)`` draws the i-th batch and returns its scalar loss. The
    learning rate is multiplied by ``lr_decay_factor`` every ``lr_decay_interval``
    steps (0: constant). ``grad_clip`` > 0 clips the gradient norm. Progress is
    reported every step (``ctx`` rate-limits it), and ``ctx`` raises
    ``Cancelled`` when the user cancels. ``adam_eps`` is Adam's epsilon
    (PyTorch's default 1e-8; Instant-NGP trains its hash tables with 1e-15).
    """
    optimizer = torch.optim.Adam(field.parameters(), lr=learning_rate, eps=adam_eps)
    scheduler = (
        torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_decay_interval, gamma=lr_decay_factor)
        if lr_decay_interval > 0
        else None
    )
    field.train()
    losses: list[float] = []
    ctx.progress(0, iterations, None, message)
    for i in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(i)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(field.parameters(), max_norm=grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise JobError(f"training diverged at step {i + 1} (the loss is {value}); lower the learning rate")
        losses.append(value)
        ctx.progress(i + 1, iterations, value, message)
    field.eval()
    return losses


def downsample_history(losses: list[float], max_points: int = 200) -> list[list[float]]:
    """[[step, loss], ...] with at most ``max_points`` entries: bin means, step = the bin's last step (1-based)."""
    if not losses:
        return []
    edges = np.linspace(0, len(losses), min(max_points, len(losses)) + 1).round().astype(int)
    values = np.asarray(losses, dtype=np.float64)
    return [[int(b), float(values[a:b].mean())] for a, b in zip(edges[:-1], edges[1:]) if b > a]
