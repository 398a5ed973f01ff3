"""Regenerate the stored sphere pre-fits: ``python -m inr_blender.fitting.methods [neural_skeleton] [idf]``."""

from __future__ import annotations

import sys

from ..sdf import SPEC
from ..sphere_init import STORED, write_sphere
from . import METHODS


def main() -> None:
    for name, path in STORED.items():
        if sys.argv[1:] and name not in sys.argv[1:]:  # regenerate only the methods named, if any
            continue
        config = METHODS.get(name).sphere_start(SPEC.resolve({"method": name}))
        assert config is not None  # a method with a stored pre-fit starts from it
        write_sphere(config, path)


if __name__ == "__main__":
    main()
