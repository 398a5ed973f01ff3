"""The multiresolution hash encoding of :mod:`.hashgrid` as fused Triton kernels (the CUDA path).

Importing this module needs Triton; nothing else in the backend does: :class:`.hashgrid.HashGridEncoding`
imports it only when it runs the fused path (CUDA tensors, or ``INR_HASHGRID=triton``).

Three kernels, each one program per block of points and a loop over the levels inside it (the point is read
once, the input gradient summed over the levels in registers):

- forward: the encoding, (N, L * F);
- backward: the table's gradient, scattered with ``tl.atomic_add`` (the reference's ``index_add_``), and the
  input points' gradient (first order), each only when asked for.

The arithmetic is the reference's, step by step: u = clamp((x + 1) / 2, 0, 1) in float32, cell units
u * N_l, cell = min(floor, N_l - 1), frac = pos - cell, dense rows x + y (N+1) + z (N+1)^2 for the dense levels,
the spatial hash (x * 1) xor (y * 2654435761) xor (z * 805459861) mod T for the others (uint32 products here,
int64 there: T is a power of two, so the low bits agree), corner weights (w_z w_y) w_x. The input gradient is
zero where the clamp is active, passed where (x + 1) / 2 is exactly 0 or 1 (as torch's clamp does). Values and
gradients match the torch path's to float32 rounding (tests/backend/test_backend_hashgrid_triton.py).

There is no double backward: a backward run with ``create_graph=True`` raises (see :class:`FusedEncoding`).
The SDF losses take input gradients by finite differences on this path instead (fitting/methods/hashgrid.py).

On CPU tensors the kernels run only in Triton's interpreter (``TRITON_INTERPRET=1`` set before this module is
imported): slow, for the tests.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

# Points per program: 256 keeps the GPU's registers in bounds for 2..8 features; the interpreter runs a program
# as numpy arrays, where fewer, larger blocks are much faster.
BLOCK = 256
INTERPRETED_BLOCK = 4096


@triton.jit
def _cell(px, py, pz, res):
    """One axis triple of points (in [-1, 1]^3, clamped) in cell units of a level: cells (int32) and fractions."""
    rf = res.to(tl.float32)
    ux = tl.minimum(tl.maximum((px + 1.0) * 0.5, 0.0), 1.0) * rf
    uy = tl.minimum(tl.maximum((py + 1.0) * 0.5, 0.0), 1.0) * rf
    uz = tl.minimum(tl.maximum((pz + 1.0) * 0.5, 0.0), 1.0) * rf
    # min(floor, N - 1): u == 1 falls in the last cell; max(., 0) only guards the memory against NaN points
    cx = tl.minimum(tl.maximum(tl.floor(ux).to(tl.int32), 0), res - 1)
    cy = tl.minimum(tl.maximum(tl.floor(uy).to(tl.int32), 0), res - 1)
    cz = tl.minimum(tl.maximum(tl.floor(uz).to(tl.int32), 0), res - 1)
    return cx, cy, cz, ux - cx.to(tl.float32), uy - cy.to(tl.float32), uz - cz.to(tl.float32)


@triton.jit
def _row(cx, cy, cz, res, offset, dense, table_mask):
    """Table rows (int64) of grid vertices (cx, cy, cz) of a level: dense indexing or the spatial hash."""
    side = res + 1
    dense_row = cx + cy * side + cz * side * side
    hashed = cx.to(tl.uint32) ^ (cy.to(tl.uint32) * 2654435761) ^ (cz.to(tl.uint32) * 805459861)
    hashed_row = (hashed & table_mask).to(tl.int32)
    return (tl.where(dense, dense_row, hashed_row) + offset).to(tl.int64)


@triton.jit
def _points(x_ptr, n_points, BLOCK_N: tl.constexpr):
    """This program's block of points: which are real (``live``), their int64 indices and coordinates."""
    points = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    live = points < n_points
    p64 = points.to(tl.int64)
    px = tl.load(x_ptr + p64 * 3, mask=live, other=0.0)
    py = tl.load(x_ptr + p64 * 3 + 1, mask=live, other=0.0)
    pz = tl.load(x_ptr + p64 * 3 + 2, mask=live, other=0.0)
    return live, p64, px, py, pz


