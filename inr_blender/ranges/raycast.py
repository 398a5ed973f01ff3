"""Ray casting against a field's zero level from a pinhole camera: frustum casting with range analysis, and
sphere tracing with a Lipschitz bound (the baseline that needs a distance field).

Cameras are in the field's local frame: ``c2w`` (4, 4) with orthonormal rotation columns, OpenGL convention
(looks down -Z, +Y up, as :mod:`..render.cameras`), intrinsics (fx, fy, cx, cy) in pixels, pixel centres at
(i + 0.5, j + 0.5). Only the domain cube [-1, 1]^3 is searched.

Frustum casting (Sharp & Jacobson 2022): a cell is an image tile of s x s pixels times a camera-depth interval
[za, zb]. Its frustum piece is the convex hull of its 4 corner rays at the 2 depths, so the bounding box of those
8 points (clipped to the cube) holds it. Cells that range analysis certifies one-signed are dropped; the others
split, the tile into 4 while it is wider than deep, else the depth in 2. A 1-pixel cell follows its pixel's centre
ray only (the box of its ray segment) and splits down to segments of ``tolerance`` (local units along the ray).
Field values at the segment ends are evaluated as well: once a pixel has a segment whose ends differ in sign, a
hit is certain there, and every later segment of that pixel is dropped. The first remaining segment of a pixel
holds its first hit; bisection on the sign refines it (a segment without a sign change at its ends is sampled
at 16 points; if none changes sign either, the surface only grazes the ray there and the sample of least |f| is
reported, counted as ``grazing``). Nothing is stepped over: any part of the zero level a centre ray crosses
inside the cube, however thin or steep, is in an unknown segment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field as dataclass_field

import torch
from torch import Tensor, nn

from ..context import JobContext, JobError
from ..render.cameras import camera_directions, ray_box
from .search import field_gradients, field_values, unknown_boxes

DEFAULT_TOLERANCE = 1e-3  # leaf segment length along the ray (local units); bisection then refines to ~1e-7
TILE = 8  # pixels per side of the first tiles
MAX_CELLS = 4_000_000  # cells alive at once; beyond that the query is refused (memory)
BISECTIONS = 30
GRAZE_SAMPLES = 16
NEAR = 1e-6  # nearest camera depth searched


@dataclass
class RayHits:
    """Per pixel (H, W): ``hit``, ``t`` (distance along the ray, local units; inf where missed), ``normal`` (H, W, 3,
    unit, facing the camera; 0 where missed), the unit ray ``directions`` (H, W, 3), and statistics."""

    hit: Tensor
    t: Tensor
    normal: Tensor
    directions: Tensor
    stats: dict = dataclass_field(default_factory=dict)


def _corner_directions(c2w: Tensor, intrinsics: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Directions (..., 3) through image points (u, v) scaled to one unit of camera depth (camera z = -1)."""
    return camera_directions(u, v, intrinsics) @ c2w[:3, :3].T


def _check_camera(c2w: Tensor, intrinsics: Tensor, width: int, height: int) -> None:
    if c2w.shape != (4, 4) or not torch.isfinite(c2w).all():
        raise JobError(f"c2w must be a finite 4x4 matrix, got shape {tuple(c2w.shape)}")
    rot = c2w[:3, :3]
    if not torch.allclose(rot.T @ rot, torch.eye(3, dtype=rot.dtype, device=rot.device), atol=1e-4):
        raise JobError("c2w's rotation must be orthonormal (no scale or shear)")
    if intrinsics.shape != (4,) or not torch.isfinite(intrinsics).all() or (intrinsics[:2] <= 0).any():
        raise JobError("intrinsics must be [fx, fy, cx, cy] with positive focal lengths")
    if width < 1 or height < 1 or width * height > 8192 * 8192:
        raise JobError(f"a {width}x{height} view is not a valid size (1 to 8192x8192 pixels)")


