"""Live previews while fitting (issue 20): the fits hand their context coarse surfaces and small views on time, at a
bounded cost, and the command line writes them beside its output."""

from __future__ import annotations

import time

import numpy as np
import pytest

from inr_blender.cli import main
from inr_blender.context import JobContext, JobError
from inr_blender.fileio import read_geometry, write_ply
from inr_blender.fitting.preview import PreviewClock
from inr_blender.fitting.sdf import fit_sdf, resolve_params
from inr_blender.jobs import JOBS
from inr_blender.settings import preview as preview_settings

from conftest import sphere_points
from nerf_scenes import write_sphere_dataset

TINY_IGR = {"method": "igr", "iterations": 150, "width": 32, "depth": 2, "batch_size": 512, "device": "cpu", "convergence_tolerance": 0.0}


@pytest.fixture
def generous(monkeypatch):
    """Previews may take half the time, at 32^3: a few seconds of fitting make several (the default 5% would space
    them out to one every few seconds on a loaded 2-core machine)."""
    monkeypatch.setenv("INR_PREVIEW_SHARE", "0.5")
    monkeypatch.setattr(preview_settings, "MESH_RESOLUTION", 32)


def _collect() -> tuple[JobContext, list]:
    got: list = []
    return JobContext(preview=lambda kind, arrays, info: got.append((kind, arrays, info))), got


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    tri = vertices[faces].astype(np.float64)
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


@pytest.mark.slow  # a fit of 150 steps with previews: about 10 s on 2 cores
def test_sdf_fit_previews_its_surface(generous):
    pts, nrm = sphere_points(2000)
    ctx, got = _collect()
    ckpt = fit_sdf(pts, nrm, resolve_params({**TINY_IGR, "preview_every": 0.05}), ctx)
    assert len(got) >= 2 and ckpt["previews"] == len(got) and ckpt["preview_seconds"] > 0
    steps = [info["step"] for _, _, info in got]
    assert steps == sorted(set(steps)) and steps[-1] < 150
    for kind, arrays, info in got:
        v, f = arrays["vertices"], arrays["faces"]
        assert kind == "mesh" and v.dtype == np.float32 and v.shape[1] == 3 and np.isfinite(v).all() and np.abs(v).max() <= 1.0
        assert f.dtype == np.int32 and f.shape[1] == 3 and len(f) > 100 and 0 <= f.min() and f.max() < len(v)
        assert info["center"] == ckpt["center"] and info["scale"] == ckpt["scale"] and info["total"] == 150
        assert _signed_volume(v, f) > 0  # wound outward
    # the unit sphere maps to radius 0.8 of the local frame; the last preview has learnt it (the first is IGR's
    # initial sphere of radius 0.5)
    radius = np.linalg.norm(got[-1][1]["vertices"], axis=1)
    assert abs(np.median(radius) - 0.8) < 0.05, np.median(radius)
    assert not np.array_equal(got[0][1]["vertices"], got[-1][1]["vertices"])


def test_no_previews_when_off_or_unwanted():
    pts, nrm = sphere_points(500)
    ctx, got = _collect()
    assert fit_sdf(pts, nrm, resolve_params({**TINY_IGR, "iterations": 20}), ctx)["previews"] == 0 and not got  # off
    ckpt = fit_sdf(pts, nrm, resolve_params({**TINY_IGR, "iterations": 20, "preview_every": 1e-3}), JobContext())
    assert ckpt["previews"] == 0 and ckpt["preview_seconds"] == 0  # nobody to show them to: none made


def test_previews_are_spaced_to_keep_their_share_of_the_time():
    ctx, got = _collect()
    clock = PreviewClock(0.001, ctx, share=0.1)

    def slow():
        time.sleep(0.05)
        return "mesh", {}, {}

    started = time.monotonic()
    for step in range(100000):
        clock.tick(step, 0, slow)
        if time.monotonic() - started > 0.4:
            break
    # the first after 1 ms; the next no sooner than 0.05 * 9 s after it ended
    assert len(got) == 1 and clock.count == 1 and clock.seconds >= 0.05


