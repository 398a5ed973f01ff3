"""Jobs on shape spaces (DeepSDF auto-decoders): ``fit_shape_space``, ``reconstruct_shape`` (complete a scan),
``interpolate_shapes`` (meshes between two shapes)."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch

from ..context import JobContext, JobError
from ..device import check_training_memory, resolve_device
from ..fields import build_field
from ..fields.deepsdf import ShapeSpace
from ..fileio import READ_TEXT, WRITE_FORMATS, WRITE_TEXT
from ..fitting import completion, shape_space
from ..fitting.loop import downsample_history
from ..geometry import interpolation
from ..geometry.extraction import MIN_RESOLUTION, extract_mesh
from ..geometry.metrics import compare_meshes
from ..geometry.sampling import to_world
from ..geometry.validation import check_normals
from ..settings import completion as completion_settings, presets, shape_space as settings
from ..settings.spec import Param, Spec, params
from .registry import Arrays, Command, Positional, Result, job, preset_param
from .shared import CHECKPOINT, OUTPUT, RESOLUTION, RETURN_CHECKPOINT, checkpoint_target, deliver, load_space, shape_index, space_member, summary

FIT_JOB = (
    OUTPUT,
    RETURN_CHECKPOINT,
    preset_param(
        f"Settings by purpose, filled in where not set: {'; '.join(f'{n}: {p.help}' for n, p in presets.SHAPE_SPACE.items())}", presets.SHAPE_SPACE
    ),
    Param("error_resolution", 64, f"Measure each shape at this resolution (0: not; else at least {MIN_RESOLUTION})", minimum=0),
)
FIT = Spec("fit_shape_space", params(FIT_JOB, settings.PARAMS), help=settings.SPEC.help, check=settings.SPEC.check, passthrough=("names",))


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))  # under torchrun; 0 alone


def _read_meshes(args: argparse.Namespace, p: dict[str, Any]) -> tuple[dict[str, Any], Arrays]:
    from ..fileio import read_geometry

    meshes = []
    for path in args.inputs:
        mesh = read_geometry(path)
        if "faces" not in mesh:
            raise JobError(f"{path} has no faces: a shape space is fitted to meshes")
        meshes.append((mesh["vertices"], mesh["faces"]))
    p["names"] = [os.path.splitext(os.path.basename(path))[0] for path in args.inputs]
    return p, shape_space.pack_meshes(meshes)


def _fit_summary(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    if not result["checkpoint_path"]:  # a torchrun rank other than 0
        return
    print(
        f"fitted a shape space ({result['method']}) of {result['num_shapes']} shapes in {result['seconds']:.1f} s on "
        f"{result['world_size']} process(es) ({result['device']}), final loss {result['final_loss']:.5g}: {result['checkpoint_path']}"
    )
    for name, error in zip(result["names"], result["errors"]):
        print(f"  {name}: " + ("no surface yet" if error is None else f"Chamfer-L1 {error:.5f} (world units)"))
    print(f"stopped: {result['stop_reason']}")


@job(
    FIT,
    presets=lambda given: presets.SHAPE_SPACE,
    cli=Command(
        positionals=(Positional("inputs", f"meshes, one per shape ({READ_TEXT})", nargs="+"),),
        output="checkpoint to write (.pt)",
        output_param="checkpoint_path",
        read=_read_meshes,
        write=_fit_summary,
        preset=presets.SHAPE_SPACE_DEFAULT,
    ),
)
def fit_shape_space(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Fit a shape space (DeepSDF auto-decoder, or occupancy) to K >= 2 meshes packed in ``vertices``/``faces`` with
    ``vertex_counts``/``face_counts`` (world space, faces indexed per shape); write or send back its checkpoint.

    ``names`` (K) label the shapes. ``error_resolution`` > 0 measures each shape: its decoded mesh at that
    resolution against the input mesh, Chamfer-L1 in world units (``errors``; None for a shape whose decoded field
    has no surface yet). Runs data-parallel under torchrun (see fitting/shape_space.py); only rank 0 writes.
    """
    path, send_back = checkpoint_target(p, "fit_shape_space", ctx)
    points = p["shapes_per_step"] * p["samples_per_shape"]
    check_training_memory(points, max(p["width"], p["latent_size"]), p["depth"], resolve_device(p["device"]), "fit_shape_space")
    names = p.get("names") or [f"shape {k}" for k in range(len(np.asarray(arrays.get("vertex_counts", []))))]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise JobError("names must be a list of strings, one per shape")
    error_resolution = p["error_resolution"]
    if 0 < error_resolution < MIN_RESOLUTION:
        raise JobError(f"error_resolution must be 0 (no errors) or at least {MIN_RESOLUTION}, got {error_resolution}")
    meshes = shape_space.split_meshes(arrays, names)
    ckpt = shape_space.fit_shape_space(meshes, names, {q.name: p[q.name] for q in settings.PARAMS}, ctx)
    if _rank() != 0:  # torchrun: the other ranks trained the same weights
        return {"checkpoint_path": "", "rank": _rank()}, {}
    ckpt["errors"] = _errors(ckpt, meshes, error_resolution, ctx) if error_resolution else []
    path, out = deliver(ckpt, path, send_back)
    return {**summary(ckpt), "checkpoint_path": path, "latent_size": ckpt["config"]["latent_size"], "num_shapes": len(meshes)}, out


