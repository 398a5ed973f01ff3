"""Presets: settings by purpose, for the operators, the panel and the CLI (``--preset fast``). Torch-free.

A preset fills in every setting the caller does not set explicitly: ``fit_sdf`` with preset
``smooth`` and ``iterations=300`` runs IGR 4x256 for 300 steps. ``custom`` (Blender's Custom)
is no preset: the caller's settings and the defaults. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..context import JobError


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    help: str
    values: dict[str, Any] = field(default_factory=dict)


def _table(*presets: Preset) -> dict[str, Preset]:
    return {p.name: p for p in presets}


# Signed distance fits (job fit_sdf). Figures: bench/results/sdf_vs_poisson.md.
SDF: dict[str, Preset] = _table(
    Preset(
        "fast",
        "Fast",
        "Hash grid, 500 steps at most: seconds to a minute on a CPU; the default",
        {
            "method": "hashgrid",
            "iterations": 500,
            "batch_size": 2048,
            "levels": 12,
            "log2_table_size": 18,
            "finest_resolution": 256,
            "convergence_tolerance": 0.005,
        },
    ),
    Preset(
        "detailed",
        "Detailed",
        "Finer hash grid (16 levels up to 512, 2^19 entries), 1500 steps: fine detail, slower",
        {
            "method": "hashgrid",
            "iterations": 1500,
            "batch_size": 4096,
            "levels": 16,
            "log2_table_size": 19,
            "finest_resolution": 512,
            "convergence_tolerance": 0.002,
        },
    ),
    Preset(
        "smooth",
        "Smooth",
        "IGR 4x256, 1000 steps: a smooth, rounded surface (fine detail is lost)",
        {"method": "igr", "iterations": 1000, "batch_size": 2048, "width": 256, "depth": 4, "convergence_tolerance": 0.005},
    ),
    # Clémot & Digne 2023: a SIREN of 6 sine layers of 64 trained with the TV term, for Extract Skeleton; it runs its
    # fixed schedule (learning points, TV decay) to the end, so no early stop.
    Preset(
        "skeleton",
        "Skeleton",
        "Neural skeleton (SIREN 6x64 with the TV term), 1000 steps: the field for Extract Skeleton; needs normals",
        {"method": "neural_skeleton", "iterations": 1000, "batch_size": 5000, "width": 64, "depth": 5, "convergence_tolerance": 0.0},
    ),
)
SDF_DEFAULT = "fast"
# Implicit displacement fields (fit_sdf with method idf). Both keep the base at 3 x 128 (omega 15): the backend stores
# that network pre-fitted to a sphere, where a base of another size is pre-fitted on demand first (minutes on a CPU).
DISPLACEMENT: dict[str, Preset] = _table(
    Preset(
        "fast",
        "Fast",
        "Base of 3 x 128, detail of 3 x 64, 1000 steps of 2048 points; the default",
        {"method": "idf", "iterations": 1000, "batch_size": 2048, "base_width": 128, "detail_width": 64},
    ),
    Preset(
        "detailed",
        "Detailed",
        "Base and detail of 3 x 128, 2000 steps of 4096 points: finer detail, slower",
        {"method": "idf", "iterations": 2000, "batch_size": 4096, "base_width": 128, "detail_width": 128},
    ),
)
DISPLACEMENT_DEFAULT = "fast"
# Shape spaces (fit_shape_space).
SHAPE_SPACE: dict[str, Preset] = _table(
    # small enough for a CPU: a few minutes for a handful of shapes; with far fewer samples per step than published,
    # 4x the published rates and no dropout (bench/shape_space.py measured both on 24 chairs)
    Preset(
        "fast",
        "Fast",
        "Codes of 64, 4 layers of 256, 2000 steps of 8 shapes x 2048 samples at 4x the published rates: minutes on a CPU; the default",
        {
            "latent_size": 64,
            "width": 256,
            "depth": 4,
            "dropout": 0.0,
            "weight_norm": True,
            "iterations": 2000,
            "shapes_per_step": 8,
            "samples_per_shape": 2048,
            "num_samples": 50000,
            "lr_decoder": 2e-3,
            "lr_codes": 4e-3,
        },
    ),
    # Park 2019: codes of 256, 8 layers of 512 with dropout 0.2 and weight norm, 64 shapes of 16384 samples per step
    # (the backend's defaults: its 2000 steps stand for the published 2000 epochs, rates halved every quarter)
    Preset(
        "published",
        "Published",
        "DeepSDF as published: codes of 256, 8 layers of 512, dropout 0.2, 2000 steps of 64 shapes x 16384 samples (a GPU)",
        {
            "latent_size": 256,
            "width": 512,
            "depth": 8,
            "dropout": 0.2,
            "weight_norm": True,
            "iterations": 2000,
            "shapes_per_step": 64,
            "samples_per_shape": 16384,
            "num_samples": 100000,
            "lr_decoder": 5e-4,
            "lr_codes": 1e-3,
        },
    ),
)
SHAPE_SPACE_DEFAULT = "fast"
# Radiance fits (fit_nerf): a preset per model, whose values on a device come from ON_DEVICE (the model's own
# defaults are the CPU's; settings/nerf.py).
RADIANCE: dict[str, Preset] = _table(
    Preset("fast", "Fast", "The hash-grid field; on a CUDA device with Instant-NGP's batch, grids and steps", {"model": "fast"}),
    Preset("classic", "Classic", "NeRF as published: slow", {"model": "classic"}),
)
RADIANCE_DEFAULT = "fast"
# Which presets each job offers (the CLI's --preset).
BY_JOB: dict[str, dict[str, Preset]] = {"fit_sdf": SDF, "fit_shape_space": SHAPE_SPACE, "fit_nerf": RADIANCE}
CUSTOM = "custom"


def apply(table: dict[str, Preset], name: str | None, given: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """``given`` with preset ``name``'s values in place of the settings it does not set (None: not set); on a
    ``device`` of a type in :data:`ON_DEVICE` ('cuda', 'cuda:1'), the preset's values there."""
    if not name or name == CUSTOM:
        return dict(given)
    if name not in table:
        raise JobError(f"unknown preset {name!r}; choose one of {', '.join(table)} or {CUSTOM}")
    out = dict(table[name].values)
    out.update(on_device(table, name, device))
    out.update({k: v for k, v in given.items() if v is not None})
    return out


