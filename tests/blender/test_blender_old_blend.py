"""A .blend written by version 0.1 (a field's settings and results as flat, prefixed properties) opens with every
value in its nested place (``skeleton_delta`` -> ``skeleton.delta``), the shape list and loss history intact.

tests/data/fields_v0_1.blend was made by tests/data/make_old_blend.py with the add-on as it was then; the values it
set, by their old names, are in tests/data/fields_v0_1.json."""

from __future__ import annotations

import json

import pytest

import bpy

from conftest import REPO

DATA = REPO / "tests" / "data"
# Where each flat property of version 0.1 lives now, under Object.inr_field (the core's names did not change).
OLD_TO_NEW = {
    "skeleton_delta": "skeleton.delta",
    "skeleton_surface_samples": "skeleton.num_surface_samples",
    "skeleton_time_limit": "skeleton.time_limit",
    "skeleton_spheres": "skeleton.show_spheres",
    "has_skeleton": "skeleton.has_result",
    "skeleton_vertices": "skeleton.vertices",
    "skeleton_edges": "skeleton.edges",
    "skeleton_triangles": "skeleton.triangles",
    "skeleton_candidates": "skeleton.candidates",
    "skeleton_optimal": "skeleton.optimal",
    "skeleton_cover_message": "skeleton.cover_message",
    "skeleton_uncovered": "skeleton.uncovered",
    "skeleton_seconds": "skeleton.seconds",
    "skeleton_delta_used": "skeleton.delta_used",
    "isopoints_count": "isopoints.count",
    "isopoints_resample": "isopoints.resample",
    "isopoints_upsample": "isopoints.upsample",
    "isopoints_radius": "isopoints.point_radius",
    "has_isopoints": "isopoints.has_result",
    "isopoints_points": "isopoints.points",
    "isopoints_discarded": "isopoints.discarded",
    "isopoints_upsampled": "isopoints.upsampled",
    "isopoints_spacing_cv": "isopoints.spacing_cv",
    "isopoints_seconds": "isopoints.seconds",
    "isopoints_radius_used": "isopoints.radius_used",
    "transfer_strength": "transfer.strength",
    "transfer_nu": "transfer.nu",
    "transfer_mode": "transfer.mode",
    "transfer_resolution": "transfer.resolution",
    "detail_source": "transfer.source",
    "detail_target": "transfer.target",
    "detail_strength": "transfer.strength_used",
    "detail_nu": "transfer.nu_used",
    "detail_mode": "transfer.mode_used",
    "range_mode": "ranges.mode",
    "raycast_method": "ranges.raycast.method",
    "has_raycast": "ranges.raycast.has_result",
    "raycast_hits": "ranges.raycast.hits",
    "raycast_rays": "ranges.raycast.rays",
    "raycast_used": "ranges.raycast.method_used",
    "raycast_seconds": "ranges.raycast.seconds",
    "has_closest": "ranges.closest.has_result",
    "closest_count": "ranges.closest.count",
    "closest_min": "ranges.closest.min",
    "closest_max": "ranges.closest.max",
    "closest_seconds": "ranges.closest.seconds",
    "intersection_verdict": "ranges.intersection.verdict",
    "intersection_other": "ranges.intersection.other",
    "intersection_boxes": "ranges.intersection.boxes",
    "intersection_seconds": "ranges.intersection.seconds",
    "phase_base": "displacement.phase_base",
    "phase_detail": "displacement.phase_detail",
    "shapes": "shape_space.shapes",
    "active_shape": "shape_space.active_shape",
    "latent_size": "shape_space.latent_size",
    "interpolate_to": "shape_space.interpolate.to",
    "interpolate_count": "shape_space.interpolate.count",
    "interpolate_output": "shape_space.interpolate.output",
    "interpolate_resolution": "shape_space.interpolate.resolution",
    "reconstruct_iterations": "shape_space.reconstruct.iterations",
    "reconstruct_resolution": "shape_space.reconstruct.resolution",
    "completed_from": "shape_space.reconstruct.source_space",
    "completed_fit_error": "shape_space.reconstruct.fit_error",
    "nerf_model": "nerf.model",
    "views_path": "nerf.views_path",
    "num_views": "nerf.num_views",
    "num_holdout": "nerf.num_holdout",
    "image_width": "nerf.image_width",
    "image_height": "nerf.image_height",
    "psnr": "nerf.psnr",
    "ssim": "nerf.ssim",
    "train_psnr": "nerf.train_psnr",
    "eval_history_json": "nerf.eval_history_json",
    "background": "nerf.background",
    "density_threshold": "nerf.density_threshold",
}