def _errors(ckpt: dict[str, Any], meshes: list[tuple[np.ndarray, np.ndarray]], resolution: int, ctx: JobContext) -> list[float | None]:
    """Chamfer-L1 (world units) of each shape's decoded mesh against its input; None where it has no surface yet."""
    device = torch.device(ckpt["device"])
    space = build_field(ckpt["config"])
    assert isinstance(space, ShapeSpace)
    space.load_state_dict(ckpt["state_dict"])
    space = space.to(device).eval()
    errors: list[float | None] = []
    for k, (v, f) in enumerate(meshes):
        ctx.progress(k, len(meshes), None, f"measuring shape {k + 1} of {len(meshes)}")
        try:
            verts, faces, _ = extract_mesh(space.shape(k), resolution, device, ctx)
        except JobError:  # the decoded shape has no surface yet
            errors.append(None)
            continue
        world = to_world(verts, ckpt["centers"][k], ckpt["scales"][k])
        errors.append(float(compare_meshes(v, f, world, faces, 20_000, 0, ("chamfer",))["chamfer_l1"]))
    return errors


def _read_scan(args: argparse.Namespace, p: dict[str, Any]) -> tuple[dict[str, Any], Arrays]:
    from ..fileio import read_geometry

    scan = read_geometry(args.scan)  # a point cloud (points, normals) or a mesh (vertices, vertex_normals)
    points = scan["points"] if "points" in scan else scan["vertices"]
    normals = scan.get("normals", scan.get("vertex_normals"))
    arrays = {"points": points}
    args.num_points = len(points)
    if normals is not None:
        arrays["normals"] = normals
    return p, arrays


