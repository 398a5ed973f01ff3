"""Fit a signed distance field to an oriented or unoriented point cloud: the loop every SDF method shares.

The methods, built-in or registered later, live in :mod:`.methods`, one module each: their settings, network,
preparation, loss and learning-rate phases. This module draws each step's surface samples (with iso-points, see
:mod:`.isopoint_term`), trains, and writes the checkpoint; it names no method.

Every method stops at its iteration limit, at an optional time limit, or once
its loss stops improving (see :class:`.loop.StopRule`); the checkpoint says
which (``stop_reason``).

With ``preview_every`` > 0 a step hands the context a coarse surface of the field every that many seconds
(:mod:`.preview`).

The points are first mapped to the field's local frame (see
:mod:`..geometry.sampling`), where the data spans [-0.8, 0.8] on its longest
axis and the domain is [-1, 1]^3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import __version__
from ..context import JobContext, JobError
from ..device import resolve_device
from ..geometry.sampling import normalization, to_local
from ..geometry.validation import check_normals, check_points
from ..settings import sdf as sdf_settings
from .isopoint_term import IsoPointTerm
from .loop import downsample_history, train_with
from .methods import METHODS, Batch, FitData
from .preview import PreviewClock, surface_preview
from .variant import variant_spec

CHECKPOINT_FORMAT = "inr_blender.sdf"
CHECKPOINT_VERSION = 1
SURFACE_SAMPLE = 16_384  # input points kept with the field (local frame, ~200 kB): extraction drops what lies away from them


# The settings of a fit: the common ones plus the chosen method's, read from the method registry when resolved
# (so a method registered later counts), resolved once by the job.
SPEC = variant_spec(
    "fit_sdf",
    sdf_settings.COMMON,
    METHODS,
    "method",
    sdf_settings.DEFAULT_METHOD,
    help="Fit a signed distance field to a mesh or a point cloud",
)
resolve_params = SPEC.resolve


def surface_sample(local: np.ndarray, seed: int) -> torch.Tensor:
    """At most :data:`SURFACE_SAMPLE` of the points (local frame, float32): what extraction measures debris against."""
    if len(local) > SURFACE_SAMPLE:
        local = local[np.random.default_rng(seed).choice(len(local), SURFACE_SAMPLE, replace=False)]
    return torch.as_tensor(local, dtype=torch.float32).contiguous()


def fit_sdf(points: np.ndarray, normals: np.ndarray | None, p: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Fit an SDF to world-space ``points`` (N, 3) with optional unit ``normals`` (N, 3); return the checkpoint dict.

    ``p`` are the fit's settings as :data:`SPEC` resolved them (the job resolves them once; this does not again).

    The checkpoint holds plain data only (tensors, lists, numbers, strings) and
    loads with ``torch.load(weights_only=True)``.
    """
    points = check_points(points)
    if normals is not None:
        normals = check_normals(normals, len(points))
    kind = METHODS.get(p["method"])
    if normals is None and kind.needs_normals():
        raise JobError(kind.settings.refuse_without_normals())
    device = resolve_device(p["device"])
    torch.manual_seed(p["seed"])
    center, scale = normalization(points)
    local = to_local(points, center, scale)
    surface = torch.as_tensor(local, dtype=torch.float32, device=device)
    surface_normals = None if normals is None else torch.as_tensor(normals, dtype=torch.float32, device=device)
    method = kind(p, FitData(local, normals, surface, surface_normals, device, ctx))
    config = kind.field_config(p)
    field = method.build_field(config)
    method.prepare(field)
    batch = p["batch_size"]
    iso_term = IsoPointTerm(local, normals, p, device) if p["isopoints"] > 0 else None
    clock = PreviewClock(p["preview_every"], ctx)

    def step_loss(i: int) -> torch.Tensor:
        clock.tick(i, p["iterations"], lambda: surface_preview(field, device, ctx, center, scale))
        idx = torch.randint(len(surface), (batch,), device=device)
        on = surface[idx]
        n = None if surface_normals is None else surface_normals[idx]
        weights = None
        if iso_term is not None:  # the iso-points join the surface samples
            iso_term.refresh(field, i)
            on, n, weights = iso_term.extend(on, n, idx, max(1, batch // 2))
        return method.loss(field, Batch(on, n, weights, idx, batch), i)

    groups = method.param_groups(field)
    run = train_with(
        field,
        step_loss,
        p,
        ctx,
        grad_clip=p["grad_clip"],
        message=f"fitting {p['method'].upper()}",
        param_groups=None if groups is None else groups[0],
        lr_scale=None if groups is None else groups[1],
    )
    losses = run.losses
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "backend_version": __version__,
        "method": p["method"],
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in field.state_dict().items()},
        "center": [float(c) for c in center],
        "scale": float(scale),
        "params": {k: v for k, v in p.items() if k != "checkpoint_path"},
        "loss_history": downsample_history(losses),
        "final_loss": losses[-1],
        "iterations_run": len(losses),
        "stop_reason": run.stop_reason,
        "num_points": int(len(points)),
        "surface_sample": surface_sample(local, p["seed"]),
        "has_normals": normals is not None,
        "isopoint_refreshes": 0 if iso_term is None else iso_term.refreshes,
        "previews": clock.count,
        "preview_seconds": clock.seconds,
        "device": str(device),
    }
