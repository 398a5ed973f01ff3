"""Neural field networks: IGR's softplus MLP, SIREN, and a hash-grid encoding with a small MLP."""

from .factory import DEFAULT_CONFIGS, build_field, field_config
from .grad import value_and_gradient
from .hashgrid import HashGridEncoding, HashGridSDF
from .igr import IGRNet
from .siren import Siren

__all__ = ["DEFAULT_CONFIGS", "HashGridEncoding", "HashGridSDF", "IGRNet", "Siren", "build_field", "field_config", "value_and_gradient"]
