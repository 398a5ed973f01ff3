"""Implicit displacement fields: the phased fit, the base/detail split, detail transfer, and their errors."""

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import load_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields.grad import value_and_gradient
from inr_blender.fitting.methods.idf import Phases
from inr_blender.fitting.sdf import resolve_params
from inr_blender.geometry.projection import project
from inr_blender.geometry.sampling import to_local, to_world
from inr_blender.jobs import JOBS

from sdf_shapes import bumpy_sphere

TINY = {"method": "idf", "base_width": 64, "base_depth": 2, "detail_width": 64, "detail_depth": 2, "init": "random", "batch_size": 2048}
AMPLITUDE = 0.02  # of the bumps, on a sphere of radius 0.5 (world units)


@pytest.fixture(scope="module")
def bumpy_field(tmp_path_factory):
    """A displacement field fitted to a sphere with bumps (600 steps; about 25 s on 2 cores)."""
    points, normals, bumps = bumpy_sphere(20_000, amplitude=AMPLITUDE)
    path = str(tmp_path_factory.mktemp("idf") / "bumpy.pt")
    result, _ = JOBS["fit_sdf"]({**TINY, "iterations": 600, "checkpoint_path": path}, {"points": points, "normals": normals}, JobContext())
    assert result["method"] == "idf" and result["iterations_run"] == 600
    return path, bumps


def surface_radii(field, ckpt, directions, offset=(0.0, 0.0, 0.0), radius=0.5):
    """World points of ``field``'s surface found by projecting from the sphere of ``radius`` around ``offset``."""
    center, scale = np.asarray(ckpt["center"]), float(ckpt["scale"])
    start = torch.tensor(to_local(radius * directions + offset, center, scale), dtype=torch.float32)
    q, residual, _ = project(field, start, 20)
    assert float(residual.max()) < 1e-4
    return to_world(q.numpy(), center, scale) - offset


def directions(n=2000, seed=1):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


@pytest.mark.slow
def test_base_is_a_near_sphere_and_the_detail_recovers_the_bumps(bumpy_field):
    path, bumps = bumpy_field
    field, ckpt = load_checkpoint(path)
    errors = {}
    for name, model in (("base", field.base), ("composed", field)):
        w = surface_radii(model, ckpt, directions())
        r = np.linalg.norm(w, axis=1)
        errors[name] = {"sphere": np.abs(r - 0.5).mean(), "bumps": np.abs(r - 0.5 - bumps(w / r[:, None])).mean()}
    mean_bump = np.abs(bumps(directions())).mean()  # 0.005
    assert errors["composed"]["bumps"] < 0.25 * mean_bump  # measured 0.0009
    assert errors["base"]["sphere"] < 0.7 * mean_bump  # measured 0.0032: the base keeps little of the bumps
    assert errors["base"]["sphere"] < errors["base"]["bumps"]


