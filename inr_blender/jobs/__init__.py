"""The jobs the worker (and the command line) can run, one module per capability.

Each job is registered where it is defined (:func:`.registry.job`) with its declared settings; ``JOBS`` maps a
job's name to its runner ``(params, arrays, ctx) -> (result, arrays)``, which resolves the params once from the
job's spec. Bad input raises JobError with a reason for the user; cancellation raises Cancelled from
``ctx.progress``.
"""

from __future__ import annotations

from . import displacement, extract, info, isopoints, nerf, ranges, sdf, shape_space, skeleton  # noqa: F401 (registers)
from .registry import JOBS, REGISTRY, Command, Job, Positional, job

__all__ = ["JOBS", "REGISTRY", "Command", "Job", "Positional", "job"]
