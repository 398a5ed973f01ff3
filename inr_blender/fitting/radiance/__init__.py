"""Radiance models as registered modules (one per model); the NeRF fit (fitting/nerf.py) names none of them.

A new model: its ``ModelSettings`` in ``inr_blender/settings/nerf.py`` (added to ``BUILTIN``), a module here with
a :class:`RadianceModel` subclass decorated ``@register`` (field config, render settings, per-step behaviour),
imported below; a new network registers its field kind in ``inr_blender/fields/``.
"""

from . import classic, fast  # noqa: F401,E402  (each registers its model)
from .base import MODELS, RadianceModel, register

__all__ = ["MODELS", "RadianceModel", "register"]
