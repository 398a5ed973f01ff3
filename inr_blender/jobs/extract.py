"""Jobs on a field's surface as a mesh: ``extract_mesh`` (marching cubes), ``metrics`` (mesh against mesh) and
``evaluate_field`` (both: the extracted field against its reference)."""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

import numpy as np
import torch

from ..context import JobContext, JobError
from ..device import resolve_device
from ..fields import is_distance_field, smooth_base
from ..fields.deepsdf import ShapeSpace
from ..fileio import READ_TEXT, WRITE_FORMATS, WRITE_TEXT
from ..geometry.components import debris_tolerance, drop_debris
from ..geometry.extraction import MARCHERS, extract_mesh as dense_mesh
from ..geometry.metrics import compare_meshes
from ..geometry.sampling import to_world
from ..geometry.sparse_extraction import DEFAULT_SAFETY, extract_mesh_sparse
from ..geometry.validation import check_mesh
from ..render.surface import DensitySurface, vertex_colours
from ..settings.spec import MAX_SAMPLES, Param, Spec, params
from .registry import DEVICE, Arrays, Command, Positional, Result, job
from .shared import CHECKPOINT, FIELD_ARGUMENT, RANGE_MODE, RESOLUTION, SPACE, THRESHOLD, density_threshold, is_radiance, load_field, space_member

SURFACE = (
    CHECKPOINT,
    RESOLUTION,
    Param("level", 0.0, "The level set to extract", label="Level"),
    Param(
        "method",
        "sparse",
        "sparse: refine only the blocks the surface can cross; dense: the whole grid; guaranteed: cull by range analysis (any field)",
        choices=("sparse", "dense", "guaranteed"),
    ),
    Param("safety", DEFAULT_SAFETY, "sparse: margin of the culling (1: exact for a true distance field)", positive=True),
    Param(
        "marcher",
        "auto",
        "torch (marching cubes on the field's device) or skimage (scikit-image's, on the CPU): the same vertices, "
        "some quads split along the other diagonal; auto: torch, or for dense skimage where torch's arrays would not fit",
        choices=MARCHERS,
    ),
    Param(
        "keep_debris",
        False,
        "Keep the surface's parts that lie away from the input points (floating blobs, specks); by default they are dropped",
        label="Keep Debris",
    ),
    DEVICE,
)
EXTRACT = Spec(
    "extract_mesh",
    params(
        SURFACE,
        SPACE,
        RANGE_MODE,
        THRESHOLD,
        Param("part", "detailed", "Displacement fields: the detailed surface or the smooth base", choices=("detailed", "base")),
        Param("shape", None, "Shape spaces: the index of the shape (or send the array code)", kind=int),
    ),
    help="Extract a mesh from a fitted field (marching cubes)",
)
METRICS = (
    Param("num_samples", 100_000, "Area-uniform samples per surface", positive=True, maximum=MAX_SAMPLES),
    Param("seed", 0, "Random seed of the samples", minimum=0),
)


