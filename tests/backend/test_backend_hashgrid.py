"""The hash-grid field (Instant-NGP style encoding + softplus MLP): encoding, gradients, checkpoints, a fit."""

import json

import numpy as np
import pytest
import torch

from inr_blender.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from inr_blender.context import JobContext, JobError
from inr_blender.fields import HashGridEncoding, HashGridSDF, build_field, field_config, value_and_gradient
from inr_blender.fields.grad import finite_difference_gradient
from inr_blender.fileio import read_geometry
from inr_blender.fitting import resolve_params
from inr_blender.fitting.losses import igr_loss
from inr_blender.fitting.methods import METHODS, Batch, FitData
from inr_blender.fitting.methods.hashgrid import SIGN_POOL
from inr_blender.geometry.sampling import SignedDistanceEstimate, far_samples, knn_sigma, near_surface_signs
from inr_blender.jobs import JOBS

from conftest import needs_shared_data
from test_backend_fit import chamfer_to_sphere, extract_world, sphere_cloud


def connected_components(faces, num_vertices):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices, num_vertices))
    return components(graph, directed=False)[1]


def random_encoding(**kwargs):
    torch.manual_seed(0)
    enc = HashGridEncoding(
        **{"levels": 4, "features_per_level": 2, "log2_table_size": 10, "base_resolution": 4, "finest_resolution": 64, **kwargs}
    ).double()
    with torch.no_grad():
        enc.table.normal_()  # the published U(-1e-4, 1e-4) init is too small to see anything
    return enc


def random_sdf():
    torch.manual_seed(0)
    encoding = HashGridEncoding(levels=4, features_per_level=2, log2_table_size=10, base_resolution=4, finest_resolution=64)
    net = HashGridSDF(encoding, width=16, depth=2).double()
    with torch.no_grad():
        net.encoding.table.normal_()
        net.layers[-1].weight.normal_(0, 0.1)  # leave the zero (pure sphere) init
    return net


def test_encoding_shape_levels_and_init():
    enc = HashGridEncoding(levels=16, features_per_level=2, log2_table_size=13, base_resolution=16, finest_resolution=2048)
    assert enc.resolutions[0] == 16 and enc.resolutions[-1] == 2048
    assert enc.resolutions == sorted(enc.resolutions)
    # 17^3 = 4913 vertices fit a 2^13 table (dense, one-to-one); 23^3 = 12167 do not (hashed, 2^13 rows).
    assert enc.dense_levels == 1  # only the first level fits its table one-to-one
    assert enc.table.shape == (17**3 + 15 * 2**13, 2)
    assert enc.table.abs().max() <= 1e-4
    x = torch.rand(100, 3) * 2 - 1
    assert enc(x).shape == (100, 32)
    assert enc(torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [3.0, 0.0, -7.0]])).shape == (3, 32)  # clamped


def test_interpolation_is_continuous_across_grid_vertices():
    enc = random_encoding()
    for level, n in enumerate(enc.resolutions):
        # A vertex of this level (a hashed one for the finer levels), approached from all 8 sides.
        vertex = torch.tensor([[5.0, 3.0, 7.0]], dtype=torch.float64) % n / n * 2 - 1
        sides = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=torch.float64)
        values = enc(vertex + 1e-9 * sides)
        block = slice(2 * level, 2 * level + 2)
        assert (values[:, block] - enc(vertex)[:, block]).abs().max() < 1e-6, f"level {level} (resolution {n})"
    # Along a line crossing many cells of every level the encoding has no jumps.
    t = torch.linspace(-0.9, 0.9, 20001, dtype=torch.float64)[:, None]
    line = enc(t * torch.tensor([[1.0, 0.7, -0.4]], dtype=torch.float64))
    assert (line[1:] - line[:-1]).abs().max() < 0.05


def test_gradients_with_respect_to_the_input_flow():
    enc = random_encoding()
    x = (torch.rand(200, 3, dtype=torch.float64) * 1.8 - 0.9).requires_grad_(True)
    enc(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.norm(dim=1) > 0).all()
    net = random_sdf()
    _, g = value_and_gradient(net, x.detach())
    assert torch.isfinite(g).all() and (g.norm(dim=1) > 0).all()
    torch.autograd.gradcheck(lambda p: net(p), (x.detach()[:8].requires_grad_(True),))


def test_double_backward_for_the_eikonal_loss():
    net = random_sdf()
    x = (torch.rand(8, 3, dtype=torch.float64) * 1.8 - 0.9).requires_grad_(True)
    torch.autograd.gradgradcheck(lambda p: net(p), (x,))
    surface = torch.nn.functional.normalize(torch.randn(64, 3, dtype=torch.float64), dim=1) * 0.6
    loss, parts = igr_loss(net, surface, surface / 0.6, torch.rand(64, 3, dtype=torch.float64) * 2 - 1)
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_starts_as_the_sphere_sdf():
    net = build_field(field_config("hashgrid", log2_table_size=12))
    x = torch.rand(1000, 3) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(net(x), x.norm(dim=1) - 0.5, atol=1e-5)
    _, g = value_and_gradient(net, x)
    assert torch.allclose(g.norm(dim=1), torch.ones(1000), atol=1e-4)


