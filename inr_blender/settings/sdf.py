"""Signed distance fits: the settings every method shares and each built-in method's own, with their defaults.

Published values are kept unless a comment says otherwise; the departures are for a 2-core CPU.
Each SDF method module (:mod:`inr_blender.fitting.methods`) takes its settings from here, so the
Blender side, the CLI and the worker read the same defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..context import JobError
from .preview import PREVIEW_EVERY
from .spec import MAX_BATCH, MAX_DEPTH, MAX_SAMPLES, MAX_WIDTH, Declared, Param, params

# Stopping (every method): at ``iterations``, at ``max_seconds`` (0: no limit), or once the mean loss of
# ``convergence_window`` steps improves by less than ``convergence_tolerance`` twice in a row (0: never), but
# not before a quarter of ``iterations``.
WINDOW = Param("convergence_window", 100, "Steps per mean loss of the convergence test", positive=True, cli=False)
STOPPING = (
    Param(
        "convergence_tolerance",
        0.005,
        f"Stop once the mean loss of {WINDOW.default} steps improves by less than this fraction twice in a row (0: never)",
        minimum=0.0,
        maximum=1.0,
        label="Stop Below",
    ),
    WINDOW,
    Param("max_seconds", 0.0, "Stop after this long (0: no limit)", minimum=0.0, label="Time Limit"),
)
# Iso-points (Wang Yifan 2021), for every method; 0 iso-points: off (see fitting/isopoint_term.py).
ISOPOINTS = (
    Param(
        "isopoints",
        0,
        "Train with this many iso-points too (refreshed every isopoints_refresh steps after the warm-up; 0: off)",
        minimum=0,
        maximum=MAX_SAMPLES,
        label="Iso-points",
    ),
    Param("isopoints_warmup", 300, "Steps before the first iso-points are extracted", minimum=0, label="Warm-up"),
    Param("isopoints_refresh", 1000, "Steps between two extractions of the iso-points", positive=True, label="Refresh Every"),
    Param("w_iso", 1.0, "Weight of the surface value term at the iso-points, relative to an input point's", minimum=0.0, label="Iso-point Weight"),
    Param(
        "w_iso_normal", 1.0, "Weight of the normal term at the iso-points, relative to an input point's", minimum=0.0, label="Iso-point Normal Weight"
    ),
)
COMMON = params(
    Param("num_samples", 100_000, "Surface points sampled on a mesh input", positive=True, maximum=MAX_SAMPLES, label="Surface Samples"),
    Param("seed", 0, "Random seed", minimum=0, label="Seed"),
    Param("device", "auto", "Where to train", choices=("auto", "cpu", "cuda", "mps")),
    PREVIEW_EVERY,
    STOPPING,
    ISOPOINTS,
)


def run(
    iterations: int,
    batch_size: int,
    learning_rate: float,
    lr_decay_interval: int | None,
    lr_decay_factor: float,
    grad_clip: float,
    adam_eps: float = 1e-8,
) -> tuple[Param, ...]:
    """A method's optimiser and run settings, with its own defaults."""
    return (
        Param("iterations", iterations, "The most steps to train", positive=True, label="Iterations"),
        Param("batch_size", batch_size, "Surface points per step", positive=True, maximum=MAX_BATCH, label="Batch Size"),
        Param("learning_rate", learning_rate, "Adam's learning rate", positive=True, label="Learning Rate"),
        Param(
            "lr_decay_interval",
            lr_decay_interval,
            "Steps between two learning-rate decays (0: constant; unset: at each third of the run)",
            kind=int,
            minimum=0,
        ),
        Param("lr_decay_factor", lr_decay_factor, "Factor of each learning-rate decay", positive=True),
        Param("grad_clip", grad_clip, "Clip the gradient's norm to this (0: no clipping)", minimum=0.0),
        Param("adam_eps", adam_eps, "Adam's epsilon", positive=True, cli=False),
    )


def network(width: int, depth: int) -> tuple[Param, ...]:
    return (
        Param("width", width, "Hidden units per layer", positive=True, maximum=MAX_WIDTH, label="Width"),
        Param("depth", depth, "Hidden layers", positive=True, maximum=MAX_DEPTH, label="Depth"),
    )


