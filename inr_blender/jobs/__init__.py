"""The jobs the worker (and the command line) can run, one module per capability.

Each job is registered where it is defined (:func:`.registry.job`) with its declared settings; ``JOBS`` maps a
job's name to its runner ``(params, arrays, ctx) -> (result, arrays)``, which resolves the params once from the
job's spec. Bad input raises JobError with a reason for the user; cancellation raises Cancelled from
``ctx.progress``. Every module of this package but the core is imported here, which registers its jobs: a new
capability is a new module, and nothing else to list.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import JOBS, REGISTRY, Command, Job, Positional, job

_CORE = {"registry", "shared"}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _CORE):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["JOBS", "REGISTRY", "Command", "Job", "Positional", "job"]
