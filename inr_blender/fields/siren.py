"""SIREN: an MLP with sine activations (Sitzmann et al. 2020).

Layout as published: one sine input layer, ``depth`` hidden sine layers
(published: 3 of 256) and a linear output layer; every sine computes
sin(omega0 * (W x + b)) with omega0 = 30. Initialisation as published: the
first layer's weights are U(-1/in, 1/in), all later weights are
U(-sqrt(6/in)/omega0, +sqrt(6/in)/omega0); biases keep PyTorch's default.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..types import Points, Values
from .base import Field
from .factory import Config, field_kind


class Siren(Field):
    """Sine MLP mapping (N, 3) points to (N,) values."""

    def __init__(self, width: int = 256, depth: int = 3, omega0: float = 30.0, in_dim: int = 3) -> None:
        super().__init__()
        if depth < 0 or width < 1:
            raise ValueError(f"SIREN needs depth >= 0 and width >= 1, got {width}x{depth}")
        self.omega0 = float(omega0)
        dims = [in_dim] + [width] * (depth + 1) + [1]
        linears = [nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1)]
        self.layers = nn.ModuleList(linears)
        with torch.no_grad():
            for i, layer in enumerate(linears):
                bound = 1.0 / layer.in_features if i == 0 else math.sqrt(6.0 / layer.in_features) / self.omega0
                layer.weight.uniform_(-bound, bound)

    def forward(self, x: Points) -> Values:
        h = x
        for layer in self.layers[:-1]:
            h = torch.sin(self.omega0 * layer(h))
        return self.layers[-1](h).squeeze(-1)


# Published: 3 hidden sine layers of 256, omega0 30.
@field_kind("siren", {"width": 256, "depth": 3, "omega0": 30.0})
def build_siren(config: Config) -> Siren:
    return Siren(width=int(config["width"]), depth=int(config["depth"]), omega0=float(config["omega0"]))
