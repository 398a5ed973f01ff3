"""The fused (Triton) hash-grid encoding against the torch reference: values, gradients, dispatch, a fit.

Where CUDA is available the kernels run compiled on it (the GPU check, bench/gpu_check.sh); elsewhere in Triton's
interpreter on CPU tensors (``TRITON_INTERPRET=1``, which must be set before the kernels' module is imported:
the ``kernels`` fixture does that). The interpreter is slow, so the grids, batches and fits here are tiny.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from inr_blender.context import JobContext
from inr_blender.fields import HashGridEncoding, hashgrid, value_and_gradient
from inr_blender.fields.grad import finite_difference_gradient
from inr_blender.fitting.losses import igr_loss
from inr_blender.jobs import JOBS

from test_backend_fit import sphere_cloud

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install -r requirements-dev.txt)")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# (levels, features, log2 table size, base resolution, finest resolution): dense and hashed levels mixed, only
# hashed ones, a single dense level, features that are not a power of two
CONFIGS = {
    "mixed": (4, 2, 10, 4, 64),
    "four-features": (3, 4, 8, 2, 32),
    "one-dense-level": (1, 1, 12, 8, 8),
    "hashed-three-features": (5, 3, 6, 16, 128),
}


@pytest.fixture(scope="module")
def kernels():
    """The kernels' module, built for the interpreter when the tests run on the CPU."""
    if DEVICE.type == "cpu":
        previous = os.environ.get("TRITON_INTERPRET")
        os.environ["TRITON_INTERPRET"] = "1"
    module = importlib.import_module("inr_blender.fields.hashgrid_triton")
    if DEVICE.type == "cpu" and not module.INTERPRETED:  # imported earlier without the interpreter: build again
        module = importlib.reload(module)
    assert module.runs_on(DEVICE)
    yield module
    if DEVICE.type == "cpu":
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


@pytest.fixture
def use():
    """use('torch' | 'triton' | 'auto'): the encoding's implementation for this test."""

    def choose(name: str) -> None:
        hashgrid.implementation_override = name

    yield choose
    hashgrid.implementation_override = None


def encoding(config: str) -> HashGridEncoding:
    levels, features, log2, base, finest = CONFIGS[config]
    torch.manual_seed(0)
    enc = HashGridEncoding(levels=levels, features_per_level=features, log2_table_size=log2, base_resolution=base, finest_resolution=finest)
    with torch.no_grad():
        enc.table.normal_()  # the published U(-1e-4, 1e-4) would hide every difference
    return enc.to(DEVICE)


def sample_points(enc: HashGridEncoding, n: int = 600) -> torch.Tensor:
    """Random points of [-1.3, 1.3]^3 (some outside the cube), vertices and cell faces of every level (cell borders,
    where floor decides the cell), the cube's faces and corners, and the points where the clamp starts."""
    g = torch.Generator().manual_seed(1)
    points = [torch.rand(n, 3, generator=g) * 2.6 - 1.3]
    for res in enc.resolutions:
        vertex = torch.randint(0, res + 1, (40, 3), generator=g) / res * 2 - 1  # every coordinate on a border
        face = torch.rand(40, 3, generator=g) * 2 - 1
        face[:, 0] = vertex[:, 0]  # one coordinate on a border
        points += [vertex, face]
    corners = torch.tensor([[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)])
    points += [corners, torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.3, -0.2], [-1.0, 2.0, 0.5], [1.0000001, -1.0000001, 0.0]])]
    return torch.cat(points).to(DEVICE)


