"""Shape spaces: a DeepSDF auto-decoder (Park 2019) and its latent codes, with occupancy (Mescheder 2019) as a variant.

One decoder f(z, x) serves a whole class of shapes; shape k is the field x -> f(z_k, x) of its code z_k.

- :class:`DeepSDFDecoder`: as published, ``depth`` (8) fully connected layers of ``width`` (512) with weight
  normalisation, ReLU and dropout (0.2) after each; the input (code and point) is concatenated again to the
  input of layer ``skip`` (4), whose predecessor narrows so that the concatenation keeps the width; a linear
  output, then tanh for signed distances (clamped SDF training), or nothing for occupancy logits. The output
  layer starts small (no bias, a tenth of PyTorch's weights), so that every start lies inside the loss's clamp.
- :class:`ShapeSpace`: the decoder plus the codes of the training shapes (an embedding, initialised N(0, 0.01^2)).
- :class:`LatentShape`: one shape of a space as an ordinary field (N, 3) -> (N,): the decoder with a fixed code.
  Its zero level is the surface and it is negative inside, for both outputs: the signed distance as it is,
  and for occupancy minus the logit (zero at probability 0.5). Every SDF job (extraction, range queries,
  iso-points) can use it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..types import Points, Values
from .base import Field
from .factory import Config, field_kind

OUTPUTS = ("sdf", "occupancy")


class DeepSDFDecoder(nn.Module):
    """f(z, x): (N, latent + 3) inputs (code, then point) -> (N,) raw outputs (tanh'd for ``output`` 'sdf')."""

    def __init__(
        self,
        latent_size: int = 256,
        width: int = 512,
        depth: int = 8,
        skip: int | None = 4,
        dropout: float = 0.2,
        use_weight_norm: bool = True,
        output: str = "sdf",
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"unknown decoder output {output!r}; known: {', '.join(OUTPUTS)}")
        if depth < 1 or width < 1 or latent_size < 0:
            raise ValueError(f"a decoder needs depth >= 1, width >= 1 and latent size >= 0, got {depth}, {width}, {latent_size}")
        self.in_dim = latent_size + 3
        self.skip = skip if skip is not None and 0 < skip < depth else None
        if self.skip is not None and width <= self.in_dim:
            raise ValueError(f"the skip connection needs width > latent size + 3 ({self.in_dim}), got {width}")
        self.output = output
        self.dropout = float(dropout)
        layers = []
        for i in range(depth):
            fan_in = self.in_dim if i == 0 else width
            fan_out = width - self.in_dim if self.skip is not None and i + 1 == self.skip else width
            layer = nn.Linear(fan_in, fan_out)
            layers.append(weight_norm(layer) if use_weight_norm else layer)
        self.hidden = nn.ModuleList(layers)
        self.last = nn.Linear(width, 1)
        with torch.no_grad():  # start inside the clamp: a start beyond it everywhere has no gradient (small widths)
            self.last.bias.zero_()
            self.last.weight.mul_(0.1)

    def forward(self, inputs: Tensor) -> Tensor:
        h = inputs
        for i, layer in enumerate(self.hidden):
            if i == self.skip:
                h = torch.cat([h, inputs], dim=-1)
            h = torch.relu(layer(h))
            if self.dropout > 0:
                h = nn.functional.dropout(h, self.dropout, self.training)
        out = self.last(h).squeeze(-1)
        return torch.tanh(out) if self.output == "sdf" else out


class ShapeSpace(nn.Module):
    """A decoder and the codes (num_shapes, latent_size) of its training shapes."""

    def __init__(self, num_shapes: int, latent_size: int = 256, code_std: float = 0.01, **decoder: Any) -> None:
        super().__init__()
        self.decoder = DeepSDFDecoder(latent_size=latent_size, **decoder)
        self.codes = nn.Embedding(num_shapes, latent_size)
        nn.init.normal_(self.codes.weight, 0.0, code_std)

    @property
    def num_shapes(self) -> int:
        return self.codes.num_embeddings

    def forward(self, shape_index: Tensor, points: Tensor) -> Tensor:
        """Raw decoder outputs (N,) at ``points`` (N, 3) for the shapes ``shape_index`` (N,)."""
        return self.decoder(torch.cat([self.codes(shape_index), points], dim=-1))

    def shape(self, index: int) -> LatentShape:
        """Shape ``index`` as a field (shares the decoder; the code is copied)."""
        return LatentShape(self.decoder, self.codes.weight[index].detach())


class LatentShape(Field):
    """One shape of a space, as a field of points (N, 3) -> (N,), zero on the surface and negative inside."""

    def __init__(self, decoder: DeepSDFDecoder, code: Tensor) -> None:
        super().__init__()
        self.decoder = decoder
        self.code = nn.Parameter(code.detach().clone().reshape(-1))

    @property
    def output(self) -> str:  # type: ignore[override]
        return self.decoder.output

    @property
    def is_distance(self) -> bool:  # type: ignore[override]
        return self.decoder.output == "sdf"  # logits are no distances: no Lipschitz culling

    def forward(self, x: Points) -> Values:
        out = self.decoder(torch.cat([self.code.expand(*x.shape[:-1], -1), x], dim=-1))
        return out if self.decoder.output == "sdf" else -out


def decoder_options(config: dict) -> dict:
    """The DeepSDFDecoder keyword arguments in a shape-space config."""
    return {
        "width": int(config["width"]),
        "depth": int(config["depth"]),
        "skip": None if config.get("skip") is None else int(config["skip"]),
        "dropout": float(config["dropout"]),
        "use_weight_norm": bool(config["weight_norm"]),
        "output": str(config["output"]),
    }


# DeepSDF (Park 2019): 8 x 512 with weight normalisation, the input again at layer 4, dropout 0.2, codes of 256;
# ``output`` 'occupancy' is the occupancy-network variant (Mescheder 2019). A latent shape is one decoded shape.
@field_kind(
    "shape_space", {"num_shapes": 2, "latent_size": 256, "width": 512, "depth": 8, "skip": 4, "dropout": 0.2, "weight_norm": True, "output": "sdf"}
)
def build_shape_space(config: Config) -> ShapeSpace:
    return ShapeSpace(int(config["num_shapes"]), int(config["latent_size"]), **decoder_options(config))


@field_kind("latent_shape", {"space": None})
def build_latent_shape(config: Config) -> LatentShape:
    space = config["space"]
    return LatentShape(DeepSDFDecoder(int(space["latent_size"]), **decoder_options(space)), torch.zeros(int(space["latent_size"])))
