"""Hash grid (Instant-NGP's multiresolution hash encoding, Müller 2022) with IGR's losses and samples.

The field is hash-grid features plus a small softplus MLP over a fixed sphere SDF (see :mod:`...fields.hashgrid`).
With normals, two terms from the signed distance to the cloud (sign from the nearest normals, see
SignedDistanceEstimate) join IGR's: an L1 term at uniform points far from the cloud (``w_far``) and a sign hinge
on near-surface samples (``w_sign``). Both draw from pools prepared once on the device (one k-d tree query each),
so a step does no host work: a quarter of each step's near-surface samples come from the sign pool, drawn as IGR
draws them. The grid's features are local, so without them the inside keeps shells of
the initial sphere and small blobs appear just outside the surface. ``gradient`` 'finite_difference' takes the
input gradients by central differences of one cell of the finest level. Where the encoding runs as fused Triton
kernels (CUDA, see :meth:`...fields.hashgrid.HashGridEncoding.fused`) it always does: the kernels have no double
backward, and the eikonal term through autograd would need one (Neuralangelo's numerical gradients, 7 evaluations
per point, every term first order in the parameters).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...fields import field_config
from ...fields.base import linear_layers
from ...fields.hashgrid import HashGridEncoding, HashGridSDF
from ...geometry.sampling import SignedDistanceEstimate, far_samples, near_surface_signs
from ...ranges.activations import activate
from ...ranges.affine import AffineForm, concat
from ...ranges.encodings import norm
from ...ranges.rules import activation_for, layer_rule, linear, propagate
from ...settings import sdf as settings
from ..losses import igr_loss
from .base import Batch, register
from .igr import Igr

FAR_POOL = 50_000  # uniform candidates for the far-field samples (a pool of 200k took 2.4 s of k-d tree queries)
SIGN_POOL = 1 << 16  # near-surface samples of known sign, at least; and at least SIGN_POOL_STEPS steps' worth
SIGN_POOL_STEPS = 16


@register
class HashGrid(Igr):
    settings = settings.HASHGRID

    @classmethod
    def field_config(cls, p: dict[str, Any]) -> dict[str, Any]:
        keys = ("levels", "features_per_level", "log2_table_size", "base_resolution", "finest_resolution", "width", "depth", "beta", "init_radius")
        return field_config("hashgrid", **{k: p[k] for k in keys})

    def prepare(self, field: nn.Module) -> None:
        super().prepare(field)
        p, data = self.p, self.data
        wanted = p["w_far"] > 0 or p["w_sign"] > 0
        self.estimate = SignedDistanceEstimate(data.local, data.normals) if data.normals is not None and wanted else None
        self.far = self.sign_points = None
        if self.estimate is not None and p["w_sign"] > 0:
            data.ctx.progress(0, 1, None, "estimating the sign of near-surface samples")
            count = max(SIGN_POOL, SIGN_POOL_STEPS * self.sign_count(p["batch_size"]))
            points, signs = near_surface_signs(self.estimate, self.sigma.cpu().numpy(), count, p["sign_distance"], p["seed"])
            self.sign_points = torch.as_tensor(points, dtype=torch.float32, device=self.device)
            self.signs = torch.as_tensor(signs, dtype=torch.float32, device=self.device)
        if self.estimate is not None and p["w_far"] > 0:
            data.ctx.progress(0, 1, None, "estimating signed distances away from the points")
            far, far_sd = far_samples(self.estimate, FAR_POOL, p["far_distance"], p["seed"])
            self.far = torch.as_tensor(far, dtype=torch.float32, device=self.device)
            self.far_sd = torch.as_tensor(far_sd, dtype=torch.float32, device=self.device)
        numerical = p["gradient"] == "finite_difference" or self.fused(field)
        self.fd_step = 2.0 / p["finest_resolution"] if numerical else 0.0

    @staticmethod
    def sign_count(size: int) -> int:
        """How many of a step's near-surface samples come from the sign pool."""
        return max(1, size // 4)

    def fused(self, field: nn.Module) -> bool:
        """Whether the field's encoding runs the fused kernels on this fit's device (then: finite differences)."""
        encoding = getattr(field, "encoding", None)
        return isinstance(encoding, HashGridEncoding) and encoding.fused(self.device)

    def loss(self, field: nn.Module, batch: Batch, step: int) -> Tensor:
        p, size = self.p, batch.size
        off = self.off_surface(batch)
        off_sign = None
        if self.sign_points is not None:  # a quarter of the near-surface samples: from the pool, with their sign
            k = min(self.sign_count(size), len(off))
            j = torch.randint(len(self.sign_points), (k,), device=self.device)
            off = torch.cat([self.sign_points[j], off[k:]])
            off_sign = torch.cat([self.signs[j], off.new_zeros(len(off) - k)])
        loss, _ = igr_loss(
            field, batch.on, batch.normals, off, p["tau_normals"], p["lambda_eikonal"], self.fd_step, off_sign, p["w_sign"], batch.weights
        )
        if self.far is not None and len(self.far):
            j = torch.randint(len(self.far), (max(1, size // 4),), device=self.device)
            loss = loss + p["w_far"] * (field(self.far[j]) - self.far_sd[j]).abs().mean()
        return loss


@layer_rule(HashGridSDF)
def _hashgrid_sdf_range(net: HashGridSDF, x: AffineForm) -> AffineForm:
    """Range rule mirroring HashGridSDF.forward: the smoothed sphere |x| - r plus the MLP's residual."""
    act = activation_for(net.activation)
    h = concat([x, propagate(net.encoding, x)])
    *hidden, last = linear_layers(net.layers)
    for layer in hidden:
        h = activate(linear(layer, h), act)
    residual = linear(last, h)
    sphere = norm(x, eps=1e-12)  # the module's smoothed |x|
    one = torch.ones(1, 2, dtype=sphere.center.dtype, device=sphere.center.device)
    return concat([residual, sphere]).linear(one, torch.full_like(one[:, 0], -net.init_radius))
