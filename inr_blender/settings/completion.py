"""Settings of scan completion with a shape space (job ``reconstruct_shape``, :mod:`inr_blender.fitting.completion`).

Torch-free. Published settings (Park 2019): 800 iterations at a learning rate of 5e-3, divided by 10 halfway,
prior 1e-4, a code started from N(0, 0.01^2), 8000 samples per step.
"""

from __future__ import annotations

from .spec import MAX_BATCH, Param, Spec

PARAMS = (
    Param("iterations", 800, "Steps of the code's optimisation", positive=True, label="Iterations"),
    Param("learning_rate", 5e-3, "Adam's learning rate (divided by 10 halfway)", minimum=0.0, label="Learning Rate"),
    Param("prior", 1e-4, "Weight of the code's mean square", minimum=0.0, label="Prior"),
    Param("surface_offset", 0.025, "Offset along the normals of the two-sided samples (local units)", minimum=0.0, label="Surface Offset"),
    Param("samples_per_step", 8000, "Observations per step", positive=True, maximum=MAX_BATCH),
    Param("code_std", 0.01, "Standard deviation of the initial code", minimum=0.0),
    Param("clamp", 0.1, "Clamp of the distance loss", positive=True),
    Param("seed", 0, "Random seed", minimum=0, label="Seed"),
)
SPEC = Spec("completion", PARAMS, help="Complete a partial scan: a new latent code with the decoder frozen")