def pixel_rays(c2w: Tensor, intrinsics: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Origins (H*W, 3) and depth-scaled directions (H*W, 3, camera z = -1) of the pixel centres, row by row."""
    j, i = torch.meshgrid(torch.arange(height, device=c2w.device), torch.arange(width, device=c2w.device), indexing="ij")
    d = _corner_directions(c2w, intrinsics, i.reshape(-1).to(c2w.dtype) + 0.5, j.reshape(-1).to(c2w.dtype) + 0.5)
    return c2w[:3, 3].expand_as(d), d


def cube_rays(c2w: Tensor, intrinsics: Tensor, width: int, height: int) -> tuple[Tensor, ...]:
    """The camera checked and in float64 (c2w, intrinsics), its pixels' centre rays (origins, depth-scaled
    directions: (H*W, 3)), the camera depths where each enters and leaves the cube (near, far: (H*W,)) and the
    directions' lengths (distance per unit of depth); refuses a camera no ray of which meets the cube."""
    c2w, intrinsics = c2w.to(torch.float64), intrinsics.to(c2w.device, torch.float64)
    _check_camera(c2w, intrinsics, width, height)
    origins, dirs = pixel_rays(c2w, intrinsics, width, height)
    lo = -torch.ones(3, dtype=c2w.dtype, device=c2w.device)
    near, far = ray_box(origins, dirs, lo, -lo)
    near = near.clamp_min(NEAR)
    if not (far > near).any():
        where = "behind the camera" if (_camera_depths_of_corners(c2w) <= NEAR).all() else "outside the view"
        raise JobError(
            f"the camera looks away from the field's domain: none of its {width}x{height} rays meets the cube "
            f"[-1, 1]^3 of the field's local frame (the cube is {where}); aim the camera at the field"
        )
    return c2w, intrinsics, origins, dirs, near, far, dirs.norm(dim=-1)


def _camera_depths_of_corners(c2w: Tensor) -> Tensor:
    corners = torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=c2w.dtype, device=c2w.device)] * 3)
    return -((corners - c2w[:3, 3]) @ c2w[:3, :3])[:, 2]


