"""Fitting a shape space: a DeepSDF auto-decoder (Park 2019) over a collection of meshes, data-parallel when started
by ``torchrun``.

Samples (per shape, once): the mesh is normalised into the unit sphere (bounding-box center, farthest vertex at
1/1.03, as published) and ``num_samples`` points are drawn: 47.5% surface points perturbed by N(0, 0.05^2), 47.5% by
N(0, 0.0158^2) (the published variances 0.0025 and 0.00025) and 5% uniform in [-1, 1]^3, each with its signed
distance; the sign comes from generalised winding numbers (geometry/mesh_distance.py), so meshes with holes and
overlapping parts are fine.

Training (the shared loop, fitting/loop.py): each step takes ``shapes_per_step`` shapes and ``samples_per_shape``
of their samples. Loss, for signed distances: the clamped L1 |clamp(f, d) - clamp(s, d)| with d = ``clamp`` (0.1);
for occupancy (Mescheder 2019): binary cross-entropy of the logits against inside (s < 0). Plus the code prior
``prior`` * ramp * ||z||^2 (the Gaussian prior 1/sigma^2 ||z||^2 of the paper), its weight ramping up over the
first ``prior_ramp`` (5%) of the run as the published min(1, epoch / 100) does over 2000 epochs. Adam with the
published rates, 5e-4 for the decoder and 1e-3 for the codes, halved every ``lr_interval`` (25%) of the run (every
500 of 2000 epochs).

Data parallel: under ``torchrun`` (``WORLD_SIZE`` > 1), :func:`fit_shape_space` joins the process group (gloo on
the CPU, nccl on CUDA) and wraps the space in DistributedDataParallel. Every rank draws the same global batch
(a generator seeded by ``seed``) and takes every ``world``-th of its shapes; its loss is scaled by ``world`` over the
global count, so that DDP's gradient average equals the single-process gradient of the whole batch (without
dropout, the same steps up to float rounding).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..context import JobContext, JobError
from ..device import resolve_device
from ..fields import build_field, field_config
from ..fields.deepsdf import ShapeSpace
from ..geometry.mesh_distance import signed_distances
from ..geometry.sampling import sample_surface
from ..geometry.validation import check_mesh
from ..settings.shape_space import METHODS
from .loop import StopRule, downsample_history, train

CHECKPOINT_FORMAT = "inr_blender.shape_space"
MARGIN = 1.03  # the farthest vertex lies at 1 / MARGIN (DeepSDF's normalisation)
NOISE = (0.05, math.sqrt(0.00025))  # standard deviations of the two near-surface sample sets
UNIFORM_FRACTION = 0.05


def normalization(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """(center, scale) putting a shape in the unit sphere: local = (world - center) / scale."""
    v = np.asarray(vertices, dtype=np.float64)
    center = (v.min(axis=0) + v.max(axis=0)) / 2.0
    radius = float(np.linalg.norm(v - center, axis=1).max())
    if not radius > 0:
        raise JobError("degenerate mesh: all its vertices are identical")
    return center, radius * MARGIN


def shape_samples(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0, ctx: JobContext | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` training points (count, 3) of a mesh already in its local frame, with their signed distances (count,)."""
    rng = np.random.default_rng(seed)
    uniform = max(1, int(round(count * UNIFORM_FRACTION)))
    near = count - uniform
    surface, _ = sample_surface(vertices, faces, near, seed)
    sigma = np.where(np.arange(near) < near // 2, NOISE[0], NOISE[1])
    points = np.concatenate([surface + rng.normal(size=surface.shape) * sigma[:, None], rng.uniform(-1.0, 1.0, (uniform, 3))])
    return points.astype(np.float32), signed_distances(vertices, faces, points, ctx).astype(np.float32)


def pack_meshes(meshes: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """K meshes (vertices, faces) as the arrays fit_shape_space takes: stacked, with each one's counts (faces local)."""
    return {
        "vertices": np.concatenate([np.asarray(v) for v, _ in meshes]),
        "faces": np.concatenate([np.asarray(f) for _, f in meshes]),
        "vertex_counts": np.array([len(v) for v, _ in meshes]),
        "face_counts": np.array([len(f) for _, f in meshes]),
    }


def split_meshes(arrays: dict[str, np.ndarray], names: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The K meshes packed in ``vertices``/``faces`` with ``vertex_counts``/``face_counts`` (faces local to each), checked
    (the inverse of :func:`pack_meshes`)."""
    for key in ("vertices", "faces", "vertex_counts", "face_counts"):
        if key not in arrays:
            raise JobError(f"a shape collection needs the arrays vertices, faces, vertex_counts and face_counts ({key} is missing)")
    vc, fc = np.asarray(arrays["vertex_counts"], dtype=np.int64), np.asarray(arrays["face_counts"], dtype=np.int64)
    vertices, faces = np.asarray(arrays["vertices"]), np.asarray(arrays["faces"])
    if vc.ndim != 1 or vc.shape != fc.shape or (vc < 0).any() or (fc < 0).any():
        raise JobError("vertex_counts and face_counts must be non-negative counts, one of each per shape")
    if int(vc.sum()) != len(vertices) or int(fc.sum()) != len(faces):
        raise JobError(f"the counts add up to {int(vc.sum())} vertices and {int(fc.sum())} faces, but {len(vertices)} and {len(faces)} were sent")
    if len(vc) < 2:
        raise JobError(f"a shape space needs at least 2 shapes, got {len(vc)}: select more meshes of the class")
    if len(names) != len(vc):
        raise JobError(f"{len(names)} names for {len(vc)} shapes")
    meshes = []
    for k, (v, f) in enumerate(zip(np.split(vertices, np.cumsum(vc)[:-1]), np.split(faces, np.cumsum(fc)[:-1]))):
        try:
            meshes.append(check_mesh(v, f))
        except JobError as exc:
            raise JobError(f"shape {k} ('{names[k]}'): {exc}") from None
    return meshes


def distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size): joins the process group when started by torchrun (WORLD_SIZE > 1), else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def fit_shape_space(meshes: list[tuple[np.ndarray, np.ndarray]], names: list[str], p: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Train a shape space on ``meshes`` (world-space vertices and faces each); return its checkpoint dict.

    ``p``: the settings of :data:`inr_blender.settings.shape_space.SPEC`, resolved (this does not check them again).
    """
    started = time.monotonic()
    device = resolve_device(p["device"])
    if device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # one GPU per process, before nccl starts
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    rank, world = distributed(device)
    if world > 1 and p["max_seconds"] > 0:  # ranks would stop after different steps and wait for each other forever
        raise JobError("max_seconds cannot stop a data-parallel run: give it a number of iterations instead")
    if p["shapes_per_step"] < world:
        raise JobError(f"shapes_per_step ({p['shapes_per_step']}) must be at least the number of processes ({world})")
    frames = [normalization(v) for v, _ in meshes]
    points, sdf = [], []
    for k, ((v, f), (center, scale)) in enumerate(zip(meshes, frames)):
        ctx.progress(k, len(meshes), None, f"sampling shape {k + 1} of {len(meshes)}")
        x, s = shape_samples((v - center) / scale, f, p["num_samples"], p["seed"] + k)
        points.append(x)
        sdf.append(s)
    points_t = torch.as_tensor(np.stack(points), device=device)  # (K, S, 3)
    sdf_t = torch.as_tensor(np.stack(sdf), device=device)  # (K, S)
    config = field_config(
        "shape_space",
        num_shapes=len(meshes),
        latent_size=p["latent_size"],
        width=p["width"],
        depth=p["depth"],
        skip=p["skip"],
        dropout=p["dropout"],
        weight_norm=p["weight_norm"],
        output=METHODS[p["method"]],
    )
    torch.manual_seed(p["seed"])  # the same initial weights and codes on every rank
    space = build_field(config)
    assert isinstance(space, ShapeSpace)
    nn.init.normal_(space.codes.weight, 0.0, p["code_std"])
    space = space.to(device)
    model: nn.Module = space
    if world > 1:
        model = nn.parallel.DistributedDataParallel(space)
    step_loss = _step_loss(model, space, points_t, sdf_t, p, rank, world, device)
    interval = max(1, int(round(p["lr_interval"] * p["iterations"])))

    def lr_scale(i: int) -> tuple[float, float]:
        decay = 0.5 ** (i // interval)
        return p["lr_decoder"] * decay, p["lr_codes"] * decay

    run = train(
        model,
        step_loss,
        p["iterations"],
        1.0,
        ctx if rank == 0 else JobContext(),
        message=f"fitting a shape space ({p['method']})",
        stop=StopRule(max_seconds=p["max_seconds"]),
        param_groups=[list(space.decoder.parameters()), [space.codes.weight]],
        lr_scale=lr_scale,
    )
    losses = run.losses
    if world > 1:  # every rank is done with the group: leave it cleanly (gloo's threads abort a process left in it)
        dist.barrier()
        dist.destroy_process_group()
    return {
        "format": CHECKPOINT_FORMAT,
        "backend_version": __version__,
        "method": p["method"],
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in space.state_dict().items()},
        "names": list(names),
        "centers": [[float(c) for c in center] for center, _ in frames],
        "scales": [float(scale) for _, scale in frames],
        "center": [float(c) for c in frames[0][0]],
        "scale": float(frames[0][1]),
        "params": {k: v for k, v in p.items()},
        "loss_history": downsample_history(losses),
        "final_loss": losses[-1],
        "iterations_run": len(losses),
        "stop_reason": run.stop_reason,
        "world_size": world,
        "seconds": time.monotonic() - started,
        "device": str(device),
    }


def _step_loss(
    model: nn.Module, space: ShapeSpace, points: torch.Tensor, sdf: torch.Tensor, p: dict[str, Any], rank: int, world: int, device: torch.device
):
    """The loss of step i on this rank (see the module docstring); its value is the whole batch's."""
    generator = torch.Generator().manual_seed(int(p["seed"]))
    count, samples = points.shape[0], points.shape[1]
    per_step = min(p["shapes_per_step"], count) // world * world or world
    ramp_steps = max(1.0, p["prior_ramp"] * p["iterations"])
    n = p["samples_per_shape"]

    def step_loss(i: int) -> torch.Tensor:
        chosen = torch.randperm(count, generator=generator)[:per_step]
        if per_step > count:  # more processes than shapes: repeat shapes
            chosen = torch.arange(per_step) % count
        index = torch.randint(samples, (per_step, n), generator=generator)
        mine = torch.arange(rank, per_step, world)
        shapes = chosen[mine].to(device)
        idx = index[mine].to(device)
        x = points[shapes[:, None], idx].reshape(-1, 3)  # (shapes, n, 3): only the drawn samples are copied
        s = sdf[shapes[:, None], idx].reshape(-1)
        out = model(shapes.repeat_interleave(n), x)
        if space.decoder.output == "sdf":
            per_sample = (out.clamp(-p["clamp"], p["clamp"]) - s.clamp(-p["clamp"], p["clamp"])).abs()
        else:
            per_sample = F.binary_cross_entropy_with_logits(out, (s < 0).float(), reduction="none")
        codes = space.codes.weight[shapes]
        prior = p["prior"] * min(1.0, i / ramp_steps) * codes.pow(2).sum(dim=1).sum() / per_step
        loss = world * (per_sample.sum() / (per_step * n)) + world * prior
        if world > 1:  # report the whole batch's loss; the gradient stays this rank's
            total = loss.detach().clone()
            dist.all_reduce(total)
            loss = loss + (total / world - loss).detach()
        return loss

    return step_loss
