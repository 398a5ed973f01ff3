"""Implicit displacement fields in the real bpy module: Fit Displacement Field, its base and detailed surfaces,
Transfer Detail as a chain of jobs (fitting what is missing, reusing what was fitted), the result's placement,
strength 0 against the target's base, the remote worker, Cancel mid-chain, and the refusals."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

import bpy

from conftest import (
    add_point_cloud,
    fake_field,
    inside_everywhere_checkpoint,
    interrupt_during,
    open_field,
    prefs,
    refused,
    scene_state,
    select_only,
    set_local_backend,
    sphere_points,
    world_points,
)

pytestmark = pytest.mark.slow  # every test here fits a field or runs a job: seconds to minutes on two cores

# Small fits for 2 CPU cores (about 2 s each): the base is the default 3 x 128 at ω 15, which the backend stores
# pre-fitted to a sphere (a base of another size is pre-fitted on demand first: 600 steps of 8192 points,
# minutes on a CPU), with a tiny detail network and 100 steps of 512 points.
TINY = dict(preset="CUSTOM", base_width=128, base_depth=3, detail_width=32, detail_depth=2, iterations=100, batch_size=512, num_samples=5000)
SOURCE_AT = (0.0, 0.0, 0.0)
TARGET_AT, TARGET_RADIUS = (-1.0, 3.0, 0.5), 0.8
RESOLUTION = 40
SHIFT = 1.2  # the result sits 1.2 target widths along +X


def _add_bumpy(name: str = "Bumpy", location=SOURCE_AT):
    """An icosphere of radius 1 with bumps of amplitude 0.06 (the detail to transfer)."""
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=4, radius=1.0, location=location)
    obj = bpy.context.active_object
    obj.name = obj.data.name = name
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float64)
    obj.data.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    d = co / np.linalg.norm(co, axis=1, keepdims=True)
    co = d * (1.0 + 0.06 * np.sin(6 * d[:, 0]) * np.sin(6 * d[:, 1]) * np.sin(6 * d[:, 2]))[:, None]
    obj.data.vertices.foreach_set("co", co.astype(np.float32).ravel())
    obj.data.update()
    return obj


def _add_ball(name: str = "Ball", location=TARGET_AT, radius=TARGET_RADIUS):
    bpy.ops.mesh.primitive_uv_sphere_add(radius=radius, segments=32, ring_count=16, location=location)
    obj = bpy.context.active_object
    obj.name = obj.data.name = name
    return obj


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance between two point sets (brute force, in chunks)."""

    def directed(p, q):
        return np.concatenate([np.sqrt(((c[:, None, :] - q[None]) ** 2).sum(-1).min(1)) for c in np.array_split(p, max(1, len(p) // 500))])

    return 0.5 * float(directed(a, b).mean() + directed(b, a).mean())


def _new_objects(before: set[str]) -> set[str]:
    return set(bpy.data.objects.keys()) - before


def _transfer(source, target, **kwargs):
    select_only(target, source)  # the target active, the source selected too
    return bpy.ops.inr.transfer_detail(**kwargs)


@pytest.fixture(scope="module")
def transfer_blend(addon, tmp_path_factory):
    """Bumpy (source) and Ball (target), neither fitted: Transfer Detail fits both, transfers, extracts; saved."""
    bpy.ops.wm.read_homefile(use_empty=True)
    set_local_backend()
    bumpy, ball = _add_bumpy(), _add_ball()
    before = set(bpy.data.objects.keys())
    assert _transfer(bumpy, ball, resolution=RESOLUTION, **TINY) == {"FINISHED"}
    added = _new_objects(before)
    assert added == {"Bumpy_IDF", "Ball_IDF", "Ball_transfer", "Ball_transfer_mesh"}, added
    assert bpy.context.active_object.name == "Ball_transfer_mesh"
    path = tmp_path_factory.mktemp("displacement") / "transfer.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def test_fit_displacement_makes_a_displacement_field_with_its_settings(scene):
    bumpy = _add_bumpy(location=(1.0, 2.0, 3.0))
    assert bpy.ops.inr.fit_displacement(**TINY, phase_base=0.3, phase_detail=0.6, nu=0.04, max_offset=0.03) == {"FINISHED"}
    field = bpy.context.active_object
    s = field.inr_field
    settings = json.loads(s.settings_json)
    assert field.name == "Bumpy_IDF" and s.is_field and s.kind == "SDF" and s.method == "IDF"
    assert s.sources == bumpy.name and s.has_normals and s.preset == "CUSTOM" and s.iterations == 100
    assert os.path.isfile(bpy.path.abspath(s.checkpoint)) and len(s.loss_history) > 0
    assert (s.displacement.phase_base, s.displacement.phase_detail) == (pytest.approx(0.3), pytest.approx(0.6))
    assert settings["method"] == "idf" and settings["init"] == "sphere" and settings["convergence_tolerance"] == 0.0
    assert {k: settings[k] for k in ("base_width", "base_depth", "detail_width", "detail_depth", "iterations", "batch_size")} == {
        "base_width": 128,
        "base_depth": 3,
        "detail_width": 32,
        "detail_depth": 2,
        "iterations": 100,
        "batch_size": 512,
    }
    assert settings["nu"] == pytest.approx(0.04) and settings["max_offset"] == pytest.approx(0.03)
    assert (settings["base_omega"], settings["detail_omega"]) == (15.0, 60.0)
    assert np.allclose(field.location, bumpy.location, atol=0.05)  # the domain is centred on the input

    # the FAST preset fills in what is not set; the explicit settings win
    select_only(bumpy)
    small = {k: v for k, v in TINY.items() if k not in ("preset", "detail_width", "batch_size", "iterations")}
    assert bpy.ops.inr.fit_displacement(preset="FAST", iterations=1, **small) == {"FINISHED"}
    s = bpy.context.active_object.inr_field
    settings = json.loads(s.settings_json)
    assert s.preset == "FAST" and (settings["iterations"], settings["detail_width"], settings["batch_size"]) == (1, 64, 2048)
    assert settings["base_width"] == 128 and settings["phase_base"] == pytest.approx(0.2)


def test_extract_base_and_detailed_surfaces(scene, transfer_blend):
    field = open_field(transfer_blend, "Bumpy_IDF")
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION) == {"FINISHED"}
    detailed = bpy.context.active_object
    select_only(field)
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION, part="BASE") == {"FINISHED"}
    base = bpy.context.active_object
    assert (detailed.name, base.name) == ("Bumpy_IDF_mesh", "Bumpy_IDF_base")
    for mesh in (detailed, base):
        assert np.allclose(np.array(mesh.matrix_world), np.array(field.matrix_world))
        radii = np.linalg.norm(world_points(mesh) - SOURCE_AT, axis=1)
        assert abs(np.median(radii) - 1.0) < 0.15, np.median(radii)  # both near the bumpy sphere of radius 1
    assert len(detailed.data.vertices) != len(base.data.vertices) or not np.allclose(world_points(detailed), world_points(base))
    # part is not remembered: a plain Extract Mesh is the detailed surface again
    select_only(field)
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION) == {"FINISHED"}
    assert bpy.context.active_object.name.startswith("Bumpy_IDF_mesh")


def test_transfer_detail_lands_beside_the_target(scene, transfer_blend):
    """The chain fitted the source (full phases) and the target (base only); the result sits 1.2 widths along +X."""
    bpy.ops.wm.open_mainfile(filepath=str(transfer_blend))
    ball, source, target = (bpy.data.objects[n] for n in ("Ball", "Bumpy_IDF", "Ball_IDF"))
    field, mesh = bpy.data.objects["Ball_transfer"], bpy.data.objects["Ball_transfer_mesh"]
    assert (source.inr_field.method, source.inr_field.displacement.phase_base, source.inr_field.displacement.phase_detail) == (
        "IDF",
        pytest.approx(0.2),
        pytest.approx(0.5),
    )
    assert (target.inr_field.method, target.inr_field.displacement.phase_base, target.inr_field.displacement.phase_detail) == (
        "IDF",
        1.0,
        1.0,
    )  # base only
    assert source.inr_field.sources == "Bumpy" and target.inr_field.sources == "Ball"

    s = field.inr_field
    assert s.is_field and s.kind == "SDF" and s.method == "IDF_TRANSFER" and os.path.isfile(bpy.path.abspath(s.checkpoint))
    assert (s.transfer.source, s.transfer.target, s.transfer.mode_used) == ("Bumpy_IDF", "Ball_IDF", "PROJECTED")
    assert s.transfer.strength_used == 1.0 and s.transfer.nu_used == pytest.approx(0.05)  # ν 0: the source's
    assert json.loads(s.sources_json) == []  # fitted to nothing: no mesh takes it for its own field

    # world space: the field is the target's field moved by +X 1.2 x the target's width (1.6), the mesh follows it
    shift = SHIFT * 2 * TARGET_RADIUS
    expected = np.array(target.matrix_world)
    expected[0, 3] += shift
    assert np.allclose(np.array(field.matrix_world), expected, atol=1e-5)
    assert np.allclose(np.array(mesh.matrix_world), np.array(field.matrix_world))
    points = world_points(mesh)
    centre = np.array(TARGET_AT) + [shift, 0.0, 0.0]
    assert np.allclose(0.5 * (points.min(0) + points.max(0)), centre, atol=0.1), 0.5 * (points.min(0) + points.max(0))
    radii = np.linalg.norm(points - centre, axis=1)
    assert abs(np.median(radii) - TARGET_RADIUS) < 0.1 and radii.max() < TARGET_RADIUS + 0.2, (np.median(radii), radii.max())
    assert points[:, 0].min() > np.array(world_points(ball))[:, 0].max()  # beside the target, not on it

    # the transferred field is an ordinary SDF field: Extract Mesh re-extracts the same surface in place
    select_only(field)
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION) == {"FINISHED"}
    again = world_points(bpy.context.active_object)
    assert again.shape == points.shape and np.allclose(again, points, atol=1e-5)


