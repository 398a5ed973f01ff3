"""Fit a signed distance field to an oriented or unoriented point cloud.

The methods share the training loop and differ in network and loss:

- ``igr`` (Gropp et al. 2020): softplus MLP with geometric initialisation;
  surface term, optional normal term and eikonal term on near-surface Gaussian
  samples (per-point sigma = distance to the 50th neighbour) plus uniform
  samples over the domain.
- ``siren`` (Sitzmann et al. 2020): sine MLP; surface, normal, eikonal and
  off-surface terms. Needs normals.
- ``hashgrid`` (Müller et al. 2022, Instant-NGP's multiresolution hash
  encoding): hash-grid features plus a small softplus MLP over a fixed sphere
  SDF (see :mod:`..fields.hashgrid`), trained with IGR's losses and samples,
  plus, with normals, two terms from the signed distance to the cloud (sign
  from the nearest normals, see SignedDistanceEstimate): an L1 term at uniform
  points far from the cloud and a sign hinge on near-surface samples. The hash
  grid's features are local, so without them the inside keeps shells of the
  initial sphere and small blobs appear just outside the surface.
- ``neural_skeleton`` (Clémot & Digne 2023): a SIREN (6 sine layers of 64),
  started from a network pre-fitted to a sphere's SDF, trained with surface,
  eikonal, learning-point and total-variation terms (see
  :func:`.losses.skeleton_loss`) so that the field stays a distance away from
  the surface and its gradient-norm minima lie on the medial axis, which
  :mod:`..geometry.skeleton` traces. Needs normals.
- ``idf`` (Wang Yifan et al. 2022): an implicit displacement field, a smooth
  SIREN base (omega 15) plus a SIREN detail (omega 60) along the base's
  normals (see :mod:`..fields.displacement`), trained with SIREN's loss in
  phases: the base alone, then the detail alone, then both at a lower rate.
  ``phase_base`` = 1 fits the base alone (a smooth target for detail transfer).
  Needs normals.

Every method stops at its iteration limit, at an optional time limit, or once
its loss stops improving (see :class:`.loop.StopRule`); the checkpoint says
which (``stop_reason``).

The points are first mapped to the field's local frame (see
:mod:`..geometry.sampling`), where the data spans [-0.8, 0.8] on its longest
axis and the domain is [-1, 1]^3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..context import JobContext, JobError
from ..device import resolve_device
from ..fields import build_field, field_config
from ..geometry.sampling import SignedDistanceEstimate, far_samples, knn_sigma, near_surface_samples, normalization, to_local, uniform_samples
from ..geometry.validation import check_normals, check_points
from .isopoint_term import IsoPointTerm
from .losses import igr_loss, siren_loss, skeleton_loss
from .loop import StopRule, downsample_history, train
from ..settings import sdf as sdf_settings
from ..settings.spec import Spec, Variants
from .sphere_init import sphere_field

CHECKPOINT_FORMAT = "inr_blender.sdf"
CHECKPOINT_VERSION = 1
FAR_POOL = 50_000  # uniform candidates for the far-field samples (a pool of 200k took 2.4 s of k-d tree queries)


def _check(p: dict[str, Any]) -> None:
    check = sdf_settings.CHECKS.get(p["method"])
    if check is not None:
        check(p)


# The settings of a fit: the common ones plus the chosen method's (settings/sdf.py), resolved once by the job.
SPEC = Spec(
    "fit_sdf", sdf_settings.COMMON, help="Fit a signed distance field to a mesh or a point cloud",
    variants=Variants("method", lambda: {name: m.params for name, m in sdf_settings.BUILTIN.items()}, "igr", what="SDF method"),
    check=_check,
)
resolve_params = SPEC.resolve


def field_config_for(p: dict[str, Any]) -> dict[str, Any]:
    """The network config of resolved parameters ``p``."""
    if p["method"] in ("siren", "neural_skeleton"):
        return field_config("siren", width=p["width"], depth=p["depth"], omega0=p["omega0"])
    if p["method"] == "idf":
        siren = lambda part: field_config("siren", width=p[f"{part}_width"], depth=p[f"{part}_depth"], omega0=p[f"{part}_omega"])  # noqa: E731
        return field_config("idf", base=siren("base"), detail=siren("detail"), nu=p["nu"], max_offset=p["max_offset"])
    if p["method"] == "igr":
        return field_config("igr", width=p["width"], depth=p["depth"], beta=p["beta"], init_radius=p["init_radius"])
    return field_config(
        "hashgrid", levels=p["levels"], features_per_level=p["features_per_level"],
        log2_table_size=p["log2_table_size"], base_resolution=p["base_resolution"],
        finest_resolution=p["finest_resolution"], width=p["width"], depth=p["depth"], beta=p["beta"],
        init_radius=p["init_radius"],
    )


def fit_sdf(points: np.ndarray, normals: np.ndarray | None, p: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Fit an SDF to world-space ``points`` (N, 3) with optional unit ``normals``; return the checkpoint dict.

    ``p`` are the fit's settings as :data:`SPEC` resolved them (the job resolves them once; this does not again).

    The checkpoint holds plain data only (tensors, lists, numbers, strings) and
    loads with ``torch.load(weights_only=True)``.
    """
    points = check_points(points)
    if normals is not None:
        normals = check_normals(normals, len(points))
    if p["method"] in ("siren", "neural_skeleton", "idf") and normals is None:
        name = {"siren": "SIREN", "neural_skeleton": "The neural skeleton", "idf": "A displacement field"}[p["method"]]
        raise JobError(f"{name} needs oriented normals; the point cloud has none (use IGR, or give the points normals)")
    device = resolve_device(p["device"])
    torch.manual_seed(p["seed"])
    center, scale = normalization(points)
    local = to_local(points, center, scale)

    surface = torch.as_tensor(local, dtype=torch.float32, device=device)
    surface_normals = None if normals is None else torch.as_tensor(normals, dtype=torch.float32, device=device)
    igr_losses = p["method"] in ("igr", "hashgrid")
    # signed distances to the cloud (with normals): the hash grid's sign terms, learning points
    signs_needed = p["method"] == "neural_skeleton" or p["method"] == "hashgrid" and (p["w_far"] > 0 or p["w_sign"] > 0)
    cloud = SignedDistanceEstimate(local, normals) if normals is not None and signs_needed else None
    estimate = cloud if p["method"] == "hashgrid" else None
    config = field_config_for(p)
    if igr_losses:
        ctx.progress(0, 1, None, "estimating point spacing")
        sigma = torch.as_tensor(knn_sigma(local, p["knn_sigma"]), dtype=torch.float32, device=device)
        if estimate is not None and p["w_far"] > 0:
            ctx.progress(0, 1, None, "estimating signed distances away from the points")
            far_np, far_sd_np = far_samples(estimate, FAR_POOL, p["far_distance"], p["seed"])
            far = torch.as_tensor(far_np, dtype=torch.float32, device=device)
            far_sd = torch.as_tensor(far_sd_np, dtype=torch.float32, device=device)
    if p["method"] == "neural_skeleton":
        hints, hint_distance, hint_direction = learning_points(cloud, p["num_hints"], p["seed"], device)
        field = sphere_field(config, device, ctx) if p["init"] == "sphere" else build_field(config).to(device)
        hint_steps = int(round(p["hint_fraction"] * p["iterations"])) if p["num_hints"] > 0 else 0
        tv_scale = max(1.0, p["tv_decay"] * p["iterations"])
    elif p["method"] == "idf":
        field, phases = displacement_field(config, p, device, ctx)
    else:
        field = build_field(config).to(device)
    batch = p["batch_size"]
    iso_term = IsoPointTerm(local, normals, p, device) if p["isopoints"] > 0 else None
    # Finite differences (hash grid only): a step of one cell of the finest level, as Neuralangelo ends with.
    fd_step = 2.0 / p["finest_resolution"] if p.get("gradient") == "finite_difference" else 0.0

    def step_loss(i: int) -> torch.Tensor:
        idx = torch.randint(len(surface), (batch,), device=device)
        on = surface[idx]
        n = None if surface_normals is None else surface_normals[idx]
        weights = None
        if iso_term is not None:  # the iso-points join the surface samples
            iso_term.refresh(field, i)
            on, n, weights = iso_term.extend(on, n, idx, max(1, batch // 2))
        if igr_losses:
            near = near_surface_samples(on[:batch], sigma[idx])
            off = torch.cat([near, uniform_samples(max(1, batch // 8), p["global_sigma"], device)])
            off_sign = None
            if estimate is not None and p["w_sign"] > 0:  # the sign of a quarter of the near-surface samples
                k = max(1, batch // 4)
                sd = torch.as_tensor(estimate(near[:k].detach().cpu().numpy()), dtype=torch.float32, device=device)
                off_sign = torch.zeros(len(off), device=device)
                off_sign[:k] = torch.where(sd.abs() >= p["sign_distance"], torch.sign(sd), 0.0)
            loss, _ = igr_loss(field, on, n, off, p["tau_normals"], p["lambda_eikonal"], fd_step, off_sign,
                               p.get("w_sign", 0.0), weights)
            if estimate is not None and p["w_far"] > 0 and len(far):
                j = torch.randint(len(far), (max(1, batch // 4),), device=device)
                loss = loss + p["w_far"] * (field(far[j]) - far_sd[j]).abs().mean()
        elif p["method"] == "neural_skeleton":
            hinted = i < hint_steps
            loss, _ = skeleton_loss(
                field, on, n, uniform_samples(batch, 1.0, device), hints if hinted else None,
                hint_distance if hinted else None, hint_direction if hinted else None, p,
                p["w_tv"] / (1.0 + (i / tv_scale) ** 2), weights,
            )
        else:  # SIREN, and the displacement field (its base alone in the first phase)
            model = field.base if p["method"] == "idf" and i < phases.base_steps else field
            off = uniform_samples(batch, 1.0, device)
            loss, _ = siren_loss(model, on, n, off, p["w_sdf"], p["w_normal"], p["w_eikonal"], p["w_offsurface"], p["alpha"],
                                 weights)
        return loss

    stop = StopRule(
        tolerance=p["convergence_tolerance"], window=p["convergence_window"], min_iterations=p["iterations"] // 4,
        max_seconds=p["max_seconds"],
    )
    run = train(
        field, step_loss, p["iterations"], p["learning_rate"], ctx,
        lr_decay_interval=p["lr_decay_interval"], lr_decay_factor=p["lr_decay_factor"],
        grad_clip=p["grad_clip"], message=f"fitting {p['method'].upper()}", adam_eps=p.get("adam_eps", 1e-8), stop=stop,
        **({"param_groups": phases.groups, "lr_scale": phases.scale} if p["method"] == "idf" else {}),
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
        "has_normals": normals is not None,
        "isopoint_refreshes": 0 if iso_term is None else iso_term.refreshes,
        "device": str(device),
    }


@dataclass
class Phases:
    """The displacement field's training phases: which parameter groups learn at which step, at what rate."""

    groups: list[list[torch.nn.Parameter]]  # the base's, then the detail's
    base_steps: int  # the base alone before this step
    detail_steps: int  # the detail alone before this step, then both
    joint_factor: float

    def scale(self, step: int) -> tuple[float, float]:
        """The learning-rate factors of (base, detail) at ``step``."""
        if step < self.base_steps:
            return 1.0, 0.0
        if step < self.detail_steps:
            return 0.0, 1.0
        return self.joint_factor, self.joint_factor


def displacement_field(config: dict[str, Any], p: dict[str, Any], device: torch.device, ctx: JobContext) -> tuple[torch.nn.Module, Phases]:
    """A new displacement field (base pre-fitted to a sphere unless ``init`` is 'random'; detail output zero) and its phases."""
    field = build_field(config).to(device)
    if p["init"] == "sphere":
        field.base = sphere_field(config["base"], device, ctx)
    with torch.no_grad():
        last = field.detail.layers[-1]
        last.weight.zero_()
        last.bias.zero_()
    n = p["iterations"]
    phases = Phases([list(field.base.parameters()), list(field.detail.parameters())], int(round(p["phase_base"] * n)),
                    int(round(p["phase_detail"] * n)), p["joint_lr_factor"])
    return field, phases


def learning_points(
    estimate: SignedDistanceEstimate, count: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The neural skeleton's learning points: ``count`` uniform points of [-1, 1]^3 with their signed distance to
    the oriented cloud (see SignedDistanceEstimate) and the direction away from their nearest point, outward."""
    queries = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(max(1, int(count)), 3))
    distance, nearest = estimate.with_nearest(queries)
    direction = (queries - estimate.points[nearest]) * np.sign(distance)[:, None]
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    return as_tensor(queries), as_tensor(distance), as_tensor(direction)
