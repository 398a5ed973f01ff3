"""Job ``sample_isopoints``: iso-points of a fitted SDF, an evenly spread sample of its zero level."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from ..context import JobContext
from ..device import resolve_device
from ..fileio import WRITE_FORMATS, WRITE_TEXT
from ..geometry import isopoints
from ..geometry.sampling import to_world
from ..settings import isopoints as settings
from ..settings.spec import Spec, params
from .registry import Arrays, Command, Result, job
from .shared import CHECKPOINT, FIELD_ARGUMENT, SPACE, load_sdf


def _write(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    from ..fileio import write_mesh

    write_mesh(args.output, arrays["points"], None, arrays["normals"])
    print(
        f"wrote {result['num_points']} iso-points with normals to {args.output} ({result['num_discarded']} did not "
        f"converge, {result['num_upsampled']} upsampled, spacing CV {result['spacing_cv']:.3f}) in {result['seconds']:.1f} s"
    )


CLI = Command(
    names=("isopoints",),
    positionals=(FIELD_ARGUMENT,),
    output=f"point cloud to write ({WRITE_TEXT})",
    output_formats=WRITE_FORMATS,
    fixed={"space": "world"},
    write=_write,
)


@job(Spec("sample_isopoints", params(CHECKPOINT, SPACE, settings.PARAMS), help=settings.SPEC.help), cli=CLI)
def sample_isopoints(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Iso-points of a fitted SDF, in its local frame or in world space.

    Params: the checkpoint (as for extract_mesh), ``space``, ``device`` and the iso-points' settings
    (settings/isopoints.py). Arrays back: ``points`` (N, 3), unit ``normals`` (N, 3) and ``residual`` (N,) = |f|
    after projection (in the field's local units).
    """
    started = time.monotonic()
    device = resolve_device(p["device"])
    field, ckpt = load_sdf(p, arrays, ctx, device, "iso-points")
    result = isopoints.sample_isopoints(field, device, p, ctx)
    center, scale = ckpt["center"], float(ckpt["scale"])
    points = to_world(result.points, center, scale) if p["space"] == "world" else result.points
    return (
        {**result.stats, "center": center, "scale": scale, "space": p["space"], "seconds": time.monotonic() - started},
        {"points": points.astype(np.float32), "normals": result.normals.astype(np.float32), "residual": result.residual.astype(np.float32)},
    )
