"""Save and load field checkpoints: plain dicts of tensors, lists, numbers and strings.

Loading uses ``torch.load(weights_only=True)``, which refuses arbitrary pickled
objects, so a checkpoint from an untrusted source cannot run code. Every loaded
checkpoint is checked once, here (:func:`check_frame`): its keys, and the frame
(centre and a finite positive scale) that maps the field's cube to world space.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from typing import Any

import numpy as np
import torch
from torch import nn

from .context import JobError
from .fields import build_field
from .outputs import atomic_write


def save_checkpoint(ckpt: dict[str, Any], path: str) -> str:
    """Write ``ckpt`` atomically (:func:`~.outputs.atomic_write`); create parent folders. Returns the absolute path."""
    path = os.path.abspath(os.path.expanduser(path))
    try:
        with atomic_write(path) as fh:
            torch.save(ckpt, fh)
    except OSError as exc:
        raise JobError(f"cannot write the checkpoint to {path}: {exc.strerror or exc}") from None
    return path


def checkpoint_bytes(ckpt: dict[str, Any]) -> bytes:
    """The bytes of the file :func:`save_checkpoint` would write (to send a checkpoint over the wire)."""
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


Source = str | bytes | np.ndarray  # a path, or the file's bytes (raw or as a uint8 array)


def _one_line(exc: BaseException) -> str:
    """The line of a loading error that says what is wrong (torch's are paragraphs, with terminal colours)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    return next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else type(exc).__name__)


def is_checkpoint(path: str) -> bool:
    """Whether the file ``path`` is a field checkpoint (one this project may write over)."""
    if not zipfile.is_zipfile(path):  # what torch.save writes; anything else is refused without loading it
        return False
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file, a foreign one, unreadable
        return False
    return isinstance(ckpt, dict) and "config" in ckpt and "state_dict" in ckpt


# torch before 2.6 could run code while loading with weights_only=True (CVE-2025-32434): no checkpoint is read there.
SAFE_TORCH = (2, 6)


def _torch_version() -> tuple[int, int]:
    major, minor = (int(part) for part in re.findall(r"\d+", torch.__version__)[:2])
    return major, minor


def read_checkpoint(source: Source, device: torch.device | str = "cpu", frame: bool = False) -> dict[str, Any]:
    """The checkpoint dict at a path or in bytes (tensors mapped to ``device``), or JobError; with ``frame`` (a job
    that places the field), its frame checked too (:func:`check_frame`)."""
    if _torch_version() < SAFE_TORCH:
        raise JobError(f"torch {torch.__version__} cannot load checkpoints safely: install torch 2.6 or newer")
    fh: str | io.BytesIO
    if isinstance(source, (bytes, np.ndarray)):
        name, fh = "(sent with the job)", io.BytesIO(np.asarray(source, dtype=np.uint8).tobytes() if isinstance(source, np.ndarray) else source)
    else:
        name = fh = os.path.expanduser(source or "")
        if not name or not os.path.isfile(name):
            raise JobError(f"checkpoint not found: {name}")
    try:
        ckpt = torch.load(fh, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt file, or something that is not a plain checkpoint
        raise JobError(f"cannot read checkpoint {name}: {_one_line(exc)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise JobError(f"checkpoint {name} is not an inr_blender field checkpoint")
    if frame:
        check_frame(ckpt, name)
    return ckpt


def _numbers(value: Any, count: int) -> np.ndarray | None:
    """``value`` as ``count`` finite floats, else None."""
    if isinstance(value, (str, bytes, bool)):
        return None
    try:
        out = np.asarray(value.tolist() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (count,) and np.isfinite(out).all() else None


def _scale(value: Any) -> bool:
    """Whether ``value`` is a finite positive number."""
    number = None if isinstance(value, (list, tuple, dict)) else _numbers([value], 1)
    return number is not None and number[0] > 0


def check_frame(ckpt: dict[str, Any], name: str = "", num_shapes: int | None = None) -> None:
    """JobError (one line) unless the checkpoint's frame can place its field: ``center`` three finite numbers and
    ``scale`` finite and positive; a shape space's ``centers``/``scales`` one each per shape (``num_shapes`` when
    known); a radiance field's ``render`` settings. A zero or non-finite scale would put every vertex in one point."""
    what = f"checkpoint {name}" if name else "the checkpoint"
    missing = [k for k in ("center", "scale") if k not in ckpt]
    if missing:
        raise JobError(f"{what} lacks its {' and '.join(missing)} (the frame from the field's cube to world space)")
    if _numbers(ckpt["center"], 3) is None:
        raise JobError(f"{what} has a bad center: it must be three finite numbers")
    if not _scale(ckpt["scale"]):
        raise JobError(f"{what} has a bad scale {ckpt['scale']!r}: it must be a finite positive number")
    if "centers" in ckpt or "scales" in ckpt or ckpt["config"].get("kind") == "shape_space":
        centers, scales = ckpt.get("centers"), ckpt.get("scales")
        if not isinstance(centers, (list, tuple)) or not isinstance(scales, (list, tuple)) or len(centers) != len(scales):
            raise JobError(f"{what} needs centers and scales, one of each per shape")
        if num_shapes is not None and len(centers) != num_shapes:
            raise JobError(f"{what} has {len(centers)} centers and scales for {num_shapes} shapes")
        if any(_numbers(c, 3) is None for c in centers) or not all(_scale(s) for s in scales):
            raise JobError(f"{what} has a bad center or scale of a shape: three finite numbers and a finite positive scale each")
    if ckpt.get("format") == "inr_blender.nerf":
        render = ckpt.get("render")
        render = render if isinstance(render, dict) else {}
        if not isinstance(render.get("kind"), str) or any(_numbers([render.get(k)], 1) is None for k in ("step", "coarse", "fine")):
            raise JobError(f"{what} lacks its render settings (kind, step, coarse, fine)")


def load_checkpoint(source: Source, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the field in a checkpoint (path or bytes) on ``device``, in eval mode; return (module, checkpoint dict).
    The checkpoint is checked (:func:`check_frame`) once its network is built."""
    ckpt = read_checkpoint(source, device)
    try:
        field = build_field(ckpt["config"])
        field.load_state_dict(ckpt["state_dict"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise JobError(f"the checkpoint does not match its network config: {_one_line(exc)}") from None
    check_frame(ckpt, "" if isinstance(source, (bytes, np.ndarray)) else str(source), getattr(field, "num_shapes", None))
    return field.to(device).eval(), ckpt
