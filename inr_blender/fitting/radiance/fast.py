"""Fast field (Instant-NGP, Müller 2022): hash grid, occupancy-grid marching, rays adapted to a sample budget."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from ...fields import field_config
from ...fields.nerf import FastNeRF
from ...render.renderer import RenderSettings
from ...settings import nerf as settings
from .base import RadianceModel, mean_psnr, register


@register
class Fast(RadianceModel):
    settings = settings.FAST
    betas = (0.9, 0.99)

    def __init__(self, p: dict[str, Any]) -> None:
        super().__init__(p)
        self._rays = p["initial_rays"]

    @classmethod
    def field_config(cls, p: dict[str, Any]) -> dict[str, Any]:
        keys = ("levels", "log2_table_size", "base_resolution", "finest_resolution", "width", "occupancy_resolution")
        return field_config("nerf_fast", **{k: p[k] for k in keys})

    @classmethod
    def render_settings(cls, p: dict[str, Any]) -> RenderSettings:
        return RenderSettings(kind="fast", step=2.0 * math.sqrt(3.0) / p["march_steps"], prune=p["prune"])

    def rays(self) -> int:
        return int(self._rays)

    def before_step(self, field: nn.Module, render: RenderSettings, step: int) -> None:
        assert isinstance(field, FastNeRF)  # field_config builds one
        if step % self.p["occupancy_interval"] == 0:
            field.occupancy.update(field.density, render.step, warmup=step < self.p["occupancy_warmup"])

    def after_step(self, out: dict[str, Tensor]) -> None:
        """Keep about samples_per_step samples per step (Instant-NGP's dynamic batch); the count came back with the
        marching's one transfer, so reading it costs no wait for the device."""
        samples = max(1, int(out["samples"]))
        self._rays = int(min(self.p["max_rays"], max(64, self._rays * self.p["samples_per_step"] / samples)))

    def train_psnr(self, losses: list[float], last_mse: float) -> float:
        return mean_psnr(losses)  # the loss is the colour MSE

    def summary(self, field: nn.Module) -> dict[str, Any]:
        assert isinstance(field, FastNeRF)  # field_config builds one
        return {"occupancy": field.occupancy.fraction}
