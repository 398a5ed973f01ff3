"""bpy <-> numpy: selected geometry out in world space, meshes and field objects back in."""

from __future__ import annotations

import numpy as np

import bpy
from mathutils import Matrix


class InputError(ValueError):
    """The scene does not hold what the operator needs; the message is shown as is."""


_NORMAL_ATTRIBUTES = ("normal", "normals", "N")


def _matrix(mat: Matrix) -> np.ndarray:
    return np.array(mat, dtype=np.float64)


def _to_world(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    return points @ mat[:3, :3].T + mat[:3, 3]


def _normals_to_world(normals: np.ndarray, mat: np.ndarray) -> np.ndarray:
    n = normals @ np.linalg.inv(mat[:3, :3])  # inverse-transpose, applied to row vectors
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.maximum(length, 1e-12)


def _attribute_vectors(data, count: int) -> np.ndarray | None:
    for name in _NORMAL_ATTRIBUTES:
        attr = data.attributes.get(name)
        if attr is not None and attr.data_type == "FLOAT_VECTOR" and attr.domain == "POINT":
            values = np.empty(count * 3, dtype=np.float32)
            attr.data.foreach_get("vector", values)
            return values.reshape(-1, 3)
    return None


def _check_finite(obj: bpy.types.Object, coords: np.ndarray) -> None:
    if not np.isfinite(coords).all():
        raise InputError(f"'{obj.name}' has NaN or infinite coordinates")


def selected_geometry(context: bpy.types.Context) -> tuple[dict[str, np.ndarray], list[str]]:
    """The selected meshes and point clouds in world space, modifiers applied (see :func:`object_geometry`)."""
    objects = list(context.selected_objects)
    if not objects:
        raise InputError("nothing selected: select one or more mesh objects or point clouds")
    return object_geometry(context, objects)


def object_geometry(context: bpy.types.Context, objects: list[bpy.types.Object]) -> tuple[dict[str, np.ndarray], list[str]]:
    """``objects`` (meshes and point clouds) in world space, modifiers applied.

    Returns arrays for the backend (``vertices``/``faces`` for surfaces,
    ``points`` and maybe ``normals`` for point clouds) and the source names.
    """
    wrong = [o for o in objects if o.type not in {"MESH", "POINTCLOUD"}]
    if wrong:
        o = wrong[0]
        raise InputError(f"'{o.name}' is a {o.type.lower()}: select mesh objects or point clouds")

    depsgraph = context.evaluated_depsgraph_get()
    verts, faces, points, normals = [], [], [], []
    clouds_without_normals = []
    offset = 0
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        mat = _matrix(obj.matrix_world)
        if obj.type == "POINTCLOUD":
            data = evaluated.data
            count = len(data.points)
            co = np.empty(count * 3, dtype=np.float32)
            data.attributes["position"].data.foreach_get("vector", co)
            co, nrm, tris = co.reshape(-1, 3), _attribute_vectors(data, count), None
        else:
            mesh = evaluated.to_mesh()
            try:
                count = len(mesh.vertices)
                co = np.empty(count * 3, dtype=np.float32)
                mesh.vertices.foreach_get("co", co)
                co = co.reshape(-1, 3)
                tris = None
                if len(mesh.polygons):
                    mesh.calc_loop_triangles()
                    tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
                    mesh.loop_triangles.foreach_get("vertices", tris)
                    tris = tris.reshape(-1, 3)
                nrm = None if tris is not None else _attribute_vectors(mesh, count)
            finally:
                evaluated.to_mesh_clear()
        if count == 0:
            raise InputError(f"'{obj.name}' has no vertices")
        _check_finite(obj, co)
        world = _to_world(co.astype(np.float64), mat)
        if not np.isfinite(world).all():
            raise InputError(f"'{obj.name}' has a transform that makes its coordinates NaN or infinite")
        if tris is not None:
            verts.append(world)
            faces.append(tris + offset)
            offset += len(world)
        else:
            points.append(world)
            if nrm is None:
                clouds_without_normals.append(obj.name)
            else:
                if not np.isfinite(nrm).all():
                    raise InputError(f"'{obj.name}' has NaN or infinite normals")
                normals.append(_normals_to_world(nrm.astype(np.float64), mat))

    arrays: dict[str, np.ndarray] = {}
    if verts:
        arrays["vertices"] = np.concatenate(verts).astype(np.float32)
        arrays["faces"] = np.concatenate(faces).astype(np.int32)
    if points:
        arrays["points"] = np.concatenate(points).astype(np.float32)
        if not clouds_without_normals:
            arrays["normals"] = np.concatenate(normals).astype(np.float32)
    return arrays, [o.name for o in objects]


def mesh_arrays(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> tuple[np.ndarray, np.ndarray]:
    """World-space vertices and triangles of a mesh object (modifiers applied)."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        mesh.calc_loop_triangles()
        tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
    finally:
        evaluated.to_mesh_clear()
    return _to_world(co.reshape(-1, 3).astype(np.float64), _matrix(obj.matrix_world)).astype(np.float32), tris.reshape(-1, 3)


def mesh_vertices(obj: bpy.types.Object, selected_only: bool = False) -> np.ndarray:
    """A mesh object's own vertices (modifiers not applied) in world space, (V, 3) float64: in Edit Mode the
    edited state; with ``selected_only``, only the selected vertices. Refuses none, or NaN coordinates."""
    if obj.mode == "EDIT":
        obj.update_from_editmode()
    vertices = obj.data.vertices
    co = np.empty(len(vertices) * 3, dtype=np.float64)
    vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    if selected_only:
        selected = np.zeros(len(vertices), dtype=bool)
        vertices.foreach_get("select", selected)
        co = co[selected]
        if not len(co):
            raise InputError(f"no vertices of '{obj.name}' are selected: select some in Edit Mode")
    if not len(co):
        raise InputError(f"'{obj.name}' has no vertices")
    _check_finite(obj, co)
    world = _to_world(co, _matrix(obj.matrix_world))
    if not np.isfinite(world).all():
        raise InputError(f"'{obj.name}' has a transform that makes its coordinates NaN or infinite")
    return world


def _link(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    collection = context.collection or context.scene.collection
    collection.objects.link(obj)


def make_active(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Select ``obj`` alone and make it active."""
    for other in context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


def create_field_object(context: bpy.types.Context, name: str, center, scale: float) -> bpy.types.Object:
    """An Empty whose cube shows the field's domain: local [-1, 1]^3 -> world."""
    empty = bpy.data.objects.new(name, None)
    empty.empty_display_type = "CUBE"
    empty.empty_display_size = 1.0
    empty.location = tuple(float(c) for c in center)
    empty.scale = (float(scale),) * 3
    _link(context, empty)
    return empty


def create_mesh_object(
    context: bpy.types.Context,
    name: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray | None = None,
    matrix_world: Matrix | None = None,
    edges: np.ndarray | None = None,
    point_attributes: dict[str, np.ndarray] | None = None,
) -> bpy.types.Object:
    """A new mesh object with smooth shading (custom normals when given).

    ``edges`` (E, 2) adds loose edges (the triangles' sides are made from ``faces``);
    ``point_attributes`` adds one point attribute per name: FLOAT for (V,) values, FLOAT_VECTOR for (V, 3).
    """
    mesh = bpy.data.meshes.new(name)
    try:
        mesh.vertices.add(len(vertices))
        mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
        if edges is not None and len(edges):
            mesh.edges.add(len(edges))
            mesh.edges.foreach_set("vertices", np.ascontiguousarray(edges, dtype=np.int32).ravel())
        n_faces = len(faces)
        mesh.loops.add(n_faces * 3)
        mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(faces, dtype=np.int32).ravel())
        mesh.polygons.add(n_faces)
        mesh.polygons.foreach_set("loop_start", np.arange(0, n_faces * 3, 3, dtype=np.int32))
        mesh.update(calc_edges=edges is not None)
        mesh.validate()
        mesh.shade_smooth()
        if normals is not None and len(normals) == len(mesh.vertices):
            mesh.normals_split_custom_set_from_vertices(np.asarray(normals, dtype=np.float32))
        for key, values in (point_attributes or {}).items():
            values = np.ascontiguousarray(values, dtype=np.float32)
            vector = values.ndim == 2 and values.shape[1] == 3
            attr = mesh.attributes.new(key, "FLOAT_VECTOR" if vector else "FLOAT", "POINT")
            attr.data.foreach_set("vector" if vector else "value", values.ravel())
        obj = bpy.data.objects.new(name, mesh)
    except Exception:
        bpy.data.meshes.remove(mesh)
        raise
    if matrix_world is not None:
        obj.matrix_world = matrix_world
    _link(context, obj)
    return obj


def geometry_node_group(name: str, build, reusable=lambda group: True, inputs: tuple[str, ...] = ()) -> tuple[bpy.types.NodeTree, bool]:
    """A geometry-nodes group ``name`` with a Geometry input and output (plus float ``inputs``): the existing one
    when ``reusable(group)`` (keeping any edits the user made), else a new one that ``build(group, group_in,
    group_out)`` fills with nodes. Returns (group, created); a failed build leaves no group behind."""
    group = bpy.data.node_groups.get(name)
    if group is not None and group.bl_idname == "GeometryNodeTree" and reusable(group):
        return group, False
    group = bpy.data.node_groups.new(name, "GeometryNodeTree")
    try:
        group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        for socket in inputs:
            group.interface.new_socket(socket, in_out="INPUT", socket_type="NodeSocketFloat")
        group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        group_in, group_out = group.nodes.new("NodeGroupInput"), group.nodes.new("NodeGroupOutput")
        group_in.location, group_out.location = (-600, 0), (200, 0)
        build(group, group_in, group_out)
    except Exception:
        bpy.data.node_groups.remove(group)
        raise
    return group, True


def remove_objects(objects: list) -> None:
    """Delete objects this operator created (and their data) after a failure; node groups too."""
    for obj in objects:
        if isinstance(obj, bpy.types.NodeTree):
            bpy.data.node_groups.remove(obj)
            continue
        data = obj.data
        bpy.data.objects.remove(obj, do_unlink=True)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            materials = [m for m in data.materials if m is not None]
            bpy.data.meshes.remove(data)
            for material in materials:
                if material.users == 0:
                    bpy.data.materials.remove(material)
