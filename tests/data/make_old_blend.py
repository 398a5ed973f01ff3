"""Write ``fields_v0_1.blend``: field objects as version 0.1 of the add-on stored them (flat settings).

Version 0.1 kept a field's settings and results as ~97 flat properties of ``Object.inr_field`` told apart by
prefixes (``skeleton_delta``, ``isopoints_count``, ...); later versions nest them by capability
(``inr_field.skeleton.delta``) and migrate old files when they open. This script makes the old file the
migration test (tests/blender/test_blender_old_blend.py) opens: it takes the add-on's Blender side as it was at
commit ``OLD_COMMIT`` out of git (``git archive``), enables it in the ``bpy`` module, builds one field object of
each kind and method with every capability's settings and results at a NON-default value, and saves the file
compressed. ``fields_v0_1.json`` beside it lists those values by their old names (object -> {old name: value};
enums by identifier, ``loss_history`` as [step, loss] pairs, ``shapes`` as dicts); the test reads it.

Run from the repository root (needs git and the bpy module, no torch)::

    .venv/bin/python tests/data/make_old_blend.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

OLD_COMMIT = "6640a9bdb6562bb9f54f829949b693fa74d0a018"  # the last commit with the flat field properties
ADDON_ID = "neural_fields"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BLEND = HERE / "fields_v0_1.blend"
VALUES = HERE / "fields_v0_1.json"
ADDON_PATHS = ("__init__.py", "blender_manifest.toml", "preferences.py", "properties.py", "operators", "panels", "inr_blender")

# What every fitted field records (the core: unchanged by the regrouping, checked all the same).
_TRAINED = {
    "iterations": 1234, "num_points": 5678, "has_normals": True, "train_seconds": 12.5, "device": "cpu",
    "stop_reason": "converged (loss change under 1e-5)", "final_loss": 0.0125,
}
_METRICS = {
    "has_metrics": True, "chamfer_l1": 0.0042, "normal_consistency": 0.93, "fscore": 0.81, "hausdorff": 0.057,
    "metrics_resolution": 96,
}
_SKELETON = {
    "skeleton_delta": 0.035, "skeleton_surface_samples": 3100, "skeleton_time_limit": 42.0, "skeleton_spheres": False,
    "has_skeleton": True, "skeleton_vertices": 61, "skeleton_edges": 140, "skeleton_triangles": 33, "skeleton_candidates": 410,
    "skeleton_optimal": True, "skeleton_cover_message": "optimal (gap 0.1%)", "skeleton_uncovered": 3,
    "skeleton_seconds": 7.25, "skeleton_delta_used": 0.035,
}
_ISOPOINTS = {
    "isopoints_count": 7000, "isopoints_resample": False, "isopoints_upsample": 900, "isopoints_radius": 0.0125,
    "has_isopoints": True, "isopoints_points": 7800, "isopoints_discarded": 100, "isopoints_upsampled": 900,
    "isopoints_spacing_cv": 0.125, "isopoints_seconds": 3.5, "isopoints_radius_used": 0.0125,
}
_RANGES = {
    "range_mode": "interval", "raycast_method": "SPHERE_TRACING",
    "has_raycast": True, "raycast_hits": 1500, "raycast_rays": 4096, "raycast_used": "sphere_tracing", "raycast_seconds": 1.5,
    "has_closest": True, "closest_count": 12, "closest_min": 0.125, "closest_max": 0.75, "closest_seconds": 0.5,
    "intersection_verdict": "DISJOINT", "intersection_other": "Cube", "intersection_boxes": 17, "intersection_seconds": 2.25,
}
_TRANSFER = {"transfer_strength": 0.5, "transfer_nu": 0.05, "transfer_mode": "ALIGNED", "transfer_resolution": 96}


def _loss_history(n: int, start: float) -> list[list[float]]:
    return [[10 * i, start / (i + 1)] for i in range(n)]


def _field(name: str, kind: str, method: str, **values) -> dict:
    core = {"is_field": True, "kind": kind, "method": method, "checkpoint": f"//fields_v0_1_fields/{name.lower().replace(' ', '_')}.pt",
            "sources": "Suzanne", "sources_json": json.dumps(["Suzanne"]), "settings_json": json.dumps({"iterations": 1234, "seed": 3})}
    return {name: {**core, **values}}


FIELDS: dict[str, dict] = {
    **_field("SDF IGR", "SDF", "IGR", preset="DETAILED", loss_history=_loss_history(6, 1.0), **_TRAINED, **_METRICS,
             **_SKELETON, **_ISOPOINTS, **_RANGES, **_TRANSFER),
    **_field("SDF Hash Grid", "SDF", "HASHGRID", preset="FAST", loss_history=_loss_history(3, 0.5), **_TRAINED,
             **{**_ISOPOINTS, "isopoints_count": 321}, **{**_RANGES, "range_mode": "affine_truncate", "intersection_verdict": "UNKNOWN"}),
    **_field("SDF Skeleton", "SDF", "NEURAL_SKELETON", preset="SKELETON", loss_history=_loss_history(4, 2.0), **_TRAINED,
             **{**_SKELETON, "skeleton_delta": 0.06, "skeleton_optimal": False}),
    **_field("IDF", "SDF", "IDF", loss_history=_loss_history(5, 0.25), **_TRAINED, phase_base=0.25, phase_detail=0.625,
             **{**_TRANSFER, "transfer_mode": "ALIGNED", "transfer_strength": 1.75}),
    **_field("IDF Transfer", "SDF", "IDF_TRANSFER", detail_source="IDF", detail_target="SDF IGR", detail_strength=0.75,
             detail_nu=0.03, detail_mode="ALIGNED"),
    **_field("NeRF", "NERF", "IGR", loss_history=_loss_history(7, 0.1), **_TRAINED, nerf_model="CLASSIC",
             views_path="//views/transforms.json", num_views=40, num_holdout=4, image_width=200, image_height=150, psnr=27.5,
             ssim=0.875, train_psnr=31.25, eval_history_json=json.dumps([[100, 2.0, 20.5], [200, 4.0, 25.0]]),
             background=[0.25, 0.5, 0.75], density_threshold=12.5, **{**_RANGES, "range_mode": "affine_fixed"}),
    **_field("Shape Space", "SHAPE_SPACE", "OCCUPANCY", preset="PUBLISHED", loss_history=_loss_history(8, 0.3), **_TRAINED,
             shapes=[
                 {"name": "Sphere", "source": "Sphere", "index": 0, "center": [0.5, 0.0, 0.25], "scale": 1.5, "error": 0.0031, "has_error": True},
                 {"name": "Box", "source": "Box", "index": 1, "center": [-0.5, 1.0, 0.0], "scale": 0.75, "error": 0.0, "has_error": False},
             ],
             active_shape=1, latent_size=64, interpolate_to=0, interpolate_count=9, interpolate_output="SHAPE_KEYS",
             interpolate_resolution=48, reconstruct_iterations=250, reconstruct_resolution=72),
    **_field("Completed", "SDF", "LATENT_SHAPE", loss_history=_loss_history(2, 0.05), **_TRAINED, completed_from="Shape Space",
             completed_fit_error=0.0075),
}
# Transfer Detail keeps its settings on the target, which may be a plain mesh.
MESHES: dict[str, dict] = {"Sphere": {}, "Box": {}, "Target": {**_TRANSFER, "transfer_nu": 0.125, "transfer_resolution": 200}}


def _old_addon(root: Path) -> None:
    """The add-on as it was at OLD_COMMIT, unpacked into ``root/neural_fields``."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", OLD_COMMIT, *ADDON_PATHS], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(root / ADDON_ID, filter="data")


