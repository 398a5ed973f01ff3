"""Render panels of surfaces, point clouds and skeletons side by side with Cycles on the CPU.

A panel is a label and items ``KIND=PATH``: ``surface`` (a mesh), ``points`` (a point cloud as small spheres,
e.g. iso-points), ``spheres`` (a skeleton's .ma points as spheres of their medial radius) or ``complex`` (a
skeleton's .ma triangles, and its edges as thin tubes). Every item is normalised by the first surface's
bounding sphere and turned by --rotate. The stage, materials and labels are ``demo.py``'s and the meshes
``bench/render_row.py``'s; run by ``docs/gallery/make_gallery.py`` in a process of its own (bpy apart from torch).

    .venv/bin/python docs/gallery/render_points.py --output iso.png --panel surface surface=spot.ply \\
        --panel iso-points surface=spot.ply points=iso.ply
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

import bpy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for path in (REPO, os.path.join(REPO, "bench")):
    if path not in sys.path:
        sys.path.insert(0, path)

from render_row import REFERENCE_COLOR, RESULT_COLOR, add_mesh  # noqa: E402

from demo import label, material, stage  # noqa: E402
from inr_blender.fileio import read_geometry, read_ma  # noqa: E402

KINDS = ("surface", "points", "spheres", "complex")
SPACING = 2.6  # between panel centres, in units of the first surface's bounding radius
SURFACE_COLOR, POINT_COLOR, SKELETON_COLOR = (0.55, 0.57, 0.6), RESULT_COLOR, (0.75, 0.15, 0.12)


def node_modifier(obj: bpy.types.Object, build) -> None:
    """A geometry-nodes modifier whose tree ``build(nodes, links, geometry_in) -> geometry_out`` makes."""
    group = bpy.data.node_groups.new(f"{obj.name} display", "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    out = build(nodes, links, nodes.new("NodeGroupInput").outputs["Geometry"])
    links.new(out, nodes.new("NodeGroupOutput").inputs["Geometry"])
    obj.modifiers.new("Display", "NODES").node_group = group


def as_points(obj: bpy.types.Object, radius: float | None, mat: bpy.types.Material) -> None:
    """Show a mesh's vertices as spheres of ``radius`` (None: the point attribute ``radius``)."""

    def build(nodes, links, geometry):
        to_points = nodes.new("GeometryNodeMeshToPoints")
        links.new(geometry, to_points.inputs["Mesh"])
        if radius is None:
            attribute = nodes.new("GeometryNodeInputNamedAttribute")
            attribute.data_type = "FLOAT"
            attribute.inputs["Name"].default_value = "radius"
            links.new(attribute.outputs["Attribute"], to_points.inputs["Radius"])
        else:
            to_points.inputs["Radius"].default_value = radius
        set_material = nodes.new("GeometryNodeSetMaterial")
        set_material.inputs["Material"].default_value = mat
        links.new(to_points.outputs["Points"], set_material.inputs["Geometry"])
        return set_material.outputs["Geometry"]

    node_modifier(obj, build)


def with_tubes(obj: bpy.types.Object, radius: float, mat: bpy.types.Material) -> None:
    """Add a tube of ``radius`` along every edge of a mesh, keeping its faces, all in ``mat``."""

    def build(nodes, links, geometry):
        to_curve, to_mesh, circle, join = (
            nodes.new(t)
            for t in ("GeometryNodeMeshToCurve", "GeometryNodeCurveToMesh", "GeometryNodeCurvePrimitiveCircle", "GeometryNodeJoinGeometry")
        )
        circle.inputs["Resolution"].default_value, circle.inputs["Radius"].default_value = 8, radius
        links.new(geometry, to_curve.inputs["Mesh"])
        links.new(to_curve.outputs["Curve"], to_mesh.inputs["Curve"])
        links.new(circle.outputs["Curve"], to_mesh.inputs["Profile Curve"])
        links.new(geometry, join.inputs["Geometry"])
        links.new(to_mesh.outputs["Mesh"], join.inputs["Geometry"])
        set_material = nodes.new("GeometryNodeSetMaterial")
        set_material.inputs["Material"].default_value = mat
        links.new(join.outputs["Geometry"], set_material.inputs["Geometry"])
        return set_material.outputs["Geometry"]

    node_modifier(obj, build)


