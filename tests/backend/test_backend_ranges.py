"""Range analysis (inr_blender.ranges): soundness, tightness, classification and bad input.

Soundness is checked against dense sampling: on random boxes of several sizes,
for randomly initialised small networks of every layer type and field kind the
project has, every mode's bounds must contain the min and max of the field over
a 9^3 grid plus random points of the box, up to a slack of 1e-5 relative to the
values' size (the sampled values carry float rounding of their own).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from inr_blender.context import JobError
from inr_blender.fields import HashGridEncoding, HashGridSDF, IGRNet, Siren
from inr_blender.fields.deepsdf import DeepSDFDecoder, LatentShape
from inr_blender.fields.displacement import DisplacementField
from inr_blender.fields.encodings import PositionalEncoding
from inr_blender.fields.nerf import ClassicNeRF, FastNeRF
from inr_blender.ranges import MODES, classify, field_range
from inr_blender.ranges.evaluate import _round_outwards
from inr_blender.ranges.search import RANGE_CHUNK, box_ranges, range_chunk
from inr_blender.render.surface import DensitySurface

SIZES = (0.4, 0.05, 0.005)  # box half-widths (per axis, scaled by 0.5 .. 1.5)
BOXES = 12  # per size
# The published modes, then the reduced product with intervals (option ``intersect``).
VARIANTS = [(mode, {}) for mode in MODES] + [(mode, {"intersect": True}) for mode in MODES[1:]]


def _mlp(activation: nn.Module, width: int = 24, depth: int = 3, head: nn.Module | None = None, inputs: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = [] if head is None else [head]
    for _ in range(depth):
        layers += [nn.Linear(inputs, width), activation]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, 1))


def _hash_encoding() -> HashGridEncoding:
    # Levels at resolutions 4..32 with 2^10 rows: the coarse levels are dense, the fine ones hashed.
    enc = HashGridEncoding(levels=4, features_per_level=2, log2_table_size=10, base_resolution=4, finest_resolution=32)
    with torch.no_grad():
        enc.table.uniform_(-1.0, 1.0)  # the published U(-1e-4, 1e-4) would hide the encoding
    return enc


def _hashgrid_sdf() -> HashGridSDF:
    net = HashGridSDF(_hash_encoding(), width=16, depth=2)
    with torch.no_grad():
        nn.init.normal_(net.layers[-1].weight, 0.0, 0.3)  # the residual starts at zero; make it matter
    return net


FIELDS = {
    "igr": lambda: IGRNet(width=24, depth=4, skip=[2]),  # softplus beta 100, geometric init, skip
    "igr_soft": lambda: IGRNet(width=24, depth=3, beta=5.0, skip=[1, 2], geometric_init=False),
    "igr_relu": lambda: IGRNet(width=24, depth=4, beta=0.0, skip=[2]),
    "siren": lambda: Siren(width=24, depth=2),
    "hashgrid": _hashgrid_sdf,
    "relu": lambda: _mlp(nn.ReLU()),
    "tanh": lambda: _mlp(nn.Tanh()),
    "elu": lambda: _mlp(nn.ELU()),
    "elu_scaled": lambda: _mlp(nn.ELU(alpha=1.7)),
    "sigmoid": lambda: _mlp(nn.Sigmoid()),
    "softplus": lambda: _mlp(nn.Softplus(beta=3.0)),
    "fourier": lambda: _mlp(nn.ReLU(), head=PositionalEncoding(4), inputs=27),
    "nerf": lambda: ClassicNeRF(position_frequencies=4, direction_frequencies=2, width=24, depth=4, skip=2),
    "nerf_fast": lambda: FastNeRF(_hash_encoding(), geometry_features=3, width=16, occupancy_resolution=4),
    "density_surface": lambda: DensitySurface(ClassicNeRF(4, 2, 24, 4, 2), threshold=0.5),
    # a shape of a shape space: weight-normalised ReLU decoder with the code and point again at layer 2, tanh
    "deepsdf": lambda: LatentShape(DeepSDFDecoder(4, width=24, depth=4, skip=2), torch.randn(4)),
    "deepsdf_occupancy": lambda: LatentShape(DeepSDFDecoder(4, width=24, depth=3, skip=None, output="occupancy"), torch.randn(4)),
}
# MLPs with generic activations: the published affine modes were never wider than intervals on any box we sampled.
PLAIN_MLPS = ("relu", "tanh", "elu", "elu_scaled", "sigmoid", "softplus")


def make_field(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return FIELDS[kind]().eval()


def scalar(field: nn.Module):
    """What field_range bounds: a NeRF's density, any other field's value."""
    return field.density if isinstance(field, (ClassicNeRF, FastNeRF)) else field


def random_boxes(half: float, count: int = BOXES, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes centred in [-1, 1]^3 (some crossing the cube's faces), half-widths half * (0.5 .. 1.5) per axis."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(count, 3, generator=g) * 2.0 - 1.0
    centre[:2, 0] = torch.tensor([-1.0, 1.0])  # on the faces, where the hash grid clamps
    extent = half * (0.5 + torch.rand(count, 3, generator=g))
    return centre - extent, centre + extent


def sampled_range(field: nn.Module, lower: torch.Tensor, upper: torch.Tensor, grid: int = 9, extra: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Min and max (B,) of the field over a grid^3 lattice plus ``extra`` random points of each box."""
    t = torch.linspace(0.0, 1.0, grid)
    lattice = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1).reshape(-1, 3)
    unit = torch.cat([lattice, torch.rand(extra, 3, generator=torch.Generator().manual_seed(2))])
    points = lower[:, None, :] + unit[None] * (upper - lower)[:, None, :]
    with torch.no_grad():
        values = scalar(field)(points.reshape(-1, 3)).reshape(len(lower), -1)
    return values.amin(dim=1), values.amax(dim=1)


