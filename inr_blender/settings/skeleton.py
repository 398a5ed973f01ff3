"""Settings of skeleton extraction (job ``extract_skeleton``, :mod:`inr_blender.geometry.skeleton`). Torch-free.

Lengths (delta, merge_tolerance, trace_length) are fractions of the shape's longest half-extent. Published values
(Clémot & Digne 2023, Coverage Axis): delta 0.06, 10k surface samples, 100 repulsion steps, 50 samples per ray over
a length of 1, merge radius 0.01, MILP time limit 120 s with a relative gap of 0.1. Departures: 2000 surface
samples (as Coverage Axis samples its surfaces; they are iso-points, so their repulsion uses 8 neighbours and steps
from their spacing), 10 repulsion steps (iso-points' default; on one teddy field 50 steps gave Hausdorff 3.18%,
10 steps 2.76%, none 2.98%: within the sampling's noise) and a 60 s time limit, for a 2-core CPU; delta 0.02, which
measured a two-sided Hausdorff distance of 2.8% of the diagonal on teddy against 5.3% at 0.06 (103 vertices against
23; bench/skeleton.py).
"""

from __future__ import annotations

from .spec import Param, Spec

PARAMS = (
    Param("delta", 0.02, "Coverage dilation, a fraction of the shape's longest half-extent", positive=True, label="Delta"),
    Param("num_surface_samples", 2000, "Surface samples (iso-points) the skeleton must cover", minimum=4, maximum=1_000_000, label="Surface Samples"),
    Param("repulsion_steps", 10, "Repulsion steps that spread the surface samples", minimum=0),
    Param("trace_samples", 50, "Samples per inward ray when tracing skeletal points", minimum=2, maximum=10_000),
    Param("trace_length", 1.25, "Length of an inward ray, a fraction of the longest half-extent", positive=True),
    Param("merge_tolerance", 0.0125, "Skeletal candidates closer than this merge", minimum=0.0),
    Param("time_limit", 60.0, "Seconds for the set-cover MILP", positive=True, label="Time Limit"),
    Param("mip_rel_gap", 0.1, "Relative gap at which the MILP stops", minimum=0.0),
    Param("seed", 0, "Random seed", minimum=0),
    Param("drop_uncovered", True, "Drop surface samples no candidate covers instead of refusing the cover"),
)
SPEC = Spec("skeleton", PARAMS, help="The skeletal complex (medial axis) of a signed distance field")
