"""Input encodings shared by the radiance fields: NeRF's positional encoding and spherical harmonics."""

from __future__ import annotations

import torch
from torch import nn

from ..types import Directions, Features


class PositionalEncoding(nn.Module):
    """NeRF's encoding: x, then sin(2^k x) and cos(2^k x) for k < ``frequencies`` (no pi factor, as published)."""

    _bands: torch.Tensor  # buffer (F,)

    def __init__(self, frequencies: int, input_dim: int = 3, include_input: bool = True) -> None:
        super().__init__()
        self.include_input = include_input
        self.register_buffer("_bands", 2.0 ** torch.arange(frequencies, dtype=torch.float32), persistent=False)
        self.output_dim = input_dim * (int(include_input) + 2 * frequencies)

    def forward(self, x: Features) -> Features:
        scaled = (x[..., None, :] * self._bands[:, None]).flatten(-2)  # (..., F * D), frequency-major
        parts = [x] if self.include_input else []
        return torch.cat(parts + [torch.sin(scaled), torch.cos(scaled)], dim=-1)


class SphericalHarmonics(nn.Module):
    """Real spherical harmonics of unit directions up to ``degree`` - 1 (degree 4: 16 values, as Instant-NGP)."""

    def __init__(self, degree: int = 4) -> None:
        super().__init__()
        if not 1 <= degree <= 4:
            raise ValueError(f"spherical harmonics degree must be 1..4, got {degree}")
        self.degree = degree
        self.output_dim = degree * degree

    def forward(self, d: Directions) -> Features:
        x, y, z = d.unbind(-1)
        out = [torch.full_like(x, 0.28209479177387814)]
        if self.degree > 1:
            out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
        if self.degree > 2:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out += [
                1.0925484305920792 * xy,
                -1.0925484305920792 * yz,
                0.94617469575755997 * zz - 0.31539156525251999,
                -1.0925484305920792 * xz,
                0.54627421529603959 * (xx - yy),
            ]
        if self.degree > 3:
            out += [
                0.59004358992664352 * y * (-3.0 * xx + yy),
                2.8906114426405538 * xy * z,
                0.45704579946446572 * y * (1.0 - 5.0 * zz),
                0.3731763325901154 * z * (5.0 * zz - 3.0),
                0.45704579946446572 * x * (1.0 - 5.0 * zz),
                1.4453057213202769 * z * (xx - yy),
                0.59004358992664352 * x * (-xx + 3.0 * yy),
            ]
        return torch.stack(out, dim=-1)
