"""Range rules for the project's fields (inr_blender.fields), each mirroring its module's ``forward``.

A change to one of those ``forward`` methods must be mirrored here; the
soundness tests (tests/test_backend_ranges.py) sample every field kind and fail
when a rule no longer matches.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..context import JobError
from ..fields.deepsdf import DeepSDFDecoder, LatentShape
from ..fields.encodings import PositionalEncoding
from ..fields.hashgrid import HashGridEncoding, HashGridSDF
from ..fields.igr import IGRNet
from ..fields.nerf import ClassicNeRF, FastNeRF, NeRFMLP
from ..fields.siren import Siren
from ..render.surface import DensitySurface
from .activations import activate, relu, sine, tanh
from .affine import AffineForm, concat
from .encodings import norm, positional_encoding
from .hashgrid import hashgrid_form
from .rules import activation_for, layer_rule, linear, output_range, propagate, range_rule


@layer_rule(PositionalEncoding)
def _positional_encoding(enc: PositionalEncoding, x: AffineForm) -> AffineForm:
    return positional_encoding(enc, x)


@layer_rule(HashGridEncoding)
def _hashgrid_encoding(enc: HashGridEncoding, x: AffineForm) -> AffineForm:
    return hashgrid_form(enc, x)


@layer_rule(IGRNet)
def _igr(net: IGRNet, x: AffineForm) -> AffineForm:
    act = activation_for(net.activation)
    h, last = x, len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        if i in net.skip:
            h = concat([h, x]).scale(1.0 / math.sqrt(2.0))
        h = linear(layer, h)
        if i < last:
            h = activate(h, act)
    return h


@layer_rule(Siren)
def _siren(net: Siren, x: AffineForm) -> AffineForm:
    h = x
    for layer in net.layers[:-1]:  # sin(omega0 (W h + b))
        h = activate(h.linear(layer.weight * net.omega0, layer.bias * net.omega0), sine())
    return linear(net.layers[-1], h)


@layer_rule(HashGridSDF)
def _hashgrid_sdf(net: HashGridSDF, x: AffineForm) -> AffineForm:
    act = activation_for(net.activation)
    h = concat([x, propagate(net.encoding, x)])
    for layer in net.layers[:-1]:
        h = activate(linear(layer, h), act)
    residual = linear(net.layers[-1], h)
    sphere = norm(x, eps=1e-12)  # the module's smoothed |x|
    one = torch.ones(1, 2, dtype=sphere.center.dtype, device=sphere.center.device)
    return concat([residual, sphere]).linear(one, torch.full_like(one[:, 0], -net.init_radius))


@layer_rule(DeepSDFDecoder)
def _deepsdf_decoder(net: DeepSDFDecoder, x: AffineForm) -> AffineForm:
    """Evaluation mode only: dropout is the identity there (a training-mode decoder drops units at random)."""
    if net.training and net.dropout > 0:
        raise JobError("range analysis needs the decoder in evaluation mode (dropout active)")
    h = x
    for i, layer in enumerate(net.hidden):
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
    for i, layer in enumerate(mlp.trunk):
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
