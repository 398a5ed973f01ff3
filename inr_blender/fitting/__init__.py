"""Fitting: the shared training loop, the losses, SDF fitting (methods in :mod:`.methods`) and NeRF fitting
(models in :mod:`.radiance`)."""

from .sdf import SPEC, fit_sdf, resolve_params

__all__ = ["SPEC", "fit_sdf", "resolve_params"]
