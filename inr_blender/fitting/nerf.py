"""Fit a radiance field to posed images: classic NeRF or the fast hash-grid field, one training loop.

Published settings, kept as defaults unless noted:

- Classic NeRF (Mildenhall 2020, blender scenes): Adam lr 5e-4 (decayed by 0.1
  over 500k steps), 1024 rays per step, 64 coarse + 128 fine samples, loss =
  MSE(coarse) + MSE(fine), centre crops (half the image) for the first 500
  steps, white background. It trains 200k-500k steps; the default here is 2000
  (about 12 s per step on 2 CPU cores: hours).
- Fast field (Müller 2022): Adam lr 1e-2, betas (0.9, 0.99), eps 1e-15; about
  256k samples per step, the number of rays adapted to keep it; 1024 marching
  steps across the cube's diagonal; a 128^3 occupancy grid updated every 16
  steps, every cell for the first 256; it trains 35k steps. Departures for the
  CPU: 1000 steps, 2^16 samples per step (at most 8192 rays), 512 steps across
  the diagonal, a 64^3 grid, finest hash level 1024. ``prune`` (off) would drop the
  samples behind opaque matter (transmittance < 1e-4, from a density-only pass
  without gradients) before the gradient pass; that extra pass costs more than
  it saves on a CPU (lego 200x200, 300 s: 28.6 dB without it, about 26.9 with). On lego at 200x200 this
  measured 31.3 dB held-out after 594 s (1284 steps, 2 cores; bench/nerf_lego.py).

Views are split into training and held-out views (every ``holdout_every``-th).
Held-out PSNR is measured on a fixed random set of ``eval_pixels`` pixels
every ``eval_every`` steps (with ``eval_dense_start``, every tenth of that
before the first; the curve, ``eval_history``: step, training seconds without
evaluation, PSNR) and, unless ``final_eval`` is off, on the
first ``eval_views`` whole held-out images at the end (0: all; PSNR, SSIM).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..context import JobContext, JobError
from ..device import resolve_device
from ..fields import build_field, field_config
from ..render.cameras import rays_from_pixels
from ..render.dataset import Views, holdout_split
from ..render.image_metrics import psnr, psnr_of_mse, ssim
from ..render.renderer import RenderSettings, render_image, render_rays
from ..render.surface import surface_density
from .loop import StopRule, downsample_history, train
from ..settings.legacy import coerce_params, refuse_unknown, rgb_param

CHECKPOINT_FORMAT = "inr_blender.nerf"
CHECKPOINT_VERSION = 1

COMMON_DEFAULTS: dict[str, Any] = {
    "background": [1.0, 1.0, 1.0], "downscale": 1, "holdout_every": 8, "seed": 0, "device": "auto",
    "max_seconds": 0.0, "convergence_tolerance": 0.0, "convergence_window": 200,
    "eval_every": 0, "eval_dense_start": False, "eval_pixels": 4096, "eval_views": 0, "final_eval": True, "lr_decay_interval": 0, "lr_decay_factor": 1.0,
}
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "classic": {
        "iterations": 2000, "learning_rate": 5e-4, "adam_eps": 1e-8, "batch_rays": 1024, "coarse_samples": 64,
        "fine_samples": 128, "precrop_iterations": 500, "precrop_fraction": 0.5, "width": 256, "depth": 8,
        "position_frequencies": 10, "direction_frequencies": 4,
    },
    "fast": {
        "iterations": 1000, "learning_rate": 1e-2, "adam_eps": 1e-15, "samples_per_step": 1 << 16,
        "initial_rays": 2048, "max_rays": 8192, "march_steps": 512, "levels": 16, "log2_table_size": 19,
        "base_resolution": 16, "finest_resolution": 1024, "width": 64, "occupancy_resolution": 64,
        "occupancy_interval": 16, "occupancy_warmup": 256, "prune": False,
    },
}
JOB_KEYS = ("model", "checkpoint_path", "transforms_path", "aabb")
_POSITIVE = {"downscale", "eval_pixels", "iterations", "learning_rate", "adam_eps", "batch_rays", "coarse_samples",
             "fine_samples", "precrop_fraction", "width", "depth", "samples_per_step", "initial_rays", "max_rays",
             "march_steps", "levels", "log2_table_size", "base_resolution", "finest_resolution",
             "occupancy_resolution", "occupancy_interval", "lr_decay_factor", "convergence_window"}
_NON_NEGATIVE = {"holdout_every", "seed", "max_seconds", "convergence_tolerance", "eval_every", "eval_views",
                 "precrop_iterations", "occupancy_warmup", "lr_decay_interval", "position_frequencies",
                 "direction_frequencies"}


def resolve_params(params: dict[str, Any]) -> dict[str, Any]:
    """Model defaults updated with ``params``: types coerced, ranges checked, unknown keys refused."""
    model = str(params.get("model") or "fast").lower()
    if model not in MODEL_DEFAULTS:
        raise JobError(f"unknown NeRF model {model!r}; choose one of {', '.join(MODEL_DEFAULTS)}")
    refuse_unknown(params, set(JOB_KEYS) | set(COMMON_DEFAULTS) | {k for d in MODEL_DEFAULTS.values() for k in d}, "fit_nerf")
    p = coerce_params(params, {**COMMON_DEFAULTS, **MODEL_DEFAULTS[model]}, _POSITIVE, _NON_NEGATIVE)
    p["model"] = model
    p["background"] = rgb_param(p["background"], "background")
    if model == "fast" and p["log2_table_size"] > 26:
        raise JobError(f"parameter log2_table_size must be at most 26, got {p['log2_table_size']}")
    if model == "classic" and not p["precrop_fraction"] <= 1.0:
        raise JobError("parameter precrop_fraction must be in (0, 1]")
    return p


def local_frame(aabb: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and half-size of the cube around the scene box: world = centre + scale * local, local in [-1, 1]^3."""
    aabb = np.asarray(aabb, dtype=np.float64)
    return 0.5 * (aabb[0] + aabb[1]), float(0.5 * (aabb[1] - aabb[0]).max())