@pytest.mark.slow
def test_the_base_is_smoother_than_the_composed_surface(bumpy_field):
    """Mean curvature (half the Laplacian of the field) varies less over the base's surface than the composed one's."""
    field, ckpt = load_checkpoint(bumpy_field[0])
    spread = {}
    for name, model in (("base", field.base), ("composed", field)):
        center, scale = np.asarray(ckpt["center"]), float(ckpt["scale"])
        x = torch.tensor(to_local(surface_radii(model, ckpt, directions(500)), center, scale), dtype=torch.float32).requires_grad_(True)
        _, g = value_and_gradient(model, x, create_graph=True)
        laplacian = sum(torch.autograd.grad(g[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(3))
        spread[name] = float(laplacian.std())
    assert spread["base"] < 0.5 * spread["composed"]


def test_phases_train_the_base_then_the_detail_then_both():
    phases = Phases([[], []], base_steps=20, detail_steps=50, joint_factor=0.1)
    assert [phases.scale(i) for i in (0, 19, 20, 49, 50, 99)] == [(1.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.0, 1.0), (0.1, 0.1), (0.1, 0.1)]
    with pytest.raises(JobError, match="0 <= phase_base <= phase_detail <= 1"):
        resolve_params({"method": "idf", "phase_base": 0.6, "phase_detail": 0.5})


@pytest.mark.slow
def test_a_base_only_fit_has_no_detail(tmp_path):
    points, normals, _ = bumpy_sphere(3000)
    path = str(tmp_path / "base.pt")
    JOBS["fit_sdf"](
        {**TINY, "iterations": 40, "phase_base": 1.0, "phase_detail": 1.0, "checkpoint_path": path},
        {"points": points, "normals": normals},
        JobContext(),
    )
    field, _ = load_checkpoint(path)
    x = torch.rand(500, 3) * 2 - 1
    with torch.no_grad():
        assert torch.equal(field(x), field.base(x))  # the detail starts at zero and never trained


@pytest.mark.slow
def test_transfer_puts_the_bumps_on_another_shape(bumpy_field, tmp_path):
    """A larger sphere elsewhere gets the source's bumps (scaled with the shape); strength 0 gives its base."""
    source, bumps = bumpy_field
    u = directions(8000, seed=3)
    target = str(tmp_path / "target.pt")
    JOBS["fit_sdf"](
        {**TINY, "iterations": 300, "phase_base": 1.0, "phase_detail": 1.0, "checkpoint_path": target},
        {"points": 0.8 * u + [2, 0, 0], "normals": u},
        JobContext(),
    )
    base, base_ckpt = load_checkpoint(target)
    radii = {}
    for mode in ("projected", "aligned"):
        for strength in (1.0, 0.0):
            out = str(tmp_path / f"{mode}{strength}.pt")
            result, _ = JOBS["transfer_detail"](
                {"source_checkpoint": source, "target_checkpoint": target, "strength": strength, "mode": mode, "checkpoint_path": out},
                {},
                JobContext(),
            )
            assert result["method"] == "idf_transfer" and result["nu"] == 0.05
            field, ckpt = load_checkpoint(out)
            assert ckpt["center"] == base_ckpt["center"] and ckpt["scale"] == base_ckpt["scale"]
            radii[mode, strength] = surface_radii(field, ckpt, directions(), offset=(2, 0, 0), radius=0.8)
    w0 = surface_radii(base, base_ckpt, directions(), offset=(2, 0, 0), radius=0.8)
    for mode in ("projected", "aligned"):
        assert np.abs(radii[mode, 0.0] - w0).max() < 1e-5  # strength 0: the target's base
        w = radii[mode, 1.0]
        height = np.linalg.norm(w, axis=1) - np.linalg.norm(w0, axis=1)
        expected = 1.6 * bumps(w / np.linalg.norm(w, axis=1, keepdims=True))  # the source's bumps, at the target's size
        assert np.corrcoef(height, expected)[0, 1] > 0.6  # measured 0.81 projected, 0.71 aligned
        assert 0.6 < np.abs(height).mean() / np.abs(expected).mean() < 1.4


@pytest.mark.slow
def test_extract_base_and_detailed_surfaces(bumpy_field, tmp_path):
    results = {
        part: JOBS["extract_mesh"]({"checkpoint_path": bumpy_field[0], "part": part, "resolution": 48}, {}, JobContext())[1]
        for part in ("base", "detailed")
    }
    assert all(len(r["faces"]) > 1000 for r in results.values())
    assert not np.array_equal(results["base"]["vertices"], results["detailed"]["vertices"])


@pytest.mark.slow
def test_refusals(bumpy_field, tmp_path):
    source = bumpy_field[0]
    points, normals, _ = bumpy_sphere(500)
    with pytest.raises(JobError, match="A displacement field needs oriented normals"):
        JOBS["fit_sdf"]({**TINY, "iterations": 5, "checkpoint_path": str(tmp_path / "x.pt")}, {"points": points}, JobContext())
    siren = str(tmp_path / "siren.pt")
    JOBS["fit_sdf"](
        {"method": "siren", "width": 16, "depth": 1, "iterations": 5, "checkpoint_path": siren}, {"points": points, "normals": normals}, JobContext()
    )
    with pytest.raises(JobError, match="only a displacement field has a base"):
        JOBS["extract_mesh"]({"checkpoint_path": siren, "part": "base"}, {}, JobContext())
    with pytest.raises(JobError, match="part must be 'detailed' or 'base'"):
        JOBS["extract_mesh"]({"checkpoint_path": source, "part": "detail"}, {}, JobContext())
    out = str(tmp_path / "t.pt")

    def transfer(**p):
        return JOBS["transfer_detail"]({"source_checkpoint": source, "target_checkpoint": siren, "checkpoint_path": out, **p}, {}, JobContext())

    transfer()  # any SDF is a target
    with pytest.raises(JobError, match="the detail source is not a displacement field"):
        transfer(source_checkpoint=siren)
    with pytest.raises(JobError, match="parameter strength must be finite"):
        transfer(strength=float("nan"))
    with pytest.raises(JobError, match="parameter mode must be 'projected' or 'aligned'"):
        transfer(mode="nearest")
    with pytest.raises(JobError, match="unknown transfer_detail parameter"):
        transfer(strenght=1.0)
    with pytest.raises(JobError, match="checkpoint not found"):
        transfer(target_checkpoint=str(tmp_path / "missing.pt"))
    with pytest.raises(JobError, match="transfer_detail needs a checkpoint_path"):
        JOBS["transfer_detail"]({"source_checkpoint": source, "target_checkpoint": siren}, {}, JobContext())
