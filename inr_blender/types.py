"""Tensor shapes in signatures: ``Annotated`` aliases that name a tensor's shape (documentation only, not checked).

N is a batch of points or rays, F a feature width, B a batch of boxes.
"""

from __future__ import annotations

from typing import Annotated

from torch import Tensor

Points = Annotated[Tensor, "(N, 3)"]  # positions, in the field's local frame unless said otherwise
Directions = Annotated[Tensor, "(N, 3)"]  # unit vectors
Values = Annotated[Tensor, "(N,)"]  # one scalar per point: a signed distance, a logit, a density
Features = Annotated[Tensor, "(N, F)"]  # an encoding's output
Colours = Annotated[Tensor, "(N, 3)"]  # RGB in [0, 1]
Matrix4 = Annotated[Tensor, "(4, 4)"]  # a camera-to-world matrix
Intrinsics = Annotated[Tensor, "(4,)"]  # fx, fy, cx, cy in pixels