def _write_mesh(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    from ..fileio import write_mesh

    write_mesh(args.output, arrays["vertices"], arrays["faces"], arrays["normals"], arrays.get("colors"))
    print(f"wrote {result['num_vertices']} vertices, {result['num_faces']} faces to {args.output}")


@job(
    EXTRACT,
    cli=Command(
        names=("extract",),
        positionals=(FIELD_ARGUMENT,),
        output=f"mesh to write ({WRITE_TEXT})",
        output_formats=WRITE_FORMATS,
        fixed={"space": "world"},
        write=_write_mesh,
    ),
)
def extract_mesh(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Marching cubes of a fitted field, in its local frame or in world space.

    ``method`` 'sparse' (the default) evaluates the field near the surface only, with the margin ``safety``;
    'dense' the whole grid; 'guaranteed' culls by range analysis in ``range_mode``, so on any field, distance field
    or not, nothing that crosses the grid is lost (``box_evaluations`` counts its range evaluations). ``part``
    'base' extracts a displacement field's smooth base. A shape space's member is the shape ``shape`` or the array
    ``code``. Unless ``keep_debris``, the mesh's components that are not part of the input (of the sample of its
    points a fit keeps in the checkpoint; see geometry.components) are dropped. The result reports
    ``evaluations``, the field evaluations made, and ``debris_removed``, the components dropped.
    """
    started = time.monotonic()
    method, level = p["method"], p["level"]
    device = resolve_device(p["device"])
    field, ckpt = load_field(p, arrays, ctx, device)
    center, scale = ckpt["center"], float(ckpt["scale"])
    if isinstance(field, ShapeSpace):  # one shape of the space: by index, or any code
        field, center, scale = space_member(field, ckpt, p["shape"], arrays.get("code"))
    if p["part"] == "base":  # the smooth base of a displacement field (or of a transferred-detail field)
        base = smooth_base(field)
        if base is None:
            raise JobError("only a displacement field has a base to extract")
        field = base
    radiance = is_radiance(ckpt)
    if radiance:  # the density's iso-surface
        threshold = density_threshold(p, ckpt)
        radiance_field, field, level = field, DensitySurface(field, threshold), 0.0
    if method == "sparse" and not is_distance_field(field):
        method = "dense"  # sparse culling by |f| assumes distances (logits and densities are not)
    box_evaluations = 0
    if method in ("sparse", "guaranteed"):
        vertices, faces, normals, stats = extract_mesh_sparse(
            field,
            p["resolution"],
            device,
            ctx,
            level=level,
            safety=p["safety"],
            ranges=p["range_mode"] if method == "guaranteed" else None,
            marcher=p["marcher"],
        )
        evaluations, box_evaluations = stats["evaluations"], stats["box_evaluations"]
    else:
        no_surface = _density_range_error(threshold) if radiance else None
        vertices, faces, normals = dense_mesh(field, p["resolution"], device, ctx, level=level, no_surface=no_surface, marcher=p["marcher"])
        evaluations = p["resolution"] ** 3
    debris = 0
    sample = None if p["keep_debris"] or radiance or p["part"] == "base" else surface_sample(ckpt)
    if sample is not None:  # parts of the surface away from the points the field was fitted to
        vertices, faces, normals, debris = drop_debris(vertices, faces, normals, sample, debris_tolerance(sample, p["resolution"]) + abs(level))
    out = {"vertices": vertices, "faces": faces, "normals": normals}
    if radiance:
        out["colors"] = vertex_colours(radiance_field, vertices, normals, device, ctx)
    if p["space"] == "world":
        out["vertices"] = to_world(vertices, center, scale).astype(np.float32)
    return (
        {
            "num_vertices": len(vertices),
            "num_faces": len(faces),
            "center": center,
            "scale": scale,
            "method": method,
            "evaluations": int(evaluations),
            "box_evaluations": int(box_evaluations),
            "debris_removed": debris,
            "seconds": time.monotonic() - started,
        },
        out,
    )


def surface_sample(ckpt: dict[str, Any]) -> np.ndarray | None:
    """The input points a fit kept with its field (local frame; fitting.sdf.surface_sample), or None (older
    checkpoints, other fields, or an entry that is not (N, 3) finite numbers)."""
    sample = ckpt.get("surface_sample")
    if not isinstance(sample, torch.Tensor) or sample.ndim != 2 or sample.shape[1] != 3 or len(sample) < 2:
        return None
    points = sample.detach().cpu().double().numpy()
    return points if np.isfinite(points).all() else None


def _density_range_error(threshold: float):
    """The no-surface error of a radiance field, whose extracted values are ``threshold - density``."""

    def error(lo: float, hi: float) -> JobError:
        return JobError(
            f"the radiance field's density stays between {threshold - hi:.3g} and {threshold - lo:.3g} "
            f"inside its cube, never crossing the threshold {threshold:g}: choose a threshold in that range"
        )

    return error


def _read_pair(args: argparse.Namespace, p: dict[str, Any]) -> tuple[dict[str, Any], Arrays]:
    from ..fileio import read_geometry

    arrays = {}
    for key, path in (("a", args.reference), ("b", args.candidate)):
        mesh = read_geometry(path)
        if "faces" not in mesh:
            raise JobError(f"{path} has no faces; metrics compare triangle meshes")
        arrays[f"vertices_{key}"], arrays[f"faces_{key}"] = mesh["vertices"], mesh["faces"]
    return p, arrays


# How the metrics command prints a result (geometry/metrics.py: distances in world units, and normalised by r, the
# radius of the reference's bounding sphere); each line shows when its keys are in the result.
_METRIC_LINES = (
    ("reference radius r", "{radius:.6g} world units (its bounding sphere: centre of its box, farthest vertex)"),
    ("Chamfer-L1", "{chamfer_l1:.6g} world units ({chamfer_l1_normalized:.6g} of the reference's radius r)"),
    ("Chamfer-L2", "{chamfer_l2:.6g} world units squared ({chamfer_l2_normalized:.6g} of r squared)"),
    ("Hausdorff", "{hausdorff_world:.6g} world units ({hausdorff:.6g} of r)"),
    ("F-score", "{fscore:.6g} (precision {precision:.6g}, recall {recall:.6g}) within {fscore_threshold:g} of r ({fscore_world:.6g} world units)"),
    ("normal consistency", "{normal_consistency:.6g} (mean |cos| of nearest samples' normals; 1: parallel)"),
    ("normal angle", "{normal_angle:.6g} degrees"),
)


def _print_metrics(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    values = dict(result)
    if "radius" in values:
        values.update(
            {f"{k}_world": values[n] * values["radius"] for k, n in (("hausdorff", "hausdorff"), ("fscore", "fscore_threshold")) if n in values}
        )
    for label, text in _METRIC_LINES:
        with contextlib.suppress(KeyError):
            print(f"{label}: {text.format(**values)}")


@job(
    Spec("metrics", METRICS, help="Chamfer distances, normal consistency, F-score and Hausdorff of a mesh against a reference"),
    cli=Command(
        positionals=(Positional("reference", f"reference mesh ({READ_TEXT})"), Positional("candidate", f"mesh to evaluate ({READ_TEXT})")),
        read=_read_pair,
        write=_print_metrics,
    ),
)
def metrics(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Chamfer-L1/L2, normal consistency, F-score at 1% and Hausdorff of mesh b against the reference mesh a.

    The protocol (normalisation by a's bounding sphere, area-uniform samples per surface, fixed seed) is in
    ``geometry.metrics``; the result keys are radius, chamfer_l1, chamfer_l2 (world units), chamfer_l1_normalized,
    chamfer_l2_normalized, normal_consistency, fscore, precision, recall, fscore_threshold and hausdorff (units of
    the reference's radius).
    """
    for key in ("vertices_a", "faces_a", "vertices_b", "faces_b"):
        if key not in arrays:
            raise JobError(f"metrics needs the array {key}")
    va, fa = check_mesh(arrays["vertices_a"], arrays["faces_a"], "mesh a")
    vb, fb = check_mesh(arrays["vertices_b"], arrays["faces_b"], "mesh b")
    ctx.progress(0, 1, None, "sampling surfaces")
    result = compare_meshes(va, fa, vb, fb, p["num_samples"], p["seed"])
    ctx.progress(1, 1, None, "done")
    return result, {}


@job(Spec("evaluate_field", params(SURFACE, METRICS), help="Extract a field in world space and measure it against its reference mesh"))
def evaluate_field(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Extract a field in world space and measure it against the reference mesh it was fitted to.

    Arrays: ``vertices``/``faces`` of the reference (world space), and ``checkpoint`` bytes when the checkpoint is
    not named by ``checkpoint_path``. Returns the metrics' keys plus the extracted mesh's size.
    """
    for key in ("vertices", "faces"):
        if key not in arrays:
            raise JobError(f"evaluate_field needs the reference mesh array {key}")
    extract_p = {**EXTRACT.defaults(), **{k: p[k] for k in (q.name for q in SURFACE)}, "space": "world"}
    extracted, mesh = extract_mesh(extract_p, {k: arrays[k] for k in ("checkpoint",) if k in arrays}, ctx)
    pair = {"vertices_a": arrays["vertices"], "faces_a": arrays["faces"], "vertices_b": mesh["vertices"], "faces_b": mesh["faces"]}
    result, _ = metrics({k: p[k] for k in (q.name for q in METRICS)}, pair, ctx)
    return {**result, "num_vertices": extracted["num_vertices"], "num_faces": extracted["num_faces"]}, {}
