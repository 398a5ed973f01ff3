"""Job ``info``: what the backend is and can use."""

from __future__ import annotations

import platform
from typing import Any

import torch

from .. import __version__
from ..context import JobContext
from ..device import available_memory_bytes, mps_available, resolve_device
from ..settings.spec import Spec
from .registry import Arrays, Result, job


@job(Spec("info", help="What the backend is and can use"))
def info(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Versions, the device ``device`` resolves to, and the memory available."""
    return {
        "backend_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(resolve_device(p["device"])),
        "cuda_available": torch.cuda.is_available(),
        "mps_available": mps_available(),
        "memory_bytes": available_memory_bytes(),
    }, {}
