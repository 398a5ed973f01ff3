"""``python -m inr_blender <command> ...``: the command line generated from the job registry (see :mod:`.cli`).

``fit-shape-space`` runs data-parallel when started by torchrun, e.g.
``torchrun --standalone --nproc_per_node 2 -m inr_blender fit-shape-space a.obj b.obj c.obj -o space.pt``.
"""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
