"""Fitting: the shared training loop, the method losses, and SDF fitting."""

from .sdf import SPEC, fit_sdf, resolve_params

__all__ = ["SPEC", "fit_sdf", "resolve_params"]
