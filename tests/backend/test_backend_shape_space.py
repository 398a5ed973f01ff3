"""Shape spaces (DeepSDF auto-decoder): signed distances to open meshes, fitting, completion, interpolation, the
2-process data-parallel run, and bad input. Shapes are built here: a sphere, a box and a torus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import load_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields.deepsdf import LatentShape
from inr_blender.fileio import write_mesh
from inr_blender.fitting.shape_space import pack_meshes
from inr_blender.geometry.extraction import extract_mesh
from inr_blender.geometry.interpolation import enclosed_volume
from inr_blender.geometry.mesh_distance import oriented_faces, signed_distances, unsigned_distances, winding_numbers
from inr_blender.geometry.metrics import compare_meshes
from inr_blender.geometry.primitives import icosphere
from inr_blender.jobs import JOBS

from sdf_shapes import Cube, Sphere

CPU = torch.device("cpu")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Where each shape sits in the world, and its size: fitting normalises each into the unit sphere.
PLACES = {"sphere": ((0.0, 0.0, 0.0), 2.0), "box": ((3.0, 0.0, 0.0), 1.0), "torus": ((0.0, 4.0, 1.0), 3.0)}
TINY = {
    "latent_size": 8,
    "width": 64,
    "depth": 4,
    "skip": 2,
    "dropout": 0.0,
    "shapes_per_step": 3,
    "samples_per_shape": 1024,
    "num_samples": 8000,
    "lr_decoder": 3e-3,
    "lr_codes": 1e-2,
    "device": "cpu",
}


class Torus(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.stack([x[:, :2].norm(dim=1) - 0.5, x[:, 2]], dim=1)
        return q.norm(dim=1) - 0.2


def shape_meshes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The three shapes as world-space meshes (marching cubes of their exact SDFs, then placed)."""
    out = {}
    for name, field in (("sphere", Sphere(0.6)), ("box", Cube(0.45)), ("torus", Torus())):
        v, f, _ = extract_mesh(field, 40, CPU, JobContext())
        offset, size = PLACES[name]
        out[name] = (v.astype(np.float64) * size + np.asarray(offset), f.astype(np.int64))
    return out


@pytest.fixture(scope="module")
def meshes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return shape_meshes()


@pytest.fixture(scope="module")
def space(tmp_path_factory, meshes) -> tuple[str, dict]:
    """A tiny space fitted to the sphere, the box and the torus (about 15 s)."""
    path = str(tmp_path_factory.mktemp("space") / "space.pt")
    result, _ = JOBS["fit_shape_space"](
        {**TINY, "checkpoint_path": path, "names": list(meshes), "iterations": 600, "error_resolution": 48},
        pack_meshes(list(meshes.values())),
        JobContext(),
    )
    return path, result


# ---- signed distances to meshes that need not be closed ----


@pytest.mark.slow
def test_winding_numbers_inside_outside_and_with_a_hole():
    v, f = icosphere(1.0, 3)
    q = np.random.default_rng(0).uniform(-1.5, 1.5, (3000, 3))
    r = np.linalg.norm(q, axis=1)
    clear = np.abs(r - 1.0) > 0.05  # away from the faceted surface
    w = winding_numbers(v, f, q)
    assert np.all((w[clear] > 0.5) == (r[clear] < 1.0))
    inside, outside = w[clear & (r < 1)], w[clear & (r > 1)]
    assert np.abs(inside - 1).max() < 0.05 and np.abs(outside).max() < 0.05
    exact = winding_numbers(v, f, q[:300], beta=np.inf)
    assert np.abs(w[:300] - exact).max() < 0.05  # the dipoles of far clusters
    # remove a cap of triangles (z > 0.8): the sign stays right away from the hole
    keep = v[f].mean(axis=1)[:, 2] < 0.8
    w_open = winding_numbers(v, f[keep], q)
    far_from_hole = clear & (q[:, 2] < 0.5)
    assert np.mean((w_open[far_from_hole] > 0.5) == (r[far_from_hole] < 1.0)) > 0.99


@pytest.mark.slow
def test_signed_distances_match_a_sphere():
    v, f = icosphere(1.0, 4)
    q = np.random.default_rng(1).uniform(-1.6, 1.6, (4000, 3))
    sd = signed_distances(v, f, q)
    true = np.linalg.norm(q, axis=1) - 1.0
    assert np.abs(sd - true).max() < 0.01  # the icosphere's facets lie within 0.005 of the sphere
    assert np.all(unsigned_distances(v, f, q) >= 0)


