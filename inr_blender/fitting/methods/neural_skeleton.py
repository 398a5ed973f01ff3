"""Neural skeleton (Clémot & Digne 2023): a SIREN (6 sine layers of 64) for skeleton extraction. Needs normals.

It starts from a network pre-fitted to a sphere's SDF (``init`` 'sphere', see :mod:`..sphere_init`) and trains
with surface, eikonal, learning-point and total-variation terms (see :func:`..losses.skeleton_loss`), so that the
field stays a distance away from the surface and its gradient-norm minima lie on the medial axis, which
:mod:`...geometry.skeleton` traces. The learning points (uniform points of known signed distance) are used for
the first ``hint_fraction`` of the run; the TV weight halves at ``tv_decay`` of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...fields import field_config
from ...geometry.sampling import SignedDistanceEstimate, uniform_samples
from ...settings import sdf as settings
from ..losses import skeleton_loss
from ..sphere_init import sphere_field
from .base import Batch, SdfMethod, register


def learning_points(estimate: SignedDistanceEstimate, count: int, seed: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """``count`` uniform points (count, 3) of [-1, 1]^3 with their signed distance (count,) to the oriented cloud
    (see SignedDistanceEstimate) and the direction (count, 3) away from their nearest point, outward."""
    queries = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(max(1, int(count)), 3))
    distance, nearest = estimate.with_nearest(queries)
    direction = (queries - estimate.points[nearest]) * np.sign(distance)[:, None]
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    return as_tensor(queries), as_tensor(distance), as_tensor(direction)


@register
class NeuralSkeleton(SdfMethod):
    settings = settings.NEURAL_SKELETON

    @classmethod
    def field_config(cls, p: dict[str, Any]) -> dict[str, Any]:
        return field_config("siren", width=p["width"], depth=p["depth"], omega0=p["omega0"])

    @classmethod
    def sphere_start(cls, p: dict[str, Any]) -> dict[str, Any]:
        return cls.field_config(p)

    def build_field(self, config: dict[str, Any]) -> nn.Module:
        if self.p["init"] == "sphere":
            return sphere_field(config, self.device, self.data.ctx)
        return super().build_field(config)

    def prepare(self, field: nn.Module) -> None:
        p, data = self.p, self.data
        assert data.normals is not None  # the method needs normals: fit_sdf refuses a cloud without
        estimate = SignedDistanceEstimate(data.local, data.normals)
        self.hints, self.hint_distance, self.hint_direction = learning_points(estimate, p["num_hints"], p["seed"], self.device)
        self.hint_steps = int(round(p["hint_fraction"] * p["iterations"])) if p["num_hints"] > 0 else 0
        self.tv_scale = max(1.0, p["tv_decay"] * p["iterations"])

    def loss(self, field: nn.Module, batch: Batch, step: int) -> Tensor:
        p, hinted = self.p, step < self.hint_steps
        assert batch.normals is not None  # the method needs normals: fit_sdf refuses a cloud without
        loss, _ = skeleton_loss(
            field,
            batch.on,
            batch.normals,
            uniform_samples(batch.size, 1.0, self.device),
            self.hints if hinted else None,
            self.hint_distance if hinted else None,
            self.hint_direction if hinted else None,
            p,
            p["w_tv"] / (1.0 + (step / self.tv_scale) ** 2),
            batch.weights,
        )
        return loss