def to_local_cameras(c2w: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """Camera matrices in the field's local frame (rotation kept, position moved and scaled)."""
    local = np.array(c2w, dtype=np.float64, copy=True)
    local[..., :3, 3] = (local[..., :3, 3] - center) / scale
    return local


def render_settings(p: dict[str, Any]) -> RenderSettings:
    if p["model"] == "classic":
        return RenderSettings(kind="classic", coarse=p["coarse_samples"], fine=p["fine_samples"])
    return RenderSettings(kind="fast", step=2.0 * math.sqrt(3.0) / p["march_steps"], prune=p["prune"])


def _config(p: dict[str, Any]) -> dict[str, Any]:
    if p["model"] == "classic":
        return field_config("nerf_classic", width=p["width"], depth=p["depth"], skip=p["depth"] // 2,
                            position_frequencies=p["position_frequencies"], direction_frequencies=p["direction_frequencies"])
    return field_config("nerf_fast", levels=p["levels"], log2_table_size=p["log2_table_size"],
                        base_resolution=p["base_resolution"], finest_resolution=p["finest_resolution"],
                        width=p["width"], occupancy_resolution=p["occupancy_resolution"])


class _Pixels:
    """Every pixel of a set of views on the device: colours, and rays drawn at random or by index."""

    def __init__(self, views: Views, c2w_local: np.ndarray, device: torch.device) -> None:
        self.width, self.height = views.width, views.height
        self.colours = torch.as_tensor(views.images.reshape(-1, 3), device=device)
        self.c2w = torch.as_tensor(c2w_local, dtype=torch.float32, device=device)
        self.intrinsics = torch.as_tensor(views.intrinsics, dtype=torch.float32, device=device)
        self.device = device

    def __len__(self) -> int:
        return len(self.colours)

    def rays(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        per_view = self.width * self.height
        view, pixel = index // per_view, index % per_view
        origins, directions, _ = rays_from_pixels(self.c2w[view], self.intrinsics[view], pixel % self.width, pixel // self.width)
        return origins, directions, self.colours[index]

    def random(self, count: int, crop: float = 1.0) -> torch.Tensor:
        """``count`` random pixel indices, inside the central ``crop`` fraction of each image when < 1."""
        view = torch.randint(len(self.c2w), (count,), device=self.device)
        w, h = max(1, int(self.width * crop)), max(1, int(self.height * crop))
        i = torch.randint(w, (count,), device=self.device) + (self.width - w) // 2
        j = torch.randint(h, (count,), device=self.device) + (self.height - h) // 2
        return (view * self.height + j) * self.width + i


def fit_nerf(views: Views, params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Train a radiance field on ``views``; return the checkpoint dict (plain data, loads with weights_only)."""
    p = resolve_params(params)
    device = resolve_device(p["device"])
    torch.manual_seed(p["seed"])
    train_ids, test_ids = holdout_split(len(views.names), p["holdout_every"])
    center, scale = local_frame(views.aabb)
    c2w_local = to_local_cameras(views.c2w, center, scale)
    training = _Pixels(views.subset(train_ids), c2w_local[train_ids], device)
    held_out = _Pixels(views.subset(test_ids), c2w_local[test_ids], device) if test_ids else None
    background = torch.tensor(p["background"], dtype=torch.float32, device=device)
    settings = render_settings(p)
    config = _config(p)
    field = build_field(config).to(device)
    fast = p["model"] == "fast"
    state = {"rays": p.get("initial_rays", p.get("batch_rays", 1024)), "mse": None, "eval_seconds": 0.0}
    eval_history: list[list[float]] = []
    generator = torch.Generator().manual_seed(p["seed"] + 1)
    eval_index = None
    if held_out is not None:
        eval_index = torch.randint(len(held_out), (min(p["eval_pixels"], len(held_out)),), generator=generator).to(device)
    started = time.monotonic()

    def evaluate(step: int) -> None:
        if eval_index is None:
            return
        t0 = time.monotonic()
        field.eval()
        with torch.no_grad():
            errors = []
            for part in eval_index.split(4096):
                o, d, target = held_out.rays(part)
                errors.append(((render_rays(field, settings, o, d, background)["rgb"] - target) ** 2).sum(dim=0))
            mse = float(torch.stack(errors).sum() / (len(eval_index) * 3))
        field.train()
        state["eval_seconds"] += time.monotonic() - t0
        eval_history.append([step, time.monotonic() - started - state["eval_seconds"], psnr_of_mse(mse)])

    def step_loss(i: int) -> torch.Tensor:
        every = p["eval_every"]
        if every and i and (i % every == 0 or p["eval_dense_start"] and i < every and i % max(1, every // 10) == 0):
            evaluate(i)
        if fast and i % p["occupancy_interval"] == 0:
            field.occupancy.update(field.density, settings.step, warmup=i < p["occupancy_warmup"])
        crop = p["precrop_fraction"] if not fast and i < p["precrop_iterations"] else 1.0
        index = training.random(int(state["rays"]), crop)
        origins, directions, target = training.rays(index)
        out = render_rays(field, settings, origins, directions, background, perturb=True)
        mse = torch.mean((out["rgb"] - target) ** 2)
        loss = mse + torch.mean((out["rgb_coarse"] - target) ** 2) if "rgb_coarse" in out else mse
        state["mse"] = float(mse.detach())
        if fast:  # keep about samples_per_step samples per step (Instant-NGP's dynamic batch)
            samples = max(1, int(out["samples"]))
            state["rays"] = int(min(p["max_rays"], max(64, state["rays"] * p["samples_per_step"] / samples)))
        return loss

    stop = StopRule(tolerance=p["convergence_tolerance"], window=p["convergence_window"],
                    min_iterations=p["iterations"] // 4, max_seconds=p["max_seconds"])
    run = train(
        field, step_loss, p["iterations"], p["learning_rate"], ctx,
        lr_decay_interval=p["lr_decay_interval"], lr_decay_factor=p["lr_decay_factor"],
        message=f"fitting NeRF ({p['model']})", adam_eps=p["adam_eps"], stop=stop,
        betas=(0.9, 0.99) if fast else (0.9, 0.999),
        progress_psnr=lambda: None if state["mse"] is None else psnr_of_mse(state["mse"]),
    )
    train_seconds = time.monotonic() - started - state["eval_seconds"]
    if p["eval_every"]:
        evaluate(len(run.losses))
    result_psnr = result_ssim = None
    if held_out is not None and p["final_eval"]:
        count = len(test_ids) if not p["eval_views"] else min(p["eval_views"], len(test_ids))
        scores = []
        for k in range(count):
            ctx.progress(k, count, None, f"rendering held-out view {k + 1} of {count}")
            image = render_image(field, settings, held_out.c2w[k], held_out.intrinsics[k], views.width, views.height, background)["rgb"]
            target = held_out.colours.reshape(len(test_ids), views.height, views.width, 3)[k]
            scores.append((psnr(image, target), ssim(image, target)))
        result_psnr = float(np.mean([s[0] for s in scores]))
        result_ssim = float(np.mean([s[1] for s in scores]))
    ctx.progress(0, 1, None, "estimating the surface density")
    field.eval()
    origins, directions, _ = training.rays(training.random(4096))
    threshold = surface_density(field, settings, origins, directions, background)
    recent = run.losses[-100:]  # the fast field's loss is its MSE; classic NeRF's adds the coarse MSE
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "backend_version": __version__,
        "method": "nerf",
        "model": p["model"],
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in field.state_dict().items()},
        "center": [float(c) for c in center],
        "scale": float(scale),
        "aabb": np.asarray(views.aabb, dtype=np.float64).tolist(),
        "render": {"kind": settings.kind, "step": settings.step, "coarse": settings.coarse, "fine": settings.fine},
        "background": p["background"],
        "params": {k: v for k, v in p.items() if k not in ("checkpoint_path", "transforms_path")},
        "loss_history": downsample_history(run.losses),
        "eval_history": eval_history,
        "final_loss": run.losses[-1],
        "iterations_run": len(run.losses),
        "stop_reason": run.stop_reason,
        "train_seconds": train_seconds,
        "psnr": result_psnr,
        "ssim": result_ssim,
        "train_psnr": psnr_of_mse(float(np.mean(recent))) if fast else psnr_of_mse(state["mse"]),
        "num_views": len(train_ids),
        "num_holdout": len(test_ids),
        "width": views.width,
        "height": views.height,
        "device": str(device),
        "occupancy": field.occupancy.fraction if fast else None,
        "density_threshold": threshold,
    }