def slack(low: torch.Tensor, high: torch.Tensor) -> float:
    return 1e-5 * max(1.0, float(low.abs().max()), float(high.abs().max()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(FIELDS))
def test_bounds_contain_the_sampled_range(kind):
    """Interval and every affine mode (with and without ``intersect``) are sound on boxes of every size."""
    field = make_field(kind)
    for half in SIZES:
        lower, upper = random_boxes(half)
        low, high = sampled_range(field, lower, upper)
        tol = slack(low, high)
        for mode, options in VARIANTS:
            lo, hi = field_range(field, lower, upper, mode, **options)
            assert lo.shape == hi.shape == (BOXES,) and torch.isfinite(lo).all() and torch.isfinite(hi).all()
            assert (lo <= low + tol).all(), (kind, half, mode, options, float((lo - low).max()))
            assert (hi >= high - tol).all(), (kind, half, mode, options, float((high - hi).max()))


# The half-width from which the published affine modes (fixed, truncate, append, all) are no wider than
# interval arithmetic on every box, per field kind; measured on 32 boxes per size (the docstring below).
PURE_AFFINE_NO_WIDER_BELOW = {kind: 0.4 for kind in PLAIN_MLPS + ("igr_soft",)} | {
    "igr": 0.05,
    "igr_relu": 0.05,
    "fourier": 0.05,
    "nerf": 0.05,
    "density_surface": 0.05,
    "siren": 0.005,
    "hashgrid": 0.0005,
    "nerf_fast": 0.0005,
    "deepsdf": 0.4,
    "deepsdf_occupancy": 0.4,
}


@pytest.mark.parametrize("kind", list(FIELDS))
def test_affine_no_wider_than_interval(kind):
    """Where affine arithmetic is no wider than interval arithmetic, box by box.

    With ``intersect`` (the reduced product: interval bounds carried along and
    intersected at every layer) it holds on every box of every size, by
    construction. The published modes alone are wider than intervals on large
    boxes for several kinds: there the linearisation errors of many neurons,
    which intervals do not make, outweigh the correlations affine forms keep.
    Measured on 32 boxes per half-width, "boxes wider (worst ratio)" for
    fixed / truncate / append / all:

    - ReLU, tanh, ELU, sigmoid, softplus MLPs, and IGR with softplus beta 5 and
      PyTorch's initialisation: never, at half-widths 0.4, 0.05, 0.005, 0.0005;
    - IGR (beta 100, geometric init), half-width 0.4: 11 (1.83x) / 9 / 6 / 0;
      with ReLU: 15 (1.92x) / 10 / 9 / 0; never from 0.05 down;
    - Fourier features + ReLU MLP, NeRF density, 0.4: 32 (2.4x, 3.0x) / 32 / 29-32 / 0;
      never from 0.05 down;
    - SIREN (omega0 30), 0.4: all 32 in every mode (1.57x, affine_all 1.26x); 0.05:
      30 (1.61x) / 27 / 26 / 5; never from 0.005 down;
    - hash-grid SDF, 0.4: 32 (2.14x) / 32 / 32 / 0; 0.05: 32 (1.98x) / 0 / 0 / 0;
      0.005: 7 (1.36x) / 0 / 0 / 0 (boxes that cross a fine level's cell or the
      cube's face, where that level is an interval); never at 0.0005. The fast
      NeRF alike.
    """
    field = make_field(kind)
    for half in SIZES + (0.0005,):
        lower, upper = random_boxes(half)
        lo, hi = field_range(field, lower, upper, "interval")
        interval = hi - lo
        for mode, options in VARIANTS[1:]:
            if not options and half > PURE_AFFINE_NO_WIDER_BELOW[kind]:
                continue  # see the docstring
            lo, hi = field_range(field, lower, upper, mode, **options)
            assert (hi - lo <= interval * (1 + 1e-5) + 1e-6).all(), (kind, half, mode, options)


def tightness(field: nn.Module, halves, variants, count: int = 16) -> dict:
    """Mean width of each variant's range and of the sampled range, per box half-width."""
    table = {}
    for half in halves:
        lower, upper = random_boxes(half, count=count, seed=3)
        low, high = sampled_range(field, lower, upper, grid=7, extra=50)
        row = {"sampled": float((high - low).mean())}
        for name, (mode, options) in variants.items():
            lo, hi = field_range(field, lower, upper, mode, **options)
            row[name] = float((hi - lo).mean())
        table[half] = row
    return table


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["siren", "igr", "hashgrid"])
def test_ranges_tighten_as_boxes_shrink(kind):
    """Widths shrink with the box, and on small boxes (half-width 0.001) affine is much tighter than interval.

    There every affine mode is under half the interval width, and within 1.75x of
    the sampled range, except affine_fixed on the hash grid (measured 3.7x): it
    turns the encoding's errors (the trilinear cross terms, and whole levels on
    boxes that cross a fine cell or the cube's face) into uncorrelated interval
    error, which the MLP then amplifies through |W|; truncate, append and all keep
    them as symbols (1.3-1.6x). The 1.75x bound leaves room for other seeds.
    """
    field = make_field(kind)
    variants = {mode: (mode, {}) for mode in MODES}
    halves = (0.1, 0.01, 0.001)
    table = tightness(field, halves, variants)
    for half in halves:
        print(kind, half, {k: f"{v:.3g}" for k, v in table[half].items()})
    small = table[halves[-1]]
    for name in MODES[1:]:
        widths = [table[h][name] for h in halves]
        assert widths[0] > widths[1] > widths[2], (name, widths)
        assert small[name] < 0.5 * small["interval"], (name, small)
        if not (kind == "hashgrid" and name == "affine_fixed"):
            assert small[name] < 1.75 * small["sampled"], (name, small)


