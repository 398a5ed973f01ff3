"""Queries built on range analysis: extraction that keeps what the distance-field test culls."""

import numpy as np
import pytest
import torch
from torch import nn

from inr_blender.checkpoint import save_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields import build_field
from inr_blender.fields.factory import field_config
from inr_blender.geometry.extraction import extract_mesh
from inr_blender.geometry.sparse_extraction import extract_mesh_sparse
from inr_blender.jobs import JOBS
from inr_blender.ranges import MODES, AffineForm, RangeContext
from inr_blender.ranges.evaluate import form_range
from inr_blender.ranges.intersection import fields_intersect

CPU = torch.device("cpu")


def steep_slabs(thin_at: float = 0.3, half_thickness: float = 0.01, steepness: float = 20.0) -> nn.Module:
    """min(a, b) as an exact ReLU network: a = steepness * (|z - thin_at| - half_thickness), a thin slab whose field
    is far from a distance field (gradient ``steepness``), and b = |z + 0.5| - 0.1, a thick slab with a distance field."""
    first = nn.Linear(3, 4)
    second = nn.Linear(4, 2)
    third = nn.Linear(2, 3)
    last = nn.Linear(3, 1)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [0, 0, 1.0], [0, 0, -1.0]]))
        first.bias.copy_(torch.tensor([-thin_at, thin_at, 0.5, -0.5]))
        second.weight.copy_(torch.tensor([[steepness, steepness, 0, 0], [0, 0, 1.0, 1.0]]))
        second.bias.copy_(torch.tensor([-steepness * half_thickness, -0.1]))
        third.weight.copy_(torch.tensor([[0, 1.0], [0, -1.0], [-1.0, 1.0]]))  # b, -b, b - a
        third.bias.zero_()
        last.weight.copy_(torch.tensor([[1.0, -1.0, -1.0]]))  # relu(b) - relu(-b) - relu(b - a) = min(a, b)
        last.bias.zero_()
    return nn.Sequential(first, nn.ReLU(), second, third, nn.ReLU(), last, nn.Flatten(0))


def z_levels(vertices: np.ndarray) -> set[float]:
    return {round(float(z), 2) for z in np.unique(vertices[:, 2])}


@pytest.mark.slow
def test_range_culling_keeps_a_thin_steep_slab_the_distance_test_misses():
    field = steep_slabs()
    dense, _, _ = extract_mesh(field, 129, CPU, JobContext())[:3]
    lipschitz = extract_mesh_sparse(field, 129, CPU, JobContext())
    ranged = extract_mesh_sparse(field, 129, CPU, JobContext(), ranges="affine_fixed")
    assert {0.29, 0.31} <= z_levels(dense)  # the thin slab's two faces are on the grid
    assert not {0.29, 0.31} & z_levels(lipschitz[0])  # culled: its field is 20x steeper than a distance field
    assert {0.29, 0.31} <= z_levels(ranged[0])
    assert len(ranged[0]) == len(dense) and np.allclose(np.sort(ranged[0], axis=0), np.sort(dense, axis=0), atol=1e-6)
    stats = ranged[3]
    assert stats["evaluations"] < 0.2 * 129**3 and stats["box_evaluations"] > 0


def test_range_culling_certifies_a_field_without_surface():
    field = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    with torch.no_grad():
        field[0].weight.zero_()
        field[0].bias.fill_(1.0)
    with pytest.raises(JobError, match="range analysis certifies it never reaches the level 0"):
        extract_mesh_sparse(field, 33, CPU, JobContext(), ranges="interval")


