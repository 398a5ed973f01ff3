"""What an SDF method is to the shared fit (fitting/sdf.py): its settings, its field, its per-fit preparation,
its loss for a step and its optimiser's parameter groups.

The fit creates one instance per fit (``method = METHODS.get(name)(p, data)``), builds the field with
:meth:`SdfMethod.build_field`, calls :meth:`SdfMethod.prepare` once, then :meth:`SdfMethod.loss` every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ...context import JobContext
from ...fields import build_field
from ...settings.sdf import MethodSettings
from ...settings.spec import Registry
from ..losses import SurfaceWeights
from ..variant import Variant, registrar


@dataclass
class FitData:
    """The input of a fit, in the field's local frame (the data spans [-0.8, 0.8], the domain is [-1, 1]^3)."""

    local: np.ndarray  # (N, 3) points
    normals: np.ndarray | None  # (N, 3) unit normals, or None
    surface: Tensor  # (N, 3) the points on the device
    surface_normals: Tensor | None  # (N, 3) on the device
    device: torch.device
    ctx: JobContext


@dataclass
class Batch:
    """One step's surface samples: ``size`` drawn input points (their ``index``), then any iso-points."""

    on: Tensor  # (M, 3), M >= size: the drawn points, then the iso-points of the step
    normals: Tensor | None  # (M, 3)
    weights: SurfaceWeights | None  # per surface sample: value and normal weights (iso-points), or None
    index: Tensor  # (size,) indices of the drawn input points
    size: int


class SdfMethod(Variant):
    """An SDF method: subclass it, set ``settings``, define :meth:`field_config` and :meth:`loss`, register it."""

    settings: ClassVar[MethodSettings]

    def __init__(self, p: dict[str, Any], data: FitData) -> None:
        self.p, self.data, self.device = p, data, data.device

    # -- what the method declares, without a fit ---------------------------------------------------
    @classmethod
    def name(cls) -> str:
        return cls.settings.name

    @classmethod
    def needs_normals(cls) -> bool:
        return cls.settings.needs_normals

    @classmethod
    def sphere_start(cls, p: dict[str, Any]) -> dict[str, Any] | None:
        """The config of the network this method starts from a sphere pre-fit (see sphere_init), or None."""
        return None

    # -- one fit ------------------------------------------------------------------------------------
    def build_field(self, config: dict[str, Any]) -> nn.Module:
        """The field to train, on the device (default: a new network of ``config``)."""
        return build_field(config).to(self.device)

    def prepare(self, field: nn.Module) -> None:
        """Work done once per fit before training: samples, sign estimates, learning points, phases."""

    def loss(self, field: nn.Module, batch: Batch, step: int) -> Tensor:
        """The loss of step ``step`` on ``batch``."""
        raise NotImplementedError

    def param_groups(self, field: nn.Module) -> tuple[list[list[nn.Parameter]], Callable[[int], Sequence[float]]] | None:
        """Parameter groups and their learning-rate factors per step (phased training), or None: one group."""
        return None


# The SDF methods by name: each module registers its class where it is defined (``@register``).
METHODS: Registry[type[SdfMethod]] = Registry("SDF method")
register = registrar(METHODS)  # the class decorator