def cast_camera(
    field: nn.Module,
    c2w: Tensor,
    intrinsics: Tensor,
    width: int,
    height: int,
    mode: str = "affine_all",
    tolerance: float = DEFAULT_TOLERANCE,
    tile: int = TILE,
    ctx: JobContext | None = None,
) -> RayHits:
    """First hits of the zero level of ``field`` along every pixel's centre ray, by frustum casting (module docstring)."""
    started = time.monotonic()
    ctx = ctx or JobContext()
    if not tolerance > 0:
        raise JobError(f"tolerance must be positive, got {tolerance:g}")
    c2w, intrinsics, origins, dirs, near, far, dir_len = cube_rays(c2w, intrinsics, width, height)
    device = c2w.device
    z_corners = _camera_depths_of_corners(c2w)
    z0, z1 = max(float(z_corners.min()), NEAR), float(z_corners.max())
    focal = float(intrinsics[:2].min())
    # cells: i0, j0, s (long), za, zb (float64), fa, fb (ends' values, nan until evaluated)
    jj, ii = torch.meshgrid(torch.arange(0, height, tile, device=device), torch.arange(0, width, tile, device=device), indexing="ij")
    i0, j0 = ii.reshape(-1), jj.reshape(-1)
    s = torch.full_like(i0, tile)
    za, zb = torch.full(i0.shape, z0, dtype=torch.float64, device=device), torch.full(i0.shape, z1, dtype=torch.float64, device=device)
    leaves = torch.zeros(0, 5, dtype=torch.float64, device=device)  # rows (pixel, za, zb, fa, fb)
    box_evals = point_evals = level = 0
    while len(i0):
        level += 1
        ctx.progress(level, level + 1, None, f"ray casting: {len(i0)} cells")
        if len(i0) > MAX_CELLS:
            raise JobError(f"ray casting needs more than {MAX_CELLS} cells at once: use a smaller image or a larger tolerance")
        ray, pix = s == 1, j0 * width + i0  # pix: the tile's first pixel; a ray cell's own
        za = torch.where(ray, torch.maximum(za, near[pix]), za)  # a ray cell's segment stays in its ray's cube interval
        zb = torch.where(ray, torch.minimum(zb, far[pix]), zb)
        lo, hi = _cell_boxes(c2w, intrinsics, origins, dirs, i0, j0, s, za, zb, ray, width)
        lo, hi = lo.clamp_min(-1.0), hi.clamp_max(1.0)
        keep = (lo <= hi).all(dim=1) & (zb > za)
        box_evals += int(keep.sum())
        keep[keep.clone()] = unknown_boxes(field, lo[keep].float(), hi[keep].float(), mode, ctx=ctx)
        i0, j0, s, za, zb, ray, pix = (t[keep] for t in (i0, j0, s, za, zb, ray, pix))
        # ray cells: values at the ends; where they differ in sign a hit is certain, and later segments can go
        fa = torch.full(za.shape, float("nan"), dtype=torch.float64, device=device)
        fb = fa.clone()
        if ray.any():
            p = pix[ray]
            ends = torch.cat([origins[p] + za[ray, None] * dirs[p], origins[p] + zb[ray, None] * dirs[p]])
            values = field_values(field, ends.float(), ctx=ctx).double()
            point_evals += len(ends)
            fa[ray], fb[ray] = values.chunk(2)
        rows = torch.stack([pix.double(), za, zb, fa, fb], dim=1)
        pool = torch.cat([leaves, rows[ray]])
        certain = torch.full((width * height,), float("inf"), dtype=torch.float64, device=device)
        changes = pool[:, 3] * pool[:, 4] <= 0
        certain.scatter_reduce_(0, pool[changes, 0].long(), pool[changes, 1], "amin")
        beyond = ray & (za > certain[pix])
        leaves = leaves[~(leaves[:, 1] > certain[leaves[:, 0].long()])]
        done = ray & ((zb - za) * dir_len[pix] <= tolerance) & ~beyond
        leaves = torch.cat([leaves, rows[done]])
        split = ~done & ~beyond
        i0, j0, s, za, zb, ray = (t[split] for t in (i0, j0, s, za, zb, ray))
        i0, j0, s, za, zb = _split(i0, j0, s, za, zb, ray, focal, width, height)
    hit, t, normal, stats = _first_hits(field, leaves, origins, dirs, width, height, mode, ctx)
    hits = RayHits(hit, t, normal, (dirs / dir_len[:, None]).reshape(height, width, 3).float(), stats)
    point_evals += hits.stats.pop("points")
    box_evals += hits.stats.pop("boxes")
    hits.stats.update(rays=width * height, box_evaluations=box_evals, point_evaluations=point_evals, levels=level, seconds=time.monotonic() - started)
    return hits


def _cell_boxes(c2w, intrinsics, origins, dirs, i0, j0, s, za, zb, ray, width) -> tuple[Tensor, Tensor]:
    """Boxes (K, 3) of the cells: 8 frustum corners of a tile, or the 2 ends of a pixel's centre-ray segment."""
    u = torch.stack([i0, i0 + s, i0, i0 + s], dim=1).double()
    v = torch.stack([j0, j0, j0 + s, j0 + s], dim=1).double()
    d = _corner_directions(c2w, intrinsics, u, v)  # (K, 4, 3)
    pts = c2w[:3, 3] + torch.cat([za[:, None, None] * d, zb[:, None, None] * d], dim=1)  # (K, 8, 3)
    lo, hi = pts.amin(dim=1), pts.amax(dim=1)
    if ray.any():
        pix = (j0 * width + i0)[ray]
        a = origins[pix] + za[ray, None] * dirs[pix]
        b = origins[pix] + zb[ray, None] * dirs[pix]
        lo[ray], hi[ray] = torch.minimum(a, b), torch.maximum(a, b)
    return lo, hi


def _split(i0, j0, s, za, zb, ray, focal: float, width: int, height: int):
    """Children: a tile wider than deep splits into 4 tiles (inside the image), anything else its depth into 2."""
    lateral = s.double() * zb / focal
    quad = ~ray & (lateral >= zb - za)
    h = s[quad] // 2
    qi = torch.cat([i0[quad], i0[quad] + h, i0[quad], i0[quad] + h])
    qj = torch.cat([j0[quad], j0[quad], j0[quad] + h, j0[quad] + h])
    qs, qa, qb = h.repeat(4), za[quad].repeat(4), zb[quad].repeat(4)
    inside = (qi < width) & (qj < height)
    d = ~quad
    mid = (za[d] + zb[d]) / 2
    return (
        torch.cat([qi[inside], i0[d], i0[d]]),
        torch.cat([qj[inside], j0[d], j0[d]]),
        torch.cat([qs[inside], s[d], s[d]]),
        torch.cat([qa[inside], za[d], mid]),
        torch.cat([qb[inside], mid, zb[d]]),
    )


