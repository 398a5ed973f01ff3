"""Fitting with iso-points (Wang Yifan et al. 2021): samples where the current surface is.

After ``isopoints_warmup`` steps, and then every ``isopoints_refresh`` steps, the
field's iso-points are extracted (:mod:`..geometry.isopoints`) and kept fixed
until the next refresh. They enter the fit in the two ways the paper uses for
noisy point clouds:

- **as training samples.** Each step a batch of iso-points joins the surface
  samples, with the method's own surface terms (value and normal), weighted by
  ``w_iso`` and ``w_iso_normal``. Their target normals come from a plane fitted
  to their ``NORMAL_NEIGHBOURS`` nearest iso-points, so the term pulls the
  surface towards a locally smooth one;
- **to weigh the data.** Each input point x gets the bilateral weight
  exp(-(⟨x - q, n_q⟩ / h)^2) * exp(-((1 - ⟨n_x, n_q⟩) / (1 - cos 60°))^2) from its
  nearest iso-point q (normal n_q, iso-point spacing h; the normal factor only when
  the points have normals), so outliers and points whose normal disagrees with
  the current surface count less in the data terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from ..context import JobContext, JobError
from ..geometry.isopoints import sample_isopoints

RESAMPLE_STEPS = 3  # repulsion rounds per refresh: enough to break up clumps, cheap enough to repeat
NORMAL_NEIGHBOURS = 8  # iso-points in each plane fit (the paper's k)
NORMAL_ANGLE = np.deg2rad(60.0)  # the bilateral weight's normal bandwidth (the paper's)


def plane_normals(tree: cKDTree, oriented: np.ndarray, k: int = NORMAL_NEIGHBOURS) -> tuple[np.ndarray, float]:
    """Unit normals of the planes fitted to each of the points in ``tree`` and its ``k - 1`` nearest neighbours,
    turned to agree with ``oriented``, and the points' mean nearest-neighbour spacing."""
    points = tree.data
    k = min(k, len(points))
    dist, idx = tree.query(points, k=k, workers=-1)
    idx = idx.reshape(len(points), k)
    spacing = float(dist.reshape(len(points), k)[:, min(1, k - 1)].mean())
    neighbours = points[idx]
    local = neighbours - neighbours.mean(axis=1, keepdims=True)
    normals = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))[1][:, :, 0]  # least-variance direction
    return normals * np.where(np.einsum("ni,ni->n", normals, oriented) < 0, -1.0, 1.0)[:, None], spacing


def bilateral_weights(points: np.ndarray, normals: np.ndarray | None, iso: cKDTree, iso_normals: np.ndarray, h: float) -> np.ndarray:
    """The paper's weight of each input point from its nearest iso-point (in ``iso``; see the module docstring)."""
    nearest = iso.query(points, workers=-1)[1]
    n = iso_normals[nearest]
    height = np.einsum("ni,ni->n", points - iso.data[nearest], n)
    weight = np.exp(-np.square(height / max(h, 1e-12)))
    if normals is not None:
        weight *= np.exp(-np.square((1.0 - np.einsum("ni,ni->n", normals, n)) / (1.0 - np.cos(NORMAL_ANGLE))))
    return weight


class IsoPointTerm:
    """The iso-points of one fit: refreshes them on schedule and adds them to each step's surface batch."""

    def __init__(self, local: np.ndarray, normals: np.ndarray | None, p: dict[str, Any], device: torch.device) -> None:
        """``local``: the input points in the fit's frame; ``normals``: theirs, or None."""
        self.p, self.device = p, device
        self.cloud = np.asarray(local, dtype=np.float64)
        self.cloud_normals = None if normals is None else np.asarray(normals, dtype=np.float64)
        self.points: torch.Tensor | None = None
        self.normals: torch.Tensor | None = None
        self.data_weights: torch.Tensor | None = None
        self.refreshes = 0

    def refresh(self, field: nn.Module, step: int) -> None:
        """Extract new iso-points when the schedule says so (a field without a surface yet keeps the old ones)."""
        p = self.p
        if step < p["isopoints_warmup"] or (step - p["isopoints_warmup"]) % max(1, p["isopoints_refresh"]):
            return
        try:
            iso = sample_isopoints(field, self.device, {"count": p["isopoints"], "resample_steps": RESAMPLE_STEPS, "seed": step}, JobContext())
        except JobError:
            return
        tree = cKDTree(iso.points)  # one search structure for the plane fits, the spacing and the weights
        normals, h = plane_normals(tree, iso.normals)
        weights = bilateral_weights(self.cloud, self.cloud_normals, tree, normals, h)
        as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self.points, self.normals, self.data_weights = as_tensor(iso.points), as_tensor(normals), as_tensor(weights)
        self.refreshes += 1

    def extend(
        self, on: torch.Tensor, n: torch.Tensor | None, idx: torch.Tensor, count: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor] | None]:
        """The surface batch ``on`` (normals ``n``, rows ``idx`` of the input) with ``count`` random iso-points
        appended, and the (value, normal) weight of every row; unchanged, with no weights, before the first
        extraction."""
        if self.points is None or len(self.points) == 0:
            return on, n, None
        assert self.normals is not None and self.data_weights is not None  # set with the points
        j = torch.randint(len(self.points), (min(count, len(self.points)),), device=self.device)
        data = self.data_weights[idx]
        ones = torch.ones(len(j), device=self.device)
        weights = (torch.cat([data, self.p["w_iso"] * ones]), torch.cat([data, self.p["w_iso_normal"] * ones]))
        return torch.cat([on, self.points[j]]), None if n is None else torch.cat([n, self.normals[j]]), weights
