"""Multiresolution hash-grid encoding with a small MLP (Instant-NGP style), in plain PyTorch.

Facts from Müller et al. 2022 ("Instant Neural Graphics Primitives with a
Multiresolution Hash Encoding") and tiny-cuda-nn's grid encoding: L = 16 levels
of F = 2 features, hash tables of T = 2^19 entries per level (the paper sweeps
2^14..2^24), coarsest resolution 16, resolutions growing geometrically by
b = exp((ln N_max - ln N_min) / (L - 1)) (its SDF configs use b ~ 1.38, i.e.
N_max ~ 2048); a level whose grid has at most T vertices is indexed densely
(one-to-one), finer levels through the spatial hash
(x * 1) xor (y * 2654435761) xor (z * 805459861) mod T; features are
trilinearly interpolated from the 8 corners of the enclosing cell; tables are
initialised U(-1e-4, 1e-4). Instant-NGP trains the tables with Adam,
lr 1e-2, eps 1e-15.

Written with ordinary torch ops (no custom kernel), so it runs on CPU, CUDA and
MPS and supports double backward: the corner indices are piecewise constant in
x, and the interpolation weights are polynomials in x, so df/dx flows through
the weights and stays differentiable for the eikonal loss. This is the reference
and the path on the CPU and MPS; on CUDA, where Triton imports, the same encoding
runs as fused kernels (:mod:`.hashgrid_triton`: first-order gradients only, see
:func:`implementation`).

Departures, for SDF fitting with the shared IGR losses:

- the decoder is a softplus MLP (beta = 100, as IGR), not ReLU, so that the
  field has second derivatives (the eikonal and normal terms backpropagate
  through df/dx);
- the MLP input is concat(x, encoding), so the coarse shape does not depend on
  the hashed tables alone;
- the output is ``|x| - init_radius + MLP(...)`` with the MLP's last layer
  initialised to zero: the field starts as the exact SDF of a sphere of
  radius 0.5 (like IGR's geometric initialisation) and learns a residual. The
  sphere term has no parameters; it also keeps the field's sign sensible far
  from the data, where the tables get no training signal.
"""

from __future__ import annotations

import math
import os
import warnings
from types import ModuleType

import torch
from torch import nn

from ..types import Features, Points, Values
from .base import Field
from .factory import Config, field_kind

PRIMES = (1, 2654435761, 805459861)

IMPLEMENTATIONS = ("auto", "torch", "triton")
ENVIRONMENT = "INR_HASHGRID"
implementation_override: str | None = None
"""The encoding's implementation, over the environment variable ``INR_HASHGRID``: 'auto' (the fused Triton kernels on
CUDA tensors when Triton imports, the torch ops elsewhere), 'torch' (always the torch ops) or 'triton' (always the
kernels: on CPU tensors only in Triton's interpreter, ``TRITON_INTERPRET=1``; for the tests). None: the variable's."""

_kernels: ModuleType | None = None
_kernels_error: str | None = None
_probed: set[str] = set()  # the devices the kernels ran on once (fused_kernels)


def implementation() -> str:
    """The implementation asked for: :data:`implementation_override`, else ``INR_HASHGRID``, else 'auto'."""
    name = implementation_override if implementation_override is not None else os.environ.get(ENVIRONMENT, "auto")
    name = (name or "auto").strip().lower()
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"{ENVIRONMENT}={name!r}: choose one of {', '.join(IMPLEMENTATIONS)}")
    return name


def fused_kernels(device: torch.device | None = None) -> ModuleType | None:
    """The fused kernels' module (:mod:`.hashgrid_triton`), or None where Triton does not import (tried once) or,
    given a CUDA ``device``, where they fail to build, run or agree with the torch ops there (tried once per device:
    Triton builds its launcher with the machine's C compiler on the first launch, which a machine may lack)."""
    global _kernels, _kernels_error
    if _kernels is None and _kernels_error is None:
        try:
            from . import hashgrid_triton

            _kernels = hashgrid_triton
        except Exception as exc:  # no Triton, or one that fails on this machine: the torch path it is
            _kernels_error = f"{type(exc).__name__}: {exc}"
    if _kernels is not None and device is not None and device.type == "cuda" and torch.cuda.is_available() and str(device) not in _probed:
        _probed.add(str(device))
        try:
            probe(device)
        except Exception as exc:
            _kernels, _kernels_error = None, f"they fail on {device}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(f"the fused hash-grid kernels {_kernels_error}; the torch encoding runs instead", RuntimeWarning, stacklevel=2)
    return _kernels


