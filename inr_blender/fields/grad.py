"""Values and spatial gradients of a field, by autograd."""

from __future__ import annotations

import torch
from torch import nn


def value_and_gradient(field: nn.Module, x: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return f(x) of shape (N,) and df/dx of shape (N, 3).

    With ``create_graph`` the gradient stays differentiable (double backward),
    which the eikonal and normal losses need.
    """
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        y = field(x)
        (g,) = torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y), create_graph=create_graph)
    return y, g