@pytest.mark.slow
def test_double_sided_and_misoriented_meshes_get_their_inside_back():
    """Collections hold double-sided meshes (every triangle twice, once each way: winding numbers cancel to 0) and
    meshes wound every which way; oriented_faces repairs both, so the signs are a sphere's again."""
    v, f = icosphere(1.0, 3)
    rng = np.random.default_rng(3)
    q = rng.uniform(-1.5, 1.5, (2000, 3))
    r = np.linalg.norm(q, axis=1)
    clear = np.abs(r - 1.0) > 0.05
    double = np.concatenate([f, f[:, ::-1]])[rng.permutation(2 * len(f))]
    assert np.abs(winding_numbers(v, double, q)).max() < 0.05  # cancelled (up to the far dipoles): no inside
    flipped = np.where(rng.random(len(f))[:, None] < 0.5, f[:, ::-1], f)
    inward = f[:, ::-1]
    for faces in (double, flipped, inward):
        sd = signed_distances(v, faces, q)
        assert np.all((sd[clear] < 0) == (r[clear] < 1.0))
    assert len(oriented_faces(v, double)) == len(f)


# ---- fitting, extraction, completion, interpolation ----


@pytest.mark.slow
def test_tiny_space_learns_each_shape(space, meshes, tmp_path):
    path, result = space
    assert result["names"] == ["sphere", "box", "torus"] and result["num_shapes"] == 3
    # Measured: 0.016, 0.016, 0.024 (Chamfer-L1 in world units at 48^3; the shapes are 1 to 3 units across) after
    # 600 steps of a 4 x 64 decoder.
    assert max(result["errors"]) < 0.05, result["errors"]
    for k, name in enumerate(meshes):
        assert np.allclose(result["centers"][k], PLACES[name][0], atol=1e-6)
    # extraction of one shape, in world space, lands on its mesh
    out, arrays = JOBS["extract_mesh"]({"checkpoint_path": path, "shape": 2, "resolution": 48, "space": "world"}, {}, JobContext())
    v, f = meshes["torus"]
    assert compare_meshes(v, f, arrays["vertices"], arrays["faces"], 20_000, 0, ("chamfer",))["chamfer_l1"] < 0.05
    # range analysis covers the decoder (weight-normalised layers, the skip, tanh): guaranteed = dense mesh
    meshes_by_method = {
        m: JOBS["extract_mesh"]({"checkpoint_path": path, "shape": 1, "resolution": 32, "method": m}, {}, JobContext())[1]
        for m in ("dense", "guaranteed")
    }
    dense, guaranteed = (np.sort(meshes_by_method[m]["vertices"], axis=0) for m in ("dense", "guaranteed"))
    assert dense.shape == guaranteed.shape and np.abs(dense - guaranteed).max() < 1e-5
    with pytest.raises(JobError, match="pick a shape"):
        JOBS["extract_mesh"]({"checkpoint_path": path, "resolution": 32}, {}, JobContext())


