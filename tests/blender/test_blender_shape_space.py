"""Shape spaces (DeepSDF) in the real bpy module: Fit Shape Space on three primitives, Extract Mesh of one shape where
that shape is, Reconstruct from Scan of a half-sphere cloud, Interpolate Shapes as a row, a sequence and shape keys,
and the refusals, each leaving the scene as it was."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import bpy

from conftest import add_point_cloud, open_field, prefs, refused, scene_state, select_only, set_local_backend, world_points

pytestmark = pytest.mark.slow  # every test here fits a field or runs a job: seconds to minutes on two cores

# A tiny space for 2 CPU cores (seconds): codes of 8, a decoder of 4 x 64, 100 steps of 3 shapes x 512 samples,
# errors measured at 32^3. It decodes rough shapes; the tests check what the operators do with them.
TINY = dict(
    preset="CUSTOM",
    latent_size=8,
    width=64,
    depth=4,
    dropout=0.0,
    iterations=100,
    shapes_per_step=3,
    samples_per_shape=512,
    num_samples=4000,
    error_resolution=32,
)
RESOLUTION = 32
LOCATIONS = {"Sphere": (0.0, 0.0, 0.0), "Cube": (3.0, 0.0, 0.0), "Torus": (6.0, 1.0, 0.0)}


def _add_primitives():
    """A UV sphere (radius 1), a cube (size 2) and a torus (1 + 0.25) at LOCATIONS; the sphere active."""
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, segments=24, ring_count=12, location=LOCATIONS["Sphere"])
    sphere = bpy.context.active_object
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=LOCATIONS["Cube"])
    cube = bpy.context.active_object
    bpy.ops.mesh.primitive_torus_add(major_radius=1.0, minor_radius=0.25, major_segments=24, minor_segments=8, location=LOCATIONS["Torus"])
    torus = bpy.context.active_object
    for obj, name in ((sphere, "Sphere"), (cube, "Cube"), (torus, "Torus")):
        obj.name = obj.data.name = name
    select_only(sphere, cube, torus)
    return sphere, cube, torus


@pytest.fixture(scope="module")
def space_blend(addon, tmp_path_factory):
    """The three primitives and the space fitted to them, saved."""
    bpy.ops.wm.read_homefile(use_empty=True)
    set_local_backend()
    _add_primitives()
    before = set(bpy.data.objects.keys())
    assert bpy.ops.inr.fit_shape_space(**TINY) == {"FINISHED"}
    assert set(bpy.data.objects.keys()) - before == {"Sphere_ShapeSpace"}
    path = tmp_path_factory.mktemp("shape_space") / "space.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def _space():
    return bpy.data.objects["Sphere_ShapeSpace"]


def test_fit_makes_a_shape_space_that_remembers_its_shapes(scene, space_blend):
    field = open_field(space_blend, "Sphere_ShapeSpace")
    s = field.inr_field
    assert s.is_field and s.kind == "SHAPE_SPACE" and s.method == "DEEPSDF" and s.preset == "CUSTOM" and s.shape_space.latent_size == 8
    assert os.path.isfile(bpy.path.abspath(s.checkpoint)) and s.checkpoint.startswith("//")  # moved beside the .blend
    assert s.iterations == 100 and len(s.loss_history) > 0 and s.device
    assert json.loads(s.sources_json) == ["Sphere", "Cube", "Torus"]  # the active first, then by name
    settings = json.loads(s.settings_json)
    assert settings["method"] == "deepsdf" and settings["names"] == ["Sphere", "Cube", "Torus"] and settings["samples_per_shape"] == 512

    assert [(shape.name, shape.index) for shape in s.shape_space.shapes] == [("Sphere", 0), ("Cube", 1), ("Torus", 2)]
    for shape in s.shape_space.shapes:
        obj = bpy.data.objects[shape.name]
        assert shape.source == obj  # survives saving and reopening
        assert np.allclose(shape.center, LOCATIONS[shape.name], atol=1e-4), (shape.name, tuple(shape.center))
        # the farthest vertex at 1 / 1.03 of the unit sphere
        radius = np.linalg.norm(world_points(obj) - LOCATIONS[shape.name], axis=1).max()
        assert shape.scale == pytest.approx(radius * 1.03, rel=1e-3)
        assert shape.has_error and 0 <= shape.error < 0.5, (shape.name, shape.error)  # Chamfer-L1, world units
    # the field object shows the first shape's frame: its [-1, 1]^3 cube holds the sphere
    first = s.shape_space.shapes[0]
    assert np.allclose(field.location, first.center, atol=1e-5) and np.allclose(field.scale, (first.scale,) * 3, atol=1e-6)


def test_extract_mesh_decodes_the_selected_shape_where_it_is(scene, space_blend):
    field = open_field(space_blend, "Sphere_ShapeSpace")
    field.inr_field.shape_space.active_shape = 1  # the panel's list: the cube
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION) == {"FINISHED"}
    mesh = bpy.context.active_object
    cube = field.inr_field.shape_space.shapes[1]
    assert mesh.name == "Sphere_ShapeSpace_Cube_mesh" and len(mesh.data.vertices) > 0
    expected = np.eye(4)
    expected[:3, :3] *= cube.scale
    expected[:3, 3] = cube.center
    assert np.allclose(np.array(mesh.matrix_world), expected, atol=1e-5)
    # the shape param wins over the list; moving the field object moves the shapes with it
    field.location.z += 2.0
    bpy.context.view_layer.update()
    select_only(field)
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION, shape=2) == {"FINISHED"}
    torus = bpy.context.active_object
    assert torus.name == "Sphere_ShapeSpace_Torus_mesh"
    assert np.allclose(np.array(torus.matrix_world)[:3, 3], np.add(field.inr_field.shape_space.shapes[2].center, (0.0, 0.0, 2.0)), atol=1e-5)


def test_reconstruct_from_a_half_sphere_cloud(scene, space_blend):
    field = open_field(space_blend, "Sphere_ShapeSpace")
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(600, 3))
    normals[:, 2] = np.abs(normals[:, 2])  # the upper half only: a partial scan
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    scan = add_point_cloud(normals * 0.9 + [0.0, -3.0, 0.0], normals, name="Scan")
    select_only(field, scan)
    before = set(bpy.data.objects.keys())
    assert bpy.ops.inr.reconstruct_shape(iterations=50, resolution=RESOLUTION) == {"FINISHED"}
    assert set(bpy.data.objects.keys()) - before == {"Scan_completed", "Scan_completed_field"}
    mesh, completed = bpy.data.objects["Scan_completed"], bpy.data.objects["Scan_completed_field"]
    assert bpy.context.active_object == mesh and len(mesh.data.vertices) > 0 and len(mesh.data.polygons) > 0
    assert np.allclose(np.array(mesh.matrix_world), np.array(field.matrix_world))  # the space's frame
    s = completed.inr_field
    assert s.is_field and s.kind == "SDF" and s.method == "LATENT_SHAPE" and s.shape_space.reconstruct.source_space == field.name
    assert s.has_normals and s.num_points == 600 and json.loads(s.sources_json) == ["Scan"]
    assert os.path.isfile(bpy.path.abspath(s.checkpoint))
    assert np.allclose(np.array(completed.matrix_world), np.array(field.matrix_world))
    # the completed shape is an ordinary field: Extract Mesh gives the same surface in the same place
    select_only(completed)
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION, method="DENSE") == {"FINISHED"}
    again = world_points(bpy.context.active_object)
    assert again.shape == world_points(mesh).shape and np.allclose(again, world_points(mesh), atol=1e-4)

    # the scene camera as the scanner: free-space points on its rays go along
    select_only(field, scan)
    bpy.context.scene.camera = None
    refused(bpy.ops.inr.reconstruct_shape, "needs a scene camera", iterations=5, resolution=RESOLUTION, free_space=True)
    camera = bpy.data.objects.new("Scanner", bpy.data.cameras.new("Scanner"))
    camera.location = (0.0, -3.0, 4.0)  # above the scanned (upper) half
    bpy.context.scene.collection.objects.link(camera)
    bpy.context.scene.camera = camera
    select_only(field, scan)
    assert bpy.ops.inr.reconstruct_shape(iterations=20, resolution=RESOLUTION, free_space=True, keep_field=False) == {"FINISHED"}
    assert bpy.context.active_object.name == "Scan_completed.001"

    # a partial mesh: its vertices, with the mesh's normals
    import bmesh  # after bpy

    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.9, segments=16, ring_count=8, location=(0.0, 3.0, 0.0))
    partial = bpy.context.active_object
    partial.name = "Partial"
    bm = bmesh.new()
    bm.from_mesh(partial.data)
    bmesh.ops.delete(bm, geom=[v for v in bm.verts if v.co.z < -0.1], context="VERTS")
    bm.to_mesh(partial.data)
    bm.free()
    select_only(field, partial)
    assert bpy.ops.inr.reconstruct_shape(iterations=20, resolution=RESOLUTION) == {"FINISHED"}
    assert bpy.data.objects["Partial_completed_field"].inr_field.has_normals

    # without normals, and not kept as a field
    bare = add_point_cloud(normals * 0.9, None, name="Bare")
    select_only(field, bare)
    before = set(bpy.data.objects.keys())
    assert bpy.ops.inr.reconstruct_shape(iterations=20, resolution=RESOLUTION, keep_field=False) == {"FINISHED"}
    assert set(bpy.data.objects.keys()) - before == {"Bare_completed"}


def test_interpolate_as_a_row_a_sequence_and_shape_keys(scene, space_blend):
    field = open_field(space_blend, "Sphere_ShapeSpace")
    shapes = field.inr_field.shape_space.shapes
    small = dict(count=3, resolution=RESOLUTION)

    before = set(bpy.data.objects.keys())
    assert bpy.ops.inr.interpolate_shapes(a=0, b=2, output="ROW", **small) == {"FINISHED"}
    row = [bpy.data.objects[f"Sphere_to_Torus_{i}"] for i in range(3)]
    assert set(bpy.data.objects.keys()) - before == {o.name for o in row}
    assert {o.name for o in bpy.context.selected_objects} == {o.name for o in row} and bpy.context.active_object == row[0]
    xs = [o.matrix_world.translation.x for o in row]
    assert xs[0] > max(shapes[0].center[0], shapes[2].center[0]) and xs[0] < xs[1] < xs[2]  # to the right, in order
    assert xs[2] - xs[1] == pytest.approx(xs[1] - xs[0])
    for i, obj in enumerate(row):  # y, z and size: the lerp of the two shapes'
        t = i / 2
        assert obj.matrix_world.translation.y == pytest.approx((1 - t) * shapes[0].center[1] + t * shapes[2].center[1], abs=1e-5)
        assert obj.matrix_world.to_scale()[0] == pytest.approx((1 - t) * shapes[0].scale + t * shapes[2].scale, rel=1e-5)
        assert not obj.hide_viewport and obj.animation_data is None

    select_only(field)
    assert bpy.ops.inr.interpolate_shapes(a=0, b=1, output="SEQUENCE", frames_per_shape=5, frame_start=10, **small) == {"FINISHED"}
    seq = [bpy.data.objects[f"Sphere_to_Cube_{i}"] for i in range(3)]
    for i, obj in enumerate(seq):
        t = i / 2
        assert np.allclose(obj.matrix_world.translation, (1 - t) * np.array(shapes[0].center) + t * np.array(shapes[1].center), atol=1e-5)
    scene_ = bpy.context.scene
    for frame, visible in ((10, 0), (14, 0), (15, 1), (19, 1), (20, 2), (40, 2), (1, 0)):
        scene_.frame_set(frame)
        assert [not o.hide_viewport for o in seq] == [i == visible for i in range(3)], frame
        assert [not o.hide_render for o in seq] == [i == visible for i in range(3)], frame
    scene_.frame_set(1)

    # shape keys: the first mesh carried through the in-betweens, each key at full strength on its frame
    select_only(field)
    assert bpy.ops.inr.interpolate_shapes(a=1, b=0, output="SHAPE_KEYS", frames_per_shape=4, **small) == {"FINISHED"}
    morph = bpy.context.active_object
    assert morph.name == "Cube_to_Sphere" and bpy.context.selected_objects == [morph]
    keys = morph.data.shape_keys.key_blocks
    assert len(keys) == 3 and keys[0].name == "Basis"
    for frame, values in ((1, (0.0, 0.0)), (3, (0.5, 0.0)), (5, (1.0, 0.0)), (7, (0.5, 0.5)), (9, (0.0, 1.0)), (30, (0.0, 1.0))):
        scene_.frame_set(frame)
        assert [k.value for k in keys[1:]] == pytest.approx(values, abs=1e-5), frame
        t = min(frame - 1, 8) / 8  # the place moves from the cube's to the sphere's
        assert np.allclose(morph.matrix_world.translation, (1 - t) * np.array(shapes[1].center) + t * np.array(shapes[0].center), atol=1e-4), frame
    scene_.frame_set(1)

    # two selected shapes of the space stand for a and b; AUTO makes shape keys or a sequence, as the backend says
    select_only(field, bpy.data.objects["Torus"], bpy.data.objects["Cube"])
    before = set(bpy.data.objects.keys())
    assert bpy.ops.inr.interpolate_shapes(**small) == {"FINISHED"}
    added = set(bpy.data.objects.keys()) - before
    assert added in ({"Cube_to_Torus"}, {f"Cube_to_Torus_{i}" for i in range(3)}), added


def test_refusals_leave_the_scene_as_it_was(scene, space_blend):
    bpy.ops.wm.open_mainfile(filepath=str(space_blend))
    field, sphere, cube = _space(), bpy.data.objects["Sphere"], bpy.data.objects["Cube"]

    # Fit Shape Space: nothing, one shape, a non-mesh object (named), an empty mesh
    select_only()
    refused(bpy.ops.inr.fit_shape_space, "nothing selected: select two or more mesh objects", **TINY)
    select_only(sphere)
    refused(bpy.ops.inr.fit_shape_space, "Fit Shape Space needs two or more meshes, one per shape: only 'Sphere' is selected", **TINY)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.collection.objects.link(camera)
    select_only(sphere, camera, cube)
    refused(bpy.ops.inr.fit_shape_space, "'Camera' is a camera: Fit Shape Space needs mesh objects, one per shape", **TINY)
    select_only(sphere, field)
    refused(bpy.ops.inr.fit_shape_space, "'Sphere_ShapeSpace' is a field: Fit Shape Space needs mesh objects", **TINY)
    empty_mesh = bpy.data.objects.new("Nothing", bpy.data.meshes.new("Nothing"))
    bpy.context.collection.objects.link(empty_mesh)
    select_only(sphere, empty_mesh)
    refused(bpy.ops.inr.fit_shape_space, "'Nothing' is an empty mesh: every shape needs a surface", **TINY)
    cloud = add_point_cloud(np.random.default_rng(0).normal(size=(50, 3)), name="Cloud")
    select_only(sphere, cloud)
    refused(bpy.ops.inr.fit_shape_space, "'Cloud' has no faces: every shape needs a surface", **TINY)
    select_only(sphere, cube)
    refused(bpy.ops.inr.fit_shape_space, "width 64 must exceed latent_size \\+ 3", **dict(TINY, latent_size=64))  # the backend's

    # Reconstruct from Scan: no space active, no scan, a scan with no points, a camera, two scans
    for operator in (bpy.ops.inr.reconstruct_shape, bpy.ops.inr.interpolate_shapes):
        select_only(sphere, cube)
        refused(operator, "needs a shape space and the active object 'Sphere' is not a shape space: fit one with Fit Shape Space")
        select_only()
        refused(operator, "needs a shape space and nothing is active")
    select_only(field)
    refused(bpy.ops.inr.reconstruct_shape, "no scan: select the scan")
    select_only(field, empty_mesh)
    refused(bpy.ops.inr.reconstruct_shape, "the scan 'Nothing' has no points: nothing to reconstruct from")
    select_only(field, camera)
    refused(bpy.ops.inr.reconstruct_shape, "the scan 'Camera' is a camera")
    select_only(field, cloud, cube)
    refused(bpy.ops.inr.reconstruct_shape, "2 objects selected besides 'Sphere_ShapeSpace'")

    # out-of-range shapes, and the same shape twice
    select_only(field)
    refused(bpy.ops.inr.extract_mesh, "shape 7 is out of range: the space 'Sphere_ShapeSpace' has 3 shapes", shape=7)
    refused(bpy.ops.inr.extract_mesh, "only a displacement field has a base", part="BASE")
    refused(bpy.ops.inr.interpolate_shapes, "shape 7 is out of range: the space 'Sphere_ShapeSpace' has 3 shapes", a=0, b=7)
    refused(bpy.ops.inr.interpolate_shapes, r"both ends are shape 1 \('Cube'\): pick two different shapes", a=1, b=1)
    field.inr_field.shape_space.active_shape = 5  # a stale list index
    refused(bpy.ops.inr.extract_mesh, "shape 5 is out of range")


def test_the_active_mesh_is_the_first_shape_and_errors_can_be_skipped(scene):
    """An occupancy space of two shapes, the active one first; errors not measured."""
    sphere, cube, torus = _add_primitives()
    select_only(torus, cube)
    before = scene_state()
    assert bpy.ops.inr.fit_shape_space(**dict(TINY, method="OCCUPANCY", iterations=5, error_resolution=0)) == {"FINISHED"}
    field = bpy.context.active_object
    assert field.name == "Torus_ShapeSpace" and [s.name for s in field.inr_field.shape_space.shapes] == ["Torus", "Cube"]
    assert field.inr_field.method == "OCCUPANCY" and json.loads(field.inr_field.settings_json)["method"] == "occupancy"
    assert not any(s.has_error for s in field.inr_field.shape_space.shapes)  # error_resolution 0: not measured
    assert np.allclose(field.location, LOCATIONS["Torus"], atol=1e-4)  # the space's frame is the first shape's
    assert scene_state()[0] == sorted(before[0] + ["Torus_ShapeSpace"])  # the field object, nothing else


def test_remote_worker_fits_and_interpolates(scene, remote_worker):
    """Over a remote worker the space's checkpoint comes back as bytes, and goes out as bytes to interpolate."""
    _, port, token = remote_worker
    p = prefs()
    p.backend_mode, p.remote_host, p.remote_port, p.remote_token = "REMOTE", "127.0.0.1", port, token
    _add_primitives()
    assert bpy.ops.inr.fit_shape_space(**dict(TINY, error_resolution=0)) == {"FINISHED"}
    field = bpy.context.active_object
    assert os.path.getsize(bpy.path.abspath(field.inr_field.checkpoint)) > 1000 and len(field.inr_field.shape_space.shapes) == 3
    assert bpy.ops.inr.interpolate_shapes(a=2, b=1, count=2, resolution=RESOLUTION, output="ROW") == {"FINISHED"}
    assert {o.name for o in bpy.context.selected_objects} == {"Torus_to_Cube_0", "Torus_to_Cube_1"}
    # the completed shape's weights come back as bytes too, and become a field here
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(200, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    scan = add_point_cloud(normals * 0.9, normals, name="Scan")
    select_only(field, scan)
    assert bpy.ops.inr.reconstruct_shape(iterations=10, resolution=RESOLUTION) == {"FINISHED"}
    completed = bpy.data.objects["Scan_completed_field"]
    assert os.path.getsize(bpy.path.abspath(completed.inr_field.checkpoint)) > 1000
