"""Radiance fields on NeRF-synthetic lego: the fast hash-grid field against classic NeRF, PSNR over time.

Lego's 100 views (``../shared/data/nerf/lego``) over a white background; every 8th view is held out
(13 views). Each (model, size) trains in a fresh process for a fixed time budget and logs the held-out
PSNR on a fixed random set of 4096 held-out pixels (the same for every run) against training time
(evaluation excluded). At the end it renders whole held-out views for PSNR and SSIM (classic NeRF:
the first ``--classic-views`` of them, and none above ``--classic-max-size``: one 200x200 view takes
it minutes on a CPU) and saves the first held-out view beside its ground truth. Writes ``bench/results/nerf_lego.md`` (table and targets),
``nerf_lego.json`` (resume with --resume) and ``nerf_lego/*.png`` (the curves and the views).
The curve's picture needs matplotlib (the bench venv, ``make bench-venv``); without it the table and JSON are still written.

    .venv-bench/bin/python bench/nerf_lego.py [--sizes 200 400] [--models fast classic]
        [--fast-seconds 600] [--classic-seconds 900] [--device cpu] [--resume]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

from common import REPO, append_lines, load_results, run_worker_process, save_results, worker_entry, write_table

LEGO = os.path.join(REPO, "..", "shared", "data", "nerf", "lego")
RESULTS = os.path.join(REPO, "bench", "results")
FULL_SIZE = 800
HOLDOUT_EVERY = 8
EVAL_EVERY = {"fast": 100, "classic": 10}  # steps between points of the curve (the fast one: every 10 before 100)
LABELS = {"fast": "fast (hash grid)", "classic": "classic NeRF"}
TARGET_PSNR = 27.0  # the fast model at 200x200 within 10 minutes (2-core CPU)


def run_worker(model: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one model at one size for its budget; curve, final scores and the picture."""
    import torch
    from PIL import Image

    from inr_blender.context import JobContext
    from inr_blender.fields import build_field
    from inr_blender.fitting import nerf
    from inr_blender.jobs.info import device_details
    from inr_blender.jobs.registry import preset_device
    from inr_blender.render.cameras import to_local_cameras
    from inr_blender.render.dataset import holdout_split, load_transforms
    from inr_blender.render.renderer import RenderSettings, render_image
    from inr_blender.settings import presets

    torch.set_num_threads(os.cpu_count() or 1)
    views = load_transforms(LEGO, (1.0, 1.0, 1.0), FULL_SIZE // size)
    seconds = args.fast_seconds if model == "fast" else args.classic_seconds
    # classic NeRF renders whole views slowly (about 2.5 minutes for one 200x200 view on 2 cores): it scores
    # ``--classic-views`` of them, and none above ``--classic-max-size``
    whole = model == "fast" or size <= args.classic_max_size
    params = {
        "model": model,
        "iterations": 1_000_000,
        "max_seconds": seconds,
        "holdout_every": HOLDOUT_EVERY,
        "eval_every": EVAL_EVERY[model],
        "eval_dense_start": model == "fast",
        "eval_views": 0 if model == "fast" else args.classic_views,
        "final_eval": whole,
        "device": args.device,
        "seed": 0,
    }
    started = time.perf_counter()
    # the model's preset, as the Fit NeRF operator runs it: on CUDA, its device values (settings.presets.ON_DEVICE)
    device_values = presets.on_device(presets.RADIANCE, model, preset_device(args.device))
    ckpt = nerf.fit_nerf(views, nerf.resolve_params({**device_values, **params}), JobContext(min_interval=30.0, verbose=True))
    wall = time.perf_counter() - started
    result = {
        "model": model,
        "size": size,
        "device": ckpt["device"],
        "device_name": device_details(torch.device(ckpt["device"]))[0],
        "budget_s": seconds,
        "wall_s": wall,
        "train_s": ckpt["train_seconds"],
        "steps": ckpt["iterations_run"],
        "curve": ckpt["eval_history"],
        "psnr": ckpt["psnr"],
        "ssim": ckpt["ssim"],
        "train_psnr": ckpt["train_psnr"],
        "occupancy": ckpt["occupancy"],
        "device_settings": device_values,
    }
    _, test = holdout_split(len(views.names), HOLDOUT_EVERY)
    result["views_scored"] = 0 if not whole else len(test) if model == "fast" else min(args.classic_views, len(test))
    if not whole:
        return result
    # the first held-out view beside its ground truth
    field = build_field(ckpt["config"])
    field.load_state_dict(ckpt["state_dict"])
    device = torch.device(ckpt["device"])
    field = field.to(device).eval()
    center, scale = np.asarray(ckpt["center"]), ckpt["scale"]
    c2w = torch.as_tensor(to_local_cameras(views.c2w[test[0]], center, scale), dtype=torch.float32, device=device)
    intr = torch.as_tensor(views.intrinsics[test[0]], dtype=torch.float32, device=device)
    r = ckpt["render"]
    settings = RenderSettings(kind=r["kind"], step=r["step"], coarse=r["coarse"], fine=r["fine"])
    image = render_image(field, settings, c2w, intr, views.width, views.height, torch.ones(3, device=device))["rgb"].cpu().numpy()
    picture = np.concatenate([image, views.images[test[0]]], axis=1)
    os.makedirs(args.picture_dir, exist_ok=True)
    Image.fromarray((picture * 255 + 0.5).astype(np.uint8)).save(os.path.join(args.picture_dir, f"{model}_{size}.png"))
    return result


def first_time_at(curve: list[list[float]], level: float) -> float | None:
    """Training seconds at which the curve first reaches ``level`` dB (linear between its points), or None."""
    previous = None
    for _step, seconds, value in curve:
        if value >= level:
            if previous is None or previous[1] >= value:
                return seconds
            t0, v0 = previous
            return t0 + (level - v0) / (value - v0) * (seconds - t0)
        previous = (seconds, value)
    return None


def plot(results: dict[str, dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for r in results.values():
        if "curve" not in r or not r["curve"]:
            continue
        t = [c[1] / 60 for c in r["curve"]]
        ax.plot(
            t,
            [c[2] for c in r["curve"]],
            marker="o",
            markersize=3,
            label=f"{LABELS[r['model']]}, {r['size']}x{r['size']}",
            linestyle="-" if r["model"] == "fast" else "--",
        )
    ax.axhline(TARGET_PSNR, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel(f"training time (minutes, {results and next(iter(results.values())).get('device', 'cpu')})")
    ax.set_ylabel("held-out PSNR (dB, 4096 pixels of 13 views)")
    ax.set_title("lego: held-out PSNR against training time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


GPU_TARGETS = ((35.0, 180.0), (36.4, 300.0))  # issue 19: whole held-out views at 800x800 (dB) within (s) of training


def gpu_targets(r: dict[str, Any]) -> list[str]:
    """Issue 19's lego targets: met when the run's whole-view PSNR reaches the level within the time; missed when the
    curve (4096 pixels) has not reached it by then and the run went on past it; else open."""
    lines = []
    for level, seconds in GPU_TARGETS:
        reached = first_time_at(r["curve"], level)
        if r["psnr"] is not None and r["psnr"] >= level and r["train_s"] <= seconds:
            verdict = "met"
        elif r["train_s"] >= seconds and (reached is None or reached > seconds):
            verdict = "missed"
        elif reached is not None and reached <= seconds:
            verdict = "met on the curve (4096 held-out pixels; the whole views are scored at the end only)"
        else:
            verdict = f"open (the run trained {r['train_s']:.0f} s)"
        lines.append(
            f"- Fast model at {FULL_SIZE}x{FULL_SIZE} ({r.get('device_name', r['device'])}): >= {level:g} dB on the whole held-out "
            f"views within {seconds:g} s of training: {r['psnr']:.2f} dB after {r['train_s']:.0f} s; the curve "
            f"{f'reached {level:g} dB at {reached:.0f} s' if reached is not None else f'never reached {level:g} dB'}. **{verdict}**."
        )
    return lines


def targets(results: dict[str, dict[str, Any]], sizes: list[int], fast_seconds: float) -> list[str]:
    lines = ["## Targets", ""]
    fast200 = results.get("fast|200")
    if fast200 and "curve" in fast200:
        within = [c[2] for c in fast200["curve"] if c[1] <= 600.0]
        best = max(within, default=float("nan"))
        reached = first_time_at(fast200["curve"], TARGET_PSNR)
        verdict = "met" if reached is not None and reached <= 600.0 else "missed"
        lines.append(
            f"- Fast model >= {TARGET_PSNR:g} dB held-out at 200x200 within 10 minutes: best {best:.2f} dB within 10 minutes"
            f" (curve), {f'reached at {reached:.0f} s' if reached is not None else 'not reached'}; "
            f"whole held-out views at the end: {fast200['psnr']:.2f} dB (SSIM {fast200['ssim']:.3f}). **{verdict}**"
            + ("" if fast_seconds >= 600 else f" (budget was only {fast_seconds:g} s)")
            + "."
        )
    full = results.get(f"fast|{FULL_SIZE}")
    if full and full.get("curve"):
        lines += gpu_targets(full)
    for size in sizes:
        fast, classic = results.get(f"fast|{size}"), results.get(f"classic|{size}")
        if not (fast and classic and fast.get("curve") and classic.get("curve")):
            continue
        final = classic["curve"][-1][2]
        t_classic = first_time_at(classic["curve"], final)
        t_fast = first_time_at(fast["curve"], final)
        if t_fast is None:
            lines.append(f"- {size}x{size}: the fast model never reached classic NeRF's final {final:.2f} dB. **missed**.")
            continue
        ratio = t_classic / max(t_fast, 1e-9)
        lines.append(
            f"- {size}x{size}: classic NeRF's final curve PSNR {final:.2f} dB took it {t_classic:.0f} s; the fast model "
            f"reached it at {t_fast:.0f} s: {ratio:.1f}x sooner (target >= 10x). **{'met' if ratio >= 10 else 'missed'}**."
        )
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 400], help="image sizes (800 / an integer)")
    parser.add_argument("--models", nargs="+", default=["fast", "classic"], choices=["fast", "classic"])
    parser.add_argument("--fast-seconds", type=float, default=600.0, help="training budget of the fast model")
    parser.add_argument("--classic-seconds", type=float, default=900.0, help="training budget of classic NeRF")
    parser.add_argument("--classic-views", type=int, default=1, help="held-out views classic NeRF renders whole at the end")
    parser.add_argument("--classic-max-size", type=int, default=200, help="no whole-view scores for classic NeRF above this size")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps", "auto"))
    parser.add_argument("--resume", action="store_true", help="keep the entries already in the JSON file")
    parser.add_argument("--output", default=os.path.join(RESULTS, "nerf_lego.md"))
    parser.add_argument("--picture-dir", default=os.path.join(RESULTS, "nerf_lego"), help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.picture_dir = os.path.abspath(args.picture_dir)

    if args.worker:
        model, size = args.worker[0], int(args.worker[1])
        return worker_entry(args.worker_result, lambda: run_worker(model, size, args), {"model": model, "size": size})

    if not os.path.isfile(os.path.join(LEGO, "transforms_train.json")):
        print(f"Skipping: {LEGO} not found (shared data absent?)")
        return 1
    bad = [s for s in args.sizes if FULL_SIZE % s]
    if bad:
        sys.exit(f"sizes must divide {FULL_SIZE}: {bad}")
    settings = {
        "fast_seconds": args.fast_seconds,
        "classic_seconds": args.classic_seconds,
        "device": args.device,
        "classic_views": args.classic_views,
        "classic_max_size": args.classic_max_size,
    }
    json_path = os.path.splitext(args.output)[0] + ".json"
    results = load_results(json_path, settings, args.resume)
    todo = [(m, s) for s in args.sizes for m in args.models]
    for i, (model, size) in enumerate(todo, 1):
        key = f"{model}|{size}"
        if key in results and "error" not in results[key]:
            continue
        print(f"[{i}/{len(todo)}] {LABELS[model]} at {size}x{size}", flush=True)
        common = [
            "--fast-seconds",
            str(args.fast_seconds),
            "--classic-seconds",
            str(args.classic_seconds),
            "--classic-views",
            str(args.classic_views),
            "--classic-max-size",
            str(args.classic_max_size),
            "--device",
            args.device,
            "--picture-dir",
            args.picture_dir,
        ]
        results[key] = {"model": model, "size": size, **run_worker_process(__file__, ["--worker", model, str(size), *common])}
        r = results[key]
        print(
            f"  failed: {r['error']}" if "error" in r else f"  held-out PSNR {r['curve'][-1][2]:.2f} dB (4096 pixels) after {r['steps']} steps",
            flush=True,
        )
        save_results(json_path, settings, results)

    os.makedirs(args.picture_dir, exist_ok=True)
    try:
        plot({k: results[k] for k in (f"{m}|{s}" for m, s in todo) if k in results}, os.path.join(args.picture_dir, "psnr_vs_time.png"))
    except ImportError:  # a GPU machine may lack matplotlib: the table and the JSON curve are what count
        print("matplotlib is absent: no curve picture (the curve is in the JSON file)")
    rows = []
    for model, size in todo:
        r = results.get(f"{model}|{size}", {"error": "not run"})
        if "error" in r:
            rows.append([LABELS[model], f"{size}", f"failed: {r['error']}", "", "", "", "", ""])
            continue
        curve = r["curve"]
        whole = r["psnr"] is not None
        rows.append(
            [
                LABELS[model],
                f"{size}x{size}",
                f"{r['train_s']:.0f}",
                str(r["steps"]),
                f"{curve[-1][2]:.2f}" if curve else "-",
                f"{r['psnr']:.2f}" if whole else "-",
                f"{r['ssim']:.3f}" if whole else "-",
                str(r["views_scored"]),
            ]
        )
    ran = [results[k] for k in (f"{m}|{s}" for m, s in todo) if k in results and "error" not in results[k]]
    names = sorted({r.get("device_name", r.get("device", args.device)) for r in ran})
    write_table(
        args.output,
        f"lego, held-out views (every {HOLDOUT_EVERY}th), white background, device {args.device} ({', '.join(names) or 'none ran'})",
        ["model", "size", "training s", "steps", "PSNR, 4096 px (dB)", "PSNR, whole views (dB)", "SSIM", "views"],
        rows,
    )
    notes = [
        "",
        "Curve: `nerf_lego/psnr_vs_time.png`. Held-out view beside its ground truth: `nerf_lego/<model>_<size>.png`.",
        "Training seconds exclude the held-out evaluations.",
        *sorted(
            {f"{LABELS[r['model']]} on {r['device']}: the preset's device values {r['device_settings']}." for r in ran if r.get("device_settings")}
        ),
        "",
    ]
    append_lines(args.output, notes + targets(results, args.sizes, args.fast_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