def run(enc: HashGridEncoding, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoding, table gradient and input gradient of sum(encoding * grad)."""
    enc.table.grad = None
    x = x.clone().requires_grad_(True)
    out = enc(x)
    (out * grad).sum().backward()
    assert enc.table.grad is not None and x.grad is not None
    return out.detach(), enc.table.grad.clone(), x.grad


@needs_triton
@pytest.mark.parametrize("config", list(CONFIGS))
def test_values_and_gradients_match_the_torch_path(kernels, use, config):
    enc = encoding(config)
    x = sample_points(enc)
    grad = torch.randn(len(x), enc.output_dim, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    use("torch")
    reference = run(enc, x, grad)
    use("triton")
    assert enc.fused(DEVICE)
    fused = run(enc, x, grad)
    values, table_grad, x_grad = fused
    # the same arithmetic up to the order of the sums (corners, and levels for d/dx): float32 rounding
    torch.testing.assert_close(values, reference[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(table_grad, reference[1], rtol=1e-5, atol=1e-5)
    scale = reference[2].abs().max().item()  # d/dx grows with the finest resolution
    torch.testing.assert_close(x_grad, reference[2], rtol=1e-5, atol=1e-6 * scale)
    outside = (x.abs() > 1).any(dim=1)
    assert outside.any() and (x_grad[x.abs() > 1.001] == 0).all()  # clamped coordinates pass no gradient
    assert (table_grad != 0).any() and (x_grad != 0).any()


@needs_triton
def test_only_the_gradients_asked_for(kernels, use):
    enc = encoding("mixed")
    x = sample_points(enc, 100)
    use("triton")
    enc(x).sum().backward()  # points without grad: the table's only
    assert enc.table.grad is not None and (enc.table.grad != 0).any()
    enc.table.grad = None
    enc.table.requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    enc(xg).sum().backward()  # a frozen table: the points' only
    assert enc.table.grad is None and xg.grad is not None
    use("torch")
    _, g = value_and_gradient(lambda p: enc(p).sum(dim=1), x)
    torch.testing.assert_close(xg.grad, g, rtol=1e-5, atol=1e-6 * g.abs().max().item())
    use("triton")
    with torch.no_grad():
        assert enc(x).shape == (len(x), enc.output_dim)
    assert enc(x[:0]).shape == (0, enc.output_dim)


@needs_triton
def test_double_backward_is_refused_with_what_to_do(kernels, use):
    enc = encoding("mixed")
    x = sample_points(enc, 50)
    use("triton")
    _, g = value_and_gradient(lambda p: enc(p).sum(dim=1), x)  # first order: fine
    assert g.shape == x.shape
    with pytest.raises(RuntimeError, match="no double backward.*finite differences"):
        value_and_gradient(lambda p: enc(p).sum(dim=1), x, create_graph=True)


@needs_triton
def test_finite_difference_losses_match_the_torch_path(kernels, use):
    """The hash-grid SDF's loss through central differences: the same value and parameter gradients either way."""
    from inr_blender.fields.hashgrid import HashGridSDF

    torch.manual_seed(0)
    net = HashGridSDF(HashGridEncoding(levels=3, log2_table_size=8, base_resolution=4, finest_resolution=32), width=16, depth=2).to(DEVICE)
    with torch.no_grad():
        net.encoding.table.normal_(0, 0.1)
        net.layers[-1].weight.normal_(0, 0.1)
    g = torch.Generator().manual_seed(3)
    surface, off = (torch.rand(64, 3, generator=g) - 0.5).to(DEVICE), (torch.rand(64, 3, generator=g) * 2 - 1).to(DEVICE)
    results = []
    for name in ("torch", "triton"):
        use(name)
        net.zero_grad()
        loss, _ = igr_loss(net, surface, None, off, fd_step=2.0 / 32)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]))
        _, fd = finite_difference_gradient(net, off, 1e-2)
        results[-1][1].append(fd.detach())
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-7)
    for fused, reference in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-6)


def test_dispatch(use, monkeypatch):
    enc = HashGridEncoding(levels=2, log2_table_size=8, base_resolution=4, finest_resolution=8)
    assert not enc.fused("cpu")  # auto: the torch path on the CPU (and MPS)
    monkeypatch.setenv(hashgrid.ENVIRONMENT, "torch")
    assert not enc.fused("cuda")
    monkeypatch.setenv(hashgrid.ENVIRONMENT, "nonsense")
    with pytest.raises(ValueError, match="INR_HASHGRID"):
        enc.fused("cpu")
    use("torch")  # the module's override wins over the environment
    assert not enc.fused("cuda")
    if HAS_TRITON:
        use("auto")
        assert enc.fused("cuda") == (hashgrid.fused_kernels() is not None)
        assert not enc.to(torch.float64).fused("cuda")  # float32 only; the torch path takes the rest


@needs_triton
def test_the_probe_compares_the_kernels_with_the_torch_path(kernels):
    """What the dispatch runs once per CUDA device before trusting the kernels (a machine without a C compiler fails
    there, and gets the torch path): here on this test's device."""
    differences = hashgrid.probe(DEVICE)
    assert set(differences) == {"values", "input gradients", "table gradients"}
    assert all(0.0 <= d < 1e-5 for d in differences.values()), differences


def test_the_backend_imports_without_triton():
    """Importing the backend (every job) does not import Triton; on the CPU a fit never does."""
    code = (
        "import sys; import inr_blender.jobs; import inr_blender.fitting; from inr_blender.fields import HashGridEncoding; import torch;"
        "HashGridEncoding(levels=2, log2_table_size=8)(torch.rand(4, 3)); print('triton' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "INR_HASHGRID"}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@needs_triton
def test_a_tiny_fit_through_the_fused_path_follows_the_torch_path(kernels, use, tmp_path):
    """fit_sdf with the fused encoding: the hash-grid method switches to finite differences (its default is
    autograd, which would need a double backward) and the loss follows the torch path's with the same differences."""
    points, _ = sphere_cloud(1000)
    params = {
        "method": "hashgrid",
        "iterations": 10,
        "levels": 2,
        "log2_table_size": 10,
        "base_resolution": 4,
        "finest_resolution": 32,
        "batch_size": 128,
        "convergence_tolerance": 0,
        "device": DEVICE.type,
    }
    histories = {}
    for name, gradient in (("torch", "finite_difference"), ("triton", "autograd")):
        use(name)
        settings = {**params, "gradient": gradient, "checkpoint_path": str(tmp_path / f"{name}.pt")}
        result, _ = JOBS["fit_sdf"](settings, {"points": points}, JobContext())
        histories[name] = np.array([loss for _, loss in result["loss_history"]])
    torch_losses, fused_losses = histories["torch"], histories["triton"]
    assert fused_losses[-1] < 0.1 * fused_losses[0]  # it fits
    np.testing.assert_allclose(fused_losses, torch_losses, rtol=1e-3)
