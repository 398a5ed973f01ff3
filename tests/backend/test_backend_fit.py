"""SDF fitting end to end (tiny networks, few steps), input validation and cancellation."""

import json
import threading

import numpy as np
import pytest

from inr_blender.checkpoint import read_checkpoint, save_checkpoint
from inr_blender.context import Cancelled, JobContext, JobError
from inr_blender.fitting import fit_sdf, resolve_params
from inr_blender.geometry.primitives import icosphere
from inr_blender.jobs import JOBS

CENTER = np.array([1.0, -2.0, 3.0])
RADIUS = 0.3


def sphere_cloud(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return CENTER + RADIUS * d, d


def extract_world(path, resolution=48, **extra):
    params, arrays = JOBS["extract_mesh"](
        {"checkpoint_path": path, "resolution": resolution, "space": "world", "device": "cpu", **extra}, {}, JobContext()
    )
    assert params["num_vertices"] == len(arrays["vertices"]) and params["num_faces"] == len(arrays["faces"])
    json.dumps(params, allow_nan=False)  # results cross the seam as JSON
    return arrays


def chamfer_to_sphere(arrays):
    sv, sf = icosphere(RADIUS, 4, CENTER)
    params, _ = JOBS["metrics"](
        {"num_samples": 20_000},
        {"vertices_a": sv, "faces_a": sf, "vertices_b": arrays["vertices"], "faces_b": arrays["faces"]},
        JobContext(),
    )
    json.dumps(params, allow_nan=False)
    return params["chamfer_l1_normalized"]


# Why 0.05 (5% of the radius): the extraction grid (48^3 over the local cube,
# data spanning 0.8 of it) has cells of 5.3% of the radius, and marching cubes
# on a smooth field errs far below one cell; an unfitted field, e.g. the initial
# IGR sphere (local radius 0.5 instead of 0.8), scores about 0.37.
CHAMFER_BOUND = 0.05


@pytest.mark.slow
def test_igr_fit_of_a_sphere_mesh_through_the_jobs(tmp_path):
    vertices, faces = icosphere(RADIUS, 3, CENTER)
    path = str(tmp_path / "fields" / "igr.pt")
    params = {
        "method": "igr",
        "iterations": 200,
        "width": 64,
        "depth": 3,
        "batch_size": 1024,
        "num_samples": 5000,
        "device": "cpu",
        "checkpoint_path": path,
    }
    result, arrays = JOBS["fit_sdf"](params, {"vertices": vertices, "faces": faces}, JobContext())
    assert arrays == {}
    json.dumps(result, allow_nan=False)
    assert result["checkpoint_path"] == path and result["method"] == "igr" and result["has_normals"]
    assert result["iterations_run"] == 200 and result["num_points"] == 5000 and result["device"] == "cpu"
    np.testing.assert_allclose(result["center"], CENTER, atol=0.01)
    assert result["scale"] == pytest.approx(RADIUS / 0.8, rel=0.02)
    history = result["loss_history"]
    assert len(history) <= 200 and history[-1][0] == 200 and history[-1][1] < history[0][1]
    mesh = extract_world(path)
    assert mesh["vertices"].dtype == np.float32 and mesh["faces"].dtype == np.int32
    assert chamfer_to_sphere(mesh) < CHAMFER_BOUND
    outward = np.einsum("ij,ij->i", mesh["normals"], mesh["vertices"] - CENTER)
    assert (outward > 0).mean() > 0.99


@pytest.mark.slow
def test_igr_fit_without_normals(tmp_path):
    points, _ = sphere_cloud()
    ckpt = fit_sdf(points, None, resolve_params({"iterations": 200, "width": 64, "depth": 3, "batch_size": 1024, "device": "cpu"}), JobContext())
    assert ckpt["has_normals"] is False and ckpt["method"] == "igr"
    path = save_checkpoint(ckpt, str(tmp_path / "igr.pt"))
    assert chamfer_to_sphere(extract_world(path)) < CHAMFER_BOUND


@pytest.mark.slow
def test_siren_fit_of_an_oriented_point_cloud(tmp_path):
    points, normals = sphere_cloud()
    path = str(tmp_path / "siren.pt")
    # omega0 = 5 instead of the published 30: a sphere has no detail, and a
    # low-frequency SIREN reaches a clean surface in a few hundred CPU steps,
    # where omega0 = 30 still carries spurious sheets that only long training removes.
    params = {
        "method": "siren",
        "iterations": 500,
        "width": 64,
        "depth": 2,
        "batch_size": 1024,
        "omega0": 5.0,
        "learning_rate": 1e-3,
        "device": "cpu",
        "checkpoint_path": path,
    }
    result, _ = JOBS["fit_sdf"](params, {"points": points, "normals": normals}, JobContext())
    assert result["method"] == "siren" and result["has_normals"]
    ckpt = read_checkpoint(path)
    assert ckpt["config"] == {"kind": "siren", "width": 64, "depth": 2, "omega0": 5.0}
    assert chamfer_to_sphere(extract_world(path)) < CHAMFER_BOUND


def test_siren_without_normals_is_refused(tmp_path):
    points, _ = sphere_cloud(500)
    with pytest.raises(JobError, match=r"SIREN needs oriented normals; the point cloud has none \(use IGR"):
        JOBS["fit_sdf"]({"method": "siren", "checkpoint_path": str(tmp_path / "s.pt")}, {"points": points}, JobContext())
    assert not (tmp_path / "s.pt").exists()


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"points": np.array([[0.0, 0.0, 0.0], [np.nan, 1.0, 2.0], [1.0, 1.0, 1.0]])}, "NaN or Inf"),
        ({"points": np.array([[0.0, 0.0, np.inf], [1.0, 1.0, 1.0]])}, "NaN or Inf"),
        ({"points": np.zeros((0, 3))}, "empty"),
        ({"points": np.ones((10, 3))}, "all points are identical"),
        ({"points": np.eye(3), "normals": np.eye(3)[:2]}, "normals has 2 rows but there are 3 points"),
        ({"points": np.zeros((4, 2))}, r"shape \(N, 3\)"),
        ({"vertices": np.eye(3), "faces": np.array([[0, 1, 2]])}, None),  # valid, but see below
        ({"vertices": np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2.0]]), "faces": np.array([[0, 1, 2]])}, "area is zero"),
        ({"vertices": np.eye(3), "faces": np.array([[0, 1, 5]])}, "outside"),
        ({"vertices": np.eye(3)}, "both vertices and faces"),
        ({}, "needs a mesh"),
    ],
)
def test_bad_input_is_refused(tmp_path, arrays, message):
    params = {"checkpoint_path": str(tmp_path / "f.pt"), "iterations": 1, "width": 8, "depth": 1, "batch_size": 8, "device": "cpu", "num_samples": 64}
    if message is None:  # a single triangle is a valid (open) surface
        JOBS["fit_sdf"](params, arrays, JobContext())
        return
    with pytest.raises(JobError, match=message):
        JOBS["fit_sdf"](params, arrays, JobContext())
    assert not (tmp_path / "f.pt").exists()