def test_linear_network_is_exact_in_affine_modes():
    """Linear maps are exact on the symbols: a linear network's affine range is its true range (the corners')."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 8), nn.Linear(8, 1))
    lower, upper = random_boxes(0.2)
    corners = torch.stack(
        [torch.where(torch.tensor(bits, dtype=torch.bool), upper, lower) for bits in [(i & 1, i >> 1 & 1, i >> 2 & 1) for i in range(8)]], dim=1
    )
    with torch.no_grad():
        values = net(corners.reshape(-1, 3)).reshape(len(lower), 8)
    for mode in MODES[1:]:
        lo, hi = field_range(net, lower, upper, mode)
        assert torch.allclose(lo, values.amin(dim=1), atol=1e-5) and torch.allclose(hi, values.amax(dim=1), atol=1e-5)
    lo, hi = field_range(net, lower, upper, "interval")
    assert ((hi - lo) > (values.amax(dim=1) - values.amin(dim=1)) + 1e-3).all()  # intervals lose the correlation


@pytest.mark.parametrize("kind", ["igr", "siren", "hashgrid", "fourier", "nerf"])
def test_batches_do_not_mix_boxes(kind):
    """A batch gives each box the range it gets alone (truncation keeps different symbols per box)."""
    field = make_field(kind)
    lower, upper = random_boxes(0.05, count=6)
    for mode, options in [("affine_truncate", {"truncate": 3}), ("affine_append", {"append": 2}), ("affine_fixed", {"intersect": True})]:
        lo, hi = field_range(field, lower, upper, mode, **options)
        for b in range(len(lower)):
            one_lo, one_hi = field_range(field, lower[b : b + 1], upper[b : b + 1], mode, **options)
            assert torch.allclose(lo[b], one_lo[0], atol=1e-6, rtol=1e-5) and torch.allclose(hi[b], one_hi[0], atol=1e-6, rtol=1e-5)


def test_chunked_box_ranges_match_one_batch():
    """box_ranges' chunks (on the CPU RANGE_CHUNK boxes; an accelerator's chunk depends on its free memory) give each
    box the range of one batch of all of them."""
    field = make_field("igr")
    assert range_chunk(field, "affine_all", torch.device("cpu")) == RANGE_CHUNK
    lower, upper = random_boxes(0.05, count=10)
    whole = box_ranges(field, lower, upper, "affine_fixed")
    for got, want in zip(box_ranges(field, lower, upper, "affine_fixed", chunk=3), whole):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-5)


def test_degenerate_neurons_and_tiny_boxes_stay_finite():
    """Neurons with zero-width inputs (u == l) and boxes of float32-ulp size give finite, sound bounds."""
    for activation in (nn.ReLU(), nn.Softplus(beta=100.0), nn.Tanh(), nn.ELU(), nn.Sigmoid()):
        torch.manual_seed(0)
        net = _mlp(activation, width=8, depth=2)
        with torch.no_grad():
            net[0].weight[:4] = 0.0  # these neurons see a constant
        net = nn.Sequential(net)
        siren = Siren(width=8, depth=1)
        with torch.no_grad():
            siren.layers[0].weight[:4] = 0.0
        for field in (net, siren):
            lower = torch.tensor([[0.1, 0.2, 0.3], [-0.5, 0.25, 0.75]])
            for upper in (lower + 0.1, torch.nextafter(lower, torch.full_like(lower, 2.0))):
                low, high = sampled_range(field, lower, upper, grid=3, extra=10)
                for mode, options in VARIANTS:
                    lo, hi = field_range(field, lower, upper, mode, **options)
                    assert torch.isfinite(lo).all() and torch.isfinite(hi).all(), (activation, mode)
                    assert (lo <= low + 1e-5).all() and (hi >= high - 1e-5).all(), (activation, mode)


def test_softplus_threshold_jump_is_covered():
    """torch's Softplus returns x above threshold / beta: a downward jump (7e-5 here) that the bounds must include."""
    net = nn.Sequential(nn.Linear(3, 1), nn.Softplus(beta=100.0, threshold=5.0)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        net[0].bias.zero_()

    def at(x: float) -> torch.Tensor:
        return net(torch.tensor([[x, 0.0, 0.0]], dtype=torch.float64))[0, 0]

    # Below the switch at x = 0.05 the function is higher than anywhere above it, up to 0.05007.
    assert at(0.04999) > at(0.05001) + 4e-5 and at(0.0500001) < at(0.04999) - 5e-5
    for mode, options in VARIANTS:
        lo, hi = field_range(net, torch.tensor([[0.049, 0.0, 0.0]]).double(), torch.tensor([[0.05001, 0.1, 0.1]]).double(), mode, **options)
        assert hi[0] >= at(0.04999), (mode, options)  # the maximum is just below the switch
        lo, hi = field_range(net, torch.tensor([[0.04999, 0.0, 0.0]]).double(), torch.tensor([[0.051, 0.1, 0.1]]).double(), mode, **options)
        assert lo[0] <= at(0.0500001), (mode, options)  # the minimum just above it


def test_double_boxes_on_a_float_field_are_rounded_outwards():
    """float64 corners that float32 cannot hold move one ulp outwards, never inwards."""
    lower = torch.tensor([[0.1, -0.3, 0.7]], dtype=torch.float64)
    upper = torch.tensor([[0.2, 0.3, 0.9]], dtype=torch.float64)
    lo, hi = _round_outwards(lower, upper, torch.float32)
    assert lo.dtype == hi.dtype == torch.float32
    assert (lo.double() <= lower).all() and (hi.double() >= upper).all()
    assert ((lo.double() - lower).abs() < 1e-7).all() and ((hi.double() - upper).abs() < 1e-7).all()
    field = make_field("siren")
    lo, hi = field_range(field, lower, upper)
    assert lo.dtype == torch.float32 and lo.device == lower.device
    low, high = sampled_range(field, lower.float(), upper.float())
    assert (lo <= low + 1e-5).all() and (hi >= high - 1e-5).all()


def octahedron() -> nn.Sequential:
    """|x| + |y| + |z| - 0.5 exactly, built from ReLUs: relu(x) + relu(-x) = |x|."""
    net = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.cat([torch.eye(3), -torch.eye(3)]))
        net[0].bias.zero_()
        net[2].weight.fill_(1.0)
        net[2].bias.fill_(-0.5)
    return net


