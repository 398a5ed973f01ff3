"""Jobs on radiance fields: ``fit_nerf`` (posed images -> a field) and ``render_nerf_view`` (a field -> an image)."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..context import JobContext, JobError
from ..device import check_training_memory, resolve_device
from ..fileio import formats
from ..fitting import nerf as nerf_fitting
from ..fitting.preview import preview_camera
from ..render.cameras import to_local_cameras
from ..render.dataset import load_transforms, views_from_arrays
from ..render.renderer import RenderSettings, render_image
from ..settings import presets
from ..settings.spec import Param, Spec, params
from .registry import Arrays, Command, Positional, Result, job, preset_param
from .shared import (
    BACKGROUND,
    CAMERA,
    CHECKPOINT,
    OUTPUT,
    RETURN_CHECKPOINT,
    camera,
    checkpoint_target,
    deliver,
    is_radiance,
    load_field,
    reader,
    summary,
)

VIEWS = Param("transforms_path", "", "transforms.json (or its folder) on the worker's machine; or send the arrays images, c2w and intrinsics")
PRESET = preset_param(
    f"The model's settings for the device it runs on: {', '.join(presets.RADIANCE)} (on a CUDA device, fast takes "
    "Instant-NGP's batch, grids and marching steps); custom: the model's defaults, which are sized for a CPU",
    presets.RADIANCE,
)
JOB_PARAMS = (OUTPUT, RETURN_CHECKPOINT, VIEWS, PRESET)


# The job's settings: where the views come from and the checkpoint goes, then the fit's own (fitting/nerf.py).
FIT = replace(nerf_fitting.SPEC, params=params(JOB_PARAMS, nerf_fitting.SPEC.params), passthrough=("aabb",))


def _summary_line(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    held_out = (
        "no held-out views"
        if result["psnr"] is None
        else (f"held-out PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f} on {result['num_holdout']} views")
    )
    print(
        f"fitted NeRF ({result['model']}) on {result['num_views']} views of {result['width']}x{result['height']} "
        f"in {result['seconds']:.1f} s ({result['device']}): {held_out}: {result['checkpoint_path']}"
    )
    print(f"stopped: {result['stop_reason']}")


@job(
    FIT,
    cli=Command(
        positionals=(Positional("transforms", "transforms.json, or the folder holding it", "transforms_path"),),
        output="checkpoint to write (.pt)",
        output_param="checkpoint_path",
        options={"lr": "learning_rate"},
        write=_summary_line,
        preset=presets.RADIANCE_DEFAULT,
    ),
    presets=lambda given: presets.RADIANCE,
)
def fit_nerf(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Fit a radiance field (``model`` 'fast' or 'classic') to posed images; write or send back its checkpoint.

    The views come from ``transforms_path`` (a transforms.json file or its folder, read on the worker's machine)
    or from the arrays ``images`` (N, H, W, 3|4), ``c2w`` (N, 4, 4) and ``intrinsics`` (N, 4: fx, fy, cx, cy) with
    the optional param ``aabb``; the previews' camera from the arrays ``preview_c2w`` (4, 4) and ``preview_intrinsics``
    (fx, fy, cx, cy, width, height). See :mod:`inr_blender.fitting.nerf` for the other settings.
    """
    started = time.monotonic()
    path, send_back = checkpoint_target(p, "fit_nerf", ctx)
    if p["model"] == "classic":
        points, width, depth, table = p["batch_rays"] * (p["coarse_samples"] + p["fine_samples"]), p["width"], p["depth"], 0
    else:  # the fast model: a hash table and two small MLPs
        points, width, depth, table = p["samples_per_step"], p["width"], 2, p["levels"] * 2 << p["log2_table_size"]
    check_training_memory(points, width, depth, resolve_device(p["device"]), "fit_nerf", weights=table)
    if p["transforms_path"]:
        ctx.progress(0, 1, None, "reading the views")
        views = load_transforms(p["transforms_path"], p["background"], p["downscale"], resolve=reader(ctx))
    elif "images" in arrays:
        missing = [k for k in ("c2w", "intrinsics") if k not in arrays]
        if missing:
            raise JobError(f"fit_nerf: images were sent without {' and '.join(missing)}")
        views = views_from_arrays(arrays["images"], arrays["c2w"], arrays["intrinsics"], p.get("aabb"), p["background"], p["downscale"])
    else:
        raise JobError("fit_nerf needs views: a transforms_path, or images with c2w and intrinsics")
    names = {q.name for q in JOB_PARAMS} | {"aabb"}
    ckpt = nerf_fitting.fit_nerf(views, {k: v for k, v in p.items() if k not in names}, ctx, preview_camera(arrays))
    ckpt["seconds"] = time.monotonic() - started
    path, out = deliver(ckpt, path, send_back)
    return {**summary(ckpt), "checkpoint_path": path}, out