# IGR's loss and samples (shared by the hash grid, which trains with IGR's losses): softplus beta 100, lambda 0.1,
# tau 1, sigma = 50th-neighbour distance, global samples = batch/8 uniform in the domain (IGR's half-width 1.8 was
# for its own data scale; ours is the domain, half-width 1).
IGR_LOSS = (
    Param("beta", 100.0, "Softplus sharpness", minimum=0.0, label="Softplus β"),
    Param("init_radius", 0.5, "Radius of the sphere the geometric initialisation starts from", positive=True, cli=False),
    Param("lambda_eikonal", 0.1, "Weight of the eikonal term", minimum=0.0, label="Eikonal λ"),
    Param("tau_normals", 1.0, "Weight of the normal term", minimum=0.0, label="Normals τ"),
    Param("knn_sigma", 50, "σ of near-surface samples: the distance to this neighbour", positive=True, maximum=1000, label="σ Neighbour"),
    Param("global_sigma", 1.0, "Half-width of the uniform off-surface samples' box", positive=True, cli=False),
)
# SIREN's loss weights 3e3 / 1e2 / 5e1 / 1e2 (value, normal, eikonal, off-surface), alpha 100.
SIREN_LOSS = (
    Param("w_sdf", 3e3, "Weight of the surface value term", minimum=0.0, label="Surface Weight"),
    Param("w_normal", 1e2, "Weight of the normal term", minimum=0.0, label="Normal Weight"),
    Param("w_eikonal", 5e1, "Weight of the eikonal term", minimum=0.0, label="Eikonal Weight"),
    Param("w_offsurface", 1e2, "Weight of the off-surface term", minimum=0.0, label="Off-surface Weight"),
    Param("alpha", 100.0, "Decay of the off-surface term exp(-alpha |f|)", positive=True, label="Off-surface α"),
)
# SIREN: lr 1e-4, gradient norm clipped to 1; 10k epochs of very large batches (here 2000 steps of 4096 points).
SIREN_RUN = run(2000, 4096, 1e-4, 0, 1.0, 1.0)
INIT = Param("init", "sphere", "Start from a network pre-fitted to a sphere's distance field, or from random weights", choices=("sphere", "random"))


@dataclass(frozen=True)
class MethodSettings(Declared):
    """What the Blender side, the CLI and the fit know of an SDF method without torch."""

    needs_normals: bool = False
    normals_subject: str = ""  # "SIREN needs oriented normals" when the input has none

    def refuse_without_normals(self) -> str:
        """The one-line refusal of a fit without normals (empty when the method does not need them)."""
        if not self.needs_normals:
            return ""
        return f"{self.normals_subject or self.label} needs oriented normals; the point cloud has none (use IGR, or give the points normals)"


