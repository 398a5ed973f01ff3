"""Implicit displacement fields (Wang Yifan 2022): a smooth SIREN base (omega 15) plus a SIREN detail (omega 60)
along the base's normals (see :mod:`...fields.displacement`). Needs normals.

Trained with SIREN's loss in phases: the base alone (from a sphere pre-fit unless ``init`` is 'random'), then the
detail alone, then both at ``joint_lr_factor`` of the rate. ``phase_base`` = 1 fits the base alone (a smooth
target for detail transfer). The detail's output layer starts at zero, so the composed field starts as the base.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...fields import field_config
from ...fields.base import linear_layers
from ...fields.displacement import DisplacementField
from ...fields.siren import Siren
from ...settings import sdf as settings
from ..sphere_init import sphere_field
from .base import Batch, register
from .siren import SirenMethod


@dataclass
class Phases:
    """The displacement field's training phases: which parameter groups learn at which step, at what rate."""

    groups: list[list[nn.Parameter]]  # the base's, then the detail's
    base_steps: int  # the base alone before this step
    detail_steps: int  # the detail alone before this step, then both
    joint_factor: float

    def scale(self, step: int) -> tuple[float, float]:
        """The learning-rate factors of (base, detail) at ``step``."""
        if step < self.base_steps:
            return 1.0, 0.0
        if step < self.detail_steps:
            return 0.0, 1.0
        return self.joint_factor, self.joint_factor


@register
class Displacement(SirenMethod):
    settings = settings.IDF

    @classmethod
    def field_config(cls, p: dict[str, Any]) -> dict[str, Any]:
        siren = lambda part: field_config("siren", width=p[f"{part}_width"], depth=p[f"{part}_depth"], omega0=p[f"{part}_omega"])  # noqa: E731
        return field_config("idf", base=siren("base"), detail=siren("detail"), nu=p["nu"], max_offset=p["max_offset"])

    @classmethod
    def sphere_start(cls, p: dict[str, Any]) -> dict[str, Any]:
        return cls.field_config(p)["base"]

    def build_field(self, config: dict[str, Any]) -> nn.Module:
        """A new displacement field: base pre-fitted to a sphere unless ``init`` is 'random', detail output zero."""
        field = super().build_field(config)
        assert isinstance(field, DisplacementField) and isinstance(field.detail, Siren)  # the config's 'idf' kind
        if self.p["init"] == "sphere":
            field.base = sphere_field(config["base"], self.device, self.data.ctx)
        with torch.no_grad():
            last = linear_layers(field.detail.layers)[-1]
            last.weight.zero_()
            last.bias.zero_()
        return field

    def prepare(self, field: nn.Module) -> None:
        assert isinstance(field, DisplacementField)
        n, p = self.p["iterations"], self.p
        self.phases = Phases(
            [list(field.base.parameters()), list(field.detail.parameters())],
            int(round(p["phase_base"] * n)),
            int(round(p["phase_detail"] * n)),
            p["joint_lr_factor"],
        )

    def loss(self, field: nn.Module, batch: Batch, step: int) -> Tensor:
        assert isinstance(field, DisplacementField)
        return super().loss(field.base if step < self.phases.base_steps else field, batch, step)

    def param_groups(self, field: nn.Module) -> tuple[list[list[nn.Parameter]], Callable[[int], Sequence[float]]]:
        return self.phases.groups, self.phases.scale