def _read_view(args: argparse.Namespace, p: dict[str, Any]) -> tuple[dict[str, Any], Arrays]:
    views = load_transforms(args.transforms, downscale=args.downscale)
    if not 0 <= args.view < len(views.names):
        raise JobError(f"view {args.view} does not exist: {args.transforms} has {len(views.names)} views")
    p.update(width=views.width, height=views.height, intrinsics=views.intrinsics[args.view].tolist())
    args.view_name = views.names[args.view]
    return p, {"c2w": views.c2w[args.view].astype(np.float32)}


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def _write_image(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    from PIL import Image

    from ..outputs import atomic_write

    image = Image.fromarray((np.clip(arrays["rgb"], 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    with atomic_write(args.output) as fh:
        image.save(fh, format=IMAGE_FORMATS[os.path.splitext(args.output)[1].lower()])
    print(f"rendered view {args.view} ({args.view_name}) in {result['seconds']:.1f} s: {args.output}")


RENDER = Spec(
    "render_nerf_view",
    params(CHECKPOINT, CAMERA, replace(BACKGROUND, default=None, help=("RGB in [0, 1] behind the field (default: the checkpoint's)"))),
    help="Render a view of a radiance field",
)
RENDER_CLI = Command(
    names=("render-view",),
    output=f"image to write ({formats(tuple(IMAGE_FORMATS))})",
    output_formats=tuple(IMAGE_FORMATS),
    read=_read_view,
    write=_write_image,
    positionals=(
        Positional("field", "radiance-field checkpoint (.pt)", "checkpoint_path"),
        Positional("transforms", "transforms.json (or its folder) with the camera"),
    ),
    hidden=("width", "height"),
    extra={
        "view": {"type": int, "default": 0, "help": "index of the camera"},
        "downscale": {"type": int, "default": 1, "help": "divide the image size by this integer"},
    },
)


@job(RENDER, cli=RENDER_CLI)
def render_nerf_view(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Render a radiance field from the camera ``c2w`` (array, 4x4, OpenGL convention) with ``intrinsics``
    [fx, fy, cx, cy]. Returns arrays ``rgb`` (H, W, 3), ``alpha`` (H, W) and ``depth`` (H, W: z-depth in world
    units, 0 where nothing was hit), top row first."""
    started = time.monotonic()
    width, height, c2w, intrinsics = camera(p, arrays, "render_nerf_view", 16384)
    device = resolve_device(p["device"])
    field, ckpt = load_field(p, arrays, ctx, device)
    if not is_radiance(ckpt):
        raise JobError("this field is not a radiance field (NeRF): render views of radiance fields only")
    background = p["background"] or BACKGROUND.coerce(ckpt.get("background", BACKGROUND.default))
    center, scale = np.asarray(ckpt["center"], dtype=np.float64), float(ckpt["scale"])
    local = to_local_cameras(c2w, center, scale)
    local[:3, :3] /= np.linalg.norm(local[:3, :3], axis=0)
    render = ckpt["render"]
    settings = RenderSettings(kind=render["kind"], step=float(render["step"]), coarse=int(render["coarse"]), fine=int(render["fine"]))

    def progress(done: int, total: int) -> None:
        ctx.progress(done, total, None, "rendering")

    out = render_image(
        field,
        settings,
        torch.as_tensor(local, dtype=torch.float32, device=device),
        torch.as_tensor(intrinsics, dtype=torch.float32, device=device),
        width,
        height,
        torch.tensor(background, dtype=torch.float32, device=device),
        progress=progress,
    )
    return (
        {"width": width, "height": height, "seconds": time.monotonic() - started},
        {
            "rgb": out["rgb"].cpu().numpy().astype(np.float32),
            "alpha": out["alpha"].cpu().numpy().astype(np.float32),
            "depth": (out["depth"] * scale).cpu().numpy().astype(np.float32),
        },
    )