@pytest.fixture(scope="module")
def small_field(tmp_path_factory):
    d = np.random.default_rng(0).normal(size=(2000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    path = str(tmp_path_factory.mktemp("ranges") / "siren.pt")
    JOBS["fit_sdf"](
        {"method": "igr", "width": 32, "depth": 2, "iterations": 200, "batch_size": 1024, "checkpoint_path": path, "convergence_tolerance": 0},
        {"points": 0.5 * d, "normals": d},
        JobContext(),
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("mode, fraction", [("affine_all", 0.25), ("interval", 0.6)])
def test_guaranteed_extraction_job_gives_the_dense_mesh(small_field, mode, fraction):
    """The same mesh as dense marching cubes, with fewer evaluations (measured on this IGR field at 49^3:
    64k of 118k points with intervals, 21k with affine_all; 27k for the distance-field test)."""

    def run(method):
        return JOBS["extract_mesh"]({"checkpoint_path": small_field, "resolution": 49, "method": method, "range_mode": mode}, {}, JobContext())

    (dense, a), (guaranteed, b) = run("dense"), run("guaranteed")
    assert guaranteed["method"] == "guaranteed" and guaranteed["box_evaluations"] > 0
    assert guaranteed["evaluations"] <= fraction * dense["evaluations"]
    assert len(a["vertices"]) == len(b["vertices"])
    assert np.allclose(np.sort(a["vertices"], axis=0), np.sort(b["vertices"], axis=0), atol=1e-6)


@pytest.mark.slow
def test_guaranteed_extraction_refusals(small_field, tmp_path):
    with pytest.raises(JobError, match="range_mode must be .interval., .*or .affine_all."):
        JOBS["extract_mesh"]({"checkpoint_path": small_field, "method": "guaranteed", "range_mode": "taylor"}, {}, JobContext())
    d = np.random.default_rng(0).normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    idf = str(tmp_path / "idf.pt")
    JOBS["fit_sdf"](
        {
            "method": "idf",
            "base_width": 16,
            "base_depth": 1,
            "detail_width": 16,
            "detail_depth": 1,
            "init": "random",
            "iterations": 5,
            "batch_size": 256,
            "checkpoint_path": idf,
        },
        {"points": 0.5 * d, "normals": d},
        JobContext(),
    )
    with pytest.raises(JobError, match="range analysis has no rule for DisplacementField"):
        JOBS["extract_mesh"]({"checkpoint_path": idf, "method": "guaranteed", "resolution": 17}, {}, JobContext())


# Field against field under full transforms: parallelepipeds bounded as affine forms.

SPHERE_CONFIG = field_config(
    "hashgrid", levels=2, features_per_level=2, log2_table_size=8, base_resolution=4, finest_resolution=8, width=8, depth=1, init_radius=0.5
)


def sphere_field() -> nn.Module:
    """|x| - 0.5 exactly: a hash-grid SDF at its initialisation (its residual's last layer is zero)."""
    torch.manual_seed(0)
    return build_field(SPHERE_CONFIG)


def placement(angle_deg: float, location=(1.0, 0.0, 0.0), scale=(2.0, 0.2, 0.2)) -> np.ndarray:
    """Local -> world: scale (non-uniform), then turn about z, then move. The sphere |x| = 0.5 becomes an ellipsoid of
    semi-axes 0.5 * ``scale`` around ``location``."""
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    m = np.eye(4)
    m[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag(scale)
    m[:3, 3] = location
    return m


@pytest.mark.parametrize("mode", MODES)
def test_form_range_bounds_a_parallelepiped(mode):
    """form_range of boxes through a turned, sheared map (float64 forms on a float32 field) contains every sampled value."""
    torch.manual_seed(3)
    field = nn.Sequential(nn.Linear(3, 16), nn.Softplus(beta=5.0), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))
    g = torch.Generator().manual_seed(4)
    centre = torch.rand(32, 3, generator=g, dtype=torch.float64) * 2 - 1
    half = 0.02 + 0.3 * torch.rand(32, 3, generator=g, dtype=torch.float64)
    m = torch.as_tensor(placement(35.0, (0.1, -0.2, 0.3), (1.5, 0.4, 0.8)))
    m[0, 2] = 0.3  # and a shear
    form = AffineForm.from_box(centre - half, centre + half, RangeContext(mode)).linear(m[:3, :3], m[:3, 3])
    lo, hi = form_range(field, form)
    assert lo.shape == hi.shape == (32,)
    unit = torch.rand(400, 3, generator=g, dtype=torch.float64) * 2 - 1  # points of each box, then mapped
    points = ((centre[:, None] + unit[None] * half[:, None]) @ m[:3, :3].T + m[:3, 3]).float()
    with torch.no_grad():
        values = field(points.reshape(-1, 3)).reshape(32, -1).double()
    assert (lo.double() <= values.amin(dim=1)).all() and (hi.double() >= values.amax(dim=1)).all()
    if mode != "interval":  # the parallelepiped, not its bounding box: tighter than the bounding box's range
        from inr_blender.ranges import field_range

        bounding_half = half @ m[:3, :3].abs().T
        image_centre = centre @ m[:3, :3].T + m[:3, 3]
        box_lo, box_hi = field_range(field, image_centre - bounding_half, image_centre + bounding_half, mode)
        assert ((hi - lo) < (box_hi - box_lo) - 1e-3).any()


@pytest.mark.parametrize("angle, verdict", [(0.0, "intersecting"), (30.0, "intersecting"), (45.0, "disjoint"), (90.0, "disjoint")])
def test_fields_intersect_follows_rotation_and_non_uniform_scale(angle, verdict):
    """A sphere of radius 0.5 at the origin, and a sphere scaled (2, 0.2, 0.2) into an ellipsoid of semi-axes (1, 0.1,
    0.1) around (1, 0, 0), turned ``angle`` about z: along x (or 30 degrees off) it reaches into the sphere; turned 45
    or 90 degrees it passes about 0.1 or 0.4 away. The second field's domain cube turns with it (a box of 4 x 0.4 x
    0.4), and the first field's boxes map to parallelepipeds of its frame."""
    a, b = sphere_field(), sphere_field()
    m = placement(angle)
    result = fields_intersect(a, b, torch.eye(4, dtype=torch.float64), torch.as_tensor(m), max_depth=6)
    assert result.verdict == verdict
    if verdict == "intersecting":
        w = result.witness_pair.double().numpy()
        assert np.abs(np.linalg.norm(w, axis=1) - 0.5).max() < 1e-4  # on the sphere, on both sides of the ellipsoid
        local = (w - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T
        assert (np.linalg.norm(local, axis=1) - 0.5).prod() < 0
        assert np.linalg.norm(w[0] - w[1]) <= 2.0 / 2**6 * 3**0.5  # within one leaf box
    else:
        assert len(result.lower) == 0
    # the same placement relative to each other, both moved and turned: the same verdict
    world = placement(30.0, (3.0, -1.0, 2.0), (1.5, 1.5, 1.5))
    again = fields_intersect(a, b, torch.as_tensor(world), torch.as_tensor(world @ m), max_depth=6)
    assert again.verdict == verdict


def test_fields_intersect_frames_as_center_and_scale_or_matrices():
    """A (center, scale) frame is the matrix scale * I moved to center: both give the same boxes."""
    a, b = sphere_field(), sphere_field()
    pairs = [((torch.zeros(3, dtype=torch.float64), 2.0), (torch.tensor([1.6, 0.0, 0.0], dtype=torch.float64), 2.0))]
    pairs.append(tuple(torch.as_tensor(np.diag([s, s, s, 1.0]) + np.pad(c.numpy()[:, None], ((0, 1), (3, 0)))) for c, s in pairs[0]))
    (tuple_result, matrix_result) = (fields_intersect(a, b, fa, fb, max_depth=4) for fa, fb in pairs)
    assert tuple_result.verdict == matrix_result.verdict == "intersecting"
    assert torch.equal(tuple_result.lower, matrix_result.lower) and torch.equal(tuple_result.upper, matrix_result.upper)
    with pytest.raises(JobError, match="singular"):
        fields_intersect(a, b, torch.eye(4, dtype=torch.float64), torch.diag(torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64)))
    with pytest.raises(JobError, match="affine"):
        fields_intersect(a, b, torch.eye(4, dtype=torch.float64), torch.ones(4, 4, dtype=torch.float64))


def test_intersection_job_places_the_other_field_by_its_matrix(tmp_path):
    """Checkpoints put the second sphere at (1, 0, 0) with radius 0.1: disjoint. ``other_matrix`` places it
    instead (its local frame in the first's), as the ellipsoid that reaches into the first sphere, or turned away."""

    def save(name, center, scale):
        state = {"config": SPHERE_CONFIG, "state_dict": sphere_field().state_dict(), "center": list(center), "scale": scale}
        return save_checkpoint(state, str(tmp_path / name))

    base = {"checkpoint_path": save("a.pt", (0.0, 0.0, 0.0), 1.0), "other_checkpoint_path": save("b.pt", (1.0, 0.0, 0.0), 0.2)}
    run = lambda **params: JOBS["check_intersection"]({**base, **params}, {}, JobContext())  # noqa: E731
    assert run()[0]["verdict"] == "disjoint"
    result, arrays = run(other_matrix=placement(0.0).tolist())
    assert result["verdict"] == "intersecting" and arrays["witness_pair"].shape == (2, 3)
    assert abs(np.linalg.norm(result["witness"]) - 0.5) < 1e-3
    assert run(other_matrix=placement(90.0).tolist())[0]["verdict"] == "disjoint"
    with pytest.raises(JobError, match="other_matrix must be a 4x4 matrix"):
        run(other_matrix=[[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(JobError, match="singular"):
        run(other_matrix=np.diag([1.0, 0.0, 1.0, 1.0]).tolist())
    with pytest.raises(JobError, match="other_matrix places a second field"):
        JOBS["check_intersection"](
            {"checkpoint_path": base["checkpoint_path"], "other_matrix": np.eye(4).tolist()},
            {"vertices": np.zeros((3, 3)), "faces": np.array([[0, 1, 2]])},
            JobContext(),
        )