def sphere_hashgrid() -> HashGridSDF:
    """A hash-grid SDF at its initialisation: exactly sqrt(|x|^2 + 1e-12) - 0.5 (the residual MLP outputs 0)."""
    torch.manual_seed(0)
    return HashGridSDF(_hash_encoding(), width=16, depth=2, init_radius=0.5)


@pytest.mark.parametrize("field_fn, norm", [(octahedron, 1), (sphere_hashgrid, 2)])
def test_classify_known_surfaces(field_fn, norm):
    """+1 / -1 on boxes away from the surface, 0 on boxes that contain points of both signs."""
    field = field_fn()
    h = 0.02
    centres = torch.tensor(
        [[0.0, 0.0, 0.0], [0.1, -0.1, 0.05], [0.9, 0.9, 0.9], [-0.7, 0.6, 0.0], [0.0, 0.0, 0.8], [0.5, 0.0, 0.0], [0.0, -0.5, 0.0]]
    )
    lower, upper = centres - h, centres + h
    value = centres.norm(p=norm, dim=1) - 0.5
    expected = torch.where(value.abs() > 2 * h * 3**0.5, value.sign(), 0.0).to(torch.int8)
    assert expected.tolist() == [-1, -1, 1, 1, 1, 0, 0]
    for mode in MODES:
        assert classify(field, lower, upper, mode=mode).tolist() == expected.tolist(), mode
    # Other levels: the level set f = 0.1 passes through the box around (0.6, 0, 0); f = -0.2 lies below it.
    level_boxes = torch.tensor([[0.6, 0.0, 0.0]])
    assert classify(field, level_boxes - h, level_boxes + h, level=0.1).tolist() == [0]
    assert classify(field, level_boxes - h, level_boxes + h, level=-0.2).tolist() == [1]


