"""SDF methods as registered modules: one module per method, the fit (fitting/sdf.py) names none of them.

Recipe: a new SDF method touches these files, and nothing else (no list, no branch elsewhere):

1. ``inr_blender/settings/sdf.py`` (torch-free, so the Blender side and the CLI read its defaults): a
   ``MethodSettings(name, label, help, params(...), needs_normals=..., normals_subject=..., check=...)`` built from
   the shared groups (``run(...)``, ``network(...)``, ``IGR_LOSS``, ...) and added to ``BUILTIN``.
2. ``inr_blender/fitting/methods/<name>.py``: a subclass of :class:`SdfMethod` with ``settings = settings.<NAME>``,
   ``field_config(p)`` (the network config from the resolved settings), ``loss(field, batch, step)``, and where
   needed ``build_field`` (a special start), ``prepare`` (work once per fit: samples, signs, hints, phases) and
   ``param_groups`` (phased learning rates); decorated ``@register``. A new network type also gets its range rule
   there (``@layer_rule(Type)`` from ``inr_blender.ranges.rules``, mirroring its ``forward``).
3. This file: import the module below, so that registering happens on import.
4. Only for a new network: ``inr_blender/fields/<kind>.py`` with the module (a :class:`~inr_blender.fields.base.Field`)
   and its ``@field_kind("<kind>", defaults)`` builder, imported in ``inr_blender/fields/__init__.py``.
5. Tests in ``tests/backend/``; the Blender side (operators, properties) is separate work.

The fit_sdf job's ``method`` choices, settings and checks come from :data:`METHODS` when it resolves its
parameters, so a method registered later (a plug-in, a test: see tests/backend/test_backend_new_method.py)
fits, saves and extracts like a built-in one. ``python -m inr_blender.fitting.methods [name ...]`` regenerates the
stored sphere pre-fits (see :mod:`..sphere_init`).
"""

from . import hashgrid, idf, igr, neural_skeleton, siren  # noqa: F401,E402  (each registers its method)
from .base import METHODS, Batch, FitData, SdfMethod, register

__all__ = ["METHODS", "Batch", "FitData", "SdfMethod", "register"]
