"""Settings of detail transfer (job ``transfer_detail``, :mod:`inr_blender.fitting.transfer`). Torch-free."""

from __future__ import annotations

from .spec import Param, Spec

MODES = ("projected", "aligned")  # detail read at the source base's closest point, or at x itself
PARAMS = (
    Param("strength", 1.0, "Scale on the displacement (0 gives the target's base)", label="Strength"),
    Param("nu", 0.0, "Width of the shell where detail acts (0: the source's)", minimum=0.0, label="ν"),
    Param(
        "mode",
        "projected",
        "Read the detail at the source base's closest point (projected) or at the same coordinates (aligned)",
        choices=MODES,
        label="Mode",
    ),
    Param("projection_steps", 5, "Newton steps onto the source's base (projected mode)", positive=True),
)
SPEC = Spec("transfer", PARAMS, help="The detail of a displacement field on the base of another SDF")
