"""Radiance-field fits: the settings every model shares and each model's own, with their defaults.

Torch-free, like settings/sdf.py: the Blender side, the CLI and the worker read the same defaults. The models
(:mod:`inr_blender.fitting.radiance`) take their settings from here. Published values and the departures for a
2-core CPU are in fitting/nerf.py's docstring.
"""

from __future__ import annotations

from typing import Any

from ..context import JobError
from .preview import PREVIEW_EVERY
from .spec import MAX_BATCH, MAX_DEPTH, MAX_WIDTH, Declared, Param, params

COMMON = params(
    Param(
        "background",
        [1.0, 1.0, 1.0],
        "Colour behind the scene (RGB in [0, 1]); transparent pixels are composited on it",
        kind=list,
        length=3,
        label="Background",
    ),
    # lego at 200x200 on 2 CPU cores, 1000 steps: 30.32 dB on the whole held-out views with it, 30.47 without (its
    # curve leads by 0.3-0.7 dB up to 750 steps, then trails by 0.3): off until a longer GPU curve shows it helps
    Param(
        "random_background",
        False,
        "Train transparent pixels over a random colour per ray (Instant-NGP), so the field learns where it is empty; "
        "held-out views and renders use Background",
        label="Random Background",
    ),
    Param("downscale", 1, "Divide the images' size by this", positive=True, label="Downscale"),
    Param("holdout_every", 8, "Hold out every n-th view for evaluation (0: none)", minimum=0, label="Hold Out Every"),
    Param("seed", 0, "Random seed", minimum=0, label="Seed"),
    Param("device", "auto", "Where to train", choices=("auto", "cpu", "cuda", "mps")),
    PREVIEW_EVERY,
    Param("max_seconds", 0.0, "Stop after this long (0: no limit)", minimum=0.0, label="Time Limit"),
    Param(
        "convergence_tolerance",
        0.0,
        "Stop once the mean loss of a window improves by less than this fraction twice in a row (0: never)",
        minimum=0.0,
        label="Stop Below",
    ),
    Param("convergence_window", 200, "Steps per mean loss of the convergence test", positive=True, cli=False),
    Param("eval_every", 0, "Measure the held-out PSNR every this many steps (0: only at the end)", minimum=0),
    Param("eval_dense_start", False, "Measure ten times as often before the first eval_every steps"),
    Param("eval_pixels", 4096, "Held-out pixels of the periodic PSNR", positive=True, maximum=MAX_BATCH),
    Param("eval_views", 0, "Held-out views rendered whole at the end (0: all)", minimum=0),
    Param("final_eval", True, "Render the held-out views at the end (PSNR, SSIM)"),
    Param("lr_decay_interval", 0, "Steps between two learning-rate decays (0: constant)", minimum=0),
    Param("lr_decay_factor", 1.0, "Factor of each learning-rate decay", positive=True),
)


def check_background(p: dict[str, Any]) -> None:
    """The background is three numbers in [0, 1]."""
    if not all(0.0 <= c <= 1.0 for c in p["background"]):
        raise JobError(f"parameter background must be three numbers in [0, 1], got {p['background']!r}")


def run(iterations: int, learning_rate: float, adam_eps: float) -> tuple[Param, ...]:
    return (
        Param("iterations", iterations, "The most steps to train", positive=True, label="Iterations"),
        Param("learning_rate", learning_rate, "Adam's learning rate", positive=True, label="Learning Rate"),
        Param("adam_eps", adam_eps, "Adam's epsilon", positive=True, cli=False),
    )


class ModelSettings(Declared):
    """What the Blender side, the CLI and the fit know of a radiance model without torch."""


# Classic NeRF (Mildenhall 2020): Adam 5e-4, 1024 rays per step, 64 coarse + 128 fine samples, centre crops (half the
# image) for the first 500 steps, 8 x 256 with 10 / 4 frequencies; 2000 steps here (published 200k-500k).
CLASSIC = ModelSettings(
    "classic",
    "Classic",
    "NeRF as published (Mildenhall 2020): positional encoding, 8 x 256 MLPs, coarse and fine samples; slow",
    params(
        run(2000, 5e-4, 1e-8),
        Param("batch_rays", 1024, "Rays per step", positive=True, maximum=MAX_BATCH, label="Rays per Step"),
        Param("coarse_samples", 64, "Stratified samples per ray", positive=True, maximum=4096, label="Coarse Samples"),
        Param("fine_samples", 128, "Importance samples per ray", positive=True, maximum=4096, label="Fine Samples"),
        Param("precrop_iterations", 500, "Steps that draw rays from the images' centres only", minimum=0),
        Param("precrop_fraction", 0.5, "The central fraction of each image drawn from then", positive=True, maximum=1.0),
        Param("width", 256, "Hidden units per layer", positive=True, maximum=MAX_WIDTH, label="Width"),
        Param("depth", 8, "Hidden layers (the input again after half of them)", positive=True, maximum=MAX_DEPTH, label="Depth"),
        Param("position_frequencies", 10, "Frequencies of the position's encoding", minimum=0),
        Param("direction_frequencies", 4, "Frequencies of the direction's encoding", minimum=0),
    ),
)
# Fast field (Müller 2022): Adam 1e-2, eps 1e-15, betas (0.9, 0.99); 2^16 samples per step (published 2^18), at most
# 8192 rays, 512 marching steps across the diagonal (published 1024), 16 levels up to 1024 (published 2048), a 64^3
# occupancy grid (published 128^3) updated every 16 steps, every cell for the first 256; 1000 steps (published 35k).
FAST = ModelSettings(
    "fast",
    "Fast",
    "Hash-grid density with a small colour MLP and an occupancy grid (in the spirit of Instant-NGP, Müller 2022)",
    params(
        run(1000, 1e-2, 1e-15),
        Param("samples_per_step", 1 << 16, "Samples per step: the number of rays adapts to keep it", positive=True, maximum=16 * MAX_BATCH),
        Param("initial_rays", 2048, "Rays of the first step", positive=True, maximum=MAX_BATCH),
        Param("max_rays", 8192, "The most rays per step", positive=True, maximum=MAX_BATCH),
        Param("march_steps", 512, "Marching steps across the cube's diagonal", positive=True, maximum=65536, label="March Steps"),
        Param("levels", 16, "Hash-grid levels", positive=True, label="Levels"),
        Param("log2_table_size", 19, "Entries per level: 2^n", positive=True, maximum=26, label="Table Size (log2)"),
        Param("base_resolution", 16, "Grid of the coarsest level", positive=True),
        Param("finest_resolution", 1024, "Grid of the finest level (published 2048)", positive=True),
        Param("width", 64, "Hidden units of the MLPs", positive=True, maximum=MAX_WIDTH, label="Width"),
        Param("occupancy_resolution", 64, "Cells per axis of the occupancy grid (published 128)", positive=True, maximum=1024),
        Param("occupancy_interval", 16, "Steps between two occupancy-grid updates", positive=True),
        Param("occupancy_warmup", 256, "Steps that update every cell of the grid", minimum=0),
        Param("prune", False, "Drop samples behind opaque matter before the gradient pass (slower on a CPU)"),
    ),
)
BUILTIN: dict[str, ModelSettings] = {m.name: m for m in (FAST, CLASSIC)}
DEFAULT_MODEL = "fast"


def model_defaults(name: str) -> dict[str, Any]:
    """Every setting of built-in model ``name`` with its default, common ones included."""
    return {"model": name, **{p.name: p.default for p in params(COMMON, BUILTIN[name].params)}}
