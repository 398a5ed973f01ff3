"""Neural field networks: IGR's softplus MLP and SIREN."""

from .factory import DEFAULT_CONFIGS, build_field, field_config
from .grad import value_and_gradient
from .igr import IGRNet
from .siren import Siren

__all__ = ["DEFAULT_CONFIGS", "IGRNet", "Siren", "build_field", "field_config", "value_and_gradient"]