def test_parameters_are_checked():
    assert resolve_params({})["learning_rate"] == 0.005
    assert resolve_params({"method": "siren"})["grad_clip"] == 1.0
    assert resolve_params({"method": "igr", "iterations": 10.0})["iterations"] == 10
    with pytest.raises(JobError, match="unknown SDF method"):
        resolve_params({"method": "poisson"})
    with pytest.raises(JobError, match="unknown fit_sdf parameter"):
        resolve_params({"iteratoins": 3})
    with pytest.raises(JobError, match="iterations must be positive"):
        resolve_params({"iterations": 0})
    with pytest.raises(JobError, match="batch_size must be an integer"):
        resolve_params({"batch_size": "many"})
    with pytest.raises(JobError, match="checkpoint_path"):
        JOBS["fit_sdf"]({}, {"points": np.eye(3)}, JobContext())


def test_cancel_stops_the_fit():
    points, normals = sphere_cloud(500)
    cancel = threading.Event()
    events = []

    def send(event):
        events.append(event)
        if len(events) == 5:
            cancel.set()

    ctx = JobContext(send=send, cancel_event=cancel, min_interval=0.0)
    with pytest.raises(Cancelled):
        fit_sdf(points, normals, resolve_params({"iterations": 10_000, "width": 16, "depth": 2, "batch_size": 64, "device": "cpu"}), ctx)
    assert len(events) == 5
    assert events[-1]["total"] == 10_000 and events[-1]["loss"] is not None


def test_divergence_is_reported():
    points, normals = sphere_cloud(500)
    with pytest.raises(JobError, match="diverged"):
        fit_sdf(
            points,
            normals,
            resolve_params({"iterations": 50, "width": 16, "depth": 2, "batch_size": 64, "learning_rate": 1e30, "device": "cpu"}),
            JobContext(),
        )


def test_remote_style_checkpoint_travels_as_bytes(tmp_path):
    """A remote worker returns the checkpoint's bytes and takes them back for extraction."""
    points, normals = sphere_cloud(500)
    path = tmp_path / "client" / "f.pt"  # the client's path: never written by the worker
    params = {"iterations": 5, "width": 16, "depth": 2, "batch_size": 64, "device": "cpu", "checkpoint_path": str(path), "return_checkpoint": True}
    result, arrays = JOBS["fit_sdf"](params, {"points": points, "normals": normals}, JobContext())
    assert not path.exists() and not path.parent.exists()
    blob = arrays["checkpoint"]
    assert blob.dtype == np.uint8 and result["iterations_run"] == 5
    out, mesh = JOBS["extract_mesh"]({"resolution": 16, "device": "cpu"}, {"checkpoint": blob}, JobContext())
    assert out["num_faces"] == len(mesh["faces"]) > 0
    np.testing.assert_allclose(out["center"], CENTER, atol=0.05)
    blob.tofile(path.parent.mkdir() or path)  # what the client does with it
    assert read_checkpoint(str(path))["method"] == "igr"
