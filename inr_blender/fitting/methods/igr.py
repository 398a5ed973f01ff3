"""IGR (Gropp 2020): a softplus MLP with geometric initialisation.

Loss: surface term, optional normal term and eikonal term on near-surface Gaussian samples (per-point sigma =
distance to the ``knn_sigma``-th neighbour) plus uniform samples over the domain (see :func:`..losses.igr_loss`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ...fields import field_config
from ...fields.base import linear_layers
from ...fields.igr import IGRNet
from ...geometry.sampling import knn_sigma, near_surface_samples, uniform_samples
from ...ranges.activations import activate
from ...ranges.affine import AffineForm, concat
from ...ranges.rules import activation_for, layer_rule, linear
from ...settings import sdf as settings
from ..losses import igr_loss
from .base import Batch, SdfMethod, register


@register
class Igr(SdfMethod):
    settings = settings.IGR

    @classmethod
    def field_config(cls, p: dict[str, Any]) -> dict[str, Any]:
        return field_config("igr", width=p["width"], depth=p["depth"], beta=p["beta"], init_radius=p["init_radius"])

    def prepare(self, field: nn.Module) -> None:
        self.data.ctx.progress(0, 1, None, "estimating point spacing")
        self.sigma = torch.as_tensor(knn_sigma(self.data.local, self.p["knn_sigma"]), dtype=torch.float32, device=self.device)

    def off_surface(self, batch: Batch) -> Tensor:
        """Near-surface samples (one per drawn point), then batch/8 uniform samples of the domain."""
        near = near_surface_samples(batch.on[: batch.size], self.sigma[batch.index])
        return torch.cat([near, uniform_samples(max(1, batch.size // 8), self.p["global_sigma"], self.device)])

    def loss(self, field: nn.Module, batch: Batch, step: int) -> Tensor:
        p = self.p
        loss, _ = igr_loss(field, batch.on, batch.normals, self.off_surface(batch), p["tau_normals"], p["lambda_eikonal"], weights=batch.weights)
        return loss


@layer_rule(IGRNet)
def _igr_range(net: IGRNet, x: AffineForm) -> AffineForm:
    """Range rule mirroring IGRNet.forward (skips concatenate the input, divided by sqrt 2)."""
    act = activation_for(net.activation)
    h, last = x, len(net.layers) - 1
    for i, layer in enumerate(linear_layers(net.layers)):
        if i in net.skip:
            h = concat([h, x]).scale(1.0 / math.sqrt(2.0))
        h = linear(layer, h)
        if i < last:
            h = activate(h, act)
    return h