def test_unsupported_modules_are_refused_by_name():
    torch.manual_seed(0)
    lower, upper = random_boxes(0.1, count=2)
    idf = DisplacementField(Siren(width=8, depth=1), Siren(width=8, depth=1))
    with pytest.raises(JobError, match="no rule for DisplacementField"):
        field_range(idf, lower, upper)
    with pytest.raises(JobError, match="no rule for LeakyReLU"):
        field_range(_mlp(nn.LeakyReLU()), lower, upper)

    class CustomIGR(IGRNet):  # a subclass may change forward: no inherited rule
        pass

    with pytest.raises(JobError, match="no rule for CustomIGR"):
        field_range(CustomIGR(width=8, depth=2), lower, upper)
    with pytest.raises(JobError, match="no density rule for Siren"):
        field_range(DensitySurface(Siren(width=8, depth=1), 1.0), lower, upper)
    with pytest.raises(JobError, match="outputs 2 values"):
        field_range(nn.Linear(3, 2), lower, upper)


def test_bad_boxes_and_options_are_refused():
    field = make_field("siren")
    lower, upper = random_boxes(0.1, count=3)
    flat = upper.clone()
    flat[1, 2] = lower[1, 2]
    with pytest.raises(JobError, match="box 1 has zero size"):
        field_range(field, lower, flat)
    inverted = upper.clone()
    inverted[2, 0] = lower[2, 0] - 0.1
    with pytest.raises(JobError, match="box 2 is inverted"):
        classify(field, lower, inverted)
    nan = upper.clone()
    nan[0, 0] = math.nan
    with pytest.raises(JobError, match="NaN or Inf"):
        field_range(field, lower, nan)
    with pytest.raises(JobError, match="same shape"):
        field_range(field, lower, upper[:2])
    with pytest.raises(JobError, match="unknown range mode"):
        field_range(field, lower, upper, "taylor")
    with pytest.raises(JobError, match="bad range analysis options"):
        field_range(field, lower, upper, "affine_truncate", keep=3)
