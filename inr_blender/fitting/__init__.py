"""Fitting: the shared training loop, the method losses, and SDF fitting."""

from .sdf import METHOD_DEFAULTS, fit_sdf, resolve_params

__all__ = ["METHOD_DEFAULTS", "fit_sdf", "resolve_params"]
