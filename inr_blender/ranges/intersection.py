"""Do two surfaces meet? Certified by range analysis over boxes: two fields' zero levels, or a field's and a triangle mesh.

Boxes live in the first field's local frame (the region defaults to its domain cube [-1, 1]^3). The second field's
placement relative to the first is an affine map from the first's local frame to the second's, built from the two
frames (each a checkpoint's (center, scale): world = center + scale * local, or any 4x4 local-to-world matrix, so a
field may be moved, turned and scaled non-uniformly). It maps a box of the first frame to a parallelepiped of the
second's, which range analysis bounds as an affine form (:func:`~.evaluate.form_range`: the box's form through the
map, exact in the affine modes; its bounding box in interval mode). A field's surface counts inside its own domain
only: a box whose image's bounding box misses the second's cube [-1, 1]^3 is pruned. Otherwise the second field is
bounded over the whole image (where that reaches outside the cube, the network's values there can only widen the
bound) and, where the image reaches outside the cube, also over its bounding box clipped to the cube; both enclose
the image's part inside the cube, so either may certify. A map that keeps boxes axis-aligned (the (center, scale)
frames) makes the image its own bounding box: only the clipped box is bounded. A box is pruned when range analysis
certifies either field nonzero over it (then the surfaces cannot meet there); the others split into 8 down to
``max_depth``. Verdicts:

- 'disjoint': every box pruned (certified);
- 'intersecting': a checkable witness was found in a leaf. For two fields: two points a, b on the first surface
  (brackets of its sign to 1e-9) inside one leaf box, with the second field negative at a and positive at b (both
  mapped into its cube), so the first surface crosses the second within that box (the ``witness`` is their
  midpoint; the pair is ``witness_pair``). For a mesh: a point on one of its triangles where the field changes sign
  (a bracket of 1e-9 along a segment inside the triangle), found by sampling every triangle coarsely first, then
  the triangles of the remaining leaves at about half the leaf size (at most 64 steps per edge);
- 'unknown': boxes remain at ``max_depth`` and no witness was found.

A mesh is bounded per box by its triangles' bounding boxes (sound: a triangle lies in its bounding box); a box that
no triangle's bounding box overlaps is pruned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field as dataclass_field

import torch
from torch import Tensor, nn

from ..context import JobContext, JobError
from .affine import AffineForm, RangeContext
from .closest import _octants
from .evaluate import form_range
from .search import field_values, range_chunk, unknown_boxes

DEFAULT_DEPTH = 6
MAX_BOXES = 2_000_000
BISECTIONS = 32


@dataclass
class Intersection:
    """``verdict``; the remaining boxes ``lower``/``upper`` (K, 3, first field's local frame); ``witness`` (3,) and
    ``witness_pair`` (2, 3) or None; statistics."""

    verdict: str
    lower: Tensor
    upper: Tensor
    witness: Tensor | None = None
    witness_pair: Tensor | None = None
    stats: dict = dataclass_field(default_factory=dict)


Frame = tuple[Tensor, float] | Tensor  # (center (3,), scale): world = center + scale * local; or a 4x4 local-to-world


def frame_matrix(frame: Frame) -> Tensor:
    """A frame as its 4x4 local-to-world matrix (float64); JobError unless it is a finite, invertible affine map."""
    if isinstance(frame, tuple):
        center, scale = frame
        m = torch.eye(4, dtype=torch.float64) * float(scale)
        m[:3, 3], m[3, 3] = torch.as_tensor(center, dtype=torch.float64).reshape(3), 1.0
    else:
        m = torch.as_tensor(frame, dtype=torch.float64)
        if m.shape != (4, 4):
            raise JobError(f"a field's frame must be a 4x4 matrix, got shape {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise JobError("a field's frame contains NaN or Inf")
    affine_row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    if not torch.allclose(m[3], affine_row, rtol=0.0, atol=1e-9):
        raise JobError(f"a field's frame must be affine (last row 0, 0, 0, 1), got {m[3].tolist()}")
    m = m.clone()
    m[3] = affine_row
    norms = torch.linalg.norm(m[:3, :3], dim=0)
    if not (norms > 0).all() or abs(float(torch.linalg.det(m[:3, :3]))) <= 1e-9 * float(norms.prod()):
        raise JobError("a field's frame is singular (zero scale, or flattened along some direction)")
    return m


def _map(x: Tensor, m: Tensor) -> Tensor:
    """Points (..., 3) through the affine map ``m`` (4x4)."""
    return x @ m[:3, :3].T + m[:3, 3]


def _is_axis_aligned(m: Tensor) -> bool:
    """Whether ``m`` maps axis-aligned boxes onto axis-aligned boxes (one nonzero per row and column of its 3x3)."""
    nonzero = m[:3, :3] != 0
    return bool((nonzero.sum(dim=0) == 1).all() and (nonzero.sum(dim=1) == 1).all())


def _image_bounds(lo: Tensor, hi: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """The bounding boxes (B, 3) of the images of boxes ``lo``..``hi`` under ``m``."""
    center, half = _map((lo + hi) / 2, m), ((hi - lo) / 2) @ m[:3, :3].abs().T
    return center - half, center + half


def _unknown_images(field: nn.Module, lo: Tensor, hi: Tensor, m: Tensor, mode: str, ctx: JobContext) -> tuple[Tensor, int]:
    """(B,) bool: the boxes ``lo``..``hi`` (first frame; their images reach the cube) where range analysis cannot
    certify ``field`` nonzero over the part of their image under ``m`` inside its cube (module docstring); and the
    number of box evaluations."""
    blo, bhi = _image_bounds(lo, hi, m)
    clo, chi = blo.clamp(-1.0, 1.0), bhi.clamp(-1.0, 1.0)
    if _is_axis_aligned(m):  # each image is its bounding box: the clipped box is all there is
        return unknown_boxes(field, clo, chi, mode, ctx=ctx), len(lo)
    unknown = torch.zeros(len(lo), dtype=torch.bool, device=lo.device)
    param = next(field.parameters(), None)
    chunk = range_chunk(field, mode, param.device if param is not None else lo.device)
    for start in range(0, len(lo), chunk):
        ctx.check_cancel()
        part = slice(start, start + chunk)
        form = AffineForm.from_box(lo[part], hi[part], RangeContext(mode)).linear(m[:3, :3], m[:3, 3])
        flo, fhi = form_range(field, form)
        unknown[part] = (flo <= 0) & (fhi >= 0)
    reaching_out = unknown & ((blo < -1.0) | (bhi > 1.0)).any(dim=1)  # also bounded over the clipped bounding box
    unknown[reaching_out] = unknown_boxes(field, clo[reaching_out], chi[reaching_out], mode, ctx=ctx)
    return unknown, len(lo) + int(reaching_out.sum())


def _region(region: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
    if region is None:
        return -torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    lo, hi = (torch.as_tensor(r, dtype=torch.float64).reshape(1, 3) for r in region)
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()) or not (lo < hi).all():
        raise JobError("the region must be finite corners with lower < upper on every axis")
    return lo.clamp(-1.0, 1.0), hi.clamp(-1.0, 1.0)


def fields_intersect(
    field_a: nn.Module,
    field_b: nn.Module,
    frame_a: Frame,
    frame_b: Frame,
    region: tuple[Tensor, Tensor] | None = None,
    mode: str = "affine_all",
    max_depth: int = DEFAULT_DEPTH,
    ctx: JobContext | None = None,
) -> Intersection:
    """Whether the zero levels of two fields meet inside ``region`` (first field's local frame; module docstring).
    ``frame_a``, ``frame_b``: each field's local-to-world map, a (center, scale) or a 4x4 matrix."""
    started, ctx = time.monotonic(), ctx or JobContext()
    a_to_b = torch.linalg.solve(frame_matrix(frame_b), frame_matrix(frame_a))
    lo, hi = _region(region)
    if not (lo < hi).all():
        raise JobError("the region does not overlap the first field's domain [-1, 1]^3")
    stats: dict[str, float] = {"box_evaluations": 0, "point_evaluations": 0}
    for depth in range(max_depth + 1):
        ctx.progress(depth, max_depth + 1, None, f"intersection: {len(lo)} boxes")
        blo, bhi = _image_bounds(lo, hi, a_to_b)
        keep = ((blo < 1.0) & (bhi > -1.0)).all(dim=1)  # images that reach the second field's cube
        keep[keep.clone()] = unknown_boxes(field_a, lo[keep], hi[keep], mode, ctx=ctx)
        stats["box_evaluations"] += int(keep.sum())
        keep[keep.clone()], evaluations = _unknown_images(field_b, lo[keep], hi[keep], a_to_b, mode, ctx)
        stats["box_evaluations"] += evaluations
        lo, hi = lo[keep], hi[keep]
        if not len(lo):
            return Intersection("disjoint", lo.float(), hi.float(), stats={**stats, "depth": depth, "seconds": time.monotonic() - started})
        if depth < max_depth:
            if 8 * len(lo) > MAX_BOXES:
                raise JobError(f"the intersection search needs more than {MAX_BOXES} boxes: use a smaller max_depth")
            _, lo, hi = _octants(torch.zeros(len(lo), dtype=torch.long), lo, hi)
    pair = _field_witness(field_a, field_b, a_to_b, lo, hi, stats, ctx)
    stats.update(depth=max_depth, seconds=time.monotonic() - started)
    if pair is None:
        return Intersection("unknown", lo.float(), hi.float(), stats=stats)
    return Intersection("intersecting", lo.float(), hi.float(), pair.mean(dim=0).float(), pair.float(), stats)


def _bisect(field: nn.Module, a: Tensor, b: Tensor, fa: Tensor, stats: dict, ctx: JobContext) -> tuple[Tensor, Tensor]:
    """Shrink segments [a, b] (fa = f(a), f(b) of the other sign) around a zero; returns the final (a, b)."""
    for _ in range(BISECTIONS):
        mid = (a + b) / 2
        fm = field_values(field, mid.float(), ctx=ctx).double()
        same = (fm > 0) == (fa > 0)
        a, b = torch.where(same[:, None], mid, a), torch.where(same[:, None], b, mid)
    stats["point_evaluations"] += BISECTIONS * len(a)
    return a, b


def _field_witness(field_a, field_b, a_to_b: Tensor, lo: Tensor, hi: Tensor, stats: dict, ctx: JobContext) -> Tensor | None:
    """Two points of surface A in one leaf on opposite sides of surface B (inside B's cube through ``a_to_b``), or None
    (a 3^3 grid per leaf, its edges)."""
    w = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    grid = torch.cartesian_prod(w, w, w)  # (27, 3)
    pts = lo[:, None] + grid * (hi - lo)[:, None]  # (L, 27, 3)
    f = field_values(field_a, pts.reshape(-1, 3).float(), ctx=ctx).double().reshape(len(lo), 27)
    stats["point_evaluations"] += f.numel()
    idx = torch.arange(27).reshape(3, 3, 3)
    edges = torch.cat(
        [torch.stack([idx.select(d, 0).reshape(-1), idx.select(d, 1).reshape(-1)], 1) for d in range(3)]
        + [torch.stack([idx.select(d, 1).reshape(-1), idx.select(d, 2).reshape(-1)], 1) for d in range(3)]
    )
    fa, fb = f[:, edges[:, 0]], f[:, edges[:, 1]]
    leaf, e = ((fa > 0) != (fb > 0)).nonzero(as_tuple=True)
    if not len(leaf):
        return None
    a, b = _bisect(field_a, pts[leaf, edges[e, 0]], pts[leaf, edges[e, 1]], fa[leaf, e], stats, ctx)
    z = (a + b) / 2
    zb = _map(z, a_to_b)
    inside = (zb.abs() <= 1.0).all(dim=1)
    g = field_values(field_b, zb.float(), ctx=ctx).double()
    stats["point_evaluations"] += len(g)
    for sign_leaf in torch.unique(leaf[inside]):
        mine = (leaf == sign_leaf) & inside
        neg, pos = mine & (g < 0), mine & (g > 0)
        if neg.any() and pos.any():
            return torch.stack([z[neg.nonzero()[0, 0]], z[pos.nonzero()[0, 0]]])
    return None


def field_mesh_intersect(
    field: nn.Module,
    vertices: Tensor,
    faces: Tensor,
    region: tuple[Tensor, Tensor] | None = None,
    mode: str = "affine_all",
    max_depth: int = DEFAULT_DEPTH,
    ctx: JobContext | None = None,
) -> Intersection:
    """Whether the zero level of ``field`` meets the triangle mesh (``vertices`` in the field's local frame)."""
    started, ctx = time.monotonic(), ctx or JobContext()
    stats: dict[str, float] = {"box_evaluations": 0, "point_evaluations": 0}
    tri = vertices.double()[faces.long()]  # (T, 3, 3)
    witness = _mesh_witness(field, tri, stats, ctx)
    lo, hi = _region(region)
    if witness is not None:
        stats.update(depth=0, seconds=time.monotonic() - started)
        return Intersection("intersecting", lo.float(), hi.float(), witness.mean(dim=0).float(), witness.float(), stats)
    tlo, thi = tri.amin(dim=1), tri.amax(dim=1)
    box = torch.zeros(len(tri), dtype=torch.long)  # pairs (box, triangle) whose bounding boxes overlap
    pairs_t = torch.arange(len(tri))
    for depth in range(max_depth + 1):
        ctx.progress(depth, max_depth + 1, None, f"intersection: {len(lo)} boxes")
        overlap = ((tlo[pairs_t] <= hi[box]) & (thi[pairs_t] >= lo[box])).all(dim=1)
        box, pairs_t = box[overlap], pairs_t[overlap]
        keep = torch.zeros(len(lo), dtype=torch.bool)
        keep[box] = True
        stats["box_evaluations"] += int(keep.sum())
        keep[keep.clone()] = unknown_boxes(field, lo[keep].float(), hi[keep].float(), mode, ctx=ctx)
        renumber = torch.cumsum(keep, 0) - 1
        pair_keep = keep[box]
        box, pairs_t, lo, hi = renumber[box[pair_keep]], pairs_t[pair_keep], lo[keep], hi[keep]
        if not len(lo):
            return Intersection("disjoint", lo.float(), hi.float(), stats={**stats, "depth": depth, "seconds": time.monotonic() - started})
        if depth < max_depth:
            if 8 * max(len(lo), len(box)) > MAX_BOXES:
                raise JobError(f"the intersection search needs more than {MAX_BOXES} boxes: use a smaller max_depth")
            _, lo, hi = _octants(torch.zeros(len(lo), dtype=torch.long), lo, hi)
            box = (box[:, None] * 8 + torch.arange(8)).reshape(-1)
            pairs_t = pairs_t.repeat_interleave(8)
    near = tri[torch.unique(pairs_t)]  # sampled at about half the leaf size
    extent = float((near.amax(dim=1) - near.amin(dim=1)).amax()) if len(near) else 0.0
    samples = int(min(max(2.0 * extent / float((hi - lo).amax()), 8), 64))
    witness = _mesh_witness(field, near, stats, ctx, samples=samples)
    stats.update(depth=max_depth, seconds=time.monotonic() - started)
    if witness is None:
        return Intersection("unknown", lo.float(), hi.float(), stats=stats)
    return Intersection("intersecting", lo.float(), hi.float(), witness.mean(dim=0).float(), witness.float(), stats)


def _mesh_witness(field: nn.Module, tri: Tensor, stats: dict, ctx: JobContext, samples: int = 2) -> Tensor | None:
    """A bracket (2, 3) of the field's sign along a segment inside one triangle (inside the cube), or None.
    Samples each triangle on a barycentric grid of ``samples`` steps per edge."""
    if not len(tri):
        return None
    k = torch.arange(samples + 1, dtype=torch.float64)
    i, j = torch.meshgrid(k, k, indexing="ij")
    ok = i + j <= samples
    bary = torch.stack([i[ok], j[ok], samples - i[ok] - j[ok]], dim=1) / samples  # (S, 3)
    pts = torch.einsum("sk,tkd->tsd", bary, tri)  # (T, S, 3)
    inside = (pts.abs() <= 1.0).all(dim=-1)
    f = field_values(field, pts.reshape(-1, 3).float(), ctx=ctx).double().reshape(pts.shape[:2])
    stats["point_evaluations"] += f.numel()
    pos, neg = (f > 0) & inside, (f < 0) & inside
    both = (pos.any(dim=1) & neg.any(dim=1)).nonzero().squeeze(1)
    if not len(both):
        return None
    t = both[0]
    a, b = pts[t, pos[t].nonzero()[0, 0]][None], pts[t, neg[t].nonzero()[0, 0]][None]
    a, b = _bisect(field, a, b, f[t, pos[t].nonzero()[0, 0]].reshape(1), stats, ctx)
    return torch.cat([a, b])
