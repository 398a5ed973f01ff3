"""Job ``info``: what the backend is and can use, and (asked for) how fast it fits."""

from __future__ import annotations

import platform
import threading
import time
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..context import Cancelled, JobContext
from ..device import available_memory_bytes, mps_available, resolve_device
from ..settings.spec import Param, Spec
from .registry import JOBS, Arrays, Result, job

THROUGHPUT = Param(
    "throughput",
    False,
    "Also measure, for about a second, how many steps per second a Fast-preset fit makes on the device",
    label="Measure Throughput",
)


def cpu_name() -> str:
    """The processor's model name, as the OS reports it (best effort)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def device_details(device: torch.device) -> tuple[str, int]:
    """The device's name and its memory in bytes (a GPU's total; the CPU's RAM available now)."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return props.name, int(props.total_memory)
    if device.type == "mps":
        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        return "Apple GPU (Metal)", int(recommended()) if recommended is not None else available_memory_bytes()
    return f"{cpu_name()} ({torch.get_num_threads()} threads)", available_memory_bytes()


def fast_preset_rate(device: str, seconds: float = 1.0) -> float:
    """Steps per second of a Fast-preset fit (a sphere's points) on ``device``, timed for ``seconds`` after the first step."""
    from ..fitting import sdf as sdf_fitting

    rng = np.random.default_rng(0)
    normals = rng.normal(size=(20000, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    p = JOBS["fit_sdf"].resolve({"preset": "fast", "device": device, "iterations": 1_000_000, "convergence_tolerance": 0.0})
    marks: list[tuple[float, int]] = []
    stop = threading.Event()

    def send(event: dict[str, Any]) -> None:
        if event["step"] >= 1:
            marks.append((time.perf_counter(), event["step"]))
            if marks[-1][0] - marks[0][0] >= seconds:
                stop.set()

    try:
        sdf_fitting.fit_sdf(normals * 0.5, normals, p, JobContext(send, stop, min_interval=0.05))
    except Cancelled:
        pass
    if len(marks) < 2 or marks[-1][0] <= marks[0][0]:
        return 0.0
    return (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])


@job(Spec("info", help="What the backend is and can use", params=(THROUGHPUT,)))
def info(p: dict[str, Any], arrays: Arrays, ctx: JobContext) -> Result:
    """Versions, the device ``device`` resolves to (its name and memory), and the steps per second asked for."""
    device = resolve_device(p["device"])
    name, memory = device_details(device)
    result = {
        "backend_version": __version__,
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda or "",
        "python": platform.python_version(),
        "device": str(device),
        "device_name": name,
        "device_memory_bytes": memory,
        "cuda_available": torch.cuda.is_available(),
        "mps_available": mps_available(),
        "memory_bytes": available_memory_bytes(),
    }
    if p["throughput"]:
        ctx.progress(0, 1, message="measuring the Fast preset's steps per second")
        result["fast_steps_per_second"] = round(fast_preset_rate(str(device)), 1)
    return result, {}
