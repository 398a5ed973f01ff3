"""Radiance fields: classic NeRF (Mildenhall et al. 2020) and a hash-grid field in the spirit of Instant-NGP.

Both map points in the field's local cube [-1, 1]^3 and unit view directions to
a density sigma >= 0 and an RGB colour in [0, 1]:
``forward(x, d) -> (sigma (N,), rgb (N, 3))``, ``density(x) -> sigma``.

Classic NeRF, as published: positional encoding with 10 frequencies for the
position and 4 for the direction; 8 ReLU layers of 256 with the encoded input
concatenated again after the 4th (the skip); density from a linear head
(ReLU); a 256 feature, concatenated with the encoded direction, through one
ReLU layer of 128 to a sigmoid RGB; Glorot-uniform weights and zero biases (the
published TensorFlow defaults: with PyTorch's default initialisation the
activations shrink through the 8 layers, the density head outputs its bias
alone, and a negative bias leaves the ReLU density dead everywhere, for good).
Two such networks, coarse and fine (:class:`ClassicNeRF` holds both).

Fast field (Müller et al. 2022): the multiresolution hash encoding of
:mod:`.hashgrid`; a density MLP (one hidden layer of 64) whose first output is
the log-density (exponential activation with the gradient clamped, Instant-NGP's
``trunc_exp``) and whose other 15 outputs, with the degree-4 spherical harmonics
of the direction, feed a colour MLP (two hidden layers of 64, sigmoid RGB). It
carries the occupancy grid that the renderer uses to skip empty space.
"""

from __future__ import annotations

import torch
from torch import nn

from ..render.occupancy import OccupancyGrid
from ..types import Colours, Directions, Points, Values
from .encodings import PositionalEncoding, SphericalHarmonics
from .factory import Config, field_kind
from .hashgrid import HashGridEncoding, encoding_from_config


class _TruncExp(torch.autograd.Function):
    """exp(x) whose backward clamps x at 15 (Instant-NGP's trunc_exp): large densities cannot blow up the gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-15.0, 15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


class NeRFMLP(nn.Module):
    """One NeRF network: (x, d) -> (sigma, rgb), ``depth`` x ``width`` with the input concatenated again after layer ``skip``."""

    def __init__(self, position_frequencies: int = 10, direction_frequencies: int = 4, width: int = 256, depth: int = 8, skip: int = 4) -> None:
        super().__init__()
        self.position_encoding = PositionalEncoding(position_frequencies)
        self.direction_encoding = PositionalEncoding(direction_frequencies)
        p = self.position_encoding.output_dim
        self.skip = skip
        self.trunk = nn.ModuleList()
        for i in range(depth):
            inputs = p if i == 0 else width + (p if i == skip else 0)
            self.trunk.append(nn.Linear(inputs, width))
        self.density_head = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        self.colour_hidden = nn.Linear(width + self.direction_encoding.output_dim, width // 2)
        self.colour_head = nn.Linear(width // 2, 3)
        for layer in self.modules():  # as published (TensorFlow's Dense): Glorot-uniform weights, zero biases
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        encoded = self.position_encoding(x)
        h = encoded
        for i, layer in enumerate(self.trunk):
            if i == self.skip and i > 0:
                h = torch.cat([encoded, h], dim=-1)
            h = torch.relu(layer(h))
        return h

    def density(self, x: Points) -> Values:
        return torch.relu(self.density_head(self._trunk(x))).squeeze(-1)

    def forward(self, x: Points, d: Directions) -> tuple[Values, Colours]:
        h = self._trunk(x)
        sigma = torch.relu(self.density_head(h)).squeeze(-1)
        c = torch.relu(self.colour_hidden(torch.cat([self.feature(h), self.direction_encoding(d)], dim=-1)))
        return sigma, torch.sigmoid(self.colour_head(c))


class ClassicNeRF(nn.Module):
    """The coarse and the fine network of hierarchical NeRF; as a field it is the fine one."""

    kind = "classic"

    def __init__(self, position_frequencies: int = 10, direction_frequencies: int = 4, width: int = 256, depth: int = 8, skip: int = 4) -> None:
        super().__init__()
        args = (position_frequencies, direction_frequencies, width, depth, skip)
        self.coarse = NeRFMLP(*args)
        self.fine = NeRFMLP(*args)

    def density(self, x: Points) -> Values:
        return self.fine.density(x)

    def forward(self, x: Points, d: Directions) -> tuple[Values, Colours]:
        return self.fine(x, d)


class FastNeRF(nn.Module):
    """Hash-grid density with a small colour MLP over spherical harmonics, plus its occupancy grid."""

    kind = "fast"

    def __init__(self, encoding: HashGridEncoding, geometry_features: int = 15, width: int = 64, occupancy_resolution: int = 64) -> None:
        super().__init__()
        self.encoding = encoding
        self.density_mlp = nn.Sequential(nn.Linear(encoding.output_dim, width), nn.ReLU(), nn.Linear(width, 1 + geometry_features))
        self.direction_encoding = SphericalHarmonics(4)
        self.colour_mlp = nn.Sequential(
            nn.Linear(self.direction_encoding.output_dim + geometry_features, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 3),
        )
        self.occupancy = OccupancyGrid(occupancy_resolution)

    def density(self, x: Points) -> Values:
        return trunc_exp(self.density_mlp(self.encoding(x))[:, 0])

    def forward(self, x: Points, d: Directions) -> tuple[Values, Colours]:
        h = self.density_mlp(self.encoding(x))
        sigma = trunc_exp(h[:, 0])
        rgb = torch.sigmoid(self.colour_mlp(torch.cat([self.direction_encoding(d), h[:, 1:]], dim=-1)))
        return sigma, rgb


# NeRF (Mildenhall 2020): 10 / 4 frequencies, 8 x 256 with the skip at layer 4.
@field_kind("nerf_classic", {"position_frequencies": 10, "direction_frequencies": 4, "width": 256, "depth": 8, "skip": 4})
def build_classic(config: Config) -> ClassicNeRF:
    return ClassicNeRF(
        int(config["position_frequencies"]), int(config["direction_frequencies"]), int(config["width"]), int(config["depth"]), int(config["skip"])
    )


# Instant-NGP's NeRF: 16 levels x 2, 2^19 entries, 64-wide MLPs, 15 geometry features; finest level 1024 and a 64^3
# occupancy grid (published 2048-ish and 128^3). A fit's defaults are settings/nerf.py's FAST; it passes them all.
@field_kind(
    "nerf_fast",
    {
        "levels": 16,
        "features_per_level": 2,
        "log2_table_size": 19,
        "base_resolution": 16,
        "finest_resolution": 1024,
        "width": 64,
        "geometry_features": 15,
        "occupancy_resolution": 64,
    },
)
def build_fast(config: Config) -> FastNeRF:
    return FastNeRF(encoding_from_config(config), int(config["geometry_features"]), int(config["width"]), int(config["occupancy_resolution"]))
