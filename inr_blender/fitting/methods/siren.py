"""SIREN (Sitzmann 2020): a sine MLP with surface, normal, eikonal and off-surface terms. Needs normals."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ...fields import field_config
from ...fields.base import linear_layers
from ...fields.siren import Siren
from ...geometry.sampling import uniform_samples
from ...ranges.activations import activate, sine
from ...ranges.affine import AffineForm
from ...ranges.rules import layer_rule, linear
from ...settings import sdf as settings
from ..losses import siren_loss
from .base import Batch, SdfMethod, register


@register
class SirenMethod(SdfMethod):
    settings = settings.SIREN

    @classmethod
    def field_config(cls, p: dict[str, Any]) -> dict[str, Any]:
        return field_config("siren", width=p["width"], depth=p["depth"], omega0=p["omega0"])

    def loss(self, field: nn.Module, batch: Batch, step: int) -> Tensor:
        p = self.p
        assert batch.normals is not None  # SIREN needs normals: fit_sdf refuses a cloud without
        off = uniform_samples(batch.size, 1.0, self.device)
        loss, _ = siren_loss(
            field, batch.on, batch.normals, off, p["w_sdf"], p["w_normal"], p["w_eikonal"], p["w_offsurface"], p["alpha"], batch.weights
        )
        return loss


@layer_rule(Siren)
def _siren_range(net: Siren, x: AffineForm) -> AffineForm:
    """Range rule mirroring Siren.forward: sin(omega0 (W h + b)) per hidden layer, a linear output."""
    h = x
    *hidden, last = linear_layers(net.layers)
    for layer in hidden:
        h = activate(h.linear(layer.weight * net.omega0, layer.bias * net.omega0), sine())
    return linear(last, h)