def probe(device: torch.device) -> dict[str, float]:
    """Run the fused kernels once on ``device`` (the forward and both gradients of a small grid with dense and
    hashed levels) and compare them with the torch ops: their largest differences, or what went wrong raised."""
    kernels = fused_kernels()
    if kernels is None:
        raise RuntimeError(f"the fused kernels do not import ({_kernels_error})")
    encoding = HashGridEncoding(levels=3, features_per_level=2, log2_table_size=10, base_resolution=4, finest_resolution=32).to(device)
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(257, 3, generator=generator) * 2.2 - 1.1).to(device)  # a partial block; some points outside the cube
    results: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for fused in (True, False):
        points = x.clone().requires_grad_(True)
        encoding.table.grad = None
        out = encoding.fused_forward(points) if fused else encoding.torch_forward(points)
        (out * torch.linspace(-1.0, 1.0, out.shape[1], device=device)).sum().backward()
        assert points.grad is not None and encoding.table.grad is not None
        results.append((out.detach(), points.grad, encoding.table.grad))
    encoding.table.grad = None
    differences = {}
    for name, a, b in zip(("values", "input gradients", "table gradients"), *results):
        differences[name] = float((a - b).abs().max())
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
            raise RuntimeError(f"their {name} differ from the torch encoding's by up to {differences[name]:.3g}")
    return differences


def level_resolutions(levels: int, base_resolution: int, finest_resolution: int) -> list[int]:
    """Grid resolution (cells per axis) of each level: N_l = floor(N_min * b^l), b as in Instant-NGP."""
    if levels == 1:
        return [int(base_resolution)]
    growth = math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (levels - 1))
    return [int(math.floor(base_resolution * growth**level + 1e-6)) for level in range(levels)]


