"""Classic NeRF (Mildenhall 2020): coarse and fine networks, loss MSE(coarse) + MSE(fine), centre crops first."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ...fields import field_config
from ...render.renderer import RenderSettings
from ...settings import nerf as settings
from .base import RadianceModel, register


@register
class Classic(RadianceModel):
    settings = settings.CLASSIC

    @classmethod
    def field_config(cls, p: dict[str, Any]) -> dict[str, Any]:
        return field_config(
            "nerf_classic",
            width=p["width"],
            depth=p["depth"],
            skip=p["depth"] // 2,
            position_frequencies=p["position_frequencies"],
            direction_frequencies=p["direction_frequencies"],
        )

    @classmethod
    def render_settings(cls, p: dict[str, Any]) -> RenderSettings:
        return RenderSettings(kind="classic", coarse=p["coarse_samples"], fine=p["fine_samples"])

    def rays(self) -> int:
        return self.p["batch_rays"]

    def crop(self, step: int) -> float:
        return self.p["precrop_fraction"] if step < self.p["precrop_iterations"] else 1.0

    def loss(self, out: dict[str, Tensor], target: Tensor) -> tuple[Tensor, Tensor]:
        mse = ((out["rgb"] - target) ** 2).mean()
        return mse + ((out["rgb_coarse"] - target) ** 2).mean(), mse
