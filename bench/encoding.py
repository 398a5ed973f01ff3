"""Hash-grid encoding throughput: the torch ops against the fused Triton kernels, points per second.

Times the encoding's forward and forward + backward (the table's gradient, as in training; the points need
none) with the Fast SDF preset's grid (12 levels x 2 features, 2^18 rows a level, resolutions 16..256) on
uniform points of [-1, 1]^3, at a few batch sizes, after a warm-up (which compiles the kernels). On CUDA both
paths, and the largest difference between their values; on the CPU the torch path only: the fused kernels run
there only in Triton's interpreter, a correctness tool whose times mean nothing. Issue 19's target: forward +
backward at >= 200 M points per second on an H200. Writes ``bench/results/encoding.md`` and ``encoding.json``.

    .venv/bin/python bench/encoding.py [--device cpu|cuda] [--sizes 14 16 18 20] [--output DIR/encoding.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import torch

from common import REPO, append_lines, save_results, write_table
from inr_blender.fields import hashgrid
from inr_blender.fields.hashgrid import HashGridEncoding, encoding_from_config
from inr_blender.fitting.sdf import SPEC
from inr_blender.settings.presets import SDF

SIZES = {"cuda": [14, 16, 18, 20], "cpu": [12, 14, 16]}  # log2 of the batch
TARGET = 200e6  # points per second, forward + backward, on an H200 (issue 19)


def fast_preset_encoding(device: torch.device) -> tuple[HashGridEncoding, dict[str, Any]]:
    """The encoding of the Fast SDF preset (its values over the hash-grid method's defaults), on ``device``."""
    preset = SDF["fast"].values
    config = {**SPEC.defaults(preset["method"]), **preset}
    keys = ("levels", "features_per_level", "log2_table_size", "base_resolution", "finest_resolution")
    return encoding_from_config(config).to(device), {k: config[k] for k in keys}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(run, device: torch.device, min_seconds: float) -> float:
    """Mean wall time of ``run()`` over at least 3 calls and ``min_seconds``, after 2 warm-up calls."""
    for _ in range(2):
        run()
    sync(device)
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < min_seconds:
        run()
        calls += 1
        if calls % 10 == 0 or device.type != "cuda":
            sync(device)
    sync(device)
    return (time.perf_counter() - started) / calls


def measure(enc: HashGridEncoding, implementation: str, n: int, device: torch.device, min_seconds: float) -> dict[str, Any]:
    hashgrid.implementation_override = implementation
    try:
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.rand(n, 3, generator=g, device=device) * 2 - 1
        grad = torch.randn(n, enc.output_dim, generator=g, device=device)

        def forward() -> None:
            with torch.no_grad():
                enc(x)

        def forward_backward() -> None:
            torch.autograd.grad(enc(x), enc.table, grad)

        fwd = seconds_per_call(forward, device, min_seconds)
        both = seconds_per_call(forward_backward, device, min_seconds)
        with torch.no_grad():
            values = enc(x)
    finally:
        hashgrid.implementation_override = None
    return {"implementation": implementation, "points": n, "forward_s": fwd, "forward_backward_s": both, "values": values}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--sizes", type=int, nargs="+", help="log2 of the batch sizes (default: 14 16 18 20 on CUDA, 12 14 16 on the CPU)")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="time each measurement at least this long")
    parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "encoding.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: this torch has no CUDA device")
    torch.set_num_threads(os.cpu_count() or 1)
    enc, grid = fast_preset_encoding(device)
    implementations = ["torch"]
    note = ""
    if device.type == "cuda":
        if enc.fused(device):
            implementations.append("triton")
        else:
            why = "INR_HASHGRID=torch" if hashgrid.implementation() == "torch" else "Triton does not import here"
            note = f"The fused path is not measured: {why}."
    else:
        note = "The fused path is not measured on the CPU: it runs there only in Triton's interpreter (TRITON_INTERPRET=1), a correctness tool."
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    results: dict[str, dict[str, Any]] = {}
    rows = []
    for log2 in args.sizes or SIZES[device.type]:
        n = 1 << log2
        reference = None
        for implementation in implementations:
            r = measure(enc, implementation, n, device, args.min_seconds)
            values = r.pop("values")
            if reference is None:
                reference = values
            r["max_abs_difference"] = float((values - reference).abs().max())
            del values
            results[f"{implementation}|{n}"] = r
            rows.append(
                [
                    implementation,
                    f"2^{log2}",
                    f"{r['forward_s'] * 1e3:.3f}",
                    f"{n / r['forward_s'] / 1e6:.3g}",
                    f"{r['forward_backward_s'] * 1e3:.3f}",
                    f"{n / r['forward_backward_s'] / 1e6:.3g}",
                    "-" if implementation == "torch" else f"{r['max_abs_difference']:.1e}",
                ]
            )
            print(rows[-1], flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    settings = {"device": name, "torch": torch.__version__, "grid": grid}
    save_results(os.path.splitext(args.output)[0] + ".json", settings, results)
    write_table(
        args.output,
        f"Hash-grid encoding throughput on {name} (Fast preset grid: {grid['levels']} levels x {grid['features_per_level']} features, "
        f"2^{grid['log2_table_size']} rows, resolutions {grid['base_resolution']}..{grid['finest_resolution']})",
        ["path", "points", "forward ms", "forward M points/s", "fwd + bwd ms", "fwd + bwd M points/s", "max abs diff to torch"],
        rows,
    )
    lines = [""]
    if note:
        lines.append(note)
    if device.type == "cuda" and "triton" in implementations:
        best = max(r["points"] / r["forward_backward_s"] for r in results.values() if r["implementation"] == "triton")
        verdict = "met" if best >= TARGET else "missed"
        lines.append(
            f"Target (issue 19, on an H200): fused forward + backward >= {TARGET / 1e6:.0f} M points/s: "
            f"best {best / 1e6:.1f} on {name}: **{verdict}**."
        )
    lines.append(f"torch {torch.__version__}; backward: the table's gradient only (the points need none when training).")
    append_lines(args.output, [*lines, ""])
    return 0


if __name__ == "__main__":
    sys.exit(main())
