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

The models (``fast``, ``classic``) are registered modules in :mod:`.radiance`; their settings are
:mod:`..settings.nerf`'s. This module is the loop they share.

With ``random_background`` (both models; off by default, see settings/nerf.py), training pixels of images with an alpha channel are
composited over a random colour per ray, as Instant-NGP trains on NeRF-synthetic scenes: a field cannot paint the
background into empty space. Held-out views are scored over ``background``.

Views are split into training and held-out views (every ``holdout_every``-th).
Held-out PSNR is measured on a fixed random set of ``eval_pixels`` pixels
every ``eval_every`` steps (with ``eval_dense_start``, every tenth of that
before the first; the curve, ``eval_history``: step, training seconds without
evaluation, PSNR) and, unless ``final_eval`` is off, on the
first ``eval_views`` whole held-out images at the end (0: all; PSNR, SSIM).
"""

from __future__ import annotations

import time
from typing import Any, TypedDict

import numpy as np
import torch

from .. import __version__
from ..context import JobContext
from ..device import resolve_device
from ..fields import build_field
from ..render.cameras import local_frame, rays_from_pixels, to_local_cameras
from ..render.dataset import Views, holdout_split, recomposite
from ..render.image_metrics import psnr, psnr_of_mse, ssim
from ..render.renderer import render_image, render_rays
from ..render.surface import surface_density
from ..settings import nerf as nerf_settings
from ..settings.preview import preview_size
from .loop import downsample_history, train_with
from .preview import Preview, PreviewCamera, PreviewClock, image_preview
from .radiance import MODELS
from .variant import variant_spec

CHECKPOINT_FORMAT = "inr_blender.nerf"
CHECKPOINT_VERSION = 1
JOB_KEYS = ("checkpoint_path", "transforms_path", "aabb")  # the job's own keys, passed through resolution


# The settings of a fit: the common ones plus the chosen model's, read from the model registry when resolved.
SPEC = variant_spec(
    "fit_nerf",
    nerf_settings.COMMON,
    MODELS,
    "model",
    nerf_settings.DEFAULT_MODEL,
    help="Fit a radiance field (NeRF) to posed images",
    check=nerf_settings.check_background,
    passthrough=JOB_KEYS,
)
resolve_params = SPEC.resolve
__all__ = ["CHECKPOINT_FORMAT", "SPEC", "fit_nerf", "resolve_params"]


class _Pixels:
    """Every pixel of a set of views on the device: colours (and coverage with ``alpha``), and rays drawn at random
    or by index."""

    def __init__(self, views: Views, c2w_local: np.ndarray, device: torch.device, alpha: bool = False) -> None:
        self.width, self.height = views.width, views.height
        self.colours = torch.as_tensor(views.images.reshape(-1, 3), device=device)
        self.alpha = torch.as_tensor(views.alpha.reshape(-1), device=device) if alpha and views.alpha is not None else None
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

    def over_random(self, index: torch.Tensor, colours: torch.Tensor, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels ``index``'s ``colours`` (composited over ``background``) over a random colour each instead, and
        those colours (N, 3); unchanged without coverage (opaque images)."""
        if self.alpha is None:
            return colours, background
        fresh = torch.rand(len(index), 3, device=self.device)
        return recomposite(colours, self.alpha[index], background, fresh), fresh

    def random(self, count: int, crop: float = 1.0) -> torch.Tensor:
        """``count`` random pixel indices, inside the central ``crop`` fraction of each image when < 1."""
        view = torch.randint(len(self.c2w), (count,), device=self.device)
        w, h = max(1, int(self.width * crop)), max(1, int(self.height * crop))
        i = torch.randint(w, (count,), device=self.device) + (self.width - w) // 2
        j = torch.randint(h, (count,), device=self.device) + (self.height - h) // 2
        return (view * self.height + j) * self.width + i


class _FitState(TypedDict):
    mse: torch.Tensor | None  # the last training step's colour MSE, on the device (read back only when reported)
    eval_seconds: float  # time spent evaluating on the held-out views


