"""The fused hash-grid kernels against the torch encoding, without pytest: values and gradients, per grid config.

The same comparison as tests/backend/test_backend_hashgrid_triton.py, for machines without pytest (the GPU
check, bench/gpu_check.sh) and at the presets' real grids: random points of [-1.3, 1.3]^3, points on every
level's cell borders, the cube's corners. Exits 1 when a difference exceeds float32 rounding or a double
backward is not refused. On the CPU it runs in Triton's interpreter (set here, before the kernels load): small
batches only.

    python bench/hashgrid_check.py [--device cuda] [--points 65536] [--output DIR/hashgrid_check.md]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import torch

from common import REPO, append_lines, write_table
from inr_blender.fields import hashgrid, value_and_gradient
from inr_blender.fields.hashgrid import HashGridEncoding

# name: (levels, features, log2 table size, base resolution, finest resolution)
CONFIGS: dict[str, tuple[int, int, int, int, int]] = {
    "mixed": (4, 2, 10, 4, 64),
    "four features": (3, 4, 8, 2, 32),
    "one dense level": (1, 1, 12, 8, 8),
    "hashed, three features": (5, 3, 6, 16, 128),
    "Fast preset": (12, 2, 18, 16, 256),
    "Detailed preset": (16, 2, 19, 16, 512),
    "Instant-NGP": (16, 2, 19, 16, 2048),
}
CPU_CONFIGS = ["mixed", "four features", "one dense level", "hashed, three features"]  # the interpreter is slow


def points(enc: HashGridEncoding, n: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    parts = [torch.rand(n, 3, generator=g) * 2.6 - 1.3]
    for res in enc.resolutions:
        parts.append(torch.randint(0, res + 1, (64, 3), generator=g) / res * 2 - 1)  # vertices: every coordinate on a border
    parts.append(torch.tensor([[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)]))
    return torch.cat(parts).to(device)


def run(enc: HashGridEncoding, x: torch.Tensor, grad: torch.Tensor, implementation: str) -> list[torch.Tensor]:
    hashgrid.implementation_override = implementation
    try:
        x = x.clone().requires_grad_(True)
        out = enc(x)
        table_grad, x_grad = torch.autograd.grad(out, [enc.table, x], grad)
    finally:
        hashgrid.implementation_override = None
    return [out.detach(), table_grad, x_grad]


def compare(name: str, n: int, device: torch.device) -> dict[str, Any]:
    levels, features, log2, base, finest = CONFIGS[name]
    torch.manual_seed(0)
    enc = HashGridEncoding(levels=levels, features_per_level=features, log2_table_size=log2, base_resolution=base, finest_resolution=finest)
    with torch.no_grad():
        enc.table.normal_()
    enc = enc.to(device)
    x = points(enc, n, device)
    grad = torch.randn(len(x), enc.output_dim, generator=torch.Generator().manual_seed(2)).to(device)
    reference = run(enc, x, grad, "torch")
    fused = run(enc, x, grad, "triton")
    result: dict[str, Any] = {"config": name, "points": len(x), "ok": True}
    # float32 rounding of sums in another order: relative to each quantity's largest magnitude
    # (a table row's gradient sums over many points, and the input gradient over the levels)
    for label, a, b, tolerance in zip(("values", "table gradient", "input gradient"), fused, reference, (1e-6, 1e-5, 1e-5)):
        scale = max(float(b.abs().max()), 1e-30)
        error = float((a - b).abs().max()) / scale
        result[label] = error
        result["ok"] &= error <= tolerance
    hashgrid.implementation_override = "triton"
    try:
        value_and_gradient(lambda p: enc(p).sum(dim=1), x[:16], create_graph=True)
        result["double backward refused"] = False
        result["ok"] = False
    except RuntimeError as exc:
        result["double backward refused"] = "no double backward" in str(exc)
        result["ok"] &= result["double backward refused"]
    finally:
        hashgrid.implementation_override = None
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--points", type=int, help="random points per config (default: 2^20 on CUDA, 2000 on the CPU)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="grids to compare (default: all on CUDA, the small ones on the CPU)")
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "hashgrid_check.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernels' module is imported (by the first fused call)
    if hashgrid.fused_kernels() is None:
        print("The fused kernels do not import (is triton installed?)", file=sys.stderr)
        return 1
    n = args.points or (1 << 20 if device.type == "cuda" else 2000)
    names = args.configs or (list(CONFIGS) if device.type == "cuda" else CPU_CONFIGS)
    rows, ok = [], True
    for name in names:
        r = compare(name, n, device)
        ok &= r["ok"]
        rows.append(
            [
                name,
                "x".join(str(v) for v in CONFIGS[name]),
                str(r["points"]),
                f"{r['values']:.1e}",
                f"{r['table gradient']:.1e}",
                f"{r['input gradient']:.1e}",
                "yes" if r["double backward refused"] else "NO",
                "ok" if r["ok"] else "FAILED",
            ]
        )
        print(rows[-1], flush=True)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (Triton's interpreter)"
    write_table(
        args.output,
        f"Fused hash-grid kernels against the torch encoding on {where}",
        ["grid", "levels x F x log2 T x N_min x N_max", "points", "values", "table grad", "input grad", "double backward refused", ""],
        rows,
    )
    verdict = "yes" if ok else "NO"
    append_lines(args.output, ["", "Largest difference relative to the torch path's largest magnitude.", f"All equal: **{verdict}**.", ""])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