@pytest.mark.slow  # a radiance fit of 40 steps with previews: about 10 s on 2 cores
def test_radiance_fit_previews_the_given_camera(tmp_path, generous):
    write_sphere_dataset(str(tmp_path / "views"), count=8, size=16, focal=20.0)
    params = {
        "transforms_path": str(tmp_path / "views"),
        "checkpoint_path": str(tmp_path / "f.pt"),
        "model": "fast",
        "iterations": 40,
        "device": "cpu",
        "levels": 4,
        "log2_table_size": 12,
        "finest_resolution": 64,
        "occupancy_resolution": 16,
        "samples_per_step": 2048,
        "max_rays": 256,
        "initial_rays": 128,
        "final_eval": False,
        "preview_every": 0.05,
    }
    c2w = np.eye(4, dtype=np.float32)
    c2w[2, 3] = 2.5  # on +z, looking down -z at the sphere
    camera = {"preview_c2w": c2w, "preview_intrinsics": np.array([20.0, 20.0, 12.0, 8.0, 24, 16], dtype=np.float32)}
    ctx, got = _collect()
    result, _ = JOBS["fit_nerf"](params, camera, ctx)
    assert len(got) >= 2 and result["previews"] == len(got)
    for kind, arrays, info in got:
        assert kind == "image" and arrays["rgb"].dtype == np.uint8 and arrays["rgb"].shape == (16, 24, 3)
        assert (info["width"], info["height"]) == (24, 16)
    assert got[-1][2]["psnr"] is not None and got[-1][2]["psnr"] > 0
    assert not np.array_equal(got[0][1]["rgb"], got[-1][1]["rgb"])  # the view changes as the field learns
    bad = dict(camera, preview_intrinsics=np.array([20.0, 20.0, 12.0, 8.0, 24.5, 16]))
    with pytest.raises(JobError, match="whole pixels"):
        JOBS["fit_nerf"](params, bad, JobContext())
    # without a camera: the first held-out view, at its own size (16 px: never enlarged)
    ctx, got = _collect()
    JOBS["fit_nerf"](dict(params, iterations=5, preview_every=1e-3), {}, ctx)
    assert got and all(arrays["rgb"].shape == (16, 16, 3) for _, arrays, _ in got)


@pytest.mark.slow  # a fit of 40 steps: seconds on 2 idle cores, minutes on loaded ones
def test_cli_writes_the_preview_beside_its_output(tmp_path, generous, capsys):
    pts, nrm = sphere_points(1000)
    write_ply(str(tmp_path / "cloud.ply"), (pts + [3.0, 0.0, 0.0]).astype(np.float32), normals=nrm.astype(np.float32))
    out = tmp_path / "field.pt"
    argv = ["fit-sdf", str(tmp_path / "cloud.ply"), "-o", str(out), "--preview-every", "0.05"]
    argv += ["--iterations", "40", "--width", "32", "--depth", "2", "--batch-size", "512", "--device", "cpu"]
    assert main(argv) == 0
    preview = tmp_path / "field.preview.ply"
    assert out.is_file() and preview.is_file()
    assert f"{preview} (replaced by each newer one)" in capsys.readouterr().out
    arrays = read_geometry(str(preview))
    # in world space, around the unit sphere at (3, 0, 0) (from IGR's initial sphere, 0.625 there, towards 1)
    radius = np.linalg.norm(arrays["vertices"] - [3.0, 0.0, 0.0], axis=1)
    assert len(arrays["faces"]) > 100 and 0.55 < np.median(radius) < 1.2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"] == []  # no temporary left
    assert main(["fit-sdf", str(tmp_path / "cloud.ply"), "-o", str(out), "--preview-every", "soon"]) == 2
