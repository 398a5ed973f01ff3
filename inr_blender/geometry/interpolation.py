"""Interpolating between two shapes of a shape space: decoded meshes along the segment between their codes.

:func:`interpolate` extracts the shape of z(t) = (1 - t) z_a + t z_b at ``count`` values of t from 0 to 1 (both
ends included). With ``correspond`` it also carries the first mesh's vertices through the sequence: from each t to
the next, every vertex is Newton-projected onto the next surface (geometry/projection.py), so one mesh with one
vertex set follows every in-between shape (shape keys). That works while the topology stays the same; it is
judged ``ok`` when, at every t, the carried vertices lie on the surface (|f| below half a grid cell), the extracted
mesh lies near them (its mean distance to them below 2 cells) and fewer than 1% of the triangles flipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..context import JobContext
from ..fields.deepsdf import LatentShape, ShapeSpace
from .extraction import extract_mesh
from .projection import project
from .sampling import face_areas_and_normals

MAX_FLIPPED = 0.01  # fraction of carried triangles that may turn over before shape keys are refused


@dataclass
class Sequence:
    """The in-between meshes (local frame) at ``t``, and the carried first mesh when asked."""

    t: np.ndarray
    meshes: list[tuple[np.ndarray, np.ndarray]]
    volumes: np.ndarray
    key_vertices: np.ndarray | None = None  # (K, V0, 3)
    key_error: np.ndarray | None = None  # (K,) worst |f| of the carried vertices
    ok: bool = False
    notes: list[str] = dataclass_field(default_factory=list)


def enclosed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume enclosed by a closed, outward-wound triangle mesh (divergence theorem)."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    return float(np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def interpolate(
    space: ShapeSpace,
    code_a: torch.Tensor,
    code_b: torch.Tensor,
    count: int,
    resolution: int,
    device: torch.device,
    ctx: JobContext,
    correspond: bool = True,
) -> Sequence:
    """Meshes of ``count`` codes between ``code_a`` and ``code_b`` (see the module docstring)."""
    t = np.linspace(0.0, 1.0, int(count))
    meshes, volumes, keys, errors, notes = [], [], [], [], []
    cell = 2.0 / (int(resolution) - 1)
    ok = correspond
    for k, tk in enumerate(t):
        ctx.progress(k, len(t), None, f"decoding shape {k + 1} of {len(t)}")
        shape = LatentShape(space.decoder, (1.0 - tk) * code_a + tk * code_b).to(device).eval()
        vertices, faces, _ = extract_mesh(shape, resolution, device, ctx)
        meshes.append((vertices, faces))
        volumes.append(enclosed_volume(vertices, faces))
        if not correspond:
            continue
        if k == 0:
            carried, first_faces = torch.as_tensor(vertices, dtype=torch.float32, device=device), meshes[0][1]
            _, reference_normals = face_areas_and_normals(vertices, first_faces)
            error = torch.zeros(1)
        else:
            carried, error, _ = project(shape, carried, iterations=10, max_step=2 * cell)
        keys.append(carried.cpu().numpy())
        errors.append(float(error.max()) if len(error) else 0.0)
        if k:
            _, normals = face_areas_and_normals(keys[-1], first_faces)
            flipped = float(((normals * reference_normals).sum(axis=1) < 0).mean())
            gap = float(cKDTree(keys[-1]).query(vertices, workers=-1)[0].mean())
            if errors[-1] > cell / 2 or gap > 2 * cell or flipped > MAX_FLIPPED:
                ok = False
                notes.append(f"t={tk:.2f}: surface error {errors[-1]:.3g}, gap {gap:.3g}, flipped {flipped:.1%}")
    ctx.progress(len(t), len(t), None, "decoded")
    return Sequence(t, meshes, np.asarray(volumes), np.stack(keys) if correspond else None, np.asarray(errors) if correspond else None, ok, notes)