@dataclass(frozen=True)
class DeviceValues:
    """Values that preset ``preset`` of ``table`` takes on a device of type ``device`` in place of its row's."""

    device: str
    table: dict[str, Preset]
    preset: str
    values: dict[str, Any]


def on_device(table: dict[str, Preset], name: str, device: str) -> dict[str, Any]:
    """What :data:`ON_DEVICE` says preset ``name`` of ``table`` takes on ``device`` (a type, or 'cuda:1'), beyond its row."""
    kind = device.split(":", 1)[0].strip().lower()
    return {k: v for d in ON_DEVICE if d.table is table and d.preset == name and d.device == kind for k, v in d.values.items()}


def device_settings(table: dict[str, Preset], name: str | None) -> set[str]:
    """The settings preset ``name`` of ``table`` takes from the device it runs on (:data:`ON_DEVICE`): a caller that
    fills in a preset itself (the Blender operators) leaves these to the worker, which knows the device."""
    return {k for d in ON_DEVICE if d.table is table and d.preset == name for k in d.values}


# The presets on a CUDA device, where a step of 64k points costs little more than one of 2k (the fused kernels):
# the SDF presets take batches and tables nearer Instant-NGP's SDF settings (16 levels of 2 features, 2^19 entries
# per level, finest resolution 2048, batches of about 2^18 points), keeping their iterations; the fast radiance field
# takes Instant-NGP's NeRF settings in place of the CPU's departures (settings/nerf.py): 2^18 samples per step,
# 1024 marching steps across the diagonal, a 128^3 occupancy grid, finest level 2048. Unmeasured so far:
# bench/gpu_check.sh runs both on a GPU. Applied by the worker once it knows the device (Job.resolve); a setting
# the caller gives wins, and Custom gets none.
ON_DEVICE: tuple[DeviceValues, ...] = (
    DeviceValues("cuda", SDF, "fast", {"batch_size": 32768, "levels": 16, "log2_table_size": 19, "finest_resolution": 512}),
    DeviceValues("cuda", SDF, "detailed", {"batch_size": 65536, "levels": 16, "log2_table_size": 21, "finest_resolution": 1024}),
    DeviceValues(
        "cuda",
        RADIANCE,
        "fast",
        {
            "samples_per_step": 1 << 18,
            "initial_rays": 4096,
            "max_rays": 1 << 16,
            "march_steps": 1024,
            "occupancy_resolution": 128,
            "finest_resolution": 2048,
        },
    ),
)
