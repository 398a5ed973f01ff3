"""Job ``extract_skeleton``: the skeletal complex (medial axis) of a fitted SDF (geometry/skeleton.py)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from ..context import JobContext
from ..device import resolve_device
from ..fileio import SKELETON_FORMATS, formats
from ..geometry import skeleton
from ..geometry.sampling import to_world
from ..settings import skeleton as settings
from ..settings.spec import Spec, params
from .registry import Arrays, Command, Result, job
from .shared import CHECKPOINT, FIELD_ARGUMENT, SPACE, load_sdf


def _write(args: argparse.Namespace, result: dict[str, Any], arrays: Arrays) -> None:
    from ..fileio import write_skeleton

    write_skeleton(args.output, arrays["vertices"], arrays["radius"], arrays["edges"], arrays["triangles"])
    print(
        f"wrote {result['num_vertices']} skeletal vertices, {result['num_edges']} edges, {result['num_triangles']} "
        f"triangles to {args.output} in {result['seconds']:.1f} s; cover: {result['cover_message']}"
    )


CLI = Command(
    names=("skeleton",),
    positionals=(FIELD_ARGUMENT,),
    output=f"skeleton to write ({formats(SKELETON_FORMATS)}): .ma holds the vertices with their radii, the edges and the faces",
    output_formats=SKELETON_FORMATS,
    fixed={"space": "world"},
    options={"surface-samples": "num_surface_samples"},
    write=_write,
)


@job(Spec("extract_skeleton", params(CHECKPOINT, SPACE, settings.PARAMS), help=settings.SPEC.help), cli=CLI)
def extract_skeleton(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """The skeletal complex of a fitted SDF, in its local frame or in world space.

    Params: the checkpoint (as for extract_mesh), ``space``, ``device`` and the skeleton's settings
    (settings/skeleton.py; lengths are fractions of the shape's longest half-extent). Arrays back: ``vertices``
    (V, 3), ``radius`` (V,), ``edges`` (E, 2, every edge of the complex), ``triangles`` (T, 3) and
    ``surface_samples`` (M, 3). The result reports each stage's time, the counts, and whether the cover is optimal.
    """
    started = time.monotonic()
    device = resolve_device(p["device"])
    field, ckpt = load_sdf(p, arrays, ctx, device, "skeletons")
    result = skeleton.skeletonize(field, device, p, ctx)
    center, scale = ckpt["center"], float(ckpt["scale"])
    vertices, radius, surface = result.vertices, result.radii, result.surface
    if p["space"] == "world":
        vertices, surface, radius = to_world(vertices, center, scale), to_world(surface, center, scale), radius * scale
    return (
        {**result.stats, "center": center, "scale": scale, "space": p["space"], "seconds": time.monotonic() - started},
        {
            "vertices": vertices.astype(np.float32),
            "radius": radius.astype(np.float32),
            "edges": result.edges.astype(np.int32),
            "triangles": result.triangles.astype(np.int32),
            "surface_samples": surface.astype(np.float32),
        },
    )
