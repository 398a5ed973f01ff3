"""Render meshes side by side with Cycles on the CPU: a reference and its reconstructions, in a row.

Every mesh is normalised by the first one's bounding sphere (so they keep their relative size
and position; with --each, by its own, for different shapes side by side), turned by --rotate
(degrees, e.g. Y-up files to Blender's Z-up) and labelled.
Run by ``bench/sdf_vs_poisson.py`` in a process of its own (bpy apart from torch and open3d);
the stage and materials are ``demo.py``'s, with an orthographic camera framing the row.

    .venv-bench/bin/python bench/render_row.py --output row.png reference=a.obj "IGR=b.ply" ...
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

import bpy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from demo import label, material, stage  # noqa: E402
from inr_blender.fileio import read_geometry  # noqa: E402

SPACING = 2.5  # between centres, in units of the reference's bounding radius
REFERENCE_COLOR, RESULT_COLOR = (0.25, 0.42, 0.75), (0.85, 0.45, 0.2)


def add_mesh(name: str, vertices: np.ndarray, faces: np.ndarray) -> bpy.types.Object:
    """A smooth-shaded mesh object (sharp above 45 degrees) from numpy arrays."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    mesh.loops.add(3 * len(faces))
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * len(faces), 3, dtype=np.int32))
    mesh.polygons.foreach_set("vertices", np.ascontiguousarray(faces, dtype=np.int32).ravel())
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    mesh.set_sharp_from_angle(angle=math.radians(45))
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def render_row(
    items: list[tuple[str, str]], output: str, rotate: tuple[float, float, float], resolution: tuple[int, int], samples: int, each: bool = False
) -> None:
    """Place the (label, path) meshes in a row, the first being the reference, and render ``output``."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    center = radius = None
    offset = (len(items) - 1) / 2
    for i, (text, path) in enumerate(items):
        mesh = read_geometry(path)
        v = np.asarray(mesh["vertices"], dtype=np.float64)
        if center is None or each:
            center = (v.min(axis=0) + v.max(axis=0)) / 2
            radius = float(np.linalg.norm(v - center, axis=1).max())
        obj = add_mesh(text, (v - center) / radius, mesh["faces"])
        obj.rotation_euler = [math.radians(a) for a in rotate]
        obj.location.x = (i - offset) * SPACING
        obj.data.materials.append(material(text, REFERENCE_COLOR if i == 0 else RESULT_COLOR))
        label(text, ((i - offset) * SPACING, 0.0, -1.3))
    stage(scene, resolution, samples)
    cam = scene.camera
    cam.data.type = "ORTHO"
    aspect = resolution[0] / resolution[1]
    cam.data.ortho_scale = max(len(items) * SPACING, 2.7 * aspect)  # the row's width, or the height it needs
    elevation = math.radians(12)
    cam.location = (0.0, -20 * math.cos(elevation), -0.25 + 20 * math.sin(elevation))
    cam.rotation_euler = (math.pi / 2 - elevation, 0.0, 0.0)
    scene.render.filepath = os.path.abspath(output)
    os.makedirs(os.path.dirname(scene.render.filepath), exist_ok=True)
    bpy.ops.render.render(write_still=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("meshes", nargs="+", metavar="LABEL=PATH", help="the reference first")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--rotate", type=float, nargs=3, default=(90.0, 0.0, 0.0), metavar=("X", "Y", "Z"))
    parser.add_argument("--resolution", type=int, nargs=2, default=(1600, 400), metavar=("W", "H"))
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples")
    parser.add_argument("--each", action="store_true", help="normalise every mesh by its own bounding sphere")
    args = parser.parse_args()
    items = [tuple(item.split("=", 1)) for item in args.meshes]
    if any(len(item) != 2 for item in items):
        parser.error("meshes are given as LABEL=PATH")
    render_row(items, args.output, tuple(args.rotate), tuple(args.resolution), args.samples, args.each)
    return 0


if __name__ == "__main__":
    sys.exit(main())
