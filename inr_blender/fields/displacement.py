"""Implicit displacement fields (Wang Yifan et al. 2022): a smooth base SDF plus detail along its normals.

    f̂(x) = B(x + χ(B(x)) · a · tanh(D(x)) · n(x)),   n = ∇B / |∇B|,   χ(f) = 1 / (1 + (f / ν)^4)

B is a low-frequency SIREN (published ω = 15), D a high-frequency one (ω = 60),
a the largest offset and ν the width of the shell around the base surface where
the detail acts. As published, the attenuation and the normal are taken as
constants with respect to the parameters and to x (detached), so that the
detail moves the surface only along the base's normal.

:class:`TransferredDetail` puts the detail of one such field onto another base.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import projection  # a module: geometry.projection imports fields.grad, so this package
from ..types import Points, Values
from .base import Field
from .factory import Config, build_field, field_kind
from .grad import value_and_gradient


def attenuation(f: torch.Tensor, nu: float) -> torch.Tensor:
    """χ(f) = 1 / (1 + (f / ν)^4): 1 on the base surface, falling off over a shell of width about ν."""
    return 1.0 / (1.0 + (f / nu) ** 4)


def base_frame(base: nn.Module, x: torch.Tensor, nu: float) -> tuple[torch.Tensor, torch.Tensor]:
    """χ(B(x)) (N,) and the base's unit normal at ``x`` (N, 3), both detached."""
    f, g = value_and_gradient(base, x)
    return attenuation(f.detach(), nu), F.normalize(g.detach(), dim=-1)


class DisplacementField(Field):
    """The composed field f̂ of a ``base`` and a ``detail`` network; ``base`` alone is the smooth surface."""

    def __init__(self, base: nn.Module, detail: nn.Module, nu: float = 0.05, max_offset: float = 0.05) -> None:
        super().__init__()
        self.base, self.detail = base, detail
        self.nu, self.max_offset = float(nu), float(max_offset)

    def height(self, x: torch.Tensor) -> torch.Tensor:
        """The signed offset a · tanh(D(x)) along the base normal, before attenuation."""
        return self.max_offset * torch.tanh(self.detail(x))

    def displaced(self, x: torch.Tensor) -> torch.Tensor:
        """x + χ(B(x)) · a · tanh(D(x)) · n(x): where the base is read for the composed value at ``x``."""
        chi, normal = base_frame(self.base, x, self.nu)
        return x + (chi * self.height(x))[:, None] * normal

    def forward(self, x: Points) -> Values:
        return self.base(self.displaced(x))

    def smooth_base(self) -> nn.Module:
        return self.base


class TransferredDetail(Field):
    """A target base displaced by a source's detail: B_t(x + χ(B_t(x)) · s · a · tanh(D_s(c(x))) · n_t(x)).

    The detail is read at coordinates that follow the bases: c(x) is x Newton-projected
    onto the source's base surface (``projection_steps`` steps; 0 reads D_s at x itself,
    the minimal form for shapes that are already aligned). So a point of the target's
    surface takes the displacement of the source surface point it faces, and the detail
    lands on the target's surface, not in the empty space where D_s was never trained.
    Both fields are in their own normalised local frames, so detail keeps its size
    relative to the shape. ``strength`` s scales it (0: the target's base).
    """

    def __init__(
        self,
        target_base: nn.Module,
        source_base: nn.Module,
        source_detail: nn.Module,
        nu: float = 0.05,
        max_offset: float = 0.05,
        strength: float = 1.0,
        projection_steps: int = 5,
    ) -> None:
        super().__init__()
        self.target_base, self.source_base, self.source_detail = target_base, source_base, source_detail
        self.nu, self.max_offset, self.strength = float(nu), float(max_offset), float(strength)
        self.projection_steps = int(projection_steps)

    def detail_coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """c(x): ``x`` projected onto the source's base surface (x itself with 0 projection steps)."""
        if self.projection_steps <= 0:
            return x
        return projection.project(self.source_base, x, self.projection_steps, max_step=0.1)[0]

    def height(self, x: torch.Tensor) -> torch.Tensor:
        """The transferred offset s · a · tanh(D_s(c(x))) along the target base's normal, before attenuation."""
        return self.strength * self.max_offset * torch.tanh(self.source_detail(self.detail_coordinates(x)))

    def smooth_base(self) -> nn.Module:
        return self.target_base

    def forward(self, x: Points) -> Values:
        if self.strength == 0.0:
            return self.target_base(x)
        chi, normal = base_frame(self.target_base, x, self.nu)
        return self.target_base(x + (chi * self.height(x))[:, None] * normal)


# Published: SIREN base at omega 15 and detail at omega 60, 3 x 256 each, nu = 0.05. A fit's defaults are
# settings/sdf.py's IDF. The transfer holds the target's base and the source's base and detail.
@field_kind(
    "idf",
    {
        "base": {"kind": "siren", "width": 256, "depth": 3, "omega0": 15.0},
        "detail": {"kind": "siren", "width": 256, "depth": 3, "omega0": 60.0},
        "nu": 0.05,
        "max_offset": 0.05,
    },
)
def build_displacement(config: Config) -> DisplacementField:
    return DisplacementField(build_field(config["base"]), build_field(config["detail"]), float(config["nu"]), float(config["max_offset"]))


@field_kind(
    "idf_transfer",
    {"target_base": None, "source_base": None, "source_detail": None, "nu": 0.05, "max_offset": 0.05, "strength": 1.0, "projection_steps": 5},
)
def build_transfer(config: Config) -> TransferredDetail:
    return TransferredDetail(
        build_field(config["target_base"]),
        build_field(config["source_base"]),
        build_field(config["source_detail"]),
        float(config["nu"]),
        float(config["max_offset"]),
        float(config["strength"]),
        int(config["projection_steps"]),
    )
