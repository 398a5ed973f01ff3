"""IGR's MLP: softplus activations, a skip connection and geometric initialisation.

Facts from Gropp et al. 2020 and its reference code: softplus with beta=100,
8 hidden layers of 512, the input concatenated again at the middle layer (the
concatenation divided by sqrt(2)), and a geometric initialisation that makes
the untrained network approximate the signed distance to a sphere.

Our fields live in a normalised frame where the data spans [-0.8, 0.8] on its
longest axis, so the default initial sphere has radius 0.5 (IGR used 1.0 for
its un-normalised scans): a sphere well inside the data's box, so that the
starting field already has an inside and an outside within the domain.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..types import Points, Values
from .base import Field, linear_layers
from .factory import Config, field_kind


class IGRNet(Field):
    """Softplus MLP mapping (N, 3) points to (N,) signed distances."""

    def __init__(
        self,
        width: int = 512,
        depth: int = 8,
        beta: float = 100.0,
        skip: list[int] | None = None,
        geometric_init: bool = True,
        init_radius: float = 0.5,
        in_dim: int = 3,
    ) -> None:
        super().__init__()
        if depth < 1 or width <= in_dim:
            raise ValueError(f"IGR net needs depth >= 1 and width > {in_dim}, got {width}x{depth}")
        self.in_dim = in_dim
        self.skip = sorted({int(s) for s in (skip if skip is not None else [depth // 2])} - {0})
        dims = [in_dim] + [width] * depth + [1]
        layers = []
        for i in range(len(dims) - 1):
            out_dim = dims[i + 1] - in_dim if (i + 1) in self.skip else dims[i + 1]
            layers.append(nn.Linear(dims[i], out_dim))
        self.layers = nn.ModuleList(layers)
        self.activation = nn.Softplus(beta=beta) if beta > 0 else nn.ReLU()
        if geometric_init:
            self._geometric_init(init_radius)

    @torch.no_grad()
    def _geometric_init(self, radius: float) -> None:
        """Initialise so that f(x) ~= |x| - radius (Atzmon & Lipman's scheme, as in IGR)."""
        *hidden, last = linear_layers(self.layers)
        for layer in hidden:
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0) / math.sqrt(layer.out_features))
            nn.init.zeros_(layer.bias)
        nn.init.normal_(last.weight, mean=math.sqrt(math.pi) / math.sqrt(last.in_features), std=1e-5)
        nn.init.constant_(last.bias, -radius)

    def forward(self, x: Points) -> Values:
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i in self.skip:
                h = torch.cat([h, x], dim=-1) / math.sqrt(2.0)
            h = layer(h)
            if i < last:
                h = self.activation(h)
        return h.squeeze(-1)


def _complete(config: Config) -> None:
    if config["skip"] is None:  # the middle layer, explicit so that the stored config rebuilds the same network
        config["skip"] = [int(config["depth"]) // 2]


# Published: 8 x 512, softplus beta 100, the input again at the middle layer (see the module docstring).
@field_kind("igr", {"width": 512, "depth": 8, "beta": 100.0, "skip": None, "geometric_init": True, "init_radius": 0.5}, complete=_complete)
def build_igr(config: Config) -> IGRNet:
    return IGRNet(
        width=int(config["width"]),
        depth=int(config["depth"]),
        beta=float(config["beta"]),
        skip=[int(s) for s in config["skip"]] if config.get("skip") is not None else None,
        geometric_init=bool(config.get("geometric_init", True)),
        init_radius=float(config.get("init_radius", 0.5)),
    )
