"""Compute device selection and memory queries (CPU, CUDA, MPS)."""

from __future__ import annotations

import os
import sys

import torch

from .context import JobError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    """True when Apple's Metal backend can be used."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | None = "auto") -> torch.device:
    """Turn 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' into a usable device.

    'auto' picks CUDA, then MPS, then the CPU. Asking for an accelerator that is
    not there is an error rather than a silent fall-back to the CPU.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":", 1)[0]
    if kind not in DEVICE_CHOICES:
        raise JobError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise JobError(f"invalid device name {name!r}") from None
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise JobError("CUDA was requested but this backend has no CUDA device (torch build or driver)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise JobError(f"CUDA device {device.index} does not exist ({torch.cuda.device_count()} available)")
    if kind == "mps" and not mps_available():
        raise JobError("MPS was requested but Apple's Metal backend is not available here")
    return device


def available_memory_bytes() -> int:
    """RAM that can be allocated now, in bytes (best effort per platform)."""
    try:
        import psutil  # optional

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if sys.platform == "win32":
        import ctypes

        class _MemoryStatus(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong)] + [
                (name, ctypes.c_ulonglong)
                for name in ("total_phys", "avail_phys", "total_page", "avail_page", "total_virtual", "avail_virtual", "avail_ext")
            ]

        status = _MemoryStatus()
        status.dwLength = ctypes.sizeof(status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
            return int(status.avail_phys)
    # macOS and others: total physical memory is the best cheap bound we have.
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_training_memory(points: int, width: int, depth: int, device: torch.device, what: str, weights: int = 0) -> None:
    """JobError (one line) when a training step of ``points`` through ``depth`` layers of ``width`` units (and
    ``weights`` other weights, e.g. a hash table) cannot fit in the memory ``device`` has: a lower bound (one float per
    point, unit and layer, and Adam's four copies of the weights), so that it refuses only what could never run there."""
    needed = 4 * points * width * (depth + 1) + 16 * (width * width * depth + weights)
    free = device_free_memory_bytes(device)
    available = free if free is not None else available_memory_bytes()
    if available and needed > available:
        raise JobError(
            f"{what}: a step of {points:,} points through {depth} layers of {width} units needs at least {needed / 1e9:.1f} GB, "
            f"{available / 1e9:.1f} GB are available: ask for fewer points per step or a smaller network"
        )


def device_free_memory_bytes(device: torch.device) -> int | None:
    """Free memory on an accelerator, or None for the CPU / when unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        except (AttributeError, RuntimeError):
            return None
    return None
