"""The rule registry: how each module type maps an affine form, and how a field's output range is read.

Rules are looked up by the module's exact type, never by a base class: a
subclass may change ``forward``, and a rule that no longer matches it would
certify wrong ranges. Two kinds:

- layer rules, ``(module, form) -> form``, for layers and scalar fields;
- range rules, ``(module, form) -> (lo, hi)``, for fields whose value is a
  monotone function of a form (a NeRF's density) or that wrap another field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import Tensor, nn

from ..context import JobError
from .activations import Activation, activate, elu, relu, sigmoid, softplus, tanh
from .affine import AffineForm

M = TypeVar("M", bound=nn.Module)

# A rule takes the module it was registered for. The tables hold rules of every module type; a rule is looked
# up by its module's exact type, so it is only ever called with modules of that type (hence Any here).
LayerRule = Callable[[Any, AffineForm], AffineForm]
RangeRule = Callable[[Any, AffineForm], tuple[Tensor, Tensor]]

LAYER_RULES: dict[type[nn.Module], LayerRule] = {}
RANGE_RULES: dict[type[nn.Module], RangeRule] = {}


def layer_rule(*types: type[M]) -> Callable[[Callable[[M, AffineForm], AffineForm]], Callable[[M, AffineForm], AffineForm]]:
    """Decorator: register a layer rule for these exact module types."""

    def register(rule: Callable[[M, AffineForm], AffineForm]) -> Callable[[M, AffineForm], AffineForm]:
        for t in types:
            LAYER_RULES[t] = rule
        return rule

    return register


def range_rule(*types: type[M]) -> Callable[[Callable[[M, AffineForm], tuple[Tensor, Tensor]]], Callable[[M, AffineForm], tuple[Tensor, Tensor]]]:
    """Decorator: register a range rule for these exact module types."""

    def register(rule: Callable[[M, AffineForm], tuple[Tensor, Tensor]]) -> Callable[[M, AffineForm], tuple[Tensor, Tensor]]:
        for t in types:
            RANGE_RULES[t] = rule
        return rule

    return register


def _unsupported(module: nn.Module) -> JobError:
    known = sorted({t.__name__ for t in LAYER_RULES} | {t.__name__ for t in RANGE_RULES})
    return JobError(f"range analysis has no rule for {type(module).__name__}; supported modules: {', '.join(known)}")


def propagate(module: nn.Module, form: AffineForm) -> AffineForm:
    """The affine form of ``module``'s output, given the form of its input."""
    rule = LAYER_RULES.get(type(module))
    if rule is None:
        raise _unsupported(module)
    return rule(module, form)


def output_range(field: nn.Module, form: AffineForm) -> tuple[Tensor, Tensor]:
    """Certified (lo, hi) (B,) of a scalar field's value over the boxes of ``form``."""
    rule = RANGE_RULES.get(type(field))
    if rule is not None:
        return rule(field, form)
    out = propagate(field, form)
    if out.size != 1:
        raise JobError(f"{type(field).__name__} outputs {out.size} values; range analysis needs a scalar field")
    lo, hi = out.bounds()
    return lo[:, 0], hi[:, 0]


def activation_for(module: nn.Module) -> Activation:
    """The :class:`Activation` of an activation module (exact types only)."""
    if type(module) is nn.ReLU:
        return relu()
    if type(module) is nn.Softplus:
        return softplus(float(module.beta), float(module.threshold))
    if type(module) is nn.Tanh:
        return tanh()
    if type(module) is nn.Sigmoid:
        return sigmoid()
    if type(module) is nn.ELU:
        return elu(float(module.alpha))
    raise _unsupported(module)


@layer_rule(nn.ReLU, nn.Softplus, nn.Tanh, nn.Sigmoid, nn.ELU)
def _activation(module: nn.Module, form: AffineForm) -> AffineForm:
    return activate(form, activation_for(module))


@layer_rule(nn.Linear)
def linear(module: nn.Linear, form: AffineForm) -> AffineForm:
    return form.linear(module.weight, module.bias)


@layer_rule(nn.Sequential)
def _sequential(module: nn.Sequential, form: AffineForm) -> AffineForm:
    for child in module:
        form = propagate(child, form)
    return form


@layer_rule(nn.Identity, nn.Flatten)
def _identity(module: nn.Module, form: AffineForm) -> AffineForm:
    """Identity; Flatten too: a form is already flat per box (a scalar field's final Flatten(0) squeezes (N, 1))."""
    return form