def _first_hits(field: nn.Module, leaves: Tensor, origins: Tensor, dirs: Tensor, width: int, height: int, mode: str, ctx: JobContext):
    """(hit, t, normal, stats) from the leaf segments (pixel, za, zb, fa, fb): per pixel the first that holds a
    sign change (at its ends, or among GRAZE_SAMPLES inner samples), skipping leaves whose GRAZE_SAMPLES + 1 pieces
    range analysis certifies one-signed; a leaf with neither is a grazing hit (its sample of least |f|); refined by bisection."""
    device, n = dirs.device, width * height
    solved = torch.zeros(n, dtype=torch.bool, device=device)
    found = [torch.zeros(0, 4, dtype=torch.float64, device=device)]  # (pixel, za, zb, fa): fa's sign at za, a zero in [za, zb]
    points = boxes = grazing = 0
    w = torch.linspace(0, 1, GRAZE_SAMPLES + 2, dtype=torch.float64, device=device)
    while len(leaves):
        ctx.check_cancel()
        first = torch.full((n,), float("inf"), dtype=torch.float64, device=device)
        first.scatter_reduce_(0, leaves[:, 0].long(), leaves[:, 1], "amin")
        chosen = leaves[:, 1] == first[leaves[:, 0].long()]
        cur, leaves = leaves[chosen], leaves[~chosen]
        bracket = cur[:, 3] * cur[:, 4] <= 0
        found.append(cur[bracket, :4])
        cur = cur[~bracket]
        if len(cur):
            pix = cur[:, 0].long()
            zs = cur[:, 1:2] + w * (cur[:, 2:3] - cur[:, 1:2])  # (G, S + 2)
            pts = origins[pix, None] + zs[..., None] * dirs[pix, None]
            f = field_values(field, pts.reshape(-1, 3).float(), ctx=ctx).double().reshape(zs.shape)
            points += f.numel()
            change = f[:, :-1] * f[:, 1:] <= 0
            has = change.any(dim=1)
            k = change.double().argmax(dim=1)
            rows = torch.arange(len(k), device=device)
            found.append(torch.stack([cur[:, 0], zs[rows, k], zs[rows, k + 1], f[rows, k]], dim=1)[has])
            rest = ~has
            if rest.any():  # certify the pieces between the samples, or call it a grazing hit
                lo, hi = pts[rest, :-1], pts[rest, 1:]
                unknown = unknown_boxes(
                    field, torch.minimum(lo, hi).reshape(-1, 3).float(), torch.maximum(lo, hi).reshape(-1, 3).float(), mode, ctx=ctx
                )
                boxes += unknown.numel()
                graze = unknown.reshape(-1, GRAZE_SAMPLES + 1).any(dim=1)
                least = f[rest].abs().argmin(dim=1)
                zg, fg = zs[rest][torch.arange(len(least), device=device), least], f[rest][torch.arange(len(least), device=device), least]
                found.append(torch.stack([cur[rest, 0], zg, zg, fg], dim=1)[graze])
                grazing += int(graze.sum())
        done = torch.cat(found)
        solved[done[:, 0].long()] = True
        leaves = leaves[~solved[leaves[:, 0].long()]]
    done = torch.cat(found)
    pix, za, zb, fa = done[:, 0].long(), done[:, 1].clone(), done[:, 2].clone(), done[:, 3].clone()
    for _ in range(BISECTIONS):  # keep [za, zb] around the sign change (fa's sign on the za side)
        mid = (za + zb) / 2
        fm = field_values(field, (origins[pix] + mid[:, None] * dirs[pix]).float(), ctx=ctx).double()
        points += len(fm)
        left = fa * fm <= 0
        zb, za = torch.where(left, mid, zb), torch.where(left, za, mid)
        fa = torch.where(left, fa, fm)
    z = (za + zb) / 2
    dir_len = dirs.norm(dim=-1)
    t = torch.full((n,), float("inf"), dtype=torch.float64, device=device)
    t[pix] = z * dir_len[pix]
    hit = torch.isfinite(t)
    normal = torch.zeros(n, 3, dtype=torch.float32, device=device)
    if len(pix):
        p = (origins[pix] + z[:, None] * dirs[pix]).float()
        g = field_gradients(field, p, ctx=ctx)
        g = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        unit = (dirs[pix] / dir_len[pix, None]).float()
        normal[pix] = torch.where(((g * unit).sum(-1) > 0)[:, None], -g, g)  # facing the camera
    stats = {"points": points + len(pix), "boxes": boxes, "hits": int(hit.sum()), "grazing": grazing}
    return hit.reshape(height, width), t.reshape(height, width), normal.reshape(height, width, 3), stats