def test_strength_zero_gives_the_target_base_and_reuses_the_fields(scene, transfer_blend):
    bpy.ops.wm.open_mainfile(filepath=str(transfer_blend))
    bumpy, ball, target = (bpy.data.objects[n] for n in ("Bumpy", "Ball", "Ball_IDF"))
    ball.inr_field.transfer.strength = 0.0  # the panel's settings, on the target, stand in for what is not set
    ball.inr_field.transfer.resolution = RESOLUTION
    before = set(bpy.data.objects.keys())
    select_only(ball, bumpy)
    assert bpy.ops.inr.transfer_detail("INVOKE_DEFAULT") == {"FINISHED"}  # as the panel calls it; nothing to fit: no dialog
    added = _new_objects(before)
    assert added == {"Ball_transfer.001", "Ball_transfer.001_mesh"}, added
    field, mesh = bpy.data.objects["Ball_transfer.001"], bpy.context.active_object
    assert field.inr_field.transfer.strength_used == 0.0
    select_only(target)
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION, part="BASE") == {"FINISHED"}
    base = world_points(bpy.context.active_object)
    moved = world_points(mesh) - [SHIFT * 2 * TARGET_RADIUS, 0.0, 0.0]
    # the same field on the same grid: within float error of the target's base (world units, radius 0.8)
    assert _chamfer(moved, base) < 1e-4, _chamfer(moved, base)

    # strength 1 moves the surface off the base (by the source's detail), but not far: at most its largest offset
    select_only(target)
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION) == {"FINISHED"}  # a base-only field: the base itself
    assert _chamfer(world_points(bpy.context.active_object), base) < 1e-4
    detailed = world_points(bpy.data.objects["Ball_transfer_mesh"]) - [SHIFT * 2 * TARGET_RADIUS, 0.0, 0.0]
    print(f"strength 1 vs the base: Chamfer {_chamfer(detailed, base):.5f}")
    assert 1e-3 < _chamfer(detailed, base) < 0.05 * 2 * TARGET_RADIUS