def test_checkpoint_round_trip(tmp_path):
    config = field_config("hashgrid", levels=6, log2_table_size=11, finest_resolution=128, width=32)
    assert config == {
        "kind": "hashgrid",
        "levels": 6,
        "features_per_level": 2,
        "log2_table_size": 11,
        "base_resolution": 16,
        "finest_resolution": 128,
        "width": 32,
        "depth": 2,
        "beta": 100.0,
        "init_radius": 0.5,
    }
    torch.manual_seed(1)
    net = build_field(config)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    path = save_checkpoint({"config": config, "state_dict": net.state_dict(), "center": [0.0] * 3, "scale": 1.0}, str(tmp_path / "hg.pt"))
    loaded, ckpt = load_checkpoint(path)
    assert isinstance(loaded, HashGridSDF) and ckpt["config"] == config
    x = torch.rand(500, 3) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    wrong = dict(config, log2_table_size=12)
    save_checkpoint({"config": wrong, "state_dict": net.state_dict()}, str(tmp_path / "bad.pt"))
    with pytest.raises(JobError, match="does not match its network config"):
        load_checkpoint(str(tmp_path / "bad.pt"))


def test_hashgrid_params():
    p = resolve_params({"method": "hashgrid", "iterations": 900})
    assert p["levels"] == 12 and p["features_per_level"] == 2 and p["base_resolution"] == 16
    assert p["gradient"] == "autograd" and p["w_far"] == 1.0 and p["w_sign"] == 100.0
    assert p["learning_rate"] == 1e-2 and p["adam_eps"] == 1e-15 and p["lr_decay_interval"] == 300
    with pytest.raises(JobError, match="log2_table_size must be at most 30"):
        resolve_params({"method": "hashgrid", "log2_table_size": 40})
    with pytest.raises(JobError, match="finest_resolution must be at least base_resolution"):
        resolve_params({"method": "hashgrid", "finest_resolution": 8})
    with pytest.raises(JobError, match="levels must be positive"):
        resolve_params({"method": "hashgrid", "levels": 0})
    with pytest.raises(JobError, match="gradient must be 'autograd' or 'finite_difference'"):
        resolve_params({"method": "hashgrid", "gradient": "symbolic"})


def test_finite_difference_gradient_matches_autograd():
    net = random_sdf()
    x = torch.rand(300, 3, dtype=torch.float64) * 1.6 - 0.8
    f, g = value_and_gradient(net, x)
    f_fd, g_fd = finite_difference_gradient(net, x, 1e-6)
    assert torch.allclose(f, f_fd)
    # Central differences of a piecewise-smooth field: exact to O(h^2) away from cell faces.
    assert (g - g_fd).norm(dim=1).median() < 1e-5


def test_far_samples_are_signed_distances_of_the_cloud():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(20_000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    estimate = SignedDistanceEstimate(0.5 * d, d)
    points, sd = far_samples(estimate, 5000, 0.1)
    assert len(points) > 1000 and np.abs(points).max() <= 1.0
    exact = np.linalg.norm(points, axis=1) - 0.5
    assert np.all(np.abs(exact) >= 0.1 - 0.02)  # far from the cloud (the cloud's spacing is ~0.01)
    assert np.all(np.sign(sd) == np.sign(exact)) and np.abs(sd - exact).max() < 0.02


def unit_sphere_cloud(n=20_000, radius=0.5):
    d = np.random.default_rng(0).normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return radius * d, d


def test_near_surface_signs_agree_with_the_sphere():
    points, normals = unit_sphere_cloud()
    sigma = knn_sigma(points, 50)
    queries, sign = near_surface_signs(SignedDistanceEstimate(points, normals), sigma, 20_000, 0.01, seed=3)
    exact = np.linalg.norm(queries, axis=1) - 0.5
    known = sign != 0
    assert 0.3 < known.mean() < 0.95 and (sign[known] == np.sign(exact[known])).mean() > 0.999
    clear = known & (np.abs(exact) > 0.005)  # (a few wrong ones sit on the surface, in gaps of the random cloud)
    assert np.all(sign[clear] == np.sign(exact[clear]))
    assert np.abs(exact[~known]).max() < 0.01  # unknown only within the hinge's distance of the cloud
    assert 0.7 < exact.std() / np.median(sigma) < 1.3  # offsets of each point's own scale, as the fits draw them


def test_hashgrid_steps_draw_signs_from_a_pool_made_once():
    """prepare() estimates the signs of a pool of near-surface samples; the steps only draw from it on the device
    (here with the k-d tree gone)."""
    points, normals = unit_sphere_cloud(4000)
    p = resolve_params({"method": "hashgrid", "levels": 4, "log2_table_size": 10, "finest_resolution": 32, "batch_size": 256, "device": "cpu"})
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    method = METHODS.get("hashgrid")(p, FitData(points, normals, as_tensor(points), as_tensor(normals), torch.device("cpu"), JobContext()))
    field = method.build_field(method.field_config(p))
    method.prepare(field)
    assert method.sign_points is not None and len(method.sign_points) == len(method.signs) == SIGN_POOL
    exact = method.sign_points.norm(dim=1) - 0.5
    known = method.signs != 0
    assert known.float().mean() > 0.3 and (method.signs[known] == torch.sign(exact[known])).float().mean() > 0.99
    clear = known & (exact.abs() > 0.02)  # beyond the cloud's gaps (4000 points: spacing ~0.014)
    assert torch.equal(method.signs[clear], torch.sign(exact[clear]))
    method.estimate = None  # a step that still asked the k-d tree would fail
    idx = torch.randint(len(points), (256,))
    loss = method.loss(field, Batch(as_tensor(points)[idx], as_tensor(normals)[idx], None, idx, 256), 0)
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in field.parameters())


