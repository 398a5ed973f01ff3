"""Neural field networks; each module registers its field kind (see :mod:`.factory`), importing them here does it.

:class:`.base.Field` is what every scalar field offers its consumers.
"""

from . import deepsdf, displacement, hashgrid, igr, nerf, siren  # noqa: F401  (registers their kinds)
from .base import Field, is_distance_field, smooth_base
from .factory import FIELD_KINDS, build_field, default_config, field_config, field_kind
from .grad import value_and_gradient
from .hashgrid import HashGridEncoding, HashGridSDF
from .igr import IGRNet
from .siren import Siren

__all__ = [
    "FIELD_KINDS",
    "Field",
    "HashGridEncoding",
    "HashGridSDF",
    "IGRNet",
    "Siren",
    "build_field",
    "default_config",
    "field_config",
    "field_kind",
    "is_distance_field",
    "smooth_base",
    "value_and_gradient",
]
