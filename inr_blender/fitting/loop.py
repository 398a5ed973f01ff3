"""The one training loop every fitting method shares."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..context import JobContext, JobError

READBACK_EVERY = 1024  # at most this many step losses wait on the device for their read-back


@dataclass
class StopRule:
    """When to stop before the iteration limit.

    Converged: the mean loss of a window of ``window`` steps improved on the
    previous window's by less than ``tolerance`` (relative), ``patience``
    windows in a row, after at least ``min_iterations`` steps
    (``tolerance`` 0 disables it). Time: ``max_seconds`` > 0 caps the wall time.
    """

    tolerance: float = 0.0
    window: int = 100
    patience: int = 2
    min_iterations: int = 0
    max_seconds: float = 0.0


@dataclass
class TrainResult:
    losses: list[float]
    stop_reason: str


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
    stop: StopRule | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    progress_psnr: Callable[[], float | None] | None = None,
    param_groups: Sequence[Sequence[torch.Tensor]] | None = None,
    lr_scale: Callable[[int], Sequence[float]] | None = None,
) -> TrainResult:
    """Optimise ``field`` with Adam for at most ``iterations`` steps; return every step's loss and why it stopped.

    ``step_loss(i)`` draws the i-th batch and returns its scalar loss. The
    learning rate is multiplied by ``lr_decay_factor`` every ``lr_decay_interval``
    steps (0: constant). ``grad_clip`` > 0 clips the gradient norm. Progress is
    reported every step (``ctx`` rate-limits it), and ``ctx`` raises
    ``Cancelled`` when the user cancels (a stop request ends the run, keeping it). ``adam_eps`` is Adam's epsilon
    (PyTorch's default 1e-8; Instant-NGP trains its hash tables with 1e-15).
    ``stop`` may end the run early (see :class:`StopRule`). ``betas`` are
    Adam's; ``progress_psnr`` (radiance fields) adds a PSNR to each progress report.
    ``param_groups`` splits the parameters into groups whose rates are
    ``learning_rate`` times the factors ``lr_scale(i)`` gives at step i (phased
    training; then without the step decay).

    The step losses stay on the device and are read back in one transfer (a read waits for a GPU) only when a
    progress report is due (``ctx.report_due``), at the stop rule's window ends and time limit, every
    ``READBACK_EVERY`` steps and at the end; a non-finite loss then names the first step that had one.
    """
    stop = stop or StopRule()
    groups = [{"params": g} for g in param_groups] if param_groups is not None else field.parameters()
    optimizer = torch.optim.Adam(groups, lr=learning_rate, eps=adam_eps, betas=betas)
    scheduler = (
        torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_decay_interval, gamma=lr_decay_factor)
        if lr_decay_interval > 0 and lr_scale is None
        else None
    )
    field.train()
    losses: list[float] = []
    pending: list[torch.Tensor] = []  # the step losses not read back yet
    windows: list[float] = []
    calm = 0
    reason = f"reached the iteration limit ({iterations} steps)"
    started = time.monotonic()
    ctx.progress(0, iterations, None, message)
    for i in range(iterations):
        if ctx.stop_requested() and i:  # the command line's first Ctrl-C: end here and keep the fit
            reason = f"interrupted after {i} steps"
            break
        if lr_scale is not None:
            for group, factor in zip(optimizer.param_groups, lr_scale(i)):
                group["lr"] = learning_rate * factor
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(i)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(field.parameters(), max_norm=grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        pending.append(loss.detach())
        due = ctx.report_due(i + 1, iterations)
        timed_out = stop.max_seconds > 0 and time.monotonic() - started >= stop.max_seconds and i + 1 < iterations
        window_end = stop.tolerance > 0 and (i + 1) % stop.window == 0
        if due or timed_out or window_end or len(pending) >= READBACK_EVERY:
            read_back(pending, losses)
        if due:
            ctx.progress(i + 1, iterations, losses[-1], message, None if progress_psnr is None else progress_psnr())
        else:
            ctx.check_cancel()
        if timed_out:
            reason = f"reached the time limit ({stop.max_seconds:g} s) after {i + 1} steps"
            break
        if window_end:
            windows.append(float(np.mean(losses[-stop.window :])))
            if len(windows) > 1:
                previous = windows[-2]
                improved = (previous - windows[-1]) / abs(previous) if previous else 0.0
                calm = calm + 1 if improved < stop.tolerance else 0
            if calm >= stop.patience and i + 1 >= stop.min_iterations and i + 1 < iterations:
                reason = (
                    f"converged after {i + 1} steps (the mean loss of {stop.window} steps improved by less than "
                    f"{stop.tolerance:.1%} {stop.patience} times in a row)"
                )
                break
    read_back(pending, losses)
    field.eval()
    return TrainResult(losses, reason)


def read_back(pending: list[torch.Tensor], losses: list[float]) -> None:
    """Append the step losses ``pending`` (scalar tensors) to ``losses`` in one transfer and empty it; JobError
    naming the first step (1-based, counting ``losses``) whose loss is not finite."""
    if not pending:
        return
    values = torch.cat([t.reshape(1) for t in pending]).tolist()
    pending.clear()
    for k, value in enumerate(values):
        if not math.isfinite(value):
            raise JobError(f"training diverged at step {len(losses) + k + 1} (the loss is {value}); lower the learning rate")
    losses.extend(values)


def train_with(field: nn.Module, step_loss: Callable[[int], torch.Tensor], p: dict[str, Any], ctx: JobContext, **options: Any) -> TrainResult:
    """:func:`train` with the run settings a fit declares (``iterations``, ``learning_rate``, ``lr_decay_interval``,
    ``lr_decay_factor``, ``adam_eps``, and the stop rule's ``convergence_tolerance``, ``convergence_window``,
    ``max_seconds``: see ``settings.sdf.run``); ``options`` are :func:`train`'s others."""
    stop = StopRule(
        tolerance=p["convergence_tolerance"], window=p["convergence_window"], min_iterations=p["iterations"] // 4, max_seconds=p["max_seconds"]
    )
    return train(
        field,
        step_loss,
        p["iterations"],
        p["learning_rate"],
        ctx,
        lr_decay_interval=p["lr_decay_interval"],
        lr_decay_factor=p["lr_decay_factor"],
        adam_eps=p["adam_eps"],
        stop=stop,
        **options,
    )


def downsample_history(losses: list[float], max_points: int = 200) -> list[list[float]]:
    """[[step, loss], ...] with at most ``max_points`` entries: bin means, step = the bin's last step (1-based)."""
    if not losses:
        return []
    edges = np.linspace(0, len(losses), min(max_points, len(losses)) + 1).round().astype(int)
    values = np.asarray(losses, dtype=np.float64)
    return [[int(b), float(values[a:b].mean())] for a, b in zip(edges[:-1], edges[1:]) if b > a]