@pytest.mark.slow  # ~20 s each on 2 cores
@pytest.mark.parametrize("guided", [False, True])
def test_sign_terms_leave_one_surface_on_fandisk(tmp_path, guided):
    """The field starts as a sphere of radius 0.5 and the grid's features are local, so parts of that
    sphere deep inside a shape get no training signal: without the far-field and sign terms they stay
    as extra closed surfaces inside fandisk (10 components measured, the largest extra one with 20%
    of the vertices); with them, the shape's surface holds nearly all of them."""
    mesh = read_geometry(str(needs_shared_data("meshes", "fandisk.obj")))
    path = str(tmp_path / "hg.pt")
    params = {"method": "hashgrid", "iterations": 300, "device": "cpu", "checkpoint_path": path}
    if not guided:
        params.update(w_far=0, w_sign=0)
    JOBS["fit_sdf"](params, {"vertices": mesh["vertices"], "faces": mesh["faces"]}, JobContext())
    out = extract_world(path, resolution=128, keep_debris=True)  # the fit's own surfaces (extraction drops debris)
    labels = connected_components(out["faces"], len(out["vertices"]))
    sizes = np.sort(np.bincount(labels))[::-1]
    second = sizes[1] / sizes.sum() if len(sizes) > 1 else 0.0
    assert second < 0.01 if guided else second > 0.05


# Why 0.03: the bound of test_backend_fit (0.05, from the 48^3 extraction grid's
# cells of 5.3% of the radius) tightened, since this fit measured 0.0126 (the
# same as IGR's fits, i.e. the extraction's own error); the starting field (the
# sphere of local radius 0.5, the data being at 0.8) scores about 0.37, so the
# bound fails any fit that did not move the surface onto the data.
HASHGRID_CHAMFER_BOUND = 0.03


@pytest.mark.slow
def test_hashgrid_fit_of_a_sphere_point_cloud_through_the_jobs(tmp_path):
    points, _ = sphere_cloud()
    path = str(tmp_path / "hashgrid.pt")
    # A small grid (8 levels to resolution 128, 2^12 rows) and batch keep this a few seconds on CPU.
    params = {
        "method": "hashgrid",
        "iterations": 300,
        "levels": 8,
        "log2_table_size": 12,
        "finest_resolution": 128,
        "batch_size": 512,
        "device": "cpu",
        "checkpoint_path": path,
    }
    result, _ = JOBS["fit_sdf"](params, {"points": points}, JobContext())
    json.dumps(result, allow_nan=False)
    assert result["method"] == "hashgrid" and not result["has_normals"] and result["iterations_run"] == 300
    assert result["loss_history"][-1][1] < result["loss_history"][0][1]
    ckpt = read_checkpoint(path)
    assert ckpt["config"]["kind"] == "hashgrid" and ckpt["config"]["levels"] == 8
    assert ckpt["params"]["adam_eps"] == 1e-15
    mesh = extract_world(path)
    assert chamfer_to_sphere(mesh) < HASHGRID_CHAMFER_BOUND
    outward = np.einsum("ij,ij->i", mesh["normals"], mesh["vertices"] - np.asarray(result["center"]))
    assert (outward > 0).mean() > 0.99


def test_sign_term_penalises_only_the_wrong_sign():
    net = random_sdf()
    surface = torch.zeros(4, 3, dtype=torch.float64)
    off = torch.tensor([[0.9, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.9, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        f = net(off)
    _, right = igr_loss(net, surface, None, off, off_sign=torch.sign(f), w_sign=10.0)
    assert right["sign"] == 0
    _, wrong = igr_loss(net, surface, None, off, off_sign=-torch.sign(f), w_sign=10.0)
    assert torch.isclose(wrong["sign"], 10.0 * f.abs().mean())
    _, unknown = igr_loss(net, surface, None, off, off_sign=torch.zeros(3, dtype=torch.float64), w_sign=10.0)
    assert unknown["sign"] == 0
    _, some = igr_loss(net, surface, None, off, off_sign=torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64) * torch.sign(f), w_sign=10.0)
    assert torch.isclose(some["sign"], 10.0 * f[2].abs())  # the mean over the points of known sign only