@pytest.mark.slow
def test_completion_of_a_half_sphere_gives_a_full_sphere(space, meshes, tmp_path):
    path, result = space
    field, ckpt = load_checkpoint(path)
    v, f = meshes["sphere"]
    local = (v - np.asarray(ckpt["centers"][0])) / ckpt["scales"][0]
    normals = local / np.linalg.norm(local, axis=1, keepdims=True)
    half = local[:, 2] > 0.0  # the scanner saw the upper half only
    out_path = str(tmp_path / "completed.pt")
    res, arrays = JOBS["reconstruct_shape"](
        {"checkpoint_path": path, "resolution": 48, "output_checkpoint_path": out_path, "device": "cpu"},
        {"points": local[half], "normals": normals[half]},
        JobContext(),
    )
    completed = arrays["vertices"]
    radius = np.linalg.norm(local, axis=1).mean()
    # the hidden half is there: the completion reaches the bottom of the sphere, and matches it all round
    assert completed[:, 2].min() < -0.9 * radius
    metrics = compare_meshes(local, f, completed, arrays["faces"], 20_000, 0, ("chamfer",))
    assert metrics["chamfer_l1"] < 0.05, metrics  # measured 0.013 (0.013 without the normals too)
    assert res["fit_error"] < 0.02  # measured 0.0026
    # without normals, with free-space points on the scanner's rays (from above): they end up outside
    rng = np.random.default_rng(0)
    ray_points = local[half][:200] * (1.15 + 0.5 * rng.random((200, 1)))
    res2, _ = JOBS["reconstruct_shape"](
        {"checkpoint_path": path, "resolution": 32, "output_checkpoint_path": str(tmp_path / "free.pt"), "device": "cpu"},
        {"points": local[half], "free_points": ray_points},
        JobContext(),
    )
    free_field, _ = load_checkpoint(res2["checkpoint_path"])
    with torch.no_grad():
        assert (free_field(torch.as_tensor(ray_points, dtype=torch.float32)) > 0).float().mean() > 0.99
    # the completed shape is an ordinary field checkpoint that extraction accepts
    again, _ = JOBS["extract_mesh"]({"checkpoint_path": res["checkpoint_path"], "resolution": 32}, {}, JobContext())
    assert again["num_faces"] > 0


@pytest.mark.slow
def test_interpolation_volumes_lie_between_the_ends(space):
    path, _ = space
    result, arrays = JOBS["interpolate_shapes"]({"checkpoint_path": path, "a": 0, "b": 1, "count": 5, "resolution": 48}, {}, JobContext())
    volumes = arrays["volumes"]
    assert len(volumes) == 5 and np.allclose(arrays["t"], np.linspace(0, 1, 5))
    lo, hi = sorted((volumes[0], volumes[-1]))
    assert lo < hi
    slack = 0.05 * (hi - lo)
    assert np.all((volumes[1:-1] > lo - slack) & (volumes[1:-1] < hi + slack)), volumes
    # the packed meshes and the carried vertices
    assert arrays["vertex_counts"].sum() == len(arrays["vertices"]) and arrays["face_counts"].sum() == len(arrays["faces"])
    assert arrays["key_vertices"].shape == (5, arrays["vertex_counts"][0], 3)
    # sphere to box changes too much for one mesh to follow (measured: 4.9% of the triangles turn over at t = 1)
    assert not result["shape_keys_ok"] and result["notes"]
    assert np.allclose(result["centers"][0], PLACES["sphere"][0]) and np.allclose(result["centers"][-1], PLACES["box"][0], atol=1e-5)
    # a small step from the sphere: the carried mesh follows, and its last key lies on the last shape's surface
    space, _ = load_checkpoint(path)
    a, b = space.codes.weight[0].detach(), space.codes.weight[1].detach()
    near = (0.9 * a + 0.1 * b).numpy()
    result, arrays = JOBS["interpolate_shapes"](
        {"checkpoint_path": path, "count": 3, "resolution": 48}, {"code_a": a.numpy(), "code_b": near}, JobContext()
    )
    assert result["shape_keys_ok"], result["notes"]
    with torch.no_grad():
        f_last = LatentShape(space.decoder, torch.as_tensor(near))(torch.as_tensor(arrays["key_vertices"][-1]))
    assert f_last.abs().max() < 0.5 * 2.0 / 47


def test_enclosed_volume_of_a_sphere():
    v, f = icosphere(1.0, 4)
    assert abs(enclosed_volume(v, f) - 4.0 / 3.0 * np.pi) < 0.02


@pytest.mark.slow
def test_occupancy_variant_extracts_at_one_half(tmp_path, meshes):
    path = str(tmp_path / "occ.pt")
    two = [meshes["sphere"], meshes["box"]]
    result, _ = JOBS["fit_shape_space"](
        {
            **TINY,
            "method": "occupancy",
            "checkpoint_path": path,
            "names": ["sphere", "box"],
            "shapes_per_step": 2,
            "iterations": 300,
            "error_resolution": 40,
        },
        pack_meshes(two),
        JobContext(),
    )
    assert result["method"] == "occupancy"
    assert max(result["errors"]) < 0.08, result["errors"]  # measured 0.018 and 0.041
    space, _ = load_checkpoint(path)
    shape = space.shape(0)
    with torch.no_grad():  # the field is minus the logit: negative inside, zero at probability 0.5
        inside, outside = shape(torch.zeros(1, 3)), shape(torch.full((1, 3), 0.95))
    assert inside.item() < 0 < outside.item()


