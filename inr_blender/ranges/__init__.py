"""Range analysis of neural fields: interval and affine arithmetic over boxes (Sharp & Jacobson 2022).

``field_range(field, lower, upper, mode)`` certifies the range of a field's
value over each of a batch of boxes; ``classify`` turns it into +1 / -1 / 0.
Modules: ``affine`` (the batched affine form, its modes and the ``intersect``
option), ``activations`` (the linearisation of nonlinearities), ``encodings``
(Fourier features, |x|), ``hashgrid`` (the hash-grid encoding), ``rules`` (the
registry and the generic torch layers), ``fields`` (the project's fields),
``evaluate`` (the public entry points); the SDF methods' networks have their
rules in their method's module (``inr_blender.fitting.methods``). A new layer or field type gets its rule
with ``@layer_rule(Type)`` (form to form) or ``@range_rule(Type)`` (form to
bounds); anything without a rule is refused with a JobError naming its type.
"""

from ..fitting import methods as _methods  # noqa: E402,F401  (the SDF methods' networks register their rules there)
from .affine import MODES, AffineForm, RangeContext
from .evaluate import NEGATIVE, POSITIVE, UNKNOWN, classify, field_range
from .fields import DENSITY_FIELDS  # importing it registers the rules of the project's fields
from .rules import layer_rule, propagate, range_rule

__all__ = [
    "DENSITY_FIELDS",
    "MODES",
    "AffineForm",
    "NEGATIVE",
    "POSITIVE",
    "RangeContext",
    "UNKNOWN",
    "classify",
    "field_range",
    "layer_rule",
    "propagate",
    "range_rule",
]