def _assign(bpy, settings, values: dict) -> None:
    for key, value in values.items():
        if key == "loss_history":
            for step, loss in value:
                item = settings.loss_history.add()
                item.step, item.loss = step, loss
        elif key == "shapes":
            for shape in value:
                item = settings.shapes.add()
                for name, v in shape.items():
                    setattr(item, name, bpy.data.objects[v] if name == "source" else v)
        else:
            setattr(settings, key, value)


def _same(stored, value) -> bool:
    if isinstance(value, list):
        return len(stored) == len(value) and all(_same(a, b) for a, b in zip(stored, value))
    return abs(stored - value) < 1e-6 if isinstance(value, float) else stored == value


def main() -> None:
    import bpy  # first: it puts Blender's own modules (addon_utils) on the path
    import addon_utils

    with tempfile.TemporaryDirectory() as tmp:
        _old_addon(Path(tmp))
        sys.path.insert(0, tmp)
        assert addon_utils.enable(ADDON_ID, default_set=True, handle_error=None) is not None, "the old add-on did not enable"
        bpy.ops.wm.read_homefile(use_empty=True)
        for name, values in MESHES.items():
            obj = bpy.data.objects.new(name, bpy.data.meshes.new(name))
            bpy.context.collection.objects.link(obj)
            _assign(bpy, obj.inr_field, values)
        for name, values in FIELDS.items():
            obj = bpy.data.objects.new(name, None)
            bpy.context.collection.objects.link(obj)
            _assign(bpy, obj.inr_field, values)
        for obj in bpy.data.objects:  # every value we set must have been stored as it was (enums by identifier)
            for key, value in {**FIELDS, **MESHES}[obj.name].items():
                if key not in ("loss_history", "shapes"):
                    stored = getattr(obj.inr_field, key)
                    assert _same(stored, value), (obj.name, key, stored, value)
        bpy.ops.wm.save_as_mainfile(filepath=str(BLEND), compress=True)
        addon_utils.disable(ADDON_ID, default_set=True)
    VALUES.write_text(json.dumps({"commit": OLD_COMMIT, "objects": {**MESHES, **FIELDS}}, indent=1) + "\n")
    print(f"wrote {BLEND} ({BLEND.stat().st_size} bytes) and {VALUES}")


if __name__ == "__main__":
    main()