class HashGridEncoding(nn.Module):
    """Maps (N, 3) points in [-1, 1]^3 to (N, levels * features_per_level) interpolated features.

    Points outside the cube are clamped to it (their features are those of the
    nearest boundary point).
    """

    # Buffers (not saved): each level's resolution and first table row (L,), the hash primes (3,).
    _resolution: torch.Tensor
    _offset: torch.Tensor
    _primes: torch.Tensor

    def __init__(
        self,
        levels: int = 16,
        features_per_level: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        finest_resolution: int = 2048,
    ) -> None:
        super().__init__()
        if levels < 1 or features_per_level < 1 or not 1 <= log2_table_size <= 30:
            raise ValueError(f"bad hash grid: {levels} levels, {features_per_level} features, 2^{log2_table_size} table")
        if base_resolution < 1 or finest_resolution < base_resolution:
            raise ValueError(f"bad hash grid resolutions {base_resolution}..{finest_resolution}")
        self.levels = int(levels)
        self.features_per_level = int(features_per_level)
        self.table_size = 1 << int(log2_table_size)
        self.resolutions = level_resolutions(self.levels, int(base_resolution), int(finest_resolution))
        sizes: list[int] = []
        offsets: list[int] = []
        dense: list[bool] = []
        for n in self.resolutions:
            vertices = (n + 1) ** 3
            dense.append(vertices <= self.table_size)
            offsets.append(sum(sizes))
            sizes.append(min(vertices, self.table_size))
        if sum(sizes) >= 1 << 31:
            raise ValueError(f"hash grid of {sum(sizes):,} rows is too large (at most 2^31 - 1)")
        self.output_dim = self.levels * self.features_per_level
        # All levels' tables in one parameter (level l owns rows offsets[l] .. offsets[l] + sizes[l]).
        self.table = nn.Parameter(torch.empty(sum(sizes), self.features_per_level).uniform_(-1e-4, 1e-4))
        self.register_buffer("_resolution", torch.tensor(self.resolutions, dtype=torch.int64), persistent=False)
        self.register_buffer("_offset", torch.tensor(offsets, dtype=torch.int64), persistent=False)
        self.dense_levels = sum(dense)  # a prefix: resolutions grow with the level
        self.register_buffer("_primes", torch.tensor(PRIMES, dtype=torch.int64), persistent=False)

    def fused(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> bool:
        """Whether :meth:`forward` runs the fused Triton kernels for points on ``device`` (of ``dtype``); they have
        no double backward, so callers needing d/dx differentiable (the eikonal term) take finite differences."""
        device = torch.device(device)
        name = implementation()
        if name == "torch" or (name == "auto" and device.type != "cuda"):
            return False  # (without importing Triton)
        kernels = fused_kernels(device)
        if name == "triton":
            if kernels is None:
                raise RuntimeError(f"{ENVIRONMENT}=triton, but the fused hash-grid kernels do not import ({_kernels_error})")
            if not kernels.runs_on(device):
                raise RuntimeError(f"{ENVIRONMENT}=triton on {device.type} tensors needs Triton's interpreter (TRITON_INTERPRET=1 before it loads)")
            return True
        return kernels is not None and dtype == torch.float32 and self.table.dtype == torch.float32

    def positions(self, x: torch.Tensor) -> torch.Tensor:
        """Points (B, 3) of [-1, 1]^3 in cell units of every level (B, L, 3)."""
        u = ((x + 1.0) * 0.5).clamp(0.0, 1.0)  # [-1, 1] -> [0, 1]
        return u[:, None, :] * self._resolution[None, :, None].to(u.dtype)

    def rows(self, axis: torch.Tensor) -> torch.Tensor:
        """Table rows (B, L, S^3) of the grid vertices with per-axis coordinates ``axis`` (B, L, 3, S); vertex
        (i, j, k) lands at i + S j + S^2 k. Dense levels index x + y s + z s^2, the others the spatial hash
        (x p0 xor y p1 xor z p2) mod T, plus each level's offset."""
        d = self.dense_levels  # levels are sorted by resolution: the dense ones come first
        side = (self._resolution[:d] + 1)[None, :, None]
        dense_index = _corners(axis[:, :d, 0], axis[:, :d, 1] * side, axis[:, :d, 2] * side * side, torch.add)
        # uint32 products wrap in Instant-NGP; int64 products keep the same low bits, and T is a power of two.
        scrambled = axis[:, d:] * self._primes[None, None, :, None]
        hashed = _corners(scrambled[:, :, 0], scrambled[:, :, 1], scrambled[:, :, 2], torch.bitwise_xor) & (self.table_size - 1)
        return torch.cat([dense_index, hashed], dim=1) + self._offset[None, :, None]

    def forward(self, x: Points) -> Features:
        return self.fused_forward(x) if self.fused(x.device, x.dtype) else self.torch_forward(x)

    def fused_forward(self, x: Points) -> Features:
        """The encoding by the fused kernels (float32 only)."""
        kernels = fused_kernels()
        if kernels is None:
            raise RuntimeError(f"the fused hash-grid kernels do not import ({_kernels_error})")
        if x.dtype != torch.float32 or self.table.dtype != torch.float32:
            raise RuntimeError(f"the fused hash-grid encoding takes float32 points and table, not {x.dtype} and {self.table.dtype}")
        grid = kernels.Grid(self._resolution, self._offset, self.dense_levels, self.table_size)
        return kernels.encode(x, self.table, grid)

    def torch_forward(self, x: Points) -> Features:
        """The encoding by torch ops (the reference; differentiable twice)."""
        pos = self.positions(x)  # (B, L, 3), in cell units
        cell = pos.detach().floor().long()
        cell = torch.minimum(cell, (self._resolution - 1)[None, :, None])  # u == 1 falls in the last cell
        frac = pos - cell.to(pos.dtype)  # (B, L, 3): differentiable in x
        # Per-axis corner coordinates (B, L, 3, 2), combined by broadcasting into the 8 corners
        # c = x + 2y + 4z: 4x fewer integer operations than forming (B, L, 8, 3) first.
        feats = _GatherRows.apply(self.table, self.rows(torch.stack([cell, cell + 1], dim=-1)))  # (B, L, 8, F)
        w = torch.stack([1 - frac, frac], dim=-1)  # (B, L, 3, 2): trilinear weights per axis
        weights = _corners(w[:, :, 0], w[:, :, 1], w[:, :, 2], torch.mul)[:, :, None, :]  # (B, L, 1, 8)
        out = torch.matmul(weights, feats).squeeze(-2)  # (B, L, F)
        return out.reshape(len(x), self.output_dim)


def _corners(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, op) -> torch.Tensor:
    """Combine per-axis (B, L, S) values into all S^3 grid vertices (B, L, S^3), vertex i + S j + S^2 k
    (for a cell, S = 2: corner c = x + 2y + 4z)."""
    return op(op(z[:, :, :, None, None], y[:, :, None, :, None]), x[:, :, None, None, :]).flatten(2)


class _GatherRows(torch.autograd.Function):
    """table[index] whose backward scatters with ``index_add_``.

    Same values and gradients as ``nn.functional.embedding``, whose dense
    backward took 35 ms of a 0.13 s training step on the CPU (batch 4096);
    with this op the whole step took 0.09 s. Only the table's gradient is defined;
    the double backward of the eikonal term never passes through this op
    (df/dx flows through the interpolation weights, not the table lookup).
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return table.index_select(0, index.reshape(-1)).reshape(*index.shape, table.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        table_grad = grad.new_zeros(ctx.rows, grad.shape[-1])
        table_grad.index_add_(0, index.reshape(-1), grad.reshape(-1, grad.shape[-1]))
        return table_grad, None


class HashGridSDF(Field):
    """Signed distance |x| - init_radius + MLP(concat(x, encoding(x))), mapping (N, 3) to (N,)."""

    def __init__(self, encoding: HashGridEncoding, width: int = 64, depth: int = 2, beta: float = 100.0, init_radius: float = 0.5) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"hash grid MLP needs depth >= 1 and width >= 1, got {width}x{depth}")
        self.encoding = encoding
        self.init_radius = float(init_radius)
        dims = [3 + self.encoding.output_dim] + [int(width)] * int(depth) + [1]
        linears = [nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1)]
        self.layers = nn.ModuleList(linears)
        self.activation = nn.Softplus(beta=beta) if beta > 0 else nn.ReLU()
        with torch.no_grad():  # residual starts at zero: the field starts as the sphere SDF
            linears[-1].weight.zero_()
            linears[-1].bias.zero_()

    def forward(self, x: Points) -> Values:
        h = torch.cat([x, self.encoding(x)], dim=-1)
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        residual = self.layers[-1](h).squeeze(-1)
        # Smoothed |x| (finite first and second derivatives at the origin).
        sphere = torch.sqrt(x.square().sum(dim=-1) + 1e-12) - self.init_radius
        return sphere + residual


def encoding_from_config(config: Config) -> HashGridEncoding:
    """The hash-grid encoding of a config holding its five settings (a hash-grid SDF's or a fast NeRF's)."""
    return HashGridEncoding(
        levels=int(config["levels"]),
        features_per_level=int(config["features_per_level"]),
        log2_table_size=int(config["log2_table_size"]),
        base_resolution=int(config["base_resolution"]),
        finest_resolution=int(config["finest_resolution"]),
    )


# Published network sizes (Instant-NGP: 16 levels x 2 features, 2^19 entries, resolutions 16..2048, a 64-wide
# decoder). A fit's defaults are settings/sdf.py's HASHGRID (12 levels up to 256 for a CPU); it passes them all.
@field_kind(
    "hashgrid",
    {
        "levels": 16,
        "features_per_level": 2,
        "log2_table_size": 19,
        "base_resolution": 16,
        "finest_resolution": 2048,
        "width": 64,
        "depth": 2,
        "beta": 100.0,
        "init_radius": 0.5,
    },
)
def build_hashgrid(config: Config) -> HashGridSDF:
    return HashGridSDF(
        encoding_from_config(config),
        width=int(config["width"]),
        depth=int(config["depth"]),
        beta=float(config["beta"]),
        init_radius=float(config["init_radius"]),
    )