def _write_completed(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    from ..fileio import write_mesh

    write_mesh(args.output, arrays["vertices"], arrays["faces"], arrays["normals"])
    print(
        f"completed the scan ({args.num_points} points, mean |f| {result['fit_error']:.4g}) in {result['seconds']:.1f} s: "
        f"{result['num_vertices']} vertices to {args.output}"
    )


RECONSTRUCT = Spec(
    "reconstruct_shape",
    params(
        CHECKPOINT,
        RESOLUTION,
        RETURN_CHECKPOINT,
        Param("output_checkpoint_path", "", "Also write the completed shape as a field checkpoint of its own (.pt)"),
        completion_settings.PARAMS,
    ),
    help=completion_settings.SPEC.help,
)


@job(
    RECONSTRUCT,
    cli=Command(
        names=("reconstruct",),
        output=f"completed mesh to write ({WRITE_TEXT})",
        output_formats=WRITE_FORMATS,
        read=_read_scan,
        write=_write_completed,
        positionals=(
            Positional("space", "shape-space checkpoint (.pt)", "checkpoint_path"),
            Positional("scan", f"partial scan: point cloud or mesh ({READ_TEXT}); normals used when present"),
        ),
        options={"field": "output_checkpoint_path"},
    ),
)
def reconstruct_shape(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Complete a partial scan with a shape space: optimise a new code (decoder frozen), then extract its mesh.

    Arrays, in the space's local frame: ``points`` (N, 3), optional ``normals`` (N, 3) and ``free_points`` (M, 3)
    (see fitting/completion.py). Returns the mesh (local frame), the ``code``, and the mean |f| at the scan points
    (``fit_error``). ``output_checkpoint_path``: also write the completed shape as a field checkpoint of its own
    (with ``return_checkpoint``, for a remote worker: its bytes come back as the array ``checkpoint`` instead).
    """
    started = time.monotonic()
    if "points" not in arrays or not len(np.asarray(arrays["points"]).reshape(-1)):
        raise JobError("the scan has no points: select a point cloud or a mesh with vertices")
    out_path, send_back = checkpoint_target(p, "reconstruct_shape", ctx, "output_checkpoint_path", required=False)
    device = resolve_device(p["device"])
    space, ckpt = load_space(p, arrays, ctx, device)
    normals = None
    if "normals" in arrays:
        normals = check_normals(arrays["normals"], len(np.asarray(arrays["points"]).reshape(-1, 3)), "scan normals")
    shape, record = completion.complete_shape(
        space, arrays["points"], normals, arrays.get("free_points"), {q.name: p[q.name] for q in completion_settings.PARAMS}, ctx
    )
    vertices, faces, mesh_normals = extract_mesh(shape, p["resolution"], device, ctx)
    # the completed shape's summary: what its checkpoint records and the result reports (in the space's frame)
    fitted = {
        "center": [0.0, 0.0, 0.0],
        "scale": 1.0,
        "loss_history": downsample_history(record["losses"]),
        "final_loss": record["losses"][-1],
        "iterations_run": len(record["losses"]),
        "stop_reason": record["stop_reason"],
        "device": str(device),
    }
    result = {**fitted, "fit_error": record["fit_error"], "num_vertices": len(vertices), "num_faces": len(faces), "checkpoint_path": ""}
    out: Arrays = {}
    if out_path or send_back:
        shape_ckpt = {
            "format": "inr_blender.latent_shape",
            "method": ckpt.get("method", "deepsdf"),
            "config": {"kind": "latent_shape", "space": ckpt["config"]},
            "state_dict": {k: v.detach().cpu() for k, v in shape.state_dict().items()},
            **fitted,
        }
        result["checkpoint_path"], out = deliver(shape_ckpt, out_path, send_back)
    result["seconds"] = time.monotonic() - started
    return result, {**out, "code": shape.code.detach().cpu().numpy(), "vertices": vertices, "faces": faces, "normals": mesh_normals}


def _write_steps(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    from ..fileio import write_mesh

    stem, ext = os.path.splitext(args.output)
    starts = np.concatenate([[0], np.cumsum(arrays["vertex_counts"])]), np.concatenate([[0], np.cumsum(arrays["face_counts"])])
    for k, t in enumerate(arrays["t"]):
        path = f"{stem}_{k:02d}{ext or '.ply'}"
        write_mesh(path, arrays["vertices"][starts[0][k] : starts[0][k + 1]], arrays["faces"][starts[1][k] : starts[1][k + 1]])
        print(f"t={t:.3f}: {path} (volume {arrays['volumes'][k]:.4f}, local units)")


INTERPOLATE = Spec(
    "interpolate_shapes",
    params(
        CHECKPOINT,
        Param("a", None, "Index of the first shape (or send the array code_a)", kind=int),
        Param("b", None, "Index of the second shape (or send the array code_b)", kind=int),
        Param("count", 5, "Meshes on the segment, both ends included", minimum=2, maximum=1000),
        RESOLUTION.with_default(96),
        Param("correspond", True, "Also carry the first mesh through the others (shape keys)"),
    ),
    help="Meshes of the shapes between two shapes of a shape space",
)


@job(
    INTERPOLATE,
    cli=Command(
        names=("interpolate",),
        output=f"mesh path ({WRITE_TEXT}); _00, _01, ... are appended per step",
        output_formats=WRITE_FORMATS,
        output_default=".ply",
        write=_write_steps,
        fixed={"correspond": False},
        positionals=(
            Positional("space", "shape-space checkpoint (.pt)", "checkpoint_path"),
            Positional("a", "index of the first shape", "a", kind=int),
            Positional("b", "index of the second shape", "b", kind=int),
        ),
    ),
)
def interpolate_shapes(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Meshes (local frame) of ``count`` codes on the segment from shape ``a`` to shape ``b`` (or arrays ``code_a``,
    ``code_b``), packed with ``vertex_counts``/``face_counts``; with ``correspond`` also the first mesh carried
    through them (``key_vertices``, ``key_error``, ``shape_keys_ok``; see geometry/interpolation.py)."""
    started = time.monotonic()
    device = resolve_device(p["device"])
    space, ckpt = load_space(p, arrays, ctx, device)
    ends, frames, picked = [], [], []
    for key in ("a", "b"):
        if f"code_{key}" in arrays:
            member, center, scale = space_member(space, ckpt, None, arrays[f"code_{key}"])
        else:
            if p[key] is None:
                raise JobError("interpolation needs two shapes: parameters a and b (shape indices) or codes")
            picked.append(shape_index(space, p[key]))
            member, center, scale = space_member(space, ckpt, picked[-1], None)
        ends.append(member.code.detach())
        frames.append((np.asarray(center, dtype=np.float64), scale))
    if len(picked) == 2 and picked[0] == picked[1]:
        raise JobError("pick two different shapes to interpolate between")
    seq = interpolation.interpolate(space, ends[0], ends[1], p["count"], p["resolution"], device, ctx, correspond=p["correspond"])
    out = {
        "vertices": np.concatenate([m[0] for m in seq.meshes]).astype(np.float32),
        "faces": np.concatenate([m[1] for m in seq.meshes]).astype(np.int32),
        "vertex_counts": np.array([len(m[0]) for m in seq.meshes], dtype=np.int64),
        "face_counts": np.array([len(m[1]) for m in seq.meshes], dtype=np.int64),
        "t": seq.t.astype(np.float32),
        "volumes": seq.volumes.astype(np.float64),
    }
    if seq.key_vertices is not None and seq.key_error is not None:
        out["key_vertices"], out["key_error"] = seq.key_vertices.astype(np.float32), seq.key_error.astype(np.float32)
    centers = [((1 - t) * frames[0][0] + t * frames[1][0]).tolist() for t in seq.t]
    scales = [float((1 - t) * frames[0][1] + t * frames[1][1]) for t in seq.t]
    return {
        "shape_keys_ok": bool(seq.ok),
        "notes": seq.notes,
        "centers": centers,
        "scales": scales,
        "count": p["count"],
        "seconds": time.monotonic() - started,
    }, out