def _preview_view(
    camera: PreviewCamera | None, views: Views, c2w_local: np.ndarray, index: int, center: np.ndarray, scale: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """The local-frame camera (c2w, intrinsics, width, height) of the previews: ``camera`` (world frame) when given,
    else the view ``index`` shrunk to the preview size."""
    if camera is not None:
        c2w, intrinsics, width, height = camera
        local = to_local_cameras(c2w, center, scale)
        local[:3, :3] /= np.linalg.norm(local[:3, :3], axis=0)
    else:
        width, height, factor = preview_size(views.width, views.height)
        local, intrinsics = c2w_local[index], np.asarray(views.intrinsics[index], dtype=np.float32) * factor
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    return as_tensor(local), as_tensor(intrinsics), width, height


def fit_nerf(views: Views, p: dict[str, Any], ctx: JobContext, preview_camera: PreviewCamera | None = None) -> dict[str, Any]:
    """Train a radiance field on ``views``; return the checkpoint dict (plain data, loads with weights_only).

    ``p`` are the fit's settings as :data:`SPEC` resolved them (the job resolves them once; this does not again).
    With ``preview_every`` > 0 a step hands the context a small view every that many seconds (:mod:`.preview`), from
    ``preview_camera`` (world frame) or else the first held-out view (the first training view when none is held out).
    """
    kind = MODELS.get(p["model"])
    model = kind(p)
    device = resolve_device(p["device"])
    torch.manual_seed(p["seed"])
    train_ids, test_ids = holdout_split(len(views.names), p["holdout_every"])
    center, scale = local_frame(views.aabb)
    c2w_local = to_local_cameras(views.c2w, center, scale)
    training = _Pixels(views.subset(train_ids), c2w_local[train_ids], device, alpha=p["random_background"])
    held_out = _Pixels(views.subset(test_ids), c2w_local[test_ids], device) if test_ids else None
    background = torch.tensor(p["background"], dtype=torch.float32, device=device)
    settings = kind.render_settings(p)
    config = kind.field_config(p)
    field = build_field(config).to(device)
    state: _FitState = {"mse": None, "eval_seconds": 0.0}
    eval_history: list[list[float]] = []
    generator = torch.Generator().manual_seed(p["seed"] + 1)
    eval_index = None
    if held_out is not None:
        eval_index = torch.randint(len(held_out), (min(p["eval_pixels"], len(held_out)),), generator=generator).to(device)
    started = time.monotonic()
    clock = PreviewClock(p["preview_every"], ctx)
    view = _preview_view(preview_camera, views, c2w_local, (test_ids or train_ids)[0], center, scale, device) if clock.active else None

    def preview() -> Preview:
        assert view is not None  # the clock asks only when active
        c2w, intrinsics, width, height = view
        info = {"psnr": None if state["mse"] is None else psnr_of_mse(float(state["mse"])), "width": width, "height": height}
        return image_preview(lambda: render_image(field, settings, c2w, intrinsics, width, height, background)["rgb"], field, info)

    def evaluate(step: int) -> None:
        if eval_index is None:
            return
        assert held_out is not None  # eval_index is drawn from it
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
        clock.tick(i, p["iterations"], preview)
        every = p["eval_every"]
        if every and i and (i % every == 0 or p["eval_dense_start"] and i < every and i % max(1, every // 10) == 0):
            evaluate(i)
        model.before_step(field, settings, i)
        index = training.random(model.rays(), model.crop(i))
        origins, directions, target = training.rays(index)
        target, behind = training.over_random(index, target, background)
        out = render_rays(field, settings, origins, directions, behind, perturb=True)
        loss, mse = model.loss(out, target)
        state["mse"] = mse.detach()
        model.after_step(out)
        return loss

    run = train_with(
        field,
        step_loss,
        p,
        ctx,
        message=f"fitting NeRF ({p['model']})",
        betas=kind.betas,
        progress_psnr=lambda: None if state["mse"] is None else psnr_of_mse(float(state["mse"])),
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
    assert state["mse"] is not None  # every step sets it, and a fit runs at least one
    last_mse = float(state["mse"])
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
        "params": {k: v for k, v in p.items() if k not in JOB_KEYS},
        "loss_history": downsample_history(run.losses),
        "eval_history": eval_history,
        "final_loss": run.losses[-1],
        "iterations_run": len(run.losses),
        "stop_reason": run.stop_reason,
        "train_seconds": train_seconds,
        "psnr": result_psnr,
        "ssim": result_ssim,
        "train_psnr": model.train_psnr(run.losses, last_mse),
        "num_views": len(train_ids),
        "num_holdout": len(test_ids),
        "width": views.width,
        "height": views.height,
        "device": str(device),
        "occupancy": None,
        "previews": clock.count,
        "preview_seconds": clock.seconds,
        "density_threshold": threshold,
        **model.summary(field),
    }
