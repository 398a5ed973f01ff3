"""Sparse, adaptive marching cubes against the dense reference."""

import time

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from inr_blender.checkpoint import save_checkpoint
from inr_blender.context import Cancelled, JobContext, JobError
from inr_blender.fields import build_field, field_config
from inr_blender.geometry.extraction import extract_mesh
from inr_blender.geometry.sparse_extraction import extract_mesh_sparse
from inr_blender.jobs import JOBS

CPU = torch.device("cpu")


class Spheres(torch.nn.Module):
    """Exact SDF of a union of spheres (negative inside)."""

    def __init__(self, centers, radii) -> None:
        super().__init__()
        self.centers = torch.tensor(centers, dtype=torch.float32)
        self.radii = torch.tensor(radii, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x[:, None, :] - self.centers).norm(dim=-1) - self.radii).min(dim=1).values


class Torus(torch.nn.Module):
    """Exact SDF of a torus around z, scaled by ``gain`` (gain > 1: not 1-Lipschitz)."""

    def __init__(self, major: float = 0.55, minor: float = 0.2, gain: float = 1.0) -> None:
        super().__init__()
        self.major, self.minor, self.gain = major, minor, gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.stack([x[:, :2].norm(dim=-1) - self.major, x[:, 2]], dim=-1)
        return self.gain * (q.norm(dim=-1) - self.minor)


def sphere(radius=0.5, center=(0.03, -0.02, 0.01)):
    return Spheres([center], [radius])


def mlp():
    """A geometric-init IGR network: smooth, roughly a sphere, not an exact SDF."""
    torch.manual_seed(0)
    return build_field(field_config("igr", width=64, depth=4, init_radius=0.5))


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance (mean of both directions' mean nearest distances)."""
    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def canonical(faces: np.ndarray) -> np.ndarray:
    """Faces rotated to start at their smallest index (keeps the winding), as contiguous int32 rows."""
    first = np.argmin(faces, axis=1)
    rows = np.arange(len(faces))[:, None]
    return np.ascontiguousarray(faces[rows, (first[:, None] + np.arange(3)) % 3].astype(np.int32))


def check_welded_and_closed(verts: np.ndarray, faces: np.ndarray) -> None:
    assert len(np.unique(verts, axis=0)) == len(verts)  # no duplicate vertices along block seams
    assert np.isin(np.arange(len(verts)), faces).all()  # no stray vertex
    assert (faces[:, 0] != faces[:, 1]).all() and (faces[:, 1] != faces[:, 2]).all() and (faces[:, 0] != faces[:, 2]).all()
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # watertight: every edge shared by exactly two faces


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, resolution",
    [
        (sphere, 128),
        (lambda: Spheres([[-0.3, 0.0, 0.1], [0.35, 0.1, -0.05]], [0.4, 0.3]), 128),
        (Torus, 128),
        (mlp, 128),
        (sphere, 77),  # 76 cells: blocks clipped at the far faces
        (lambda: sphere(0.5, (0.0, 0.0, 0.0)), 129),  # the field is exactly 0 at 6 grid points, all block corners
        (lambda: Torus(gain=4.0), 96),  # not 1-Lipschitz: culling misses blocks, the closure recovers them
    ],
    ids=["sphere", "two-spheres", "torus", "mlp", "sphere-77", "sphere-on-grid", "torus-gain-4"],
)
def test_sparse_matches_dense(make, resolution):
    field = make()
    vd, fd, nd = extract_mesh(field, resolution, CPU, JobContext(), marcher="skimage")  # the reference
    for marcher in ("torch", "skimage"):  # torch: the default
        vs, fs, ns, stats = extract_mesh_sparse(field, resolution, CPU, JobContext(), marcher=marcher)
        assert stats["marcher"] == marcher
        assert vs.dtype == np.float32 and fs.dtype == np.int32 and ns.dtype == np.float32
        assert abs(len(vs) - len(vd)) <= 0.01 * len(vd)
        assert abs(len(fs) - len(fd)) <= 0.01 * len(fd)
        assert chamfer(vs, vd) < 1e-4
        # The same grid and interpolation: the very same vertices, up to float rounding.
        assert cKDTree(vd).query(vs)[0].max() < 1e-5 and cKDTree(vs).query(vd)[0].max() < 1e-5
        check_welded_and_closed(vs, fs)
        # The same normals as dense; scikit-image's marcher makes the same triangles too, wound the same way
        # (outward), where the torch one may split a quad along its other diagonal.
        match = cKDTree(vd).query(vs)[1]
        np.testing.assert_allclose(ns, nd[match], atol=1e-4)
        same = np.isin(canonical(match[fs]).view("i4,i4,i4"), canonical(fd).view("i4,i4,i4"))
        assert same.mean() > (0.99 if marcher == "skimage" else 0.3)
        tri = vs[fs]  # faces wound like the gradient normals (but a few on the two spheres' crease)
        assert (np.einsum("ij,ij->i", np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), ns[fs].sum(axis=1)) > 0).mean() > 0.99
    print(
        f"\n{resolution}^3: {stats['evaluations']} evaluations vs {resolution**3} dense "
        f"({resolution**3 / stats['evaluations']:.1f}x fewer), {len(vs)} vertices"
    )
    if resolution == 128:
        assert stats["evaluations"] * 5 <= resolution**3