def _same(stored, value) -> bool:
    if isinstance(value, list):
        return len(stored) == len(value) and all(_same(a, b) for a, b in zip(stored, value))
    return stored == pytest.approx(value, rel=1e-6) if isinstance(value, float) else stored == value


def _default(settings, path: str):
    owner_path, _, name = path.rpartition(".")
    owner = settings.path_resolve(owner_path) if owner_path else settings
    prop = owner.bl_rna.properties[name]
    return list(prop.default_array) if getattr(prop, "is_array", False) else getattr(prop, "default", None)


@pytest.fixture
def old_file(addon):
    values = json.loads((DATA / "fields_v0_1.json").read_text())["objects"]
    bpy.ops.wm.open_mainfile(filepath=str(DATA / "fields_v0_1.blend"))  # the load_post handler migrates
    return values


def _check(values: dict) -> None:
    non_default = set()  # the moved properties that hold a non-default value on some object
    for name, stored_values in values.items():
        s = bpy.data.objects[name].inr_field
        leftovers = [k for k in s.keys() if k in OLD_TO_NEW and "." in OLD_TO_NEW[k]]
        assert not leftovers, (name, leftovers)
        for old, value in stored_values.items():
            if old == "loss_history":
                assert [[h.step, h.loss] for h in s.loss_history] == [[step, pytest.approx(loss)] for step, loss in value], name
            elif old == "shapes":
                shapes = s.shape_space.shapes
                assert len(shapes) == len(value) == 2
                for shape, expected in zip(shapes, value):
                    assert shape.source == bpy.data.objects[expected["source"]], shape.name
                    assert all(_same(getattr(shape, k), expected[k] if k != "source" else shape.source) for k in expected), shape.name
            else:
                path = OLD_TO_NEW.get(old, old)
                if old in OLD_TO_NEW and not _same(_default(s, path), value):
                    non_default.add(old)
                assert _same(s.path_resolve(path), value), (name, old, path, s.path_resolve(path), value)
    # each moved property is non-default on some object: a value that stayed behind would not pass for arrived
    assert non_default == set(OLD_TO_NEW) - {"shapes"}, set(OLD_TO_NEW) - {"shapes"} - non_default


def test_every_old_value_arrives_in_its_new_place(old_file):
    _check(old_file)


def test_a_migrated_file_saves_and_reopens_unchanged(old_file, tmp_path):
    path = tmp_path / "migrated.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    _check(old_file)


def test_a_file_open_before_the_add_on_is_enabled_migrates_once_it_is(addon):
    """With a UI, register() leaves a timer that migrates the file already open (loaded without the load_post
    handler); headless it leaves none (see test_blender_register's exit test)."""
    migrate = addon.properties.migrate
    assert not bpy.app.timers.is_registered(migrate.migrate_open_file)  # bpy.app.background in the bpy module
    bpy.app.handlers.load_post.remove(migrate.on_load_post)
    try:
        bpy.ops.wm.open_mainfile(filepath=str(DATA / "fields_v0_1.blend"))
    finally:
        bpy.app.handlers.load_post.append(migrate.on_load_post)
    assert bpy.data.objects["SDF IGR"].inr_field["skeleton_delta"] == pytest.approx(0.035)  # not migrated yet
    migrate.migrate_open_file()  # what the timer calls
    _check(json.loads((DATA / "fields_v0_1.json").read_text())["objects"])