def test_fields_as_source_and_target_with_mode_and_nu(scene, transfer_blend):
    """Field objects stand for themselves, named rather than selected; mode and ν reach the backend and are recorded."""
    bpy.ops.wm.open_mainfile(filepath=str(transfer_blend))
    source, target = bpy.data.objects["Bumpy_IDF"], bpy.data.objects["Ball_transfer"]  # a transferred field is a target too
    before = set(bpy.data.objects.keys())
    select_only()
    kwargs = dict(mode="ALIGNED", nu=0.02, strength=0.5, resolution=32)
    assert bpy.ops.inr.transfer_detail(source=source.name, target=target.name, **kwargs) == {"FINISHED"}
    assert _new_objects(before) == {"Ball_transfer_transfer", "Ball_transfer_transfer_mesh"}
    s = bpy.data.objects["Ball_transfer_transfer"].inr_field.transfer
    assert (s.mode_used, s.nu_used, s.strength_used) == ("ALIGNED", pytest.approx(0.02), 0.5)
    assert (s.source, s.target) == ("Bumpy_IDF", "Ball_transfer")
    # beside the target field's surface: 1.2 widths of the surface along +X from where the target field is
    offset = np.array(bpy.data.objects["Ball_transfer_transfer"].matrix_world) - np.array(target.matrix_world)
    assert np.allclose(offset[:3, :3], 0) and offset[1, 3] == pytest.approx(0) and offset[2, 3] == pytest.approx(0)
    assert offset[0, 3] == pytest.approx(SHIFT * 2 * TARGET_RADIUS, rel=0.1)


