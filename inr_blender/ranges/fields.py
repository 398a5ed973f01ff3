"""Range rules for the fields that no SDF method owns (encodings, DeepSDF, NeRF, density surfaces).

Each mirrors its module's ``forward``. The networks of the SDF methods (IGRNet, Siren, HashGridSDF) have
their rules in their method's module (inr_blender/fitting/methods/), which ``inr_blender.ranges`` imports.
A change to one of those ``forward`` methods must be mirrored in its rule; the soundness tests
(tests/backend/test_backend_ranges.py) sample every field kind and fail when a rule no longer matches.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..context import JobError
from ..fields.base import linear_layers
from ..fields.deepsdf import DeepSDFDecoder, LatentShape
from ..fields.encodings import PositionalEncoding
from ..fields.hashgrid import HashGridEncoding
from ..fields.nerf import ClassicNeRF, FastNeRF, NeRFMLP
from ..render.surface import DensitySurface
from .activations import activate, relu, tanh
from .affine import AffineForm, concat
from .encodings import positional_encoding
from .hashgrid import hashgrid_form
from .rules import layer_rule, linear, output_range, propagate, range_rule


@layer_rule(PositionalEncoding)
def _positional_encoding(enc: PositionalEncoding, x: AffineForm) -> AffineForm:
    return positional_encoding(enc, x)


@layer_rule(HashGridEncoding)
def _hashgrid_encoding(enc: HashGridEncoding, x: AffineForm) -> AffineForm:
    return hashgrid_form(enc, x)


@layer_rule(DeepSDFDecoder)
def _deepsdf_decoder(net: DeepSDFDecoder, x: AffineForm) -> AffineForm:
    """Evaluation mode only: dropout is the identity there (a training-mode decoder drops units at random)."""
    if net.training and net.dropout > 0:
        raise JobError("range analysis needs the decoder in evaluation mode (dropout active)")
    h = x
    for i, layer in enumerate(linear_layers(net.hidden)):
        if i == net.skip:
            h = concat([h, x])
        h = activate(h.linear(layer.weight, layer.bias), relu())  # weight-normalised layers compute their weight
    h = linear(net.last, h)
    return activate(h, tanh()) if net.output == "sdf" else h


@layer_rule(LatentShape)
def _latent_shape(shape: LatentShape, x: AffineForm) -> AffineForm:
    code = shape.code.detach().to(x.center.dtype).expand(x.center.shape[0], -1)
    out = propagate(shape.decoder, concat([AffineForm.from_interval(code, code, x.ctx), x]))
    return out if shape.decoder.output == "sdf" else out.scale(-1.0)


@range_rule(NeRFMLP)
def _nerf_mlp_density(mlp: NeRFMLP, x: AffineForm) -> tuple[Tensor, Tensor]:
    encoded = propagate(mlp.position_encoding, x)
    h = encoded
    for i, layer in enumerate(linear_layers(mlp.trunk)):
        if i == mlp.skip and i > 0:
            h = concat([encoded, h])
        h = activate(linear(layer, h), relu())
    lo, hi = linear(mlp.density_head, h).bounds()
    return torch.relu(lo[:, 0]), torch.relu(hi[:, 0])


@range_rule(ClassicNeRF)
def _classic_nerf_density(nerf: ClassicNeRF, x: AffineForm) -> tuple[Tensor, Tensor]:
    return output_range(nerf.fine, x)


@range_rule(FastNeRF)
def _fast_nerf_density(nerf: FastNeRF, x: AffineForm) -> tuple[Tensor, Tensor]:
    lo, hi = propagate(nerf.density_mlp, propagate(nerf.encoding, x)).select([0]).bounds()
    return torch.exp(lo[:, 0]), torch.exp(hi[:, 0])  # trunc_exp is exp in the forward pass


DENSITY_FIELDS = (NeRFMLP, ClassicNeRF, FastNeRF)  # their output range is the density's


@range_rule(DensitySurface)
def _density_surface(surface: DensitySurface, x: AffineForm) -> tuple[Tensor, Tensor]:
    if type(surface.field) not in DENSITY_FIELDS:
        raise JobError(f"range analysis has no density rule for {type(surface.field).__name__} inside a DensitySurface")
    lo, hi = output_range(surface.field, x)  # the density
    return surface.threshold - hi, surface.threshold - lo