# ---- data parallel: torchrun with 2 processes against one ----


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, meshes):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    inputs = []
    for name, (v, f) in meshes.items():
        inputs.append(str(tmp_path / f"{name}.ply"))
        write_mesh(inputs[-1], v, f)
    args = [
        "fit-shape-space",
        *inputs,
        "--latent-size",
        "8",
        "--width",
        "32",
        "--depth",
        "4",
        "--skip",
        "2",
        "--dropout",
        "0",
        "--iterations",
        "5",
        "--shapes-per-step",
        "2",
        "--samples-per-shape",
        "256",
        "--num-samples",
        "2000",
        "--error-resolution",
        "0",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    single, double = str(tmp_path / "one.pt"), str(tmp_path / "two.pt")
    subprocess.run([sys.executable, "-m", "inr_blender", *args, "-o", single], check=True, env=env, cwd=REPO, timeout=300)
    subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "inr_blender", *args, "-o", double], check=True, env=env, cwd=REPO, timeout=300
    )
    one, two = torch.load(single, weights_only=True), torch.load(double, weights_only=True)
    assert one["world_size"] == 1 and two["world_size"] == 2
    for key, value in one["state_dict"].items():
        assert torch.allclose(value, two["state_dict"][key], atol=1e-5, rtol=1e-4), key
    assert np.allclose([l for _, l in one["loss_history"]], [l for _, l in two["loss_history"]], rtol=1e-4)


# ---- bad input ----


@pytest.mark.slow
def test_bad_input(space, meshes, tmp_path):
    path, _ = space
    ctx = JobContext()
    with pytest.raises(JobError, match="at least 2 shapes"):
        JOBS["fit_shape_space"]({**TINY, "checkpoint_path": str(tmp_path / "x.pt"), "names": ["sphere"]}, pack_meshes([meshes["sphere"]]), ctx)
    bad = pack_meshes([meshes["sphere"], meshes["box"]])
    bad["vertices"] = bad["vertices"].copy()
    bad["vertices"][-1, 0] = np.nan
    with pytest.raises(JobError, match="shape 1 \\('box'\\)"):
        JOBS["fit_shape_space"]({**TINY, "checkpoint_path": str(tmp_path / "x.pt"), "names": ["sphere", "box"]}, bad, ctx)
    miscounted = pack_meshes([meshes["sphere"], meshes["box"]])
    miscounted["vertex_counts"] = miscounted["vertex_counts"] + 1
    with pytest.raises(JobError, match="add up"):
        JOBS["fit_shape_space"]({**TINY, "checkpoint_path": str(tmp_path / "x.pt"), "names": ["a", "b"]}, miscounted, ctx)
    with pytest.raises(JobError, match="no points"):
        JOBS["reconstruct_shape"]({"checkpoint_path": path}, {"points": np.zeros((0, 3))}, ctx)
    with pytest.raises(JobError, match="out of range: the space has 3 shapes"):
        JOBS["extract_mesh"]({"checkpoint_path": path, "shape": 3, "resolution": 32}, {}, ctx)
    with pytest.raises(JobError, match="out of range"):
        JOBS["interpolate_shapes"]({"checkpoint_path": path, "a": 0, "b": -1}, {}, ctx)
    with pytest.raises(JobError, match="two different shapes"):
        JOBS["interpolate_shapes"]({"checkpoint_path": path, "a": 1, "b": 1}, {}, ctx)
    with pytest.raises(JobError, match="must be .* finite numbers|code must be"):
        JOBS["extract_mesh"]({"checkpoint_path": path, "resolution": 32}, {"code": np.zeros(3, dtype=np.float32)}, ctx)
    sdf_path = str(tmp_path / "sdf.pt")
    v, f = icosphere(1.0, 2)
    JOBS["fit_sdf"](
        {"method": "igr", "width": 16, "depth": 2, "iterations": 2, "checkpoint_path": sdf_path, "device": "cpu"}, {"vertices": v, "faces": f}, ctx
    )
    with pytest.raises(JobError, match="not a shape space"):
        JOBS["reconstruct_shape"]({"checkpoint_path": sdf_path}, {"points": v}, ctx)