def sphere_trace_camera(
    field: nn.Module,
    c2w: Tensor,
    intrinsics: Tensor,
    width: int,
    height: int,
    lipschitz: float = 1.0,
    epsilon: float = 1e-4,
    max_steps: int = 512,
    ctx: JobContext | None = None,
) -> RayHits:
    """Sphere tracing with the Lipschitz bound ``lipschitz`` (step |f| / L): sound only if |grad f| <= L everywhere.

    A ray hits where |f| < ``epsilon``; it misses when it leaves the cube or after ``max_steps``.
    """
    started = time.monotonic()
    ctx = ctx or JobContext()
    if not lipschitz > 0:
        raise JobError(f"lipschitz must be positive, got {lipschitz:g}")
    c2w, intrinsics, origins, dirs, near, far, dir_len = cube_rays(c2w, intrinsics, width, height)
    unit = dirs / dir_len[:, None]
    t, t_far = near * dir_len, far * dir_len
    active = t < t_far
    hit = torch.zeros_like(active)
    evals = 0
    for step in range(max_steps):
        idx = active.nonzero().squeeze(1)
        if not len(idx):
            break
        if step % 32 == 0:
            ctx.progress(step, max_steps, None, f"sphere tracing: {len(idx)} rays")
        f = field_values(field, (origins[idx] + t[idx, None] * unit[idx]).float(), ctx=ctx).double()
        evals += len(idx)
        close = f.abs() < epsilon
        hit[idx[close]] = True
        t[idx] = t[idx] + torch.where(close, 0.0, f.abs() / lipschitz)
        active[idx] = ~close & (t[idx] <= t_far[idx])
    t = torch.where(hit, t, torch.full_like(t, float("inf")))
    normal = torch.zeros(len(t), 3, dtype=torch.float32, device=t.device)
    if hit.any():
        g = field_gradients(field, (origins[hit] + t[hit, None] * unit[hit]).float(), ctx=ctx)
        g = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        normal[hit] = torch.where(((g * unit[hit].float()).sum(-1) > 0)[:, None], -g, g)
    stats = {
        "rays": width * height,
        "hits": int(hit.sum()),
        "box_evaluations": 0,
        "point_evaluations": evals + int(hit.sum()),
        "seconds": time.monotonic() - started,
    }
    return RayHits(
        hit.reshape(height, width), t.reshape(height, width), normal.reshape(height, width, 3), unit.reshape(height, width, 3).float(), stats
    )


def shade(
    hits: RayHits,
    color: tuple[float, float, float] = (0.8, 0.8, 0.8),
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ambient: float = 0.15,
) -> Tensor:
    """(H, W, 3) in [0, 1]: Lambert under a headlight (light along the view ray) plus ``ambient``; ``background`` where missed."""
    lambert = (-(hits.normal * hits.directions).sum(-1)).clamp(0.0, 1.0)
    intensity = ambient + (1.0 - ambient) * lambert
    c = torch.tensor(color, dtype=torch.float32, device=intensity.device)
    bg = torch.tensor(background, dtype=torch.float32, device=intensity.device)
    return torch.where(hits.hit[..., None], intensity[..., None] * c, bg).clamp(0.0, 1.0)