def test_remote_worker_transfers_and_fits(scene, transfer_blend, remote_worker):
    """Over a remote worker the checkpoints travel as bytes: an existing source field's, a target fitted in the chain."""
    _, port, token = remote_worker
    bpy.ops.wm.open_mainfile(filepath=str(transfer_blend))
    p = prefs()
    p.backend_mode, p.remote_host, p.remote_port, p.remote_token = "REMOTE", "127.0.0.1", port, token
    other = _add_ball("Other", location=(0.0, -3.0, 0.0), radius=0.6)
    before = set(bpy.data.objects.keys())
    assert _transfer(bpy.data.objects["Bumpy"], other, resolution=32, **TINY) == {"FINISHED"}
    assert _new_objects(before) == {"Other_IDF", "Other_transfer", "Other_transfer_mesh"}
    for name in ("Other_IDF", "Other_transfer"):
        assert os.path.getsize(bpy.path.abspath(bpy.data.objects[name].inr_field.checkpoint)) > 1000  # came back over the wire
    points = world_points(bpy.data.objects["Other_transfer_mesh"])
    centre = np.array([SHIFT * 1.2, -3.0, 0.0])
    assert abs(np.median(np.linalg.norm(points - centre, axis=1)) - 0.6) < 0.1


def test_cancel_mid_chain_leaves_the_scene_and_no_checkpoint(scene):
    """Ctrl+C while the second fit runs: the scene is as it was and the first fit's checkpoint is removed."""
    from neural_fields.preferences import user_dir

    bumpy, ball = _add_bumpy(), _add_ball()
    select_only(ball, bumpy)
    before, files = scene_state(), set(glob.glob(os.path.join(user_dir("fields"), "*.pt")))
    result, fired = interrupt_during(lambda: bpy.ops.inr.transfer_detail(**TINY), nth_job=2)
    assert fired and fired[0][0] == "fit_sdf", fired
    assert result == {"CANCELLED"}
    assert scene_state() == before
    assert set(glob.glob(os.path.join(user_dir("fields"), "*.pt"))) == files  # the source's finished fit is gone too


def test_refusals_leave_the_scene_as_it_was(scene, transfer_blend, tmp_path):
    bpy.ops.wm.open_mainfile(filepath=str(transfer_blend))
    bumpy, ball, third = (bpy.data.objects[n] for n in ("Bumpy", "Ball", "Ball_transfer_mesh"))

    def _refused(match, *objects, **kwargs):
        select_only(*objects)
        refused(bpy.ops.inr.transfer_detail, match, **kwargs)

    _refused("no active object")
    _refused(r"Transfer Detail needs two objects and only 'Ball' is given", ball)
    _refused(r"Transfer Detail needs exactly two objects, the detail source and the target \(active\): 3 are selected", ball, bumpy, third)
    _refused("the detail source and the target are the same object 'Ball'", source="Ball", target="Ball")
    _refused("there is no object 'Nope' to use as the detail source", ball, source="Nope")

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    empty = bpy.data.objects.new("Empty", None)
    for obj in (camera, empty):
        bpy.context.collection.objects.link(obj)
    _refused("the target 'Camera' is a camera: pick a mesh, a point cloud or a signed distance field", camera, bumpy)
    _refused("the target 'Empty' is an empty: pick a mesh, a point cloud or a signed distance field", empty, bumpy)
    _refused("the detail source 'Camera' is a camera", ball, camera)

    nerf = fake_field("NERF")
    _refused("'NERF Field' is a radiance field: Transfer Detail needs signed distance fields", ball, nerf)
    _refused("'NERF Field' is a radiance field: Transfer Detail needs signed distance fields", nerf, bumpy)
    igr = fake_field("SDF")
    _refused(r"the detail source 'SDF Field' is not a displacement field \(IGR\): fit its object with Fit Displacement Field", ball, igr)
    _refused("the detail source 'Ball_IDF' is a base-only displacement field: it has no detail to transfer", ball, bpy.data.objects["Ball_IDF"])
    _refused(r"the detail source 'Ball_transfer' is not a displacement field \(Transferred Detail\)", ball, bpy.data.objects["Ball_transfer"])
    _refused("checkpoint of 'SDF Field' not found", igr, bumpy)

    pts, _ = sphere_points(500)
    bare = add_point_cloud(pts, name="Bare")
    _refused("A displacement field needs oriented normals and the selected point cloud has none", ball, bare, **TINY)
    select_only(bare)
    refused(bpy.ops.inr.fit_displacement, "A displacement field needs oriented normals", **TINY)

    # Extract Mesh: only a displacement field has a base
    pytest.importorskip("torch")
    plain = fake_field("SDF", inside_everywhere_checkpoint(str(tmp_path / "igr.pt")))
    select_only(plain)
    refused(bpy.ops.inr.extract_mesh, "only a displacement field has a base to extract: 'SDF Field.001' is not one", part="BASE")