def _decay_by_thirds(p: dict[str, Any]) -> None:
    """An unset decay interval halves the rate at each third of the run (IGR's every 2000 of 100k steps, compressed)."""
    if p["lr_decay_interval"] is None:
        p["lr_decay_interval"] = max(1, p["iterations"] // 3)


def _check_igr(p: dict[str, Any]) -> None:
    _decay_by_thirds(p)
    if p["width"] < 4:
        raise JobError("an IGR network needs width >= 4")


# IGR (Gropp 2020): lr 0.005 halved every 2000 steps (at each third of the run unless set: on Suzanne, 1000 steps,
# 256x4, batch 2048, Chamfer-L1 0.0051 against 0.0133 at a constant rate), 8 x 512, 16384 points per step, 100k
# steps; here 2000 steps of 4096 points.
IGR = MethodSettings(
    "igr",
    "IGR",
    "Softplus MLP with geometric initialisation and an eikonal loss (Gropp 2020)",
    params(run(2000, 4096, 0.005, None, 0.5, 0.0), network(512, 8), IGR_LOSS),
    check=_check_igr,
)
SIREN = MethodSettings(
    "siren",
    "SIREN",
    "Sine-activation MLP with an off-surface term (Sitzmann 2020); needs normals",
    params(SIREN_RUN, network(256, 3), Param("omega0", 30.0, "Frequency of the first sine layer", positive=True, label="ω0"), SIREN_LOSS),
    needs_normals=True,
    normals_subject="SIREN",
)
# Hash grid (Instant-NGP, Müller 2022): 16 levels x 2 features, base resolution 16, Adam lr 1e-2 with eps 1e-15,
# IGR's losses and samples. Departures for CPU speed: 12 levels up to resolution 256 with 2^18 entries (published:
# 16 levels up to ~2048, 2^19), batch 2048 and at most 500 steps: on stanford-bunny (100k points) Chamfer-L1 0.0040
# in 36 s against 0.0039 for 1000 steps (70 s). Decoder: 64 x 2 softplus (see fields/hashgrid.py). Gradients by
# autograd (double backward): 7.4 s per 100 steps against 11.9 s for Neuralangelo's central differences, same
# Chamfer-L1 (fandisk), on the CPU; on CUDA the fused encoding (no double backward) always takes the differences.
# Added, with normals: far-field samples (w_far: L1 to the signed distance estimated from the cloud at uniform points
# >= far_distance from it; fandisk, 300 steps: Chamfer-L1 0.022 -> 0.0037) and a sign hinge on near-surface samples
# at least sign_distance from the cloud (w_sign; dragon precision 0.986 -> 0.997).
HASHGRID_ENCODING = (
    Param("levels", 12, "Grid levels (published 16)", positive=True, maximum=32, label="Levels"),
    Param("features_per_level", 2, "Features per level", positive=True, cli=False),
    Param("log2_table_size", 18, "Entries per level: 2^n (published 19)", positive=True, maximum=30, label="Table Size (log2)"),
    Param("base_resolution", 16, "Grid of the coarsest level", positive=True),
    Param("finest_resolution", 256, "Grid of the finest level (published 2048)", positive=True, label="Finest Resolution"),
)


def _check_hashgrid(p: dict[str, Any]) -> None:
    _decay_by_thirds(p)
    if p["finest_resolution"] < p["base_resolution"]:
        raise JobError("parameter finest_resolution must be at least base_resolution")


HASHGRID = MethodSettings(
    "hashgrid",
    "Hash Grid",
    "Multiresolution hash-grid encoding with a small MLP (Instant-NGP, Müller 2022), IGR's losses",
    params(
        run(500, 2048, 1e-2, None, 0.5, 0.0, adam_eps=1e-15),
        HASHGRID_ENCODING,
        network(64, 2),
        IGR_LOSS,
        Param("w_far", 1.0, "Pull the field to the estimated signed distance far from the points (needs normals)", minimum=0.0, label="Far Weight"),
        Param("far_distance", 0.05, "Far samples lie at least this far from the points", positive=True),
        Param("w_sign", 100.0, "Penalise the wrong sign just off the surface, from the points' normals", minimum=0.0, label="Sign Weight"),
        Param("sign_distance", 0.01, "The sign hinge acts at least this far from the points", positive=True),
        Param(
            "gradient",
            "autograd",
            "Input gradients by autograd or by central finite differences (always the latter on CUDA: the fused kernels)",
            choices=("autograd", "finite_difference"),
        ),
    ),
    check=_check_hashgrid,
)
# Neural skeleton (Clémot & Digne 2023; published: 6 sine layers of 64, omega0 30, L-BFGS for 50 epochs of 25k surface
# and 25k uniform points, 1000 learning points for the first 20 epochs, weights 100 (surface: 100 u^2 + alignment),
# 200 (eikonal), 100 (learning points: 10 (u - d)^2 + alignment) and 20 (TV, divided by 1 + (epoch/10)^2)). Here Adam
# over `iterations` steps stands for the 50 epochs: the learning points stay for the first `hint_fraction` (20/50)
# of them and the TV weight halves at `tv_decay` (10/50) of the run; batches of 5000 points for a 2-core CPU. It runs
# its fixed schedule to the end, so no early stop.
NEURAL_SKELETON = MethodSettings(
    "neural_skeleton",
    "Neural Skeleton",
    "SIREN 6x64 with a total-variation (TV) term that puts the gradient norm's minima on the medial axis "
    "(Clémot & Digne 2023): the field for Extract Skeleton; needs normals",
    params(
        run(1000, 5000, 1e-4, 0, 1.0, 0.0),
        network(64, 5),
        Param("omega0", 30.0, "Frequency of the first sine layer", positive=True, label="ω0"),
        Param("w_surface", 1e4, "Squared field value on the points (published 100 x 100)", minimum=0.0, label="Surface Weight"),
        Param("w_normal", 1e2, "1 - cos between the gradient and the normals (published 100)", minimum=0.0, label="Normal Weight"),
        Param("w_eikonal", 2e2, "(1 - |grad u|)^2 at uniform points (published 200)", minimum=0.0, label="Eikonal Weight"),
        Param(
            "w_hint",
            1e3,
            "Squared error to the known distance at the learning points (published 100 x 10)",
            minimum=0.0,
            label="Learning-Point Weight",
        ),
        Param(
            "w_hint_normal",
            1e2,
            "1 - cos to the direction away from the nearest point (published 100)",
            minimum=0.0,
            label="Learning-Point Direction Weight",
        ),
        Param(
            "w_tv", 2e1, "Total variation of the gradient norm: pushes its minima onto the medial axis (published 20)", minimum=0.0, label="TV Weight"
        ),
        Param(
            "num_hints",
            1000,
            "Uniform points of known signed distance, used for the first hint_fraction of the run",
            minimum=0,
            maximum=MAX_SAMPLES,
            label="Learning Points",
        ),
        Param("hint_fraction", 0.4, "Fraction of the run that uses the learning points", minimum=0.0),
        Param("tv_decay", 0.2, "Fraction of the run at which the TV weight has halved", positive=True),
        INIT,
        STOPPING[0].with_default(0.0),
    ),
    needs_normals=True,
    normals_subject="The neural skeleton",
)
# Implicit displacement fields (Wang Yifan 2022; published: SIREN bases of 3 x 256 at omega 15 pre-fitted to a sphere,
# detail 3 x 256 at omega 60, nu 0.05, offsets up to 0.05, weights 200 / 40 / 5 / 50 (value, normal, eikonal,
# off-surface), lr 1e-4; the base alone for the first 20%, then the detail, then both at a tenth of the rate).
# Departures for CPU speed: 3 x 128 for each network and 2000 steps of 4096 points. The detail's output layer starts
# at zero, so the composed field starts as the base (and stays it with phase_base = 1).


def _check_idf(p: dict[str, Any]) -> None:
    if not p["phase_base"] <= p["phase_detail"] <= 1.0:
        raise JobError(
            f"the phases must satisfy 0 <= phase_base <= phase_detail <= 1 (fractions of the run), got {p['phase_base']:g} and {p['phase_detail']:g}"
        )


IDF = MethodSettings(
    "idf",
    "Displacement",
    "Implicit displacement field (Wang Yifan 2022): a smooth SIREN base plus a high-frequency SIREN detail along its normals",
    params(
        SIREN_RUN,
        Param("base_width", 128, "Hidden units per layer of the base (published 256)", positive=True, maximum=MAX_WIDTH, label="Base Width"),
        Param("base_depth", 3, "Hidden layers of the base", positive=True, maximum=MAX_DEPTH, label="Base Depth"),
        Param("base_omega", 15.0, "ω0 of the base", positive=True, label="Base ω0"),
        Param("detail_width", 128, "Hidden units per layer of the detail (published 256)", positive=True, maximum=MAX_WIDTH, label="Detail Width"),
        Param("detail_depth", 3, "Hidden layers of the detail", positive=True, maximum=MAX_DEPTH, label="Detail Depth"),
        Param("detail_omega", 60.0, "ω0 of the detail", positive=True, label="Detail ω0"),
        Param("nu", 0.05, "Width of the band around the base where the detail acts, in local units", positive=True, label="ν"),
        Param("max_offset", 0.05, "Largest displacement along the base's normals, in local units", positive=True, label="Max Offset"),
        Param("phase_base", 0.2, "The base trains alone before this fraction of the run", minimum=0.0, maximum=1.0, label="Base Phase"),
        Param(
            "phase_detail", 0.5, "The detail trains alone until this fraction of the run, then both", minimum=0.0, maximum=1.0, label="Detail Phase"
        ),
        Param("joint_lr_factor", 0.1, "Learning-rate factor once both train", minimum=0.0),
        INIT,
        SIREN_LOSS[0].with_default(200.0),
        SIREN_LOSS[1].with_default(40.0),
        SIREN_LOSS[2].with_default(5.0),
        SIREN_LOSS[3].with_default(50.0),
        SIREN_LOSS[4],
        STOPPING[0].with_default(0.0),
    ),
    needs_normals=True,
    normals_subject="A displacement field",
    check=_check_idf,
)
# The built-in methods' settings, for the Blender side and the CLI (the fit reads the method registry,
# inr_blender.fitting.methods, which may hold more).
BUILTIN: dict[str, MethodSettings] = {m.name: m for m in (IGR, SIREN, HASHGRID, NEURAL_SKELETON, IDF)}
DEFAULT_METHOD = "igr"


def method_defaults(name: str) -> dict[str, Any]:
    """Every setting of built-in method ``name`` with its default, common ones included."""
    return {"method": name, **{p.name: p.default for p in params(COMMON, BUILTIN[name].params)}}