@triton.jit
def _corner_weights(corner: tl.constexpr, fx, fy, fz):
    """The trilinear weights per axis of cell corner ``corner`` (bit 0: x, bit 1: y, bit 2: z)."""
    if corner & 1:
        wx = fx
    else:
        wx = 1.0 - fx
    if corner & 2:
        wy = fy
    else:
        wy = 1.0 - fy
    if corner & 4:
        wz = fz
    else:
        wz = 1.0 - fz
    return wx, wy, wz


@triton.jit
def _encode_forward(
    x_ptr,
    table_ptr,
    res_ptr,
    offset_ptr,
    out_ptr,
    n_points,
    n_levels,
    dense_levels,
    table_mask,
    F: tl.constexpr,
    FP: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    live, p64, px, py, pz = _points(x_ptr, n_points, BLOCK_N)
    feature = tl.arange(0, FP)
    both = live[:, None] & (feature < F)[None, :]
    for level in range(n_levels):
        res = tl.load(res_ptr + level).to(tl.int32)
        offset = tl.load(offset_ptr + level).to(tl.int32)
        dense = level < dense_levels
        cx, cy, cz, fx, fy, fz = _cell(px, py, pz, res)
        acc = tl.zeros((BLOCK_N, FP), dtype=tl.float32)
        for corner in tl.static_range(8):
            wx, wy, wz = _corner_weights(corner, fx, fy, fz)
            row = _row(cx + (corner & 1), cy + ((corner >> 1) & 1), cz + (corner >> 2), res, offset, dense, table_mask)
            values = tl.load(table_ptr + row[:, None] * F + feature[None, :], mask=both, other=0.0)
            acc += ((wz * wy) * wx)[:, None] * values
        tl.store(out_ptr + p64[:, None] * (n_levels * F) + level * F + feature[None, :], acc, mask=both)


@triton.jit
def _encode_backward(
    x_ptr,
    table_ptr,
    res_ptr,
    offset_ptr,
    grad_ptr,
    table_grad_ptr,
    x_grad_ptr,
    n_points,
    n_levels,
    dense_levels,
    table_mask,
    F: tl.constexpr,
    FP: tl.constexpr,
    BLOCK_N: tl.constexpr,
    TABLE_GRAD: tl.constexpr,
    INPUT_GRAD: tl.constexpr,
):
    live, p64, px, py, pz = _points(x_ptr, n_points, BLOCK_N)
    feature = tl.arange(0, FP)
    both = live[:, None] & (feature < F)[None, :]
    # d encoding / d u, summed over the levels (u = (x + 1) / 2 before the clamp)
    gx = tl.zeros((BLOCK_N,), dtype=tl.float32)
    gy = tl.zeros((BLOCK_N,), dtype=tl.float32)
    gz = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for level in range(n_levels):
        res = tl.load(res_ptr + level).to(tl.int32)
        offset = tl.load(offset_ptr + level).to(tl.int32)
        dense = level < dense_levels
        cx, cy, cz, fx, fy, fz = _cell(px, py, pz, res)
        g = tl.load(grad_ptr + p64[:, None] * (n_levels * F) + level * F + feature[None, :], mask=both, other=0.0)
        # d encoding / d frac of this level
        lx = tl.zeros((BLOCK_N,), dtype=tl.float32)
        ly = tl.zeros((BLOCK_N,), dtype=tl.float32)
        lz = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for corner in tl.static_range(8):
            wx, wy, wz = _corner_weights(corner, fx, fy, fz)
            row = _row(cx + (corner & 1), cy + ((corner >> 1) & 1), cz + (corner >> 2), res, offset, dense, table_mask)
            where = row[:, None] * F + feature[None, :]
            if TABLE_GRAD:
                tl.atomic_add(table_grad_ptr + where, ((wz * wy) * wx)[:, None] * g, mask=both, sem="relaxed")
            if INPUT_GRAD:
                dot = tl.sum(tl.load(table_ptr + where, mask=both, other=0.0) * g, axis=1)  # d encoding / d weight
                # d weight / d frac per axis: +-(product of the other two axes' weights)
                if corner & 1:
                    lx += dot * (wz * wy)
                else:
                    lx -= dot * (wz * wy)
                if corner & 2:
                    ly += dot * (wz * wx)
                else:
                    ly -= dot * (wz * wx)
                if corner & 4:
                    lz += dot * (wy * wx)
                else:
                    lz -= dot * (wy * wx)
        if INPUT_GRAD:
            rf = res.to(tl.float32)
            gx += lx * rf
            gy += ly * rf
            gz += lz * rf
    if INPUT_GRAD:
        # the clamp passes the gradient where 0 <= (x + 1) / 2 <= 1, bounds included (torch.clamp's backward)
        vx = (px + 1.0) * 0.5
        vy = (py + 1.0) * 0.5
        vz = (pz + 1.0) * 0.5
        tl.store(x_grad_ptr + p64 * 3, tl.where((vx >= 0.0) & (vx <= 1.0), gx * 0.5, 0.0), mask=live)
        tl.store(x_grad_ptr + p64 * 3 + 1, tl.where((vy >= 0.0) & (vy <= 1.0), gy * 0.5, 0.0), mask=live)
        tl.store(x_grad_ptr + p64 * 3 + 2, tl.where((vz >= 0.0) & (vz <= 1.0), gz * 0.5, 0.0), mask=live)


INTERPRETED = type(_encode_forward).__name__ == "InterpretedFunction"
"""Whether the kernels were built for Triton's interpreter (``TRITON_INTERPRET=1`` when this module was imported)."""


def runs_on(device: torch.device) -> bool:
    """Whether the kernels can run on tensors of ``device``: CUDA, or anything in the interpreter."""
    return device.type == "cuda" or INTERPRETED


class Grid:
    """What the kernels need to know of a :class:`.hashgrid.HashGridEncoding`, besides its table."""

    def __init__(self, resolution: torch.Tensor, offset: torch.Tensor, dense_levels: int, table_size: int) -> None:
        self.resolution = resolution  # (L,) int64, on the table's device
        self.offset = offset  # (L,) int64
        self.levels = len(resolution)
        self.dense_levels = int(dense_levels)
        self.table_mask = int(table_size) - 1

    def launch(self, kernel: Any, x: torch.Tensor, table: torch.Tensor, *args: Any, **flags: Any) -> None:
        n, features = len(x), table.shape[1]
        block = INTERPRETED_BLOCK if INTERPRETED else BLOCK
        kernel[(triton.cdiv(n, block),)](
            x,
            table,
            self.resolution,
            self.offset,
            *args,
            n,
            self.levels,
            self.dense_levels,
            self.table_mask,
            F=features,
            FP=triton.next_power_of_2(features),
            BLOCK_N=block,
            # no fused multiply-adds: frac = u * N - cell rounds u * N first, as the torch path does (and floor saw)
            enable_fp_fusion=False,
            **flags,
        )


class FusedEncoding(torch.autograd.Function):
    """encode(x, table) -> (N, L * F), with the table's and the points' first-order gradients from the kernels.

    Double backward is refused: a backward with ``create_graph=True`` (the eikonal term through autograd) raises
    with what to do instead, rather than returning gradients that would silently not be differentiable.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, table: torch.Tensor, grid: Grid) -> torch.Tensor:
        out = x.new_empty(len(x), grid.levels * table.shape[1])
        if len(x):
            grid.launch(_encode_forward, x, table, out)
        ctx.save_for_backward(x, table)
        ctx.grid = grid
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        if torch.is_grad_enabled():
            raise RuntimeError(
                "the fused (Triton) hash-grid encoding has no double backward: take input gradients by finite "
                "differences (the hash-grid method's gradient='finite_difference'), or use the torch encoding "
                "(INR_HASHGRID=torch)"
            )
        x, table = ctx.saved_tensors
        grid: Grid = ctx.grid
        want_x, want_table = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        table_grad = torch.zeros_like(table) if want_table else None
        x_grad = torch.empty_like(x) if want_x else None
        if len(x) and (want_x or want_table):
            grid.launch(
                _encode_backward,
                x,
                table,
                grad.contiguous(),
                table if table_grad is None else table_grad,  # a placeholder pointer where not written
                x if x_grad is None else x_grad,
                TABLE_GRAD=want_table,
                INPUT_GRAD=want_x,
            )
        return x_grad, table_grad, None


def encode(x: torch.Tensor, table: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The fused encoding of float32 points ``x`` (N, 3) with ``table`` (rows, F), differentiable once."""
    out = FusedEncoding.apply(x.contiguous(), table.contiguous(), grid)
    assert isinstance(out, torch.Tensor)
    return out
