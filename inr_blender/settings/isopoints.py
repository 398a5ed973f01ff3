"""Settings of iso-point sampling (job ``sample_isopoints``, :mod:`inr_blender.geometry.isopoints`). Torch-free."""

from __future__ import annotations

from .spec import Param, Spec

PARAMS = (
    Param("count", 5000, "Iso-points to keep", minimum=1, label="Count"),
    Param("resample", True, "Spread the projected points evenly by repulsion", label="Resample"),
    Param("upsample", 0, "Points to add by edge-aware upsampling", minimum=0, label="Upsample"),
    Param("iterations", 10, "Newton steps of the projection (published 10)", positive=True),
    Param("tolerance", 5e-5, "|f| under which a projected point has converged (published 5e-5)", positive=True),
    Param("resample_steps", 10, "Repulsion steps of the resampling", minimum=0),
    Param("k", 8, "Neighbours of the repulsion (published 8)", positive=True),
    Param("seed", 0, "Random seed", minimum=0),
    Param("normal_similarity", 0.9, "Upsampling fills gaps only between neighbours whose normals' cosine is above this", minimum=0.0),
)
SPEC = Spec("isopoints", PARAMS, help="Iso-points: an evenly spread sample of a field's zero level")
