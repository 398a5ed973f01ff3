"""What a radiance model is to the shared NeRF fit (fitting/nerf.py): its settings, field, render settings,
optimiser and per-step behaviour (rays per step, crops, occupancy updates)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from ...render.image_metrics import psnr_of_mse
from ...render.renderer import RenderSettings
from ...settings.nerf import ModelSettings
from ...settings.spec import Registry
from ..variant import Variant, registrar


class RadianceModel(Variant):
    """A radiance model: subclass it, set ``settings``, define :meth:`field_config` and :meth:`render_settings`."""

    settings: ClassVar[ModelSettings]
    betas: ClassVar[tuple[float, float]] = (0.9, 0.999)  # Adam's

    def __init__(self, p: dict[str, Any]) -> None:
        self.p = p

    @classmethod
    def render_settings(cls, p: dict[str, Any]) -> RenderSettings:
        raise NotImplementedError

    # -- one fit ------------------------------------------------------------------------------------
    def rays(self) -> int:
        """Rays to draw this step."""
        raise NotImplementedError

    def crop(self, step: int) -> float:
        """The central fraction of each image to draw this step's rays from."""
        return 1.0

    def before_step(self, field: nn.Module, settings: RenderSettings, step: int) -> None:
        """Work before step ``step`` (the fast field's occupancy update)."""

    def loss(self, out: dict[str, Tensor], target: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, colour MSE) of a step's render ``out`` against ``target`` colours."""
        mse = ((out["rgb"] - target) ** 2).mean()
        return mse, mse

    def after_step(self, out: dict[str, Tensor]) -> None:
        """Work after a step's render (the fast field adapts its number of rays)."""

    def train_psnr(self, losses: list[float], last_mse: float) -> float:
        """The training PSNR reported in the checkpoint."""
        return psnr_of_mse(last_mse)

    def summary(self, field: nn.Module) -> dict[str, Any]:
        """Model-specific checkpoint entries."""
        return {}


# The radiance models by name: each module registers its class where it is defined.
MODELS: Registry[type[RadianceModel]] = Registry("NeRF model")
register = registrar(MODELS)  # the class decorator


def mean_psnr(losses: list[float]) -> float:
    """PSNR of the mean of the last 100 losses (for a model whose loss is its colour MSE)."""
    return psnr_of_mse(float(np.mean(losses[-100:])))
