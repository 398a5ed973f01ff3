"""Radiance fields in plain Python: datasets, rays, sampling, compositing, metrics, and small real fits."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import read_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields.encodings import PositionalEncoding, SphericalHarmonics
from inr_blender.fitting.nerf import resolve_params
from inr_blender.jobs import JOBS
from inr_blender.render.cameras import image_rays, project_points, ray_box, rays_from_pixels
from inr_blender.render.dataset import holdout_split, load_transforms, recomposite, views_from_arrays
from inr_blender.render.image_metrics import psnr, ssim
from inr_blender.render.occupancy import OccupancyGrid
from inr_blender.render.samplers import sample_pdf, stratified
from inr_blender.render.volume import composite

from nerf_scenes import BOTTOM, TOP, render_sphere, sphere_cameras, write_sphere_dataset


def _png(path, array):
    from PIL import Image

    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


# -- cameras and rays ------------------------------------------------------------------------


def test_rays_pass_through_the_points_they_project_from():
    rng = np.random.default_rng(0)
    c2w = sphere_cameras(5)[2]
    intr = np.array([50.0, 45.0, 20.0, 14.0])
    points = rng.uniform(-0.5, 0.5, size=(20, 3))
    uv, depth = project_points(c2w, intr, points)
    assert (depth > 0).all()
    # the ray through (u, v) = pixel (i, j) + 0.5 passes through the point
    i, j = torch.as_tensor(uv[:, 0] - 0.5), torch.as_tensor(uv[:, 1] - 0.5)
    o, d, z_scale = rays_from_pixels(torch.as_tensor(c2w)[None].expand(20, 4, 4), torch.as_tensor(intr)[None].expand(20, 4), i, j)
    t = ((torch.as_tensor(points) - o) * d).sum(-1)
    closest = o + d * t[:, None]
    assert torch.allclose(closest, torch.as_tensor(points), atol=1e-9)
    assert np.allclose((t * z_scale).numpy(), depth)  # distance x z_scale = z-depth


def test_image_rays_centre_looks_down_minus_z_and_rows_run_downwards():
    c2w = torch.as_tensor(sphere_cameras(3)[1], dtype=torch.float32)
    intr = torch.tensor([30.0, 30.0, 16.0, 12.0])
    o, d, _ = image_rays(c2w, intr, 32, 24)
    assert o.shape == (32 * 24, 3) and torch.allclose(d.norm(dim=-1), torch.ones(32 * 24))
    forward, up = -c2w[:3, 2], c2w[:3, 1]
    centre = d.reshape(24, 32, 3)[12, 16]  # pixel centre (16.5, 12.5): half a pixel off the axis
    assert torch.dot(centre, forward) > 0.999
    assert torch.dot(d.reshape(24, 32, 3)[0, 16], up) > 0 > torch.dot(d.reshape(24, 32, 3)[-1, 16], up)


def test_ray_box_entry_and_exit():
    o = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.2, 0.1, 0.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    near, far = ray_box(o, d, -torch.ones(3), torch.ones(3))
    assert torch.allclose(near[[0, 2]], torch.tensor([2.0, 0.0])) and torch.allclose(far[[0, 2]], torch.tensor([4.0, 1.0]))
    assert far[1] <= near[1]  # misses


# -- sampling and compositing ----------------------------------------------------------------


def test_composite_matches_the_closed_form_of_a_constant_medium():
    sigma, length, k = 1.7, 0.8, 400
    t = torch.linspace(0, length, k + 1)[:-1][None] + length / k / 2
    out = composite(torch.full((1, k), sigma), torch.tensor([0.2, 0.4, 0.6]).expand(1, k, 3), torch.full((1, k), length / k), t, torch.ones(3))
    acc = 1 - math.exp(-sigma * length)
    assert out["acc"].item() == pytest.approx(acc, rel=1e-5)
    assert torch.allclose(out["rgb"][0], torch.tensor([0.2, 0.4, 0.6]) * acc + (1 - acc), atol=1e-5)
    empty = composite(torch.zeros(1, 4), torch.rand(1, 4, 3), torch.ones(1, 4), torch.arange(4.0)[None], torch.tensor([0.1, 0.5, 0.9]))
    assert torch.allclose(empty["rgb"][0], torch.tensor([0.1, 0.5, 0.9])) and empty["acc"].item() == 0


def test_hierarchical_samples_follow_the_weights():
    torch.manual_seed(0)
    near, far = torch.zeros(200), torch.ones(200)
    t = stratified(near, far, 64, perturb=True)
    assert ((t >= 0) & (t <= 1)).all() and (t.diff(dim=-1) > 0).all()
    bins = torch.linspace(0, 1, 11).expand(200, 11)
    weights = torch.zeros(200, 10)
    weights[:, 6] = 1.0
    s = sample_pdf(bins, weights, 128, perturb=True)
    inside = ((s >= 0.6) & (s <= 0.7)).float().mean()
    assert inside > 0.97


def test_occupancy_grid_keeps_only_cells_with_density():
    grid = OccupancyGrid(16)
    sphere = lambda x: torch.where(x.norm(dim=-1) < 0.5, 100.0, 0.0)  # noqa: E731
    grid.update(sphere, step_size=0.01, warmup=True)
    centres = grid.cell_centres(torch.arange(16**3), jitter=False)
    r = centres.norm(dim=-1)
    assert grid.mask[r < 0.35].all() and not grid.mask[r > 0.65].any()
    assert 0.02 < grid.fraction < 0.2


def test_encodings():
    pe = PositionalEncoding(10)
    assert pe.output_dim == 63 and pe(torch.zeros(2, 3)).shape == (2, 63)
    d = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    y = SphericalHarmonics(4)(d)
    gram = (y.T @ y) / len(d) * 4 * math.pi  # orthonormal over the sphere
    assert torch.allclose(gram, torch.eye(16), atol=0.03)


def test_psnr_and_ssim():
    a = torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(1))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert psnr(a, (a + 0.1).clamp(max=10)) == pytest.approx(20.0, abs=1e-4)
    assert ssim(a, torch.rand(32, 32, 3)) < 0.2


# -- datasets ----------------------------------------------------------------------------------


def test_reads_nerf_synthetic_rgba_without_extensions(tmp_path):
    cameras = write_sphere_dataset(str(tmp_path / "s"), count=4, size=24, focal=30.0)
    views = load_transforms(str(tmp_path / "s"), background=(1.0, 1.0, 1.0))
    assert views.images.shape == (4, 24, 24, 3) and views.names[0] == "r_0.png"
    assert np.allclose(views.c2w, cameras) and np.allclose(views.intrinsics, [30.0, 30.0, 12.0, 12.0])
    assert np.allclose(views.images[1], render_sphere(cameras[1], 30.0, 24)[0], atol=0.01)
    black = load_transforms(str(tmp_path / "s" / "transforms.json"), background=(0.0, 0.0, 0.0))
    assert black.images[:, 0, 0].max() == 0.0 and views.images[:, 0, 0].min() == 1.0
    half = load_transforms(str(tmp_path / "s"), downscale=2)
    assert half.images.shape == (4, 12, 12, 3) and np.allclose(half.intrinsics[0], [15.0, 15.0, 6.0, 6.0])
    # the coverage is kept, and recompositing over another colour gives what loading over it gives
    assert np.allclose(views.alpha[1], render_sphere(cameras[1], 30.0, 24)[1], atol=0.01)
    assert half.alpha.shape == (4, 12, 12) and np.allclose(half.alpha[2], views.alpha[2].reshape(12, 2, 12, 2).mean(axis=(1, 3)))
    for loaded, factor in ((views, 1), (half, 2)):
        over_black = recomposite(loaded.images, loaded.alpha, np.ones(3, np.float32), np.zeros(3, np.float32))
        assert np.abs(over_black - load_transforms(str(tmp_path / "s"), (0.0, 0.0, 0.0), factor).images).max() < 1e-5
    red = torch.tensor([1.0, 0.0, 0.0])
    assert torch.allclose(recomposite(torch.ones(2, 3), torch.tensor([0.0, 1.0]), torch.ones(3), red), torch.stack([red, torch.ones(3)]))
    write_sphere_dataset(str(tmp_path / "opaque"), count=2, size=8, rgba=False)
    assert load_transforms(str(tmp_path / "opaque")).alpha is None
    assert np.allclose(views.aabb, [[-1, -1, -1], [1, 1, 1]])


def test_reads_instant_ngp_intrinsics_and_aabb_scale(tmp_path):
    _png(tmp_path / "a.jpg", np.full((10, 20, 3), 128))
    _png(tmp_path / "b.jpg", np.full((10, 20, 3), 64))
    frames = [
        {"file_path": "a.jpg", "transform_matrix": np.eye(4).tolist()},
        {"file_path": "b", "transform_matrix": np.eye(4)[:3].tolist(), "fl_x": 30.0},
    ]
    # declared at twice the stored size: intrinsics are scaled to the images
    meta = {
        "fl_x": 40.0,
        "fl_y": 42.0,
        "cx": 19.0,
        "cy": 11.0,
        "w": 40,
        "h": 20,
        "aabb_scale": 4,
        "k1": 0.0,
        "camera_model": "OPENCV",
        "frames": frames,
    }
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    views = load_transforms(str(tmp_path))
    assert np.allclose(views.intrinsics, [[20.0, 21.0, 9.5, 5.5], [15.0, 21.0, 9.5, 5.5]])
    assert np.allclose(views.aabb, [[-6, -6, -6], [6, 6, 6]])
    meta.update(scale=0.5, offset=[0.5, 0.5, 0.0])
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    assert np.allclose(load_transforms(str(tmp_path)).aabb, [[-4, -4, -3], [4, 4, 5]])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m, d: m.update(frames=[]), "zero frames"),
        (lambda m, d: m.pop("frames"), "no frames"),
        (lambda m, d: m["frames"][1].update(file_path="./missing"), "image not found"),
        (lambda m, d: m.update(camera_model="OPENCV_FISHEYE"), "camera model"),
        (lambda m, d: m.update(camera_model="EQUIRECTANGULAR"), "camera model"),
        (lambda m, d: m.update(k1=0.05), "distortion k1"),
        (lambda m, d: m["frames"][0].update(p2=0.001), "distortion p2"),
        (lambda m, d: m.pop("camera_angle_x"), "no focal length"),
        (lambda m, d: m["frames"][0].update(transform_matrix=[[1, 0], [0, 1]]), "4x4"),
        (lambda m, d: _png(os.path.join(d, "r_1.png"), np.zeros((8, 9, 4))), "different sizes"),
    ],
)
def test_bad_transforms_are_refused(tmp_path, change, message):
    folder = str(tmp_path / "s")
    write_sphere_dataset(folder, count=3, size=16, focal=20.0)
    path = os.path.join(folder, "transforms.json")
    meta = json.loads(open(path).read())
    change(meta, folder)
    open(path, "w").write(json.dumps(meta))
    with pytest.raises(JobError, match=message):
        load_transforms(folder)


def test_malformed_and_missing_transforms(tmp_path):
    (tmp_path / "transforms.json").write_text("{not json")
    with pytest.raises(JobError, match="cannot read"):
        load_transforms(str(tmp_path))
    (tmp_path / "transforms.json").write_text("[1, 2]")
    with pytest.raises(JobError, match="not a transforms file"):
        load_transforms(str(tmp_path))
    with pytest.raises(JobError, match="not found"):
        load_transforms(str(tmp_path / "nothing.json"))
    with pytest.raises(JobError, match="no transforms.json"):
        load_transforms(str(tmp_path.parent))


def test_views_from_arrays_and_holdout():
    images = np.zeros((3, 8, 10, 4), dtype=np.uint8)
    images[..., 3] = 255
    cams = sphere_cameras(3)
    views = views_from_arrays(images, cams, np.tile([10.0, 10.0, 5.0, 4.0], (3, 1)), aabb=[[-1, -2, -1], [1, 2, 1]])
    assert views.images.shape == (3, 8, 10, 3) and views.images.max() == 0.0 and views.aabb[1, 1] == 2
    assert views.alpha.shape == (3, 8, 10) and views.alpha.min() == 1.0 and views.subset([2]).alpha.shape == (1, 8, 10)
    assert views_from_arrays(images[..., :3], cams, np.tile([10.0, 10.0, 5.0, 4.0], (3, 1))).alpha is None
    with pytest.raises(JobError, match="intrinsics"):
        views_from_arrays(images, cams, np.zeros((3, 4)))
    with pytest.raises(JobError, match="zero views"):
        views_from_arrays(images[:0], cams[:0], np.zeros((0, 4)))
    assert holdout_split(17, 8) == ([i for i in range(17) if i % 8], [0, 8, 16]) and holdout_split(5, 0) == ([0, 1, 2, 3, 4], [])


def test_bad_fit_parameters_are_refused():
    with pytest.raises(JobError, match="unknown NeRF model"):
        resolve_params({"model": "plenoxels"})
    with pytest.raises(JobError, match="unknown fit_nerf parameter"):
        resolve_params({"model": "fast", "batch_size": 3})
    with pytest.raises(JobError, match="background"):
        resolve_params({"background": [1, 2, 3]})
    with pytest.raises(JobError, match="iterations must be positive"):
        resolve_params({"iterations": 0})


# -- fitting, rendering and extraction through the jobs ------------------------------------------

# The fast field on 21 training views of the analytic sphere at 32x32 (3 held out), 300 steps:
# measured 31.6 dB held-out PSNR on the development machine (2 cores, about 10 s). With 14
# training views it measured 24.5 dB: the hash grid needs enough views not to overfit. An untrained
# field scores about 8 dB; the curve passes 25 dB at 200 steps.
SPHERE_PSNR_BOUND = 26.0


@pytest.fixture(scope="module")
def sphere_field(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sphere")
    write_sphere_dataset(str(folder / "views"), count=24, size=32, focal=40.0)
    params = {
        "transforms_path": str(folder / "views"),
        "checkpoint_path": str(folder / "field.pt"),
        "model": "fast",
        "iterations": 300,
        "holdout_every": 8,
        "device": "cpu",
        "levels": 8,
        "log2_table_size": 14,
        "finest_resolution": 128,
        "occupancy_resolution": 32,
        "samples_per_step": 8192,
        "max_rays": 1024,
        "initial_rays": 512,
        "eval_every": 150,
    }
    result, arrays = JOBS["fit_nerf"](params, {}, JobContext())
    return folder, result


@pytest.mark.slow
def test_fast_field_fits_the_sphere(sphere_field):
    folder, result = sphere_field
    print(f"sphere, fast field: held-out PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f} (bound {SPHERE_PSNR_BOUND})")
    assert result["num_views"] == 21 and result["num_holdout"] == 3 and (result["width"], result["height"]) == (32, 32)
    assert result["psnr"] > SPHERE_PSNR_BOUND and result["ssim"] > 0.8
    assert [e[0] for e in result["eval_history"]] == [150, 300] and result["eval_history"][-1][2] > SPHERE_PSNR_BOUND
    assert result["eval_history"][0][2] < result["eval_history"][1][2]
    assert os.path.isfile(result["checkpoint_path"]) and result["iterations_run"] == 300
    assert np.allclose(result["center"], 0) and result["scale"] == 1.0
    ckpt = read_checkpoint(result["checkpoint_path"])
    assert ckpt["format"] == "inr_blender.nerf" and ckpt["model"] == "fast"


@pytest.mark.slow
def test_render_view_matches_the_exact_image(sphere_field):
    folder, result = sphere_field
    c2w = sphere_cameras(7, distance=2.2, seed=3)[5]  # a camera that was not trained on
    params = {"checkpoint_path": result["checkpoint_path"], "width": 32, "height": 32, "intrinsics": [40.0, 40.0, 16.0, 16.0], "device": "cpu"}
    out, arrays = JOBS["render_nerf_view"](params, {"c2w": c2w.astype(np.float32)}, JobContext())
    truth, alpha = render_sphere(c2w, 40.0, 32)
    score = psnr(torch.as_tensor(arrays["rgb"]), torch.as_tensor(truth))
    print(f"sphere, novel view: PSNR {score:.2f} dB")
    assert arrays["rgb"].shape == (32, 32, 3) and arrays["depth"].shape == (32, 32) and score > SPHERE_PSNR_BOUND - 2
    covered = alpha > 0.99
    assert np.abs(arrays["alpha"][covered] - 1).mean() < 0.1 and arrays["alpha"][alpha == 0].mean() < 0.1
    # z-depth at the centre pixel: behind the sphere's front (2.2 - 0.5) and before its centre; a flat-coloured
    # sphere does not force the density into a thin shell, so the expected depth lies somewhat inside (measured 1.92)
    assert 1.65 < arrays["depth"][16, 16] < 2.2 and arrays["depth"][0, 0] == 0.0


@pytest.mark.slow
def test_extract_coloured_mesh(sphere_field):
    folder, result = sphere_field
    out, arrays = JOBS["extract_mesh"](
        {"checkpoint_path": result["checkpoint_path"], "resolution": 48, "space": "world", "device": "cpu"}, {}, JobContext()
    )
    v, colours = arrays["vertices"], arrays["colors"]
    r = np.linalg.norm(v, axis=1)
    assert len(v) > 500 and abs(np.median(r) - 0.5) < 0.06
    top, bottom = colours[v[:, 2] > 0.2].mean(0), colours[v[:, 2] < -0.2].mean(0)
    assert np.abs(top - TOP).max() < 0.15 and np.abs(bottom - BOTTOM).max() < 0.15


@pytest.mark.slow
def test_classic_nerf_learns(tmp_path):
    write_sphere_dataset(str(tmp_path / "views"), count=8, size=16, focal=20.0)
    # the published learning rate and crops; a small network and few samples. Measured: the loss falls
    # from about 0.8 to below 0.1 in 200 steps once the background shows through (a dead density, or
    # weights summing past 1, keep it above 0.2: the failures this test caught)
    params = {
        "transforms_path": str(tmp_path / "views"),
        "checkpoint_path": str(tmp_path / "c.pt"),
        "model": "classic",
        "iterations": 200,
        "width": 64,
        "depth": 4,
        "batch_rays": 256,
        "coarse_samples": 16,
        "fine_samples": 16,
        "precrop_iterations": 20,
        "holdout_every": 4,
        "device": "cpu",
    }
    result, _ = JOBS["fit_nerf"](params, {}, JobContext())
    losses = [loss for _, loss in result["loss_history"]]
    print(f"sphere, classic NeRF: loss {np.mean(losses[:5]):.3f} -> {np.mean(losses[-10:]):.3f}, held-out PSNR {result['psnr']:.2f} dB")
    assert result["model"] == "classic" and np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    assert result["psnr"] is not None and result["psnr"] > 10.0  # measured 11.0; an all-white render scores 8.3


def test_fit_nerf_job_bad_input(tmp_path):
    ctx = JobContext()
    ck = str(tmp_path / "f.pt")
    with pytest.raises(JobError, match="needs views"):
        JOBS["fit_nerf"]({"checkpoint_path": ck}, {}, ctx)
    with pytest.raises(JobError, match="without c2w"):
        JOBS["fit_nerf"]({"checkpoint_path": ck}, {"images": np.zeros((2, 4, 4, 3), np.uint8)}, ctx)
    with pytest.raises(JobError, match="c2w of shape"):
        JOBS["fit_nerf"](
            {"checkpoint_path": ck}, {"images": np.zeros((2, 4, 4, 3), np.uint8), "c2w": np.zeros((1, 4, 4)), "intrinsics": np.ones((2, 4))}, ctx
        )
    with pytest.raises(JobError, match="transforms file not found"):
        JOBS["fit_nerf"]({"checkpoint_path": ck, "transforms_path": str(tmp_path / "none.json")}, {}, ctx)
    with pytest.raises(JobError, match="needs a checkpoint_path"):
        JOBS["fit_nerf"]({"transforms_path": str(tmp_path)}, {}, ctx)
    assert not os.path.exists(ck)


@pytest.mark.slow
def test_render_view_bad_input(sphere_field, tmp_path):
    from inr_blender.checkpoint import save_checkpoint
    from inr_blender.fitting import fit_sdf, resolve_params

    folder, result = sphere_field
    ctx = JobContext()
    good = {"checkpoint_path": result["checkpoint_path"], "width": 8, "height": 8, "intrinsics": [8, 8, 4, 4], "device": "cpu"}
    eye = {"c2w": np.eye(4, dtype=np.float32)}
    with pytest.raises(JobError, match="c2w"):
        JOBS["render_nerf_view"](good, {}, ctx)
    with pytest.raises(JobError, match="intrinsics"):
        JOBS["render_nerf_view"]({**good, "intrinsics": [0, 8, 4, 4]}, eye, ctx)
    with pytest.raises(JobError, match="width must be at least 1"):
        JOBS["render_nerf_view"]({**good, "width": 0}, eye, ctx)
    with pytest.raises(JobError, match="background"):
        JOBS["render_nerf_view"]({**good, "background": [2, 0, 0]}, eye, ctx)
    pts = np.random.default_rng(0).normal(size=(500, 3))
    sdf = fit_sdf(
        pts / np.linalg.norm(pts, axis=1, keepdims=True),
        None,
        resolve_params({"method": "igr", "iterations": 2, "width": 8, "depth": 2, "device": "cpu"}),
        ctx,
    )
    path = save_checkpoint(sdf, str(tmp_path / "sdf.pt"))
    with pytest.raises(JobError, match="not a radiance field"):
        JOBS["render_nerf_view"]({**good, "checkpoint_path": path}, eye, ctx)