def add_item(kind: str, path: str, center: np.ndarray, radius: float, point_radius: float) -> bpy.types.Object:
    """One item of a panel, normalised by (center, radius), at the origin."""
    name = f"{kind} {os.path.basename(path)}"
    if kind in ("spheres", "complex"):
        ma = read_ma(path)
        v = (ma["vertices"] - center) / radius
        mesh = bpy.data.meshes.new(name)
        faces = ma["faces"].tolist() if kind == "complex" else []
        edges = ma["edges"].tolist() if kind == "complex" else []
        mesh.from_pydata(v.tolist(), edges, faces)
        attribute = mesh.attributes.new("radius", "FLOAT", "POINT")
        attribute.data.foreach_set("value", (ma["radius"] / radius).astype(np.float32))
        obj = bpy.data.objects.new(name, mesh)
        bpy.context.scene.collection.objects.link(obj)
        if kind == "spheres":
            as_points(obj, None, material(name, POINT_COLOR))
        else:
            with_tubes(obj, 0.012, material(name, SKELETON_COLOR))
        return obj
    geometry = read_geometry(path)
    v = (np.asarray(geometry["vertices" if "vertices" in geometry else "points"], dtype=np.float64) - center) / radius
    if kind == "points":
        obj = add_mesh(name, v, np.zeros((0, 3), dtype=np.int32))
        as_points(obj, point_radius, material(name, POINT_COLOR))
    else:
        obj = add_mesh(name, v, geometry["faces"])
        obj.data.materials.append(material(name, SURFACE_COLOR if kind == "surface" else REFERENCE_COLOR))
    return obj


def render_panels(
    panels: list[tuple[str, list[tuple[str, str]]]],
    output: str,
    rotate: tuple[float, float, float],
    resolution: tuple[int, int],
    samples: int,
    point_radius: float,
) -> None:
    """Place the panels in a row, each item normalised by the first surface's bounding sphere, and render ``output``."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    first = next(path for _, items in panels for kind, path in items if kind == "surface")
    v = np.asarray(read_geometry(first)["vertices"], dtype=np.float64)
    center = (v.min(axis=0) + v.max(axis=0)) / 2
    radius = float(np.linalg.norm(v - center, axis=1).max())
    offset = (len(panels) - 1) / 2
    for i, (text, items) in enumerate(panels):
        x = (i - offset) * SPACING
        for kind, path in items:
            obj = add_item(kind, path, center, radius, point_radius)
            obj.rotation_euler = [math.radians(a) for a in rotate]
            obj.location.x = x
        label(text, (x, 0.0, -1.35))
    stage(scene, resolution, samples)
    scene.cycles.use_denoising = True  # smooth at few samples, and a smaller PNG
    scene.camera.location *= 0.45 * len(panels) + 0.05  # close enough to fill the frame, far enough for the row
    scene.render.filepath = os.path.abspath(output)
    bpy.ops.render.render(write_still=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panel", nargs="+", action="append", required=True, metavar="LABEL KIND=PATH", help="a label, then its items")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--rotate", type=float, nargs=3, default=(90.0, 0.0, 0.0), metavar=("X", "Y", "Z"), help="degrees")
    parser.add_argument("--resolution", type=int, nargs=2, default=(1200, 560), metavar=("W", "H"))
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples")
    parser.add_argument("--point-radius", type=float, default=0.012, help="of the points, in units of the bounding radius")
    args = parser.parse_args()
    panels = []
    for text, *specs in args.panel:
        items = [tuple(spec.split("=", 1)) for spec in specs]
        if not items or any(len(item) != 2 or item[0] not in KINDS for item in items):
            parser.error(f"panel {text!r}: items are KIND=PATH with KIND one of {', '.join(KINDS)}")
        panels.append((text, items))
    if not any(kind == "surface" for _, items in panels for kind, _ in items):
        parser.error("one panel needs a surface: it sets the scale")
    render_panels(panels, args.output, tuple(args.rotate), tuple(args.resolution), args.samples, args.point_radius)
    return 0


if __name__ == "__main__":
    sys.exit(main())
