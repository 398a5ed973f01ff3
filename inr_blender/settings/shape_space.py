"""Settings of a shape-space fit (job ``fit_shape_space``, :mod:`inr_blender.fitting.shape_space`). Torch-free.

The defaults are DeepSDF's as published (Park 2019): codes of 256, 8 layers of 512 with dropout 0.2 and weight
norm, 64 shapes of 16384 samples per step; 2000 steps stand for the published 2000 epochs, rates halved every
quarter. The presets (settings/presets.py) hold smaller ones.
"""

from __future__ import annotations

from typing import Any

from ..context import JobError
from .spec import MAX_BATCH, MAX_DEPTH, MAX_SAMPLES, MAX_WIDTH, Param, Spec

METHODS = {"deepsdf": "sdf", "occupancy": "occupancy"}  # method -> the decoder's output


def _check(p: dict[str, Any]) -> None:
    if not p["dropout"] < 1:
        raise JobError(f"parameter dropout must be below 1, got {p['dropout']}")
    if p["shapes_per_step"] * p["samples_per_shape"] > 16 * MAX_BATCH:
        raise JobError(f"shapes_per_step x samples_per_shape must be at most {16 * MAX_BATCH:,} samples per step")
    if p["skip"] > 0 and p["width"] <= p["latent_size"] + 3:
        raise JobError(f"width {p['width']} must exceed latent_size + 3 ({p['latent_size'] + 3}) for the skip connection")


PARAMS = (
    Param("method", "deepsdf", "A signed distance auto-decoder (DeepSDF) or an occupancy decoder", choices=tuple(METHODS), label="Method"),
    Param("latent_size", 256, "Numbers per shape code", positive=True, maximum=MAX_WIDTH, label="Code Size"),
    Param("width", 512, "Hidden units per decoder layer", positive=True, maximum=MAX_WIDTH, label="Width"),
    Param("depth", 8, "Decoder layers", positive=True, maximum=MAX_DEPTH, label="Depth"),
    Param("skip", 4, "Layer that takes the input again (0: none)", minimum=0),
    Param("dropout", 0.2, "Dropout of the decoder's layers", minimum=0.0, label="Dropout"),
    Param("weight_norm", True, "Weight normalisation of the decoder's layers"),
    Param("iterations", 2000, "Training steps", positive=True, label="Iterations"),
    Param("shapes_per_step", 64, "Shapes per step", positive=True, maximum=MAX_BATCH, label="Shapes per Step"),
    Param("samples_per_shape", 16384, "Samples per shape and step", positive=True, maximum=MAX_BATCH, label="Samples per Shape"),
    Param("num_samples", 100_000, "Training samples drawn per shape", positive=True, maximum=MAX_SAMPLES, label="Samples"),
    Param("lr_decoder", 5e-4, "The decoder's learning rate", minimum=0.0, label="Decoder Rate"),
    Param("lr_codes", 1e-3, "The codes' learning rate", minimum=0.0, label="Code Rate"),
    Param("lr_interval", 0.25, "Fraction of the run between two halvings of the rates", positive=True),
    Param("clamp", 0.1, "Clamp of the distance loss", positive=True),
    Param("prior", 1e-4, "Weight of the codes' prior", minimum=0.0),
    Param("prior_ramp", 0.05, "Fraction of the run over which the prior ramps up", minimum=0.0),
    Param("code_std", 0.01, "Standard deviation of the initial codes", minimum=0.0),
    Param("seed", 0, "Random seed", minimum=0, label="Seed"),
    Param("max_seconds", 0.0, "Stop after this long (0: no limit; refused under torchrun)", minimum=0.0, label="Time Limit"),
    Param("device", "auto", "Where to train", choices=("auto", "cpu", "cuda", "mps")),
)
SPEC = Spec("shape_space", PARAMS, help="Fit a shape space (DeepSDF auto-decoder) to a collection of meshes", check=_check)