@pytest.mark.slow
def test_sparse_at_512_cells_makes_far_fewer_evaluations():
    field = sphere(0.5)
    n = 513  # 512 cells per axis
    started = time.perf_counter()
    verts, faces, _, stats = extract_mesh_sparse(field, n, CPU, JobContext())
    seconds = time.perf_counter() - started
    print(
        f"\n512^3 cells: {stats['evaluations']} evaluations vs {n**3} dense "
        f"({n**3 / stats['evaluations']:.1f}x fewer), {len(verts)} vertices, {seconds:.2f} s"
    )
    assert stats["evaluations"] * 20 <= n**3
    radii = np.linalg.norm(verts - np.array([0.03, -0.02, 0.01], dtype=np.float32), axis=1)
    assert np.abs(radii - 0.5).max() < 1e-3
    check_welded_and_closed(verts, faces)


def test_sparse_level_and_errors():
    field = sphere(0.5, (0.0, 0.0, 0.0))
    verts, _, _, _ = extract_mesh_sparse(field, 32, CPU, JobContext(), level=0.2)
    assert np.linalg.norm(verts, axis=1).mean() == pytest.approx(0.7, abs=0.01)
    with pytest.raises(JobError, match="no surface at level 0"):
        extract_mesh_sparse(sphere(5.0), 16, CPU, JobContext())
    with pytest.raises(JobError, match="at least 8"):
        extract_mesh_sparse(field, 4, CPU, JobContext())
    with pytest.raises(JobError, match=r"resolution 100000 needs about .* GB, the backend machine has .* GB available"):
        extract_mesh_sparse(field, 100_000, CPU, JobContext())

    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.full((len(x),), float("nan"))

    with pytest.raises(JobError, match="NaN"):
        extract_mesh_sparse(Broken(), 32, CPU, JobContext())


def test_sparse_extraction_can_be_cancelled():
    ctx = JobContext()
    ctx._cancel.set()
    with pytest.raises(Cancelled):
        extract_mesh_sparse(sphere(), 64, CPU, ctx)


def _checkpoint(tmp_path):
    torch.manual_seed(0)
    config = field_config("igr", width=16, depth=2, init_radius=0.5)
    net = build_field(config)
    ckpt = {
        "config": config,
        "state_dict": {k: v.clone() for k, v in net.state_dict().items()},
        "center": [1.0, 2.0, 3.0],
        "scale": 0.5,
        "loss_history": [[1, 0.5]],
        "method": "igr",
    }
    return save_checkpoint(ckpt, str(tmp_path / "field.pt"))


def test_extract_mesh_job_sparse_and_dense(tmp_path):
    path = _checkpoint(tmp_path)
    results = {}
    for method in ("sparse", "dense"):
        params = {"checkpoint_path": path, "resolution": 48, "device": "cpu", "method": method}
        results[method] = JOBS["extract_mesh"](params, {}, JobContext())
    (sparse, ms), (dense, md) = results["sparse"], results["dense"]
    assert sparse["method"] == "sparse" and dense["method"] == "dense"
    assert dense["evaluations"] == 48**3 and 0 < sparse["evaluations"] < 48**3
    assert sparse["num_vertices"] == len(ms["vertices"]) > 0
    assert abs(sparse["num_vertices"] - dense["num_vertices"]) <= 0.01 * dense["num_vertices"]
    assert chamfer(ms["vertices"], md["vertices"]) < 1e-4
    default, _ = JOBS["extract_mesh"]({"checkpoint_path": path, "resolution": 48, "device": "cpu"}, {}, JobContext())
    assert default["method"] == "sparse" and default["evaluations"] == sparse["evaluations"]
    with pytest.raises(JobError, match="method must be 'sparse', 'dense' or 'guaranteed'"):
        JOBS["extract_mesh"]({"checkpoint_path": path, "method": "octree"}, {}, JobContext())
    with pytest.raises(JobError, match="safety must be positive"):
        JOBS["extract_mesh"]({"checkpoint_path": path, "safety": 0}, {}, JobContext())


def test_the_module_imports_on_its_own():
    """A fresh interpreter that imports sparse extraction first (its ranges import fitting, whose previews use it)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", "import inr_blender.geometry.sparse_extraction"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
