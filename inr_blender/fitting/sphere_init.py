"""A SIREN pre-fitted to a sphere's SDF, the starting point of the neural skeleton and of a displacement field's base.

The networks of the default configurations are fitted once and stored next to
the fields (``fields/sphere_siren.pt``: the neural skeleton's 64 x 5 at omega 30;
``fields/sphere_siren_15.pt``: the displacement base's 128 x 3 at omega 15; plain
checkpoint dicts); any other configuration is pre-fitted when asked for.
Regenerate the stored ones with ``python -m inr_blender.fitting.methods [neural_skeleton] [idf]`` (the
methods' default networks; this module imports no method, the methods import it).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..checkpoint import read_checkpoint, save_checkpoint
from ..context import JobContext
from ..fields import build_field
from ..fields.grad import value_and_gradient

_FIELDS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fields")
# the stored pre-fits, by the method whose default network they start
STORED = {"neural_skeleton": os.path.join(_FIELDS, "sphere_siren.pt"), "idf": os.path.join(_FIELDS, "sphere_siren_15.pt")}
RADIUS = 0.5  # the sphere, in the local frame (the data spans [-0.8, 0.8])
STORED_STEPS = 3000  # the stored network's pre-fit
ON_DEMAND_STEPS, ON_DEMAND_BATCH = 600, 2048  # pre-fit of any other configuration (minutes on a CPU with 8192 points)


def prefit_sphere(field: nn.Module, steps: int, ctx: JobContext, batch: int = 8192, learning_rate: float = 1e-4, seed: int = 0) -> None:
    """Fit ``field`` to |x| - RADIUS over [-1, 1]^3: 10 * mean squared error plus the eikonal term."""
    device = next(field.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    optimizer = torch.optim.Adam(field.parameters(), lr=learning_rate)
    for i in range(steps):
        x = (torch.rand(batch, 3, generator=generator) * 2.0 - 1.0).to(device)
        u, g = value_and_gradient(field, x, create_graph=True)
        loss = 10.0 * (u - (x.norm(dim=-1) - RADIUS)).square().mean() + (g.norm(dim=-1) - 1.0).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ctx.progress(i + 1, steps, float(loss.detach()), "pre-fitting a sphere")


def sphere_field(config: dict[str, Any], device: torch.device, ctx: JobContext) -> nn.Module:
    """The network of ``config`` (a SIREN) fitted to a sphere's SDF: the stored one if it matches, else pre-fitted now."""
    field = build_field(config).to(device)
    for path in STORED.values():
        if os.path.isfile(path):
            stored = read_checkpoint(path, device)
            if stored["config"] == config:
                field.load_state_dict(stored["state_dict"])
                return field
    prefit_sphere(field, ON_DEMAND_STEPS, ctx, batch=ON_DEMAND_BATCH)
    return field


def write_sphere(config: dict[str, Any], path: str) -> None:
    """Pre-fit the network of ``config`` to the sphere for STORED_STEPS and store it at ``path`` (prints its error)."""
    torch.manual_seed(0)
    field = build_field(config)
    prefit_sphere(field, STORED_STEPS, JobContext(verbose=True))
    x = torch.rand(100_000, 3) * 2.0 - 1.0
    with torch.no_grad():
        error = (field(x) - (x.norm(dim=-1) - RADIUS)).abs()
    print(f"mean |error| {float(error.mean()):.2e}, max {float(error.max()):.2e}")
    save_checkpoint(
        {"format": "inr_blender.sphere_init", "config": config, "state_dict": {k: v.detach().cpu() for k, v in field.state_dict().items()}}, path
    )
    print(f"wrote {path}")
